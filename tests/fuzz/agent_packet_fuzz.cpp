// Any bytes as a packet of the delivery agents' protocol: a write request (what an
// agent reads) and an agent request (what the `mta -d` loop reads from a worker).
// Either is refused with an error or decodes to fields that encode back to a
// packet decoding to the same thing; never a crash.
#include <cstdint>
#include <cstdlib>
#include <string>
#include <string_view>

#include "delivery/agent_handoff.hpp"
#include "delivery/write_job.hpp"

namespace mail = mailroom::mail;

namespace {

void check_write_request(std::string_view packet) {
    auto request = mail::decode_write_request(packet);
    if (!request) {
        if (request.error().message().empty()) std::abort();
        return;
    }
    std::string again = mail::encode_write_request(*request);
    auto back = mail::decode_write_request(again);
    if (!back || mail::encode_write_request(*back) != again) std::abort();
    const auto& a = request->job.info;
    const auto& b = back->job.info;
    if (a.path != b.path || a.sender != b.sender || a.recipient != b.recipient || a.uid != b.uid ||
        request->offset != back->offset || request->size != back->size)
        std::abort();
}

void check_agent_request(std::string_view packet) {
    auto as = mail::decode_agent_request(packet);
    if (!as) {
        if (as.error().message().empty()) std::abort();
        return;
    }
    if (!mail::is_agent_request(packet)) std::abort();
    auto back = mail::decode_agent_request(mail::encode_agent_request(*as));
    if (!back || !mail::same_credentials(*as, *back) || back->name != as->name) std::abort();
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
    std::string_view packet(reinterpret_cast<const char*>(data), size);
    check_write_request(packet);
    check_agent_request(packet);
    return 0;
}
