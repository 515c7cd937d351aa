// Failure and delay notices (SPEC section 8): golden files for their exact form, and
// the rules that must hold whatever the input: the boundary, the bounds on what is
// read of the original, fields that no diagnostic can break, requests refused.
#include "mail/bounce.hpp"

#include <catch2/catch.hpp>
#include <string>

#include "bounce_test_support.hpp"
#include "support/test_support.hpp"

using namespace bounce_test;
using mailroom::mail::compose_notice;
using mailroom::mail::notice_header_section_cap;
using mailroom::test::lines_of;

namespace {

std::string compose(const NoticeRequest& request, const Message& original) {
    auto notice = compose_notice(request, original);
    INFO((notice ? "" : notice.error().message()));
    REQUIRE(notice);
    return *notice;
}

// The boundary the notice declares, from its Content-Type field.
std::string boundary_of(const std::string& notice) {
    auto at = notice.find("boundary=\"");
    REQUIRE(at != std::string::npos);
    at += 10;
    return notice.substr(at, notice.find('"', at) - at);
}

// The text between the third boundary line's blank line and the closing boundary.
std::string included_part(const std::string& notice) {
    std::string delimiter = "\n--" + boundary_of(notice);
    size_t third = notice.find(delimiter, notice.find(delimiter, notice.find(delimiter) + 1) + 1);
    REQUIRE(third != std::string::npos);
    size_t body = notice.find("\n\n", third) + 2;
    size_t end = notice.find(delimiter + "--", body);
    REQUIRE(end != std::string::npos);
    return notice.substr(body, end - body);
}

}  // namespace

TEST_CASE("a failure notice is an RFC 3464 multipart/report from MAILER-DAEMON to the sender", "[bounce]") {
    TimeZone utc("UTC");
    auto original = message(small_original());
    std::string notice = compose(failure_request(), original);
    check_golden("failure_two_recipients.ref", notice);
    CHECK(notice.rfind("Date: Mon, 3 Jun 2024 17:22:28 +0000\n", 0) == 0);
    CHECK(notice.find("\nAuto-Submitted: auto-replied\n") != std::string::npos);
    CHECK(notice.find("\nMessage-ID: <20240603172228.0000Q9Z8Y7X6W5@mail.example.org>\n") != std::string::npos);
    CHECK(notice.find("\nContent-Transfer-Encoding: 7bit\n\n") != std::string::npos);
    CHECK(included_part(notice) == small_original());
}

TEST_CASE("a delay notice says delayed and when the retries end", "[bounce]") {
    TimeZone utc("UTC");
    auto original = message(small_original());
    std::string notice = compose(delay_request(), original);
    check_golden("delay.ref", notice);
    CHECK(notice.find("\nSubject: Delayed Mail (still being retried)\n") != std::string::npos);
    CHECK(notice.find("\nAction: delayed\n") != std::string::npos);
    CHECK(notice.find("\nWill-Retry-Until: Sat, 8 Jun 2024 13:22:11 +0000\n") != std::string::npos);
}

TEST_CASE("a large original is returned as its header section only (text/rfc822-headers)", "[bounce]") {
    TimeZone utc("UTC");
    std::string header = "From: alice@example.org\nTo: bob@example.org\nSubject: the big file\n";
    auto original = message(header + "\n" + std::string(100 * 1024, 'x') + "\n");
    std::string notice = compose(failure_request(), original);
    check_golden("large_original_headers.ref", notice);
    CHECK(notice.find("Content-Type: text/rfc822-headers\n") != std::string::npos);
    CHECK(included_part(notice) == header);
}

TEST_CASE("an 8-bit original is marked 8bit on the top level and on its part", "[bounce]") {
    TimeZone utc("UTC");
    auto original = message("From: J\xc3\xb6rg <joerg@example.org>\nSubject: Gr\xc3\xbc\xc3\x9f" "e\n\n"
                            "H\xc3\xa4llo W\xc3\xb6rld\n");
    NoticeRequest request = base_request(NoticeKind::failure);
    request.recipients.push_back(ReportedRecipient{"j\xc3\xb6rg@example.org", "", Status::perm("5.1.1", "no such user"),
                                                   "", arrival + 60});
    std::string notice = compose(request, original);
    check_golden("eight_bit.ref", notice);
    auto top = notice.substr(0, notice.find("\n\n"));
    CHECK(top.find("Content-Transfer-Encoding: 8bit") != std::string::npos);
    CHECK(notice.find("Content-Type: message/rfc822\nContent-Transfer-Encoding: 8bit\n") != std::string::npos);
    // The report stays 7-bit: the address is in RFC 6533 utf-8-addr-xtext form.
    CHECK(notice.find("Final-Recipient: utf-8; j\\x{F6}rg@example.org\n") != std::string::npos);
    CHECK(notice.find("Content-Type: text/plain; charset=utf-8\nContent-Transfer-Encoding: 8bit\n") !=
          std::string::npos);
}

