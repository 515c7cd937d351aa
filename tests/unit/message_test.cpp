#include <fcntl.h>
#include <unistd.h>

#include <catch2/catch.hpp>
#include <string>

#include "mail/message.hpp"

using mailroom::mail::HeaderFilter;
using mailroom::mail::Message;
using mailroom::mail::MessageOptions;
using mailroom::mail::OwnedFields;

namespace {

std::string content_of(const Message& message, OwnedFields owned = OwnedFields::none) {
    auto reader = message.reader(owned);
    std::string out;
    char buf[7];  // small on purpose: exercises chunked reads
    for (;;) {
        auto n = reader.read(buf, sizeof buf);
        REQUIRE(n);
        if (*n == 0) break;
        out.append(buf, *n);
    }
    return out;
}

Message parse(std::string_view text, MessageOptions options = {}) {
    auto message = Message::from_string(text, options);
    REQUIRE(message);
    return std::move(*message);
}

}  // namespace

TEST_CASE("CRLF input is stored with LF line ends") {
    auto m = parse("Subject: x\r\n\r\nline one\r\nline two\r\n");
    CHECK(content_of(m) == "Subject: x\n\nline one\nline two\n");
    CHECK(m.size() == content_of(m).size());
}

TEST_CASE("a bare CR is kept, only CR LF pairs become LF") {
    auto m = parse("a\rb\r\nc\r");
    CHECK(content_of(m) == "a\rb\nc\r");
}

TEST_CASE("a CR LF split across input chunks still becomes one LF") {
    int fds[2];
    REQUIRE(::pipe(fds) == 0);
    // Two writes; the reader may see them as two reads.
    REQUIRE(::write(fds[1], "a\r", 2) == 2);
    REQUIRE(::write(fds[1], "\nb\n", 3) == 3);
    ::close(fds[1]);
    auto m = Message::read_from(fds[0], {});
    ::close(fds[0]);
    REQUIRE(m);
    CHECK(content_of(*m) == "a\nb\n");
}

TEST_CASE("a first line starting From is taken as the envelope sender and removed") {
    auto m = parse("From alice@example.org Sat Nov 21 20:23:34 2026\nSubject: hi\n\nbody\n");
    REQUIRE(m.from_line_sender());
    CHECK(*m.from_line_sender() == "alice@example.org");
    CHECK(content_of(m) == "Subject: hi\n\nbody\n");
}

TEST_CASE("From MAILER-DAEMON and From <> give the null sender") {
    CHECK(*parse("From MAILER-DAEMON Sat Nov 21 20:23:34 2026\n\nx\n").from_line_sender() == "");
    CHECK(*parse("From <> Sat Nov 21 20:23:34 2026\n\nx\n").from_line_sender() == "");
}

TEST_CASE("without a From line there is no envelope sender and nothing is removed") {
    auto m = parse("Subject: hi\n\nFrom here\n");
    CHECK_FALSE(m.from_line_sender());
    CHECK(content_of(m) == "Subject: hi\n\nFrom here\n");
    auto kept = parse("From a b\n\nx\n", MessageOptions{.strip_from_line = false});
    CHECK(content_of(kept) == "From a b\n\nx\n");
}

TEST_CASE("Delivered-To headers are recorded case-insensitively, body lines are not") {
    auto m = parse("Delivered-To: Bob@Example.ORG\ndelivered-to:  carol@x\nSubject: s\n\nDelivered-To: dave@x\n");
    CHECK(m.has_delivered_to("bob@example.org"));
    CHECK(m.has_delivered_to("CAROL@x"));
    CHECK_FALSE(m.has_delivered_to("dave@x"));
}

TEST_CASE("content past the memory bound is spilled to a file and read back whole") {
    MessageOptions options;
    options.memory_limit = 1000;
    std::string text = "Subject: big\n\n";
    for (int i = 0; i < 20000; ++i) text += "line " + std::to_string(i) + "\r\n";
    auto m = parse(text, options);
    std::string expected = "Subject: big\n\n";
    for (int i = 0; i < 20000; ++i) expected += "line " + std::to_string(i) + "\n";
    CHECK(content_of(m) == expected);
    CHECK(m.size() == expected.size());
}

TEST_CASE("NUL bytes and a 1 MB line pass through unchanged") {
    std::string text("a\0b\n", 4);
    text += std::string(1024 * 1024, 'x') + "\n";
    auto m = parse(text, MessageOptions{.memory_limit = 4096});
    CHECK(content_of(m) == text);
}

TEST_CASE("a message over the size limit is refused") {
    auto m = Message::from_string(std::string(5000, 'x'), MessageOptions{.size_limit = 4000});
    REQUIRE_FALSE(m);
    // Not EFBIG: that is a write past RLIMIT_FSIZE, which mda reports as temporary.
    CHECK(m.error().errno_value() == EMSGSIZE);
}

TEST_CASE("a message without a final newline is noticed") {
    CHECK_FALSE(parse("Subject: x\n\nno newline").ends_with_newline());
    CHECK(parse("Subject: x\n\nnewline\n").ends_with_newline());
    CHECK(parse("").ends_with_newline());
}

