#include "delivery/local_delivery.hpp"

#include "mail/address.hpp"

namespace mailroom::mail {

core::Result<std::string> envelope_sender(const std::optional<std::string>& given, const Message& message,
                                          std::string_view fallback) {
    std::string raw;
    if (given) raw = *given;
    else if (message.from_line_sender()) raw = *message.from_line_sender();
    else return std::string(fallback);
    if (raw.empty() || raw == "<>") return std::string();
    auto address = Address::parse(raw, ParseMode::bare);
    if (!address) return core::unexpected_input("bad sender address '" + raw + "' (" + address.error().message() + ")");
    return address->str();
}

}  // namespace mailroom::mail
