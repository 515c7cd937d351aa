// A second opinion on the notices: Python's email package (a parser written without
// looking at ours) must read each one as a well-formed multipart/report with a
// delivery-status part whose fields say what the request said. Skipped with a
// warning when python3 is not installed.
#include <catch2/catch.hpp>
#include <cstdlib>
#include <string>

#include "bounce_test_support.hpp"
#include "mail/bounce.hpp"
#include "support/test_support.hpp"

using namespace bounce_test;
using mailroom::mail::compose_notice;

namespace {

// argv: notice file, expected action, number of recipients, type of the third part.
constexpr const char* checker = R"PY(
import email, re, sys
from email import policy
path, action, count, third = sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4]
def fail(why):
    print("notice check failed:", why)
    sys.exit(1)
with open(path, "rb") as f:
    msg = email.message_from_binary_file(f, policy=policy.default)
if msg.get_content_type() != "multipart/report": fail("type " + msg.get_content_type())
if msg.get_param("report-type") != "delivery-status": fail("report-type")
if msg["Auto-Submitted"] != "auto-replied": fail("Auto-Submitted")
if not str(msg["From"]).startswith("MAILER-DAEMON@"): fail("From")
for part in msg.walk():
    if part.defects: fail("defects %r in %s" % (part.defects, part.get_content_type()))
parts = msg.get_payload()
types = [p.get_content_type() for p in parts]
if types != ["text/plain", "message/delivery-status", third]: fail("parts %r" % types)
blocks = parts[1].get_payload()
if len(blocks) != 1 + count: fail("%d blocks" % len(blocks))
if not blocks[0]["Reporting-MTA"].startswith("dns; "): fail("Reporting-MTA")
if not blocks[0]["Arrival-Date"]: fail("Arrival-Date")
for b in blocks[1:]:
    if b["Action"] != action: fail("Action " + str(b["Action"]))
    if not re.fullmatch(r"[45]\.\d{1,3}\.\d{1,3}", b["Status"]): fail("Status " + str(b["Status"]))
    if not re.match(r"(rfc822|utf-8); \S", b["Final-Recipient"]): fail("Final-Recipient")
    if not re.match(r"(smtp|x-unix); ", b["Diagnostic-Code"]): fail("Diagnostic-Code")
    if action == "delayed" and not b["Will-Retry-Until"]: fail("Will-Retry-Until")
if third == "message/rfc822" and not parts[2].get_payload()[0]["Subject"]: fail("returned message")
)PY";

void check_with_python(const std::string& notice, const char* action, size_t count, const char* third) {
    mailroom::test::TempDir dir;
    std::string script = dir.write("check.py", checker);
    std::string file = dir.write("notice.eml", notice);
    std::string command = "python3 " + script + " " + file + " " + action + " " + std::to_string(count) + " " + third;
    INFO(command);
    CHECK(std::system(command.c_str()) == 0);
}

}  // namespace

TEST_CASE("Python's email package reads every notice as a well-formed multipart/report", "[bounce]") {
    if (!have_python()) {
        WARN("SKIPPED: python3 not found, the notices are not checked by a second parser");
        return;
    }
    TimeZone utc("UTC");
    auto small = message(small_original());
    SECTION("a failure with two recipients") {
        auto notice = compose_notice(failure_request(), small);
        REQUIRE(notice);
        check_with_python(*notice, "failed", 2, "message/rfc822");
    }
    SECTION("a delay") {
        auto notice = compose_notice(delay_request(), small);
        REQUIRE(notice);
        check_with_python(*notice, "delayed", 1, "message/rfc822");
    }
    SECTION("a large original, headers only") {
        auto large = message("Subject: big\nFrom: alice@example.org\n\n" + std::string(200 * 1024, 'x') + "\n");
        auto notice = compose_notice(failure_request(), large);
        REQUIRE(notice);
        check_with_python(*notice, "failed", 2, "text/rfc822-headers");
    }
    SECTION("an 8-bit original and recipient") {
        auto eight = message("Subject: Gr\xc3\xbc\xc3\x9f" "e\nFrom: alice@example.org\n\nH\xc3\xa4llo\n");
        NoticeRequest request = base_request(NoticeKind::failure);
        request.recipients.push_back(ReportedRecipient{"j\xc3\xb6rg@example.org", "", Status::perm("5.1.1", "no such user"),
                                                       "", arrival});
        auto notice = compose_notice(request, eight);
        REQUIRE(notice);
        check_with_python(*notice, "failed", 1, "message/rfc822");
    }
    SECTION("hostile diagnostics") {
        NoticeRequest request = failure_request();
        request.recipients.push_back(ReportedRecipient{"eve@example.org", "",
                                                       Status::perm("5.3.0", "x\r\n\r\n--\nFinal-Recipient: a\x01" +
                                                                                 std::string(5000, 'q')),
                                                       "", arrival});
        auto notice = compose_notice(request, small);
        REQUIRE(notice);
        check_with_python(*notice, "failed", 3, "message/rfc822");
    }
}

TEST_CASE("every golden notice reads, to Python's email package, as the report its request asks for", "[bounce]") {
    // All of tests/data/bounce/*.ref, so that a golden no test compares any more, or
    // one added without its expectation in check_goldens.py, fails here.
    check_goldens_independently();
}