// SPEC section 4: the delivery agent writes Return-Path: itself; in mbox,
// Content-Length: and Content-Lines: would be trusted by readers (formail, mutt)
// to find the next message, so the message's own are left out on delivery.
TEST_CASE("a delivery reads the message without the header fields the delivery agent owns", "[message][owned]") {
    const std::string text =
        "Return-Path: <forged@evil.example>\n"
        "Subject: hi\n"
        "content-length: 99999\n"
        "CONTENT-LINES: 12\n"
        "Return-Path :\n  <folded@evil.example>\n"
        "\tmore\n"
        "X-Return-Path: kept\n"
        "Content-Type: text/plain\n"
        "\n"
        "Return-Path: <body@example> stays: it is the body\n"
        "Content-Length: 1\n";
    auto m = parse(text);
    const std::string maildir =
        "Subject: hi\n"
        "content-length: 99999\n"
        "CONTENT-LINES: 12\n"
        "X-Return-Path: kept\n"
        "Content-Type: text/plain\n"
        "\n"
        "Return-Path: <body@example> stays: it is the body\n"
        "Content-Length: 1\n";
    const std::string mbox =
        "Subject: hi\n"
        "X-Return-Path: kept\n"
        "Content-Type: text/plain\n"
        "\n"
        "Return-Path: <body@example> stays: it is the body\n"
        "Content-Length: 1\n";
    CHECK(content_of(m) == text);  // the stored content itself is unchanged
    CHECK(content_of(m, OwnedFields::return_path) == maildir);
    CHECK(content_of(m, OwnedFields::mbox) == mbox);
    CHECK(m.size_without(OwnedFields::none).value() == text.size());
    CHECK(m.size_without(OwnedFields::return_path).value() == maildir.size());
    CHECK(m.size_without(OwnedFields::mbox).value() == mbox.size());
}

TEST_CASE("the owned-field filter works across any split of its input", "[message][owned]") {
    const std::string text = "A: 1\nReturn-Path: <x>\n cont\nB: 2\nContent-Length: 5\nC\n\nbody\nReturn-Path: y\n";
    const std::string want = "A: 1\nB: 2\nC\n\nbody\nReturn-Path: y\n";
    for (size_t step = 1; step <= text.size(); ++step) {
        INFO("chunks of " << step);
        HeaderFilter filter(OwnedFields::mbox);
        std::string out;
        for (size_t i = 0; i < text.size(); i += step) filter.feed(std::string_view(text).substr(i, step), out);
        filter.finish(out);
        CHECK(out == want);
    }
}

TEST_CASE("the owned-field filter holds back little and keeps odd lines", "[message][owned]") {
    // A header line with no colon, one cut off by the end of input, and a name far
    // longer than any owned one are kept as they are.
    for (const std::string& text : {std::string("no colon here\nReturn-Path: x\n\nb"), std::string("Subject: s\nReturn-Pa"),
                                    std::string(100000, 'x') + ": long\nReturn-Path: x\n\n"}) {
        HeaderFilter filter(OwnedFields::return_path);
        std::string out;
        filter.feed(text, out);
        filter.finish(out);
        auto at = text.find("Return-Path: x\n");
        std::string want = at == std::string::npos ? text : text.substr(0, at) + text.substr(at + 15);
        CHECK(out == want);
    }
    // A header of only owned fields, a message without a body, a message without a header.
    auto only = parse("Return-Path: <a>\nContent-Length: 3\n\nabc");
    CHECK(content_of(only, OwnedFields::mbox) == "\nabc");
    CHECK(content_of(parse("Return-Path: <a>\n"), OwnedFields::mbox) == "");
    CHECK(content_of(parse("\nReturn-Path: <a>\n"), OwnedFields::mbox) == "\nReturn-Path: <a>\n");
    // A big message spilled to a file: the body is read back whole.
    MessageOptions options;
    options.memory_limit = 1000;
    std::string big = "Content-Length: 1\nSubject: big\n\n";
    for (int i = 0; i < 20000; ++i) big += "line " + std::to_string(i) + "\n";
    auto m = parse(big, options);
    CHECK(content_of(m, OwnedFields::mbox) == big.substr(18));
    CHECK(m.size_without(OwnedFields::mbox).value() == big.size() - 18);
}

// Found by message_fuzz: a message that is all header (no empty line) had the kept
// part of its last chunk counted twice, so a Maildir S= size would have been wrong.
TEST_CASE("size_without of a message with no body is the size of what the reader yields", "[message][owned]") {
    for (const std::string& text : {std::string("Return-Path: <x>\nSubject: s\nX: y\n"), std::string("Subject: s\nX: y"),
                                    std::string("Return-Path: <x>\n")}) {
        CAPTURE(text);
        auto m = parse(text);
        CHECK(m.size_without(OwnedFields::mbox).value() == content_of(m, OwnedFields::mbox).size());
        CHECK(m.size_without(OwnedFields::return_path).value() == content_of(m, OwnedFields::return_path).size());
    }
}