TEST_CASE("the MIME boundary occurs nowhere in the included original", "[bounce]") {
    TimeZone utc("UTC");
    auto plain = message(small_original());
    std::string first_choice = boundary_of(compose(failure_request(), plain));
    std::string hostile = small_original() + "--" + first_choice + "\n" + first_choice + ".1\n";
    auto original = message(hostile);
    std::string notice = compose(failure_request(), original);
    std::string boundary = boundary_of(notice);
    CHECK(boundary != first_choice);
    CHECK(boundary != first_choice + ".1");
    CHECK(boundary.size() <= 70);
    CHECK(included_part(notice) == hostile);
}

TEST_CASE("the header section of a notice is capped at 256 KB, cut at a line end", "[bounce]") {
    TimeZone utc("UTC");
    std::string header;
    for (int i = 0; header.size() < 300 * 1024; ++i) header += "X-Filler-" + std::to_string(i) + ": " + std::string(70, 'f') + "\n";
    auto original = message(header + "\nbody\n");
    std::string notice = compose(failure_request(), original);
    std::string part = included_part(notice);
    CHECK(part.size() <= notice_header_section_cap);
    CHECK(part.size() > notice_header_section_cap - 100);
    CHECK(part.back() == '\n');
    CHECK(header.compare(0, part.size(), part) == 0);
    CHECK(notice.find("The header was longer than 256 KB and has been cut short.") != std::string::npos);
}

TEST_CASE("a notice about a big message holds no more of it than its header", "[bounce]") {
    TimeZone utc("UTC");
    auto original = message("Subject: big\n\n" + std::string(5 * 1024 * 1024, 'y') + "\n");
    std::string notice = compose(failure_request(), original);
    CHECK(notice.size() < 8 * 1024);
    CHECK(included_part(notice) == "Subject: big\n");
}

TEST_CASE("a message starting with an empty line returns an empty header section", "[bounce]") {
    TimeZone utc("UTC");
    NoticeRequest request = failure_request();
    request.full_message_limit = 0;
    auto original = message("\nonly a body\n");
    CHECK(included_part(compose(request, original)).empty());
}

TEST_CASE("diagnostic texts with CR, LF and control characters cannot add header fields", "[bounce]") {
    TimeZone utc("UTC");
    NoticeRequest request = base_request(NoticeKind::failure);
    std::string evil = "command failed\r\nX-Injected: yes\n\nFinal-Recipient: rfc822; eve@example.org\x01\x1b[0m " +
                       std::string(3000, 'w') + " " + std::string(2000, 'z');
    request.recipients.push_back(ReportedRecipient{"bob@example.org", "", Status::perm("5.3.0", evil), "", 0});
    request.recipients.push_back(ReportedRecipient{"carol@remote.example", "",
                                                   Status::perm("5.7.1", evil), "mx.remote.example\r\nX: y", 0});
    auto original = message(small_original());
    std::string notice = compose(request, original);
    for (const auto& line : lines_of(notice.substr(0, notice.find(included_part(notice))))) {
        INFO(line.substr(0, 80));
        CHECK(line.size() <= 998);
        CHECK(line.rfind("X-Injected", 0) != 0);
        CHECK(line.rfind("Final-Recipient: rfc822; eve", 0) != 0);
        CHECK(line.rfind("X: y", 0) != 0);
        CHECK(line.find_first_of("\r\x01\x1b") == std::string::npos);
    }
    CHECK(notice.find("Diagnostic-Code: x-unix; command failed X-Injected: yes Final-Recipient:") != std::string::npos);
    CHECK(notice.find("Remote-MTA: dns; mx.remote.example_X:_y\n") != std::string::npos);
}

