// Any bytes as what a client sends after DATA or in BDAT chunks, in both framings and
// both bare-newline modes, fed whole and in two pieces at a split the first two bytes
// choose (the third, when not 0, is a size limit): both feedings give the same output,
// consumed count and error; the output holds no CR; the data ends exactly at the first
// CRLF "." CRLF (counting the DATA command's CRLF) and never elsewhere.
#include <cstdint>
#include <cstdlib>
#include <optional>
#include <string>
#include <string_view>

#include "smtp/data_decoder.hpp"

using namespace mailroom::smtp;

namespace {

struct Run {
    std::string output;
    size_t consumed = 0;
    bool ended = false;
    std::optional<std::string> error;  // code and text
    uint64_t size = 0;
};

void check(bool ok) {
    if (!ok) std::abort();
}

Run decode(std::string_view input, size_t split, DataDecoderSettings settings) {
    Run run;
    DataDecoder decoder(settings, [&](std::string_view piece) -> mailroom::core::Result<void> {
        check(!piece.empty() && piece.size() <= 64 * 1024);
        run.output += piece;
        return {};
    });
    const std::string_view first = input.substr(0, split), second = input.substr(split);
    run.consumed = decoder.feed(first);
    if (decoder.ended()) {
        check(decoder.feed(second) == 0);
    } else {
        check(run.consumed == first.size());
        run.consumed += decoder.feed(second);
    }
    decoder.finish();
    run.ended = decoder.ended();
    if (decoder.error()) run.error = decoder.error()->code() + " " + decoder.error()->text();
    run.size = decoder.size();
    return run;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
    if (size < 3) return 0;
    const std::string_view input(reinterpret_cast<const char*>(data + 3), size - 3);
    const size_t split = (data[0] | size_t{data[1]} << 8) % (input.size() + 1);
    const uint64_t limit = data[2];

    const std::string framed = "\r\n" + std::string(input);
    const size_t first_end = framed.find("\r\n.\r\n");

    for (const auto framing : {Framing::dot, Framing::chunks}) {
        for (const auto mode : {BareNewline::reject, BareNewline::normalize}) {
            const DataDecoderSettings settings{framing, mode, limit};
            const Run whole = decode(input, input.size(), settings);
            const Run pieces = decode(input, split, settings);
            check(pieces.output == whole.output && pieces.consumed == whole.consumed &&
                  pieces.ended == whole.ended && pieces.error == whole.error &&
                  pieces.size == whole.size);

            check(whole.output.find('\r') == std::string::npos);
            check(whole.size == whole.output.size());
            check(limit == 0 || whole.size <= limit);
            check(whole.consumed <= input.size());
            if (framing == Framing::chunks) {
                check(!whole.ended && whole.consumed == input.size());
                continue;
            }
            if (!whole.ended) {
                check(first_end == std::string::npos && whole.consumed == input.size());
                continue;
            }
            const std::string_view used = input.substr(0, whole.consumed);
            check(used == ".\r\n" ||
                  (used.size() >= 5 && used.substr(used.size() - 5) == "\r\n.\r\n"));
            check(first_end + 3 == whole.consumed);
        }
    }
    return 0;
}
