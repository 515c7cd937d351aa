// Helpers shared by the mbox writer tests: a message from text, a DeliveryInfo for the
// current user, and what one delivery adds to a mailbox. The general ones (TempDir,
// slurp, spit) are in support/test_support.hpp.
#pragma once

#include <stdlib.h>
#include <unistd.h>

#include <catch2/catch.hpp>
#include <chrono>
#include <ctime>
#include <string>
#include <string_view>

#include "delivery/mailbox_writer.hpp"
#include "mail/message.hpp"

namespace mbox_test {

inline mailroom::mail::Message message(std::string_view text) {
    mailroom::mail::MessageOptions options;
    options.strip_from_line = false;
    auto m = mailroom::mail::Message::from_string(text, options);
    REQUIRE(m);
    return std::move(*m);
}

// Thu Mar  5 07:08:09 2026 UTC; tests that check the From_ line set TZ=UTC.
constexpr std::time_t arrival = 1772694489;

inline mailroom::mail::DeliveryInfo info_for(const std::string& path) {
    mailroom::mail::DeliveryInfo info;
    info.sender = "alice@example.org";
    info.recipient = "bob@example.org";
    info.path = path;
    info.uid = ::geteuid();
    info.gid = ::getegid();
    info.arrival = arrival;
    info.locks.timeout = std::chrono::milliseconds(2000);
    return info;
}

inline void use_utc() {
    ::setenv("TZ", "UTC", 1);
    ::tzset();
}

// What one delivery of body from alice to bob adds to a mailbox (in UTC).
inline std::string delivered(const std::string& body) {
    std::string out = "From alice@example.org Thu Mar  5 07:08:09 2026\n"
                      "Return-Path: <alice@example.org>\nDelivered-To: bob@example.org\n" + body;
    if (!body.empty() && body.back() != '\n') out += '\n';
    return out + "\n";
}

}  // namespace mbox_test
