// Any bytes as what a user pipes into sendmail, fed in two pieces at a split the
// first byte chooses, with -t and -i from it too: the filter either fails with a
// message, or its output starts with Received: and the same input fed in one piece
// gives the same output and recipients.
#include <cstdint>
#include <cstdlib>
#include <string>
#include <string_view>

#include "mail/submission.hpp"

using namespace mailroom::mail;

namespace {

struct Run {
    std::string output;
    std::vector<std::string> recipients;
    bool failed = false;
};

Run filter(std::string_view input, size_t split, bool dash_t, bool dot_ends) {
    SubmissionSettings settings;
    settings.myhostname = "host.example";
    settings.login = "fuzz";
    settings.queue_id = "8DnJT2mDn03is00";
    settings.now = 1795292614;
    settings.recipients_from_headers = dash_t;
    settings.dot_ends_message = dot_ends;
    Run run;
    SubmissionFilter f(settings, [&](std::string_view chunk) -> mailroom::core::Result<void> {
        run.output += chunk;
        return {};
    });
    split = std::min(split, input.size());
    run.failed = !f.feed(input.substr(0, split)) || !f.feed(input.substr(split)) || !f.finish();
    run.recipients = f.header_recipients();
    return run;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
    if (size < 2) return 0;
    bool dash_t = data[0] & 1, dot_ends = data[0] & 2;
    size_t split = data[1];
    std::string_view input(reinterpret_cast<const char*>(data + 2), size - 2);
    Run pieces = filter(input, split, dash_t, dot_ends);
    Run whole = filter(input, input.size(), dash_t, dot_ends);
    if (pieces.failed != whole.failed) std::abort();
    if (whole.failed) return 0;
    if (pieces.output != whole.output || pieces.recipients != whole.recipients) std::abort();
    if (whole.output.rfind("Received: by host.example", 0) != 0) std::abort();
    return 0;
}
