#include "delivery/routing.hpp"

#include <algorithm>

#include "mail/address.hpp"

namespace mailroom::mail {

std::string lowercase_ascii(std::string_view text) {
    std::string out(text);
    for (char& c : out) {
        if (c >= 'A' && c <= 'Z') c = static_cast<char>(c - 'A' + 'a');
    }
    return out;
}

RoutingSettings RoutingSettings::from_config(const core::Config& config) {
    RoutingSettings settings;
    settings.myhostname = config.str("myhostname");
    for (const auto& domain : config.list("mydestination")) settings.mydestination.push_back(lowercase_ascii(domain));
    settings.recipient_delimiter = config.str("recipient_delimiter");
    return settings;
}

Route route_address(std::string_view text, const RoutingSettings& settings) {
    Route route;
    auto address = Address::parse(text, ParseMode::bare);
    if (!address) {
        route.invalid = bad_address_status(address.error());
        return route;
    }
    if (address->is_null()) return route;
    std::string domain = address->lowercase_domain();
    bool local = domain.empty() || std::find(settings.mydestination.begin(), settings.mydestination.end(), domain) !=
                                       settings.mydestination.end();
    if (!local) {
        route.kind = Route::Kind::remote;
        route.address = address->str();
        return route;
    }
    auto parts = split_extension(address->local_part(), settings.recipient_delimiter);
    route.kind = Route::Kind::local;
    route.user = lowercase_ascii(parts.user);
    route.extension = parts.extension;
    route.address = Address::quote_local(address->local_part()) + "@" + (domain.empty() ? settings.myhostname : domain);
    return route;
}

}  // namespace mailroom::mail
