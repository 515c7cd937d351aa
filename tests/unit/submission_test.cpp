// What sendmail makes of its standard input (SPEC 1, "sendmail" bullets): line ends,
// the "." line, added headers, -t recipients and Bcc removal, bounds and errors.
#include "mail/submission.hpp"

#include <catch2/catch.hpp>
#include <cerrno>
#include <string>
#include <vector>

#include "unit/submission_test_support.hpp"

using mailroom::core::Result;
using mailroom::mail::SubmissionFilter;
using mailroom::mail::SubmissionSettings;
using mailroom::test::TimeZoneGuard;
using Strings = std::vector<std::string>;

namespace {

const std::string received =
    "Received: by host.example.org (mailroom, from userid 1000)\n"
    "\tid 4ZabcDEF12; Sat, 21 Nov 2026 20:23:34 +0000\n";
const std::string from = "From: Bob Smith <bob@host.example.org>\n";
const std::string date = "Date: Sat, 21 Nov 2026 20:23:34 +0000\n";
const std::string message_id = "Message-ID: <20261121202334.4ZabcDEF12@host.example.org>\n";
const std::string added = from + date + message_id;

SubmissionSettings settings(bool dash_t = false, bool dot_ends = true) {
    SubmissionSettings s;
    s.myhostname = "host.example.org";
    s.login = "bob";
    s.uid = 1000;
    s.full_name = "Bob Smith";
    s.queue_id = "4ZabcDEF12";
    s.now = 1795292614;  // Sat, 21 Nov 2026 20:23:34 UTC
    s.recipients_from_headers = dash_t;
    s.dot_ends_message = dot_ends;
    return s;
}

struct Outcome {
    std::string output;
    Strings chunks;  // as the sink got them
    bool ended_by_dot = false;
    Strings recipients;
    uint64_t size = 0;
    std::string message_id;
    std::optional<mailroom::core::Error> error;  // of the first call that failed
};

// Feeds input in pieces of `piece` bytes (0: one piece).
Outcome run(std::string_view input, const SubmissionSettings& s, size_t piece = 0) {
    TimeZoneGuard tz("UTC0");
    Outcome o;
    SubmissionFilter filter(s, [&](std::string_view chunk) -> Result<void> {
        o.chunks.emplace_back(chunk);
        o.output += chunk;
        return {};
    });
    if (piece == 0) piece = std::max<size_t>(input.size(), 1);
    for (size_t at = 0; at < input.size() && !o.error; at += piece) {
        if (auto r = filter.feed(input.substr(at, piece)); !r) o.error = r.error();
    }
    if (auto r = filter.finish(); !r && !o.error) o.error = r.error();
    o.ended_by_dot = filter.ended_by_dot();
    o.recipients = filter.header_recipients();
    o.size = filter.size();
    o.message_id = filter.message_id();
    return o;
}

std::string submit(std::string_view input, const SubmissionSettings& s = settings()) {
    auto o = run(input, s);
    INFO((o.error ? o.error->message() : std::string()));
    REQUIRE_FALSE(o.error);
    CHECK(o.size == o.output.size());
    return o.output;
}

}  // namespace

TEST_CASE("A Received header is always prepended, a complete message is otherwise unchanged", "[submission]") {
    const std::string message =
        "From: alice@example.org\nDate: Fri, 20 Nov 2026 10:00:00 +0100\n"
        "Message-ID: <x@example.org>\nSubject: hi\n\nbody\n";
    CHECK(submit(message) == received + message);
}

TEST_CASE("Missing From, Date and Message-ID are added after the header section", "[submission]") {
    CHECK(submit("Subject: hi\n\nbody\n") == received + "Subject: hi\n" + added + "\nbody\n");
    CHECK(submit("From: a@x\nSubject: hi\n\nb\n") ==
          received + "From: a@x\nSubject: hi\n" + date + message_id + "\nb\n");
    CHECK(submit("Date: d\n\nb\n") == received + "Date: d\n" + from + message_id + "\nb\n");
    CHECK(submit("Message-ID: <m@x>\n\nb\n") == received + "Message-ID: <m@x>\n" + from + date + "\nb\n");
    SECTION("header names are matched without regard to case") {
        const std::string message = "from: a@x\nDATE: d\nmessage-id: <m@x>\n\nb\n";
        CHECK(submit(message) == received + message);
    }
    SECTION("the generated From has no display name without a full name, and quotes specials") {
        auto s = settings();
        s.full_name = "";
        CHECK(submit("Subject: x\n\nb\n", s) ==
              received + "Subject: x\nFrom: bob@host.example.org\n" + date + message_id + "\nb\n");
        s.full_name = "Doe, John";
        CHECK(submit("Subject: x\n\nb\n", s) == received + "Subject: x\nFrom: \"Doe, John\" "
                                                "<bob@host.example.org>\n" + date + message_id + "\nb\n");
    }
}

