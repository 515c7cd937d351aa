// Any bytes as an address, in every mode: an error with a message, or an address
// whose canonical form parses back to the same mailbox.
#include <cstdint>
#include <cstdlib>
#include <string_view>

#include "mail/address.hpp"

using namespace mailroom::mail;

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
    if (size == 0) return 0;
    ParseFlags flags;
    flags.allow_null = data[0] & 1;
    flags.allow_utf8 = data[0] & 2;
    flags.require_domain = data[0] & 4;
    ParseMode mode = (data[0] & 8) ? ParseMode::path : ParseMode::bare;
    std::string_view text(reinterpret_cast<const char*>(data + 1), size - 1);
    auto address = Address::parse(text, mode, flags);
    if (!address) {
        if (address.error().message().empty()) std::abort();
        return 0;
    }
    if (address->is_null()) return 0;
    auto again = Address::parse(address->path(), ParseMode::path, flags);
    if (!again || !again->same_mailbox(*address) || again->str() != address->str()) std::abort();
    return 0;
}
