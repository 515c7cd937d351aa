// Helpers shared by the notice tests: a time zone set for one test, the sample
// originals and requests behind the golden files in tests/data/bounce/, and the
// comparison with a golden file (MAILROOM_UPDATE_GOLDEN=1 rewrites it instead),
// followed by its independent reading (tests/data/bounce/check_goldens.py).
#pragma once

#include <stdlib.h>
#include <time.h>

#include <catch2/catch.hpp>
#include <cstdlib>
#include <ctime>
#include <optional>
#include <string>
#include <string_view>

#include "mail/bounce.hpp"
#include "mail/message.hpp"
#include "mail/status.hpp"
#include "support/test_support.hpp"

namespace bounce_test {

using mailroom::mail::Message;
using mailroom::mail::NoticeKind;
using mailroom::mail::NoticeRequest;
using mailroom::mail::ReportedRecipient;
using mailroom::mail::Status;

// Sets TZ for the life of the object and puts back what was there.
class TimeZone {
public:
    explicit TimeZone(const char* tz) {
        if (const char* old = ::getenv("TZ")) old_ = old;
        ::setenv("TZ", tz, 1);
        ::tzset();
    }
    ~TimeZone() {
        if (old_) ::setenv("TZ", old_->c_str(), 1);
        else ::unsetenv("TZ");
        ::tzset();
    }
    TimeZone(const TimeZone&) = delete;
    TimeZone& operator=(const TimeZone&) = delete;

private:
    std::optional<std::string> old_;
};

inline Message message(std::string_view text) {
    mailroom::mail::MessageOptions options;
    options.strip_from_line = false;
    auto m = Message::from_string(text, options);
    REQUIRE(m);
    return std::move(*m);
}

// Mon, 3 Jun 2024 13:22:11 +0000
constexpr std::time_t arrival = 1717420931;

inline const std::string& small_original() {
    static const std::string text =
        "Return-Path: <alice@example.org>\n"
        "From: Alice <alice@example.org>\n"
        "To: team@example.org, carol@remote.example\n"
        "Subject: minutes of the meeting\n"
        "Message-ID: <m1@example.org>\n"
        "\n"
        "Here are the minutes.\n"
        "--\n"
        "Alice\n";
    return text;
}

inline NoticeRequest base_request(NoticeKind kind) {
    NoticeRequest r;
    r.kind = kind;
    r.reporting_host = "mail.example.org";
    r.queue_id = "0000Q1A2B3C4D5";
    r.original_sender = "alice@example.org";
    r.notice_queue_id = "0000Q9Z8Y7X6W5";
    r.arrival = arrival;
    r.now = arrival + 4 * 3600 + 17;
    return r;
}

// A failure with two recipients: a local one reached through an alias, a remote one.
inline NoticeRequest failure_request() {
    NoticeRequest r = base_request(NoticeKind::failure);
    r.recipients.push_back(ReportedRecipient{"bob@example.org", "team@example.org",
                                             Status::perm("5.2.2", "mailbox bob is full (quota exceeded)"), "",
                                             arrival + 60});
    r.recipients.push_back(ReportedRecipient{"carol@remote.example", "",
                                             Status::perm("5.1.1", "550 5.1.1 <carol@remote.example>: no such user"),
                                             "mx.remote.example", arrival + 120});
    return r;
}

inline NoticeRequest delay_request() {
    NoticeRequest r = base_request(NoticeKind::delay);
    r.retry_until = arrival + 5 * 86400;
    r.recipients.push_back(ReportedRecipient{"carol@remote.example", "",
                                             Status::temp("4.4.1", "connect to mx.remote.example: timed out"),
                                             "mx.remote.example", arrival + 4 * 3600});
    return r;
}

inline const std::string golden_folder = std::string(MAILROOM_SOURCE_DIR) + "/tests/data/bounce";

inline bool have_python() { return std::system("command -v python3 >/dev/null 2>&1") == 0; }

// Has tests/data/bounce/check_goldens.py (Python's email package, and the request
// behind each golden spelled out by hand) read the golden files named, or all of
// them when names is empty. A golden written from our own output is thus never
// its own reference. Without python3 the check is skipped with a warning.
inline void check_goldens_independently(const std::string& names = "") {
    if (!have_python()) {
        WARN("SKIPPED: python3 not found, the golden notices are not read by an independent parser");
        return;
    }
    std::string command = "python3 " + golden_folder + "/check_goldens.py " + golden_folder + " " + names;
    INFO(command);
    CHECK(std::system(command.c_str()) == 0);
}

// Compares text with tests/data/bounce/NAME; MAILROOM_UPDATE_GOLDEN=1 writes it instead.
// Either way the golden must then pass the independent reading.
inline void check_golden(const std::string& name, const std::string& text) {
    std::string path = golden_folder + "/" + name;
    if (std::getenv("MAILROOM_UPDATE_GOLDEN")) {
        mailroom::test::spit(path, text);
        WARN("rewrote " << path);
    } else {
        std::string expected = mailroom::test::slurp(path);
        INFO("golden file " << path);
        REQUIRE(!expected.empty());
        CHECK(text == expected);
    }
    check_goldens_independently(name);
}

}  // namespace bounce_test