TEST_CASE("CRLF line ends become LF, a bare CR is kept", "[submission]") {
    CHECK(submit("Subject: x\r\n\r\nline 1\r\nline 2\r\n") ==
          received + "Subject: x\n" + added + "\nline 1\nline 2\n");
    CHECK(submit("Subject: a\rb\n\nc\rd\r\r\ne\r") ==
          received + "Subject: a\rb\n" + added + "\nc\rd\r\ne\r");
}

TEST_CASE("Without -i a line holding only a dot ends the message", "[submission]") {
    for (const char* end : {".\nafter\n.\nmore\n", ".\r\nafter\n", "."}) {  // "." then EOF too
        INFO(end);
        auto o = run(std::string("Subject: x\n\nline\n") + end, settings());
        CHECK(o.output == received + "Subject: x\n" + added + "\nline\n");
        CHECK(o.ended_by_dot);
    }
    SECTION("the dot may end the header section") {
        auto o = run("Subject: x\n.\nTo: y\n", settings());
        CHECK(o.output == received + "Subject: x\n" + added);
        CHECK(o.ended_by_dot);
    }
    SECTION("a dot as the first line gives an empty message") {
        CHECK(submit(".\nSubject: x\n") == received + added);
    }
    SECTION("other lines starting with a dot are kept, without unstuffing") {
        auto o = run("Subject: x\n\n..\n. \n.x\n..\r\n.\r\r\n", settings());
        CHECK(o.output == received + "Subject: x\n" + added + "\n..\n. \n.x\n..\n.\r\n");
        CHECK_FALSE(o.ended_by_dot);
        CHECK(submit("Subject: x\n\nend.\r") == received + "Subject: x\n" + added + "\nend.\r");
        CHECK(submit("Subject: x\n\n.\r") == received + "Subject: x\n" + added + "\n.\r");
    }
}

TEST_CASE("With -i a line holding only a dot is content", "[submission]") {
    auto o = run("Subject: x\n\nline\n.\nafter\n.\r\n..\n", settings(false, false));
    CHECK(o.output == received + "Subject: x\n" + added + "\nline\n.\nafter\n.\n..\n");
    CHECK_FALSE(o.ended_by_dot);
    CHECK(submit(".\n", settings(false, false)) == received + added + "\n.\n");
}

TEST_CASE("Feeding in any chunking gives the same output", "[submission]") {
    const std::vector<std::string> messages = {
        "Subject: x\r\nTo: a@x,\r\n b@y\r\nBcc: c@z\r\n\r\nbody\r\n..\r\n.\r\nignored\r\n",
        "hello\rworld\r\r\n.\r\n",
        "X-A: 1\n\tcont\n\n.x\n\r\n.",
        "Subject : obs\nbad line\n",
        "To: g: a@x, \"q\" <b@y>;\nResent-To: r@x\nSubject: s",
    };
    for (const auto& message : messages) {
        for (bool dash_t : {false, true}) {
            for (bool dot : {false, true}) {
                const auto s = settings(dash_t, dot);
                const auto whole = run(message, s);
                REQUIRE_FALSE(whole.error);
                INFO(message << " -t=" << dash_t << " dot=" << dot);
                auto bytes = run(message, s, 1);
                CHECK(bytes.output == whole.output);
                CHECK(bytes.recipients == whole.recipients);
                CHECK(bytes.ended_by_dot == whole.ended_by_dot);
                for (size_t split = 1; split < message.size(); ++split) {
                    TimeZoneGuard tz("UTC0");
                    std::string out;
                    SubmissionFilter f(s, [&](std::string_view c) -> Result<void> {
                        out += c;
                        return {};
                    });
                    REQUIRE(f.feed(std::string_view(message).substr(0, split)));
                    REQUIRE(f.feed(std::string_view(message).substr(split)));
                    REQUIRE(f.finish());
                    CHECK(out == whole.output);
                }
            }
        }
    }
}

