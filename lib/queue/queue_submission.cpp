#include "queue/queue_submission.hpp"

#include <sys/time.h>

#include <algorithm>

#include "core/io.hpp"
#include "mail/address.hpp"

namespace mailroom::mail {

namespace {

// Postfix's append_at_myorigin: "bob" and "bob@host" are one address, and a
// notice to a sender given as "root" (cron's -f root) reaches root@host.
std::string qualified(const std::string& given, const std::string& default_domain) {
    auto address = Address::parse(given, ParseMode::bare);
    if (!address) return given;
    if (!address->has_domain() && !default_domain.empty()) return address->str() + "@" + default_domain;
    return address->str();
}

}  // namespace

core::Result<Submitted> submit_message(const Spool& spool, SubmitRequest request, int input_fd) {
    auto writer = QueueWriter::begin(spool);
    if (!writer) return core::unexpected(writer.error());
    struct timeval now {};
    ::gettimeofday(&now, nullptr);
    request.filter.queue_id = writer->id();
    request.filter.now = now.tv_sec;
    SubmissionFilter filter(request.filter, [&](std::string_view bytes) { return writer->write(bytes); });
    std::string chunk(64 * 1024, '\0');
    while (!filter.ended_by_dot()) {
        auto n = core::read_some(input_fd, chunk.data(), chunk.size(), "standard input");
        if (!n) return core::unexpected(n.error());
        if (*n == 0) break;
        if (auto r = filter.feed(std::string_view(chunk.data(), *n)); !r) return core::unexpected(r.error());
    }
    if (auto r = filter.finish(); !r) return core::unexpected(r.error());

    Envelope envelope;
    envelope.sender = request.sender.empty() ? "" : qualified(request.sender, request.default_domain);
    envelope.submitter_uid = request.filter.uid;
    envelope.arrival_micros = static_cast<uint64_t>(now.tv_sec) * 1'000'000 + static_cast<uint64_t>(now.tv_usec);
    // -t recipients first, in header order, then the command line's; each once.
    const std::vector<std::string>* lists[] = {&filter.header_recipients(), &request.recipients};
    for (const auto* list : lists) {
        for (const auto& given : *list) {
            // The filter vouches that each parses; the canonical form keeps duplicates out.
            std::string recipient = qualified(given, request.default_domain);
            if (std::find(envelope.recipients.begin(), envelope.recipients.end(), recipient) == envelope.recipients.end()) {
                envelope.recipients.push_back(recipient);
            }
        }
    }
    if (envelope.recipients.empty()) return core::unexpected_errno("no recipient addresses found", EDESTADDRREQ);
    if (auto r = writer->commit(envelope); !r) return core::unexpected(r.error());
    return Submitted{writer->id(), writer->size(), envelope.recipients.size(), filter.message_id()};
}

}  // namespace mailroom::mail
