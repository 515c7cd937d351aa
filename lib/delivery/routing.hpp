// Routing: whether an address is delivered here, and to which account. The first
// question the expander asks of every address, whether it came in the envelope or
// out of an alias, an :include: file or a .forward.
// Local: no domain, or a domain in mydestination (case-insensitive); `user+ext`
// goes to `user` (recipient_delimiter), looked up in lower case as Postfix's local
// does. Everything else is remote.
// Must never: look anyone up or touch a file (pure, so each rule is tested alone).
#pragma once

#include <string>
#include <string_view>
#include <vector>

#include "core/config.hpp"
#include "mail/status.hpp"

namespace mailroom::mail {

struct RoutingSettings {
    std::string myhostname;
    std::vector<std::string> mydestination;  // lowercase
    std::string recipient_delimiter = "+";

    static RoutingSettings from_config(const core::Config& config);
};

struct Route {
    enum class Kind { local, remote, invalid };
    Kind kind = Kind::invalid;
    std::string user;       // local: the account name (extension removed, lowercase)
    std::string extension;  // local: what followed the recipient_delimiter
    std::string address;    // local: user+ext@domain as Delivered-To shows it; remote: the address
    Status invalid{Status::perm("5.1.3", "bad address syntax")};
};

Route route_address(std::string_view address, const RoutingSettings& settings);

std::string lowercase_ascii(std::string_view text);

}  // namespace mailroom::mail