TEST_CASE("A message without a header section gets the added headers and an empty line", "[submission]") {
    CHECK(submit("hello\nworld\n") == received + added + "\nhello\nworld\n");
    CHECK(submit(" indented first line\n") == received + added + "\n indented first line\n");
    CHECK(submit("From root Sat Nov 21 20:23:34 2026\nSubject: x\n") ==
          received + added + "\nFrom root Sat Nov 21 20:23:34 2026\nSubject: x\n");
    CHECK(submit("no newline") == received + added + "\nno newline");
    CHECK(submit("Subject") == received + added + "\nSubject");
    SECTION("an empty first line is the separator of an empty header section") {
        CHECK(submit("\nhello\n") == received + added + "\nhello\n");
    }
    SECTION("headers followed by a non-header line get the separator there") {
        CHECK(submit("Subject: x\nhello\n\nmore\n") == received + "Subject: x\n" + added + "\nhello\n\nmore\n");
    }
}

TEST_CASE("Empty input gives the added headers only", "[submission]") {
    auto o = run("", settings());
    CHECK(o.output == received + added);
    CHECK(o.chunks.size() == 1);
    CHECK_FALSE(o.ended_by_dot);
}

TEST_CASE("A last line without LF is kept, a last header line gets one", "[submission]") {
    CHECK(submit("Subject: x\n\nno newline") == received + "Subject: x\n" + added + "\nno newline");
    CHECK(submit("Subject: x") == received + "Subject: x\n" + added);
    CHECK(submit("Subject: x\n folded") == received + "Subject: x\n folded\n" + added);
    CHECK(submit("Subject: x\r") == received + "Subject: x\r\n" + added);
}

TEST_CASE("8-bit bytes, NULs and long header lines pass untouched", "[submission]") {
    const std::string headers = std::string("Subject: Gr\xc3\xbc\xc3\x9f" "e \xff\0x\n", 20) +
                                "X-Long: " + std::string(100 * 1024, 'a') + "\n";
    const std::string body = std::string("body \x80\0\xfe\n", 9);
    CHECK(submit(headers + "\n" + body) == received + headers + added + "\n" + body);
}

TEST_CASE("Past the header section bound the rest passes as body", "[submission]") {
    std::string headers = "From: a@x\nBcc: hidden@x\nTo: early@x\n";
    while (headers.size() <= SubmissionFilter::header_section_limit) {
        headers += "X-Filler: " + std::string(1000, 'f') + "\n";
    }
    const std::string rest = "Bcc: late@x\nTo: late@x\n\nbody\n";
    auto o = run(headers + rest, settings(true));
    REQUIRE_FALSE(o.error);
    // Added fields first, so that none lands inside a cut line; Bcc removed only before the bound.
    CHECK(o.output.substr(0, received.size() + date.size() + message_id.size()) ==
          received + date + message_id);
    CHECK(o.output.find("hidden@x") == std::string::npos);
    CHECK(o.output.find("Bcc: late@x\nTo: late@x\n\nbody\n") != std::string::npos);
    CHECK(o.recipients == Strings{"hidden@x", "early@x"});
    CHECK(o.output.size() == received.size() + date.size() + message_id.size() + headers.size() +
                                 rest.size() - std::string("Bcc: hidden@x\n").size());
}

TEST_CASE("With -t the recipients come from To, Cc and Bcc, and Bcc is removed", "[submission]") {
    const std::string message =
        "To: \"Doe, John\" <john@example.org>, jane@example.org (Jane)\n"
        "Subject: x\n"
        "Cc: team: a@x, B <b@y>;, undisclosed-recipients:;\n"
        "Bcc: secret@x,\n"
        "  other-secret@y\n"
        "bcc: third@z\n"
        "X-After: kept\n"
        "\n"
        "Bcc: in the body stays\n";
    auto o = run(message, settings(true));
    REQUIRE_FALSE(o.error);
    CHECK(o.recipients ==
          Strings{"john@example.org", "jane@example.org", "a@x", "b@y", "secret@x", "other-secret@y", "third@z"});
    CHECK(o.output == received +
                          "To: \"Doe, John\" <john@example.org>, jane@example.org (Jane)\n"
                          "Subject: x\n"
                          "Cc: team: a@x, B <b@y>;, undisclosed-recipients:;\n"
                          "X-After: kept\n" +
                          added + "\nBcc: in the body stays\n");
    SECTION("without -t nothing is collected and Bcc stays") {
        auto plain = run(message, settings(false));
        CHECK(plain.recipients.empty());
        CHECK(plain.output.find("Bcc: secret@x,\n  other-secret@y\n") != std::string::npos);
    }
}

