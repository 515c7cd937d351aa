// The header fields sendmail adds (SPEC 1): Received:, From:, Date:, Message-ID:.
#include "mail/submission_headers.hpp"

#include <catch2/catch.hpp>
#include <string>

#include "unit/submission_test_support.hpp"

using namespace mailroom::mail;
using mailroom::test::TimeZoneGuard;

namespace {
constexpr std::time_t nov21 = 1795292614;  // Sat, 21 Nov 2026 20:23:34 UTC
constexpr std::time_t mar05 = 1772683506;  // Thu, 05 Mar 2026 04:05:06 UTC
}  // namespace

TEST_CASE("The Date is RFC 5322 in the local time zone", "[submission_headers]") {
    {
        TimeZoneGuard tz("UTC0");
        CHECK(rfc5322_date(nov21) == "Sat, 21 Nov 2026 20:23:34 +0000");
        CHECK(rfc5322_date(mar05) == "Thu, 5 Mar 2026 04:05:06 +0000");
        CHECK(date_header(nov21) == "Date: Sat, 21 Nov 2026 20:23:34 +0000\n");
    }
    {
        TimeZoneGuard tz("EST5");
        CHECK(rfc5322_date(mar05) == "Wed, 4 Mar 2026 23:05:06 -0500");
    }
    {
        TimeZoneGuard tz("IST-5:30");
        CHECK(rfc5322_date(nov21) == "Sun, 22 Nov 2026 01:53:34 +0530");
    }
    {
        TimeZoneGuard tz("<-0330>3:30");
        CHECK(rfc5322_date(nov21) == "Sat, 21 Nov 2026 16:53:34 -0330");
    }
}

TEST_CASE("The Received header names host, user id and queue id", "[submission_headers]") {
    TimeZoneGuard tz("UTC0");
    CHECK(received_header("host.example.org", 1000, "4ZabcDEF12", nov21) ==
          "Received: by host.example.org (mailroom, from userid 1000)\n"
          "\tid 4ZabcDEF12; Sat, 21 Nov 2026 20:23:34 +0000\n");
}

TEST_CASE("The Message-ID is the UTC time, the queue id and the host name", "[submission_headers]") {
    TimeZoneGuard tz("IST-5:30");
    CHECK(message_id_header(nov21, "4ZabcDEF12", "host.example.org") ==
          "Message-ID: <20261121202334.4ZabcDEF12@host.example.org>\n");
}

TEST_CASE("A display name is quoted only when it holds specials", "[submission_headers]") {
    CHECK(display_name("Cron Daemon") == "Cron Daemon");
    CHECK(display_name("CronDaemon") == "CronDaemon");
    CHECK(display_name("O'Brien-Smith") == "O'Brien-Smith");
    CHECK(display_name("Jürgen Groß") == "Jürgen Groß");
    CHECK(display_name("Doe, John") == "\"Doe, John\"");
    CHECK(display_name("J. R. Dobbs") == "\"J. R. Dobbs\"");
    CHECK(display_name("root (admin)") == "\"root (admin)\"");
    CHECK(display_name("say \"hi\" \\ x") == "\"say \\\"hi\\\" \\\\ x\"");
    CHECK(display_name("a<b>@c") == "\"a<b>@c\"");
    SECTION("control characters become spaces and outer spaces go") {
        CHECK(display_name("Evil\nBcc: x@y") == "\"Evil Bcc: x@y\"");
        CHECK(display_name(" Bob\r\n") == "Bob");
        CHECK(display_name(std::string("a\0b", 3)) == "a b");
        CHECK(display_name(" \t ") == "");
        CHECK(display_name("") == "");
    }
}

TEST_CASE("The generated From is the login at myhostname with the full name", "[submission_headers]") {
    CHECK(from_header("Bob Smith", "bob", "host.example.org") ==
          "From: Bob Smith <bob@host.example.org>\n");
    CHECK(from_header("", "bob", "host.example.org") == "From: bob@host.example.org\n");
    CHECK(from_header("Doe, John", "john", "h") == "From: \"Doe, John\" <john@h>\n");
    CHECK(from_header("", "odd user", "h") == "From: \"odd user\"@h\n");
}