TEST_CASE("a remote reply is an smtp diagnostic, a remote failure without a reply is not", "[bounce]") {
    TimeZone utc("UTC");
    NoticeRequest request = base_request(NoticeKind::delay);
    request.recipients.push_back(ReportedRecipient{"a@remote.example", "",
                                                   Status::temp("4.2.1", "451-4.2.1 busy\r\n451 4.2.1 try later"),
                                                   "mx.remote.example", 0});
    request.recipients.push_back(ReportedRecipient{"b@remote.example", "",
                                                   Status::temp("4.4.1", "connect to mx.remote.example: timed out"),
                                                   "mx.remote.example", 0});
    auto original = message(small_original());
    std::string notice = compose(request, original);
    CHECK(notice.find("Diagnostic-Code: smtp; 451-4.2.1 busy 451 4.2.1 try later\n") != std::string::npos);
    CHECK(notice.find("Diagnostic-Code: x-unix; connect to mx.remote.example: timed out\n") != std::string::npos);
    CHECK(notice.find("    mx.remote.example replied: 451-4.2.1 busy\n    451 4.2.1 try later\n") != std::string::npos);
    CHECK(notice.find("    4.4.1 connect to mx.remote.example: timed out\n") != std::string::npos);
}

TEST_CASE("a notice names the original recipient only when it differs", "[bounce]") {
    TimeZone utc("UTC");
    NoticeRequest request = base_request(NoticeKind::failure);
    request.recipients.push_back(ReportedRecipient{"bob@example.org", "bob@example.org",
                                                   Status::perm("5.1.1", "no such user"), "", 0});
    auto original = message(small_original());
    std::string notice = compose(request, original);
    CHECK(notice.find("Original-Recipient:") == std::string::npos);
    CHECK(notice.find("Last-Attempt-Date:") == std::string::npos);
    CHECK(notice.find("Final-Recipient: rfc822; bob@example.org\n") != std::string::npos);
}

TEST_CASE("a failure notice may report an expired 4.x.y status as failed", "[bounce]") {
    TimeZone utc("UTC");
    NoticeRequest request = base_request(NoticeKind::failure);
    request.recipients.push_back(ReportedRecipient{"carol@remote.example", "",
                                                   Status::temp("4.4.7", "message expired after 5 days"), "", 0});
    auto original = message(small_original());
    std::string notice = compose(request, original);
    CHECK(notice.find("Action: failed\nStatus: 4.4.7\n") != std::string::npos);
    CHECK(notice.find("Will-Retry-Until") == std::string::npos);
}

TEST_CASE("a notice is refused when it could not be a valid report", "[bounce]") {
    auto original = message(small_original());
    auto refused = [&](const NoticeRequest& request) {
        auto notice = compose_notice(request, original);
        return !notice && !notice.error().code;
    };
    NoticeRequest r = failure_request();
    r.recipients.clear();
    CHECK(refused(r));
    r = failure_request();
    r.original_sender.clear();
    CHECK(refused(r));
    r = failure_request();
    r.reporting_host.clear();
    CHECK(refused(r));
    r = failure_request();
    r.notice_queue_id.clear();
    CHECK(refused(r));
    r.notice_queue_id = "0000Q9Z8>Y7X6W5";
    CHECK(refused(r));
    r = failure_request();
    r.recipients.push_back(ReportedRecipient{"dan@example.org", "", Status::ok(), "", 0});
    CHECK(refused(r));
    r = delay_request();
    r.recipients.push_back(ReportedRecipient{"dan@example.org", "", Status::perm("5.1.1", "no such user"), "", 0});
    CHECK(refused(r));
    r = failure_request();
    r.recipients.push_back(ReportedRecipient{"dan@example.org", "", Status::perm("5.1234.1", "bad code"), "", 0});
    CHECK(refused(r));
}

TEST_CASE("a postmaster note is its own paragraph of the human part", "[bounce]") {
    TimeZone utc("UTC");
    NoticeRequest request = failure_request();
    request.original_sender = "postmaster@example.org";
    request.postmaster_note = "This notice goes to the postmaster\nbecause the sender was <>.";
    auto original = message(small_original());
    std::string notice = compose(request, original);
    CHECK(notice.find("\nTo: postmaster@example.org\n") != std::string::npos);
    CHECK(notice.find("given under its address.\n\nThis notice goes to the postmaster\nbecause the sender was <>.\n\n") !=
          std::string::npos);
}