TEST_CASE("With -t the Resent- set wins when any Resent- field exists", "[submission]") {
    const std::string message =
        "To: original@x\nCc: cc@x\nBcc: bcc@x\n"
        "Resent-From: fwd@x\nResent-To: new@y\nResent-Cc: <other@y>\nResent-Bcc: hidden@y\n\nb\n";
    auto o = run(message, settings(true));
    REQUIRE_FALSE(o.error);
    CHECK(o.recipients == Strings{"new@y", "other@y", "hidden@y"});
    CHECK(o.output.find("Bcc") == std::string::npos);  // both Bcc and Resent-Bcc go
    CHECK(o.output.find("Resent-To: new@y\n") != std::string::npos);
}

TEST_CASE("With -t a bad address fails the submission naming it, and nothing is written", "[submission]") {
    for (const char* to : {"To: ok@x, bad@@x\n", "To: John Doe john@x\n", "Cc: <>\n", "To: a@x (open\n"}) {
        INFO(to);
        auto o = run(std::string("Subject: x\n") + to + "\nbody\n", settings(true));
        REQUIRE(o.error);
        CHECK(o.error->code == std::error_code());  // an input error: exit 65
        CHECK(o.output.empty());
    }
    auto o = run("To: ok@x, bad@@x\n\nb\n", settings(true));
    REQUIRE(o.error);
    CHECK_THAT(o.error->message(), Catch::StartsWith("bad address in To: \"bad@@x\": "));
    SECTION("finish reports it too, after a feed that did") {
        TimeZoneGuard tz("UTC0");
        SubmissionFilter f(settings(true), [](std::string_view) -> Result<void> { return {}; });
        CHECK_FALSE(f.feed("To: bad@@x\n\nbody\n"));
        CHECK_FALSE(f.finish());
    }
    SECTION("without -t the same text is just a header") {
        CHECK_FALSE(run("To: bad@@x\n\nb\n", settings(false)).error);
    }
}

TEST_CASE("Past message_size_limit the submission fails with EMSGSIZE, not a write's EFBIG", "[submission]") {
    auto s = settings();
    const std::string message = "Subject: x\n\n" + std::string(5000, 'b') + "\n";
    const uint64_t full = submit(message).size();
    s.size_limit = full;
    CHECK(submit(message, s).size() == full);
    s.size_limit = full - 1;
    auto o = run(message, s, 100);
    REQUIRE(o.error);
    CHECK(o.error->errno_value() == EMSGSIZE);
    CHECK(o.size <= s.size_limit);
}

TEST_CASE("The sink gets chunks of up to 64 KiB as the input comes", "[submission]") {
    TimeZoneGuard tz("UTC0");
    Strings chunks;
    SubmissionFilter f(settings(), [&](std::string_view c) -> Result<void> {
        chunks.emplace_back(c);
        return {};
    });
    const std::string line = std::string(99, 'x') + "\n";
    REQUIRE(f.feed("Subject: big\n\n"));
    for (int i = 0; i < 3000; ++i) {  // 300 KB, one byte at a time for part of it
        if (i % 100 == 0) {
            for (char c : line) REQUIRE(f.feed(std::string_view(&c, 1)));
        } else {
            REQUIRE(f.feed(line));
        }
    }
    CHECK(chunks.size() >= 4);  // streamed before the end, not held
    REQUIRE(f.finish());
    CHECK(chunks.size() <= 6);
    for (const auto& c : chunks) CHECK(c.size() <= 64 * 1024);
    CHECK(f.size() == received.size() + 13 + added.size() + 1 + 300000);
}

TEST_CASE("A sink error stops the submission and is returned from then on", "[submission]") {
    TimeZoneGuard tz("UTC0");
    int calls = 0;
    SubmissionFilter f(settings(), [&](std::string_view) -> Result<void> {
        ++calls;
        return mailroom::core::unexpected_errno("write queue file", ENOSPC);
    });
    auto r = f.feed("Subject: x\n\n" + std::string(200 * 1024, 'b'));
    REQUIRE_FALSE(r);
    CHECK(r.error().errno_value() == ENOSPC);
    CHECK_FALSE(f.feed("more"));
    CHECK_FALSE(f.finish());
    CHECK(calls == 1);
    CHECK(f.size() == 0);
}

TEST_CASE("The Message-ID given or generated is known for the log's message-id= line", "[submission]") {
    CHECK(run("Subject: x\n\nbody\n", settings()).message_id == "<20261121202334.4ZabcDEF12@host.example.org>");
    CHECK(run("Message-ID:\n <given@x.example>\nSubject: x\n\nbody\n", settings()).message_id == "<given@x.example>");
    CHECK(run("hello\n", settings()).message_id == "<20261121202334.4ZabcDEF12@host.example.org>");
}
