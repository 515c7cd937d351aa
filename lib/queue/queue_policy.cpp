#include "queue/queue_policy.hpp"

#include <algorithm>

namespace mailroom::mail {

QueueSettings QueueSettings::from_config(const core::Config& config) {
    QueueSettings settings;
    auto routing = RoutingSettings::from_config(config);
    settings.myhostname = routing.myhostname;
    settings.mydestination = routing.mydestination;
    settings.recipient_delimiter = routing.recipient_delimiter;
    settings.minimal_backoff = config.duration("minimal_backoff_time");
    settings.maximal_backoff = config.duration("maximal_backoff_time");
    settings.maximal_queue_lifetime = config.duration("maximal_queue_lifetime");
    settings.delay_warning_time = config.duration("delay_warning_time");
    settings.local = LocalDeliverySettings::from_config(config);
    return settings;
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
