// Queue policy: the decisions the queue runner takes from the configuration and
// nothing else — which recipients are local and to which user, when a deferred
// recipient is tried again, when it has been queued too long, when its sender
// gets the one delay notice. Pure functions, so each rule is tested alone.
#pragma once

#include <chrono>
#include <ctime>
#include <string>
#include <string_view>
#include <vector>

#include "core/config.hpp"
#include "delivery/local_delivery.hpp"
#include "delivery/routing.hpp"
#include "mail/status.hpp"

namespace mailroom::mail {

struct QueueSettings {
    std::string myhostname;
    std::vector<std::string> mydestination;  // lowercase
    std::string recipient_delimiter;
    std::chrono::seconds minimal_backoff{300};
    std::chrono::seconds maximal_backoff{4 * 3600};
    std::chrono::seconds maximal_queue_lifetime{5 * 86400};
    std::chrono::seconds delay_warning_time{4 * 3600};  // 0: no delay notices
    LocalDeliverySettings local;

    static QueueSettings from_config(const core::Config& config);
    RoutingSettings routing() const { return {myhostname, mydestination, recipient_delimiter}; }
};

// When a recipient deferred for the attempts-th time is next due: minimal_backoff,
// doubling with each attempt, never more than maximal_backoff.
std::time_t next_retry(std::time_t now, int attempts, const QueueSettings& settings);
// A recipient still undelivered this long after arrival bounces.
bool is_expired(std::time_t arrival, std::time_t now, const QueueSettings& settings);
bool delay_warning_due(std::time_t arrival, std::time_t now, const QueueSettings& settings);

}  // namespace mailroom::mail
