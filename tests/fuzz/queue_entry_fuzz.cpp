// Any bytes as a queue entry's first line and tail (what a crash, a disk error or a
// hand edit can leave in the spool): an EBADMSG error with a message, or an entry
// whose envelope formats and parses back to itself, with state for every recipient.
#include <cerrno>
#include <cstdint>
#include <cstdlib>
#include <string_view>

#include "queue/queue_entry.hpp"

using namespace mailroom::mail;

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
    std::string_view text(reinterpret_cast<const char*>(data), size);
    if (auto header = parse_queue_header(text); !header && header.error().code.value() != EBADMSG) std::abort();
    auto parsed = parse_entry_tail(text);
    if (!parsed) {
        if (parsed.error().code.value() != EBADMSG || parsed.error().context.empty()) std::abort();
        return 0;
    }
    if (parsed->valid_length > size) std::abort();
    if (parsed->state.recipients.size() != parsed->envelope.recipients.size()) std::abort();
    auto again = parse_entry_tail(format_envelope(parsed->envelope));
    if (!again || again->envelope.recipients != parsed->envelope.recipients ||
        again->envelope.sender != parsed->envelope.sender ||
        again->envelope.arrival_micros != parsed->envelope.arrival_micros) {
        std::abort();
    }
    return 0;
}
