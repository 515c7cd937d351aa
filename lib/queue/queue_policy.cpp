#include "queue/queue_policy.hpp"

#include <algorithm>

#include "mail/address.hpp"

namespace mailroom::mail {

namespace {

std::string lowercase(std::string_view text) {
    std::string out(text);
    for (char& c : out) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
    return out;
}

}  // namespace

QueueSettings QueueSettings::from_config(const core::Config& config) {
    QueueSettings settings;
    settings.myhostname = config.str("myhostname");
    for (const auto& domain : config.list("mydestination")) settings.mydestination.push_back(lowercase(domain));
    settings.recipient_delimiter = config.str("recipient_delimiter");
    settings.minimal_backoff = config.duration("minimal_backoff_time");
    settings.maximal_backoff = config.duration("maximal_backoff_time");
    settings.maximal_queue_lifetime = config.duration("maximal_queue_lifetime");
    settings.delay_warning_time = config.duration("delay_warning_time");
    settings.local = LocalDeliverySettings::from_config(config);
    return settings;
}

Route route_recipient(std::string_view recipient, const QueueSettings& settings) {
    Route route;
    auto address = Address::parse(recipient, ParseMode::bare);
    if (!address) {
        route.invalid = bad_address_status(address.error());
        return route;
    }
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
    // Account names are looked up in lower case, as Postfix's local does.
    route.user = lowercase(parts.user);
    route.extension = parts.extension;
    route.address = Address::quote_local(address->local_part()) + "@" + (domain.empty() ? settings.myhostname : domain);
    return route;
}

std::time_t next_retry(std::time_t now, int attempts, const QueueSettings& settings) {
    auto delay = settings.minimal_backoff;
    for (int i = 1; i < attempts && delay < settings.maximal_backoff; ++i) delay *= 2;
    delay = std::min(delay, settings.maximal_backoff);
    return now + static_cast<std::time_t>(delay.count());
}

bool is_expired(std::time_t arrival, std::time_t now, const QueueSettings& settings) {
    return now - arrival >= settings.maximal_queue_lifetime.count();
}

bool delay_warning_due(std::time_t arrival, std::time_t now, const QueueSettings& settings) {
    return settings.delay_warning_time.count() > 0 && now - arrival >= settings.delay_warning_time.count();
}

}  // namespace mailroom::mail
