// Queue policy: routing, retry schedule, expiry (SPEC sections 2 and 4).
#include "queue/queue_policy.hpp"

#include <catch2/catch.hpp>

using namespace mailroom::mail;

namespace {
QueueSettings sample() {
    QueueSettings settings;
    settings.myhostname = "host.example";
    settings.mydestination = {"host.example", "localhost"};
    settings.recipient_delimiter = "+";
    return settings;
}
}  // namespace

TEST_CASE("Local recipients: a bare name, or a domain in mydestination, user+ext delivers to user", "[policy]") {
    auto settings = sample();
    auto bare = route_address("Bob", settings.routing());
    CHECK(bare.kind == Route::Kind::local);
    CHECK(bare.user == "bob");
    CHECK(bare.address == "Bob@host.example");
    auto ext = route_address("carol+lists@LOCALHOST", settings.routing());
    CHECK(ext.kind == Route::Kind::local);
    CHECK(ext.user == "carol");
    CHECK(ext.extension == "lists");
    CHECK(ext.address == "carol+lists@localhost");
    auto remote = route_address("dave@elsewhere.example", settings.routing());
    CHECK(remote.kind == Route::Kind::remote);
    CHECK(remote.address == "dave@elsewhere.example");
    auto bad = route_address("a b@@c", settings.routing());
    CHECK(bad.kind == Route::Kind::invalid);
    CHECK(bad.invalid.code() == "5.1.3");
    settings.recipient_delimiter = "";
    CHECK(route_address("carol+lists@localhost", settings.routing()).user == "carol+lists");
}

TEST_CASE("Retry: minimal_backoff_time, doubling up to maximal_backoff_time", "[policy]") {
    auto settings = sample();
    settings.minimal_backoff = std::chrono::seconds(300);
    settings.maximal_backoff = std::chrono::seconds(4 * 3600);
    CHECK(next_retry(1000, 1, settings) == 1300);
    CHECK(next_retry(1000, 2, settings) == 1600);
    CHECK(next_retry(1000, 3, settings) == 2200);
    CHECK(next_retry(1000, 7, settings) == 1000 + 14400);
    CHECK(next_retry(1000, 1000, settings) == 1000 + 14400);
}

TEST_CASE("Expiry after maximal_queue_lifetime, one delay notice after delay_warning_time, 0 disables", "[policy]") {
    auto settings = sample();
    settings.maximal_queue_lifetime = std::chrono::seconds(100);
    settings.delay_warning_time = std::chrono::seconds(10);
    CHECK_FALSE(is_expired(1000, 1099, settings));
    CHECK(is_expired(1000, 1100, settings));
    CHECK_FALSE(delay_warning_due(1000, 1009, settings));
    CHECK(delay_warning_due(1000, 1010, settings));
    settings.delay_warning_time = std::chrono::seconds(0);
    CHECK_FALSE(delay_warning_due(1000, 999999, settings));
}
