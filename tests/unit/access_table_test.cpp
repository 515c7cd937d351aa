// smtpd_access_file (SPEC 7, docs/access.md): the line format, each kind's patterns,
// first match in file order, and every refusal as FILE:LINE: WHAT, hostile bytes and
// sizes included.
#include "smtp/access_table.hpp"

#include <sys/stat.h>

#include <catch2/catch.hpp>
#include <string>

#include "support/test_support.hpp"

using mailroom::smtp::AccessAction;
using mailroom::smtp::AccessDecision;
using mailroom::smtp::AccessKind;
using mailroom::smtp::AccessTable;

namespace {

AccessTable parse_ok(std::string_view text) {
    auto r = AccessTable::parse(text, "access");
    INFO("text: " << text << (r ? "" : " error: " + r.error().message()));
    REQUIRE(r.has_value());
    return std::move(r).value();
}

std::string error_of(std::string_view text) {
    auto r = AccessTable::parse(text, "access");
    INFO("text: " << text);
    REQUIRE_FALSE(r.has_value());
    CHECK(r.error().errno_value() == 0);
    return r.error().message();
}

// The action of the decision, or "none".
std::string act(const std::optional<AccessDecision>& d) {
    if (!d) return "none";
    switch (d->action) {
    case AccessAction::ok: return "OK";
    case AccessAction::reject: return "REJECT";
    case AccessAction::defer: return "DEFER";
    }
    return "?";
}

}  // namespace

TEST_CASE("access: lines KIND PATTERN ACTION TEXT, comments and blank lines ignored", "[access]") {
    auto t = parse_ok(
        "# the rules\n"
        "\n"
        "   \t\n"
        "  # an indented comment\n"
        "client 192.0.2.0/24 REJECT go away\n"
        "helo\tbad.example\tDEFER\n"
        "sender  spam@example.com   reject   no  spam  here  \n"
        "recipient @example.org OK\n");
    CHECK(t.size() == 4);
    auto c = t.client("192.0.2.7", "unknown");
    REQUIRE(c);
    CHECK(c->action == AccessAction::reject);
    CHECK(c->text == "go away");
    CHECK(c->line == 5);
    auto h = t.helo("bad.example");
    REQUIRE(h);
    CHECK(h->action == AccessAction::defer);
    CHECK(h->text.empty());
    CHECK(h->line == 6);
    auto s = t.sender("spam@example.com");
    REQUIRE(s);
    CHECK(s->text == "no  spam  here");  // inner blanks kept, ends trimmed
    CHECK(s->line == 7);
    CHECK(act(t.recipient("bob@example.org")) == "OK");
    CHECK(t.recipient("bob@example.org")->line == 8);
}

TEST_CASE("access: KIND and ACTION are case-insensitive", "[access]") {
    auto t = parse_ok("CLIENT 10.0.0.1 ok\nHeLo a.example Reject\nSENDER a@b DEFER\nRecipient c@d oK\n");
    CHECK(act(t.client("10.0.0.1", "")) == "OK");
    CHECK(act(t.helo("a.example")) == "REJECT");
    CHECK(act(t.sender("a@b")) == "DEFER");
    CHECK(act(t.recipient("c@d")) == "OK");
}

TEST_CASE("access: an empty file or table matches nothing", "[access]") {
    auto t = parse_ok("");
    CHECK(t.size() == 0);
    CHECK(act(t.client("127.0.0.1", "localhost")) == "none");
    AccessTable empty;
    CHECK(empty.size() == 0);
    CHECK(act(empty.sender("")) == "none");
    CHECK(act(empty.recipient("a@b")) == "none");
    CHECK(act(empty.helo("x")) == "none");
    CHECK(parse_ok("# only\n\n# comments").size() == 0);
}

TEST_CASE("access: CRLF line ends are accepted and the last line needs no line end", "[access]") {
    auto t = parse_ok("client 10.0.0.1 REJECT crlf text\r\nsender a@b OK\r\nrecipient c@d DEFER");
    CHECK(t.size() == 3);
    CHECK(t.client("10.0.0.1", "x")->text == "crlf text");
    CHECK(t.recipient("c@d")->line == 3);
}

TEST_CASE("access: the first matching line of a kind decides, duplicates allowed", "[access]") {
    auto t = parse_ok(
        "client 10.0.0.0/8 OK first\n"
        "sender a@example.com REJECT\n"
        "client 10.1.0.0/16 REJECT second\n"
        "client 10.0.0.0/8 DEFER duplicate\n"
        "sender @example.com OK\n"
        "sender a@example.com DEFER\n");
    CHECK(t.client("10.1.2.3", "x")->text == "first");
    CHECK(t.client("10.1.2.3", "x")->line == 1);
    CHECK(act(t.sender("a@example.com")) == "REJECT");
    CHECK(act(t.sender("b@example.com")) == "OK");
    // Kinds do not mix: a sender line never answers for a recipient.
    CHECK(act(t.recipient("a@example.com")) == "none");
    CHECK(act(t.client("example.com", "example.com")) == "none");

    auto reversed = parse_ok("client 10.1.0.0/16 REJECT narrow\nclient 10.0.0.0/8 OK wide\n");
    CHECK(reversed.client("10.1.2.3", "x")->text == "narrow");
    CHECK(reversed.client("10.2.0.1", "x")->text == "wide");
}

TEST_CASE("access: client lines match an address or CIDR, IPv6 and IPv4-mapped clients too", "[access]") {
    auto t = parse_ok(
        "client 192.0.2.1 REJECT one host\n"
        "client 198.51.100.0/24 DEFER a net\n"
        "client [2001:db8::]/32 REJECT v6 net\n"
        "client ::1 OK loopback\n"
        "client [::2] OK bracketed host\n");
    CHECK(t.client("192.0.2.1", "unknown")->text == "one host");
    CHECK(t.client("::ffff:192.0.2.1", "unknown")->text == "one host");
    CHECK(act(t.client("192.0.2.2", "unknown")) == "none");
    CHECK(t.client("198.51.100.77", "unknown")->text == "a net");
    CHECK(t.client("::ffff:198.51.100.77", "unknown")->text == "a net");
    CHECK(t.client("2001:db8:1::5", "unknown")->text == "v6 net");
    CHECK(t.client("::1", "localhost")->text == "loopback");
    CHECK(t.client("::2", "")->text == "bracketed host");
    CHECK(act(t.client("2001:db9::1", "unknown")) == "none");
    CHECK(act(t.client("not an address", "unknown")) == "none");
    // An address pattern is not a name: a client named "192.0.2.1" is not that client.
    CHECK(act(t.client("203.0.113.1", "192.0.2.1")) == "none");
}

TEST_CASE("access: a client name pattern matches the name and its subdomains at a dot", "[access]") {
    auto t = parse_ok("client example.com REJECT suffix\n");
    CHECK(act(t.client("203.0.113.1", "example.com")) == "REJECT");
    CHECK(act(t.client("203.0.113.1", "mail.example.com")) == "REJECT");
    CHECK(act(t.client("203.0.113.1", "a.b.example.com")) == "REJECT");
    CHECK(act(t.client("203.0.113.1", "badexample.com")) == "none");
    CHECK(act(t.client("203.0.113.1", "example.com.evil.net")) == "none");
    CHECK(act(t.client("203.0.113.1", "xample.com")) == "none");
    CHECK(act(t.client("203.0.113.1", "com")) == "none");
    CHECK(act(t.client("203.0.113.1", "")) == "none");
    // Case does not matter, on either side; the root's trailing dot changes nothing.
    CHECK(act(t.client("203.0.113.1", "MAIL.Example.COM")) == "REJECT");
    CHECK(act(parse_ok("client EXAMPLE.com OK").client("1.1.1.1", "mail.example.COM")) == "OK");
    CHECK(act(t.client("203.0.113.1", "mail.example.com.")) == "REJECT");
}

TEST_CASE("access: a leading dot matches only subdomains", "[access]") {
    auto t = parse_ok("client .example.com REJECT\n");
    CHECK(act(t.client("203.0.113.1", "example.com")) == "none");
    CHECK(act(t.client("203.0.113.1", "mail.example.com")) == "REJECT");
    CHECK(act(t.client("203.0.113.1", "badexample.com")) == "none");
    CHECK(act(t.client("203.0.113.1", ".example.com")) == "REJECT");  // what it says, though no name is this
}

TEST_CASE("access: a client without a name (unknown) matches no name pattern", "[access]") {
    auto t = parse_ok("client .unknown REJECT\nclient example.com REJECT\nclient 0.0.0.0/0 DEFER by address\n");
    CHECK(t.client("192.0.2.1", "unknown")->text == "by address");
    CHECK(t.client("192.0.2.1", "UNKNOWN")->text == "by address");
    CHECK(t.client("192.0.2.1", "")->text == "by address");
    CHECK(act(t.client("192.0.2.1", "x.unknown")) == "REJECT");
    CHECK_THAT(error_of("client unknown REJECT\n"), Catch::Contains("access:1: client name pattern 'unknown' never matches"));
    CHECK_THAT(error_of("client UNKNOWN REJECT\n"), Catch::Contains("never matches"));
}

TEST_CASE("access: helo lines match a name like a client name, or an address literal exactly", "[access]") {
    auto t = parse_ok(
        "helo example.net REJECT name\n"
        "helo .sub.example.org DEFER subdomains\n"
        "helo [192.0.2.1] REJECT literal\n"
        "helo [IPv6:2001:db8::1] REJECT v6 literal\n");
    CHECK(t.helo("example.net")->text == "name");
    CHECK(t.helo("mx.EXAMPLE.net")->text == "name");
    CHECK(act(t.helo("notexample.net")) == "none");
    CHECK(act(t.helo("sub.example.org")) == "none");
    CHECK(t.helo("a.sub.example.org")->text == "subdomains");
    CHECK(t.helo("[192.0.2.1]")->text == "literal");
    CHECK(t.helo("[IPv6:::ffff:192.0.2.1]")->text == "literal");
    CHECK(act(t.helo("[192.0.2.2]")) == "none");
    CHECK(act(t.helo("192.0.2.1")) == "none");  // not a literal: a (bad) name
    CHECK(act(t.helo("[192.0.2.0/24]")) == "none");
    CHECK(t.helo("[ipv6:2001:DB8:0::1]")->text == "v6 literal");
    CHECK(act(t.helo("[IPv6:2001:db8::2]")) == "none");
    CHECK(act(t.helo("")) == "none");
    auto twice = parse_ok("helo [192.0.2.1] OK first\nhelo mx.example.net DEFER\nhelo example.net REJECT\nhelo [192.0.2.1] REJECT\n");
    CHECK(twice.helo("[192.0.2.1]")->text == "first");
    CHECK(act(twice.helo("mx.example.net")) == "DEFER");
    CHECK(act(twice.helo("a.example.net")) == "REJECT");
    CHECK(act(t.helo(std::string_view("example.net\0", 12))) == "none");
}

TEST_CASE("access: bad helo patterns are errors naming the line", "[access]") {
    CHECK_THAT(error_of("helo 192.0.2.1 REJECT"), Catch::Contains("access:1: helo pattern '192.0.2.1' looks like an address: write it as a literal, [192.0.2.1]"));
    CHECK_THAT(error_of("helo [192.0.2.1 REJECT"), Catch::Contains("access:1: helo pattern '[192.0.2.1' is not an address literal"));
    CHECK_THAT(error_of("helo [192.0.2.0]/24 REJECT"), Catch::Contains("access:1:"));
    CHECK_THAT(error_of("helo [256.1.1.1] REJECT"), Catch::Contains("not an address literal"));
    CHECK_THAT(error_of("helo a..b REJECT"), Catch::Contains("neither a host name nor an address literal"));
    CHECK_THAT(error_of("helo example.com. REJECT"), Catch::Contains("access:1:"));
    CHECK_THAT(error_of("helo . REJECT"), Catch::Contains("access:1:"));
}

TEST_CASE("access: sender and recipient patterns user@domain, @domain, @.domain and user@", "[access]") {
    auto t = parse_ok(
        "recipient bob@example.com REJECT whole\n"
        "recipient @example.org DEFER domain\n"
        "recipient @.example.net OK subdomains\n"
        "recipient postmaster@ OK local part\n");
    CHECK(t.recipient("bob@example.com")->text == "whole");
    CHECK(t.recipient("BOB@Example.COM")->text == "whole");
    CHECK(act(t.recipient("bob@mail.example.com")) == "none");
    CHECK(act(t.recipient("alice@example.com")) == "none");
    CHECK(act(t.recipient("xbob@example.com")) == "none");
    CHECK(t.recipient("anyone@example.org")->text == "domain");
    CHECK(act(t.recipient("anyone@mail.example.org")) == "none");  // exactly that domain
    CHECK(act(t.recipient("anyone@badexample.org")) == "none");
    CHECK(act(t.recipient("anyone@example.net")) == "none");  // subdomains only
    CHECK(t.recipient("anyone@mail.example.net")->text == "subdomains");
    CHECK(act(t.recipient("anyone@badexample.net")) == "none");
    CHECK(t.recipient("postmaster@anywhere.example")->text == "local part");
    CHECK(t.recipient("PostMaster@x")->text == "local part");
    CHECK(t.recipient("postmaster")->text == "local part");  // no domain: only user@ lines
    CHECK(act(t.recipient("example.org")) == "none");
    CHECK(act(t.recipient("bob")) == "none");

    auto s = parse_ok(
        "sender bob@example.com REJECT whole\n"
        "sender @example.org DEFER domain\n"
        "sender @.example.net OK subdomains\n"
        "sender mailer-daemon@ OK local part\n");
    CHECK(s.sender("Bob@example.COM")->text == "whole");
    CHECK(s.sender("x@EXAMPLE.ORG")->text == "domain");
    CHECK(s.sender("x@a.example.net")->text == "subdomains");
    CHECK(s.sender("MAILER-DAEMON@host")->text == "local part");
    CHECK(act(s.sender("")) == "none");  // the null sender is only <>
}

TEST_CASE("access: the last @ splits an address, a quoted local part keeps its own", "[access]") {
    auto t = parse_ok("sender \"a@b\"@example.com REJECT quoted\nsender \"x@y\"@ DEFER quoted local\n");
    CHECK(t.sender("\"a@b\"@example.com")->text == "quoted");
    CHECK(act(t.sender("b\"@example.com")) == "none");
    CHECK(t.sender("\"x@y\"@anywhere")->text == "quoted local");
}

TEST_CASE("access: a sender pattern <> matches the null sender only", "[access]") {
    auto t = parse_ok("sender <> REJECT no bounces here\nsender @example.com OK\n");
    CHECK(t.sender("")->text == "no bounces here");
    CHECK(act(t.sender("a@example.com")) == "OK");
    CHECK(act(t.sender("x@y")) == "none");
    CHECK_THAT(error_of("recipient <> REJECT"), Catch::Contains("access:1: '<>' (the null sender) is a sender pattern"));
}

TEST_CASE("access: an address extension is not stripped", "[access]") {
    auto t = parse_ok("recipient bob@example.com REJECT\nsender bob@ REJECT\n");
    CHECK(act(t.recipient("bob+list@example.com")) == "none");
    CHECK(act(t.sender("bob+x@elsewhere")) == "none");
    CHECK(act(parse_ok("recipient bob+list@example.com DEFER").recipient("bob+list@example.com")) == "DEFER");
}

TEST_CASE("access: UTF-8 addresses are matched byte for byte, ASCII case folded", "[access]") {
    auto t = parse_ok("recipient j\xc3\xb6rg@Example.com REJECT\n");
    CHECK(act(t.recipient("j\xc3\xb6rg@example.COM")) == "REJECT");
    CHECK(act(t.recipient("J\xc3\xb6RG@example.com")) == "REJECT");
    CHECK(act(t.recipient("j\xc3\x96rg@example.com")) == "none");  // no Unicode case folding
    CHECK_THAT(error_of("recipient j\xf6rg@example.com REJECT"), Catch::Contains("access:1: recipient pattern 'j?rg@example.com' holds bytes"));
}

TEST_CASE("access: bad sender and recipient patterns are errors naming the line", "[access]") {
    CHECK_THAT(error_of("sender example.com REJECT"), Catch::Contains("access:1: sender pattern 'example.com' has no '@'"));
    CHECK_THAT(error_of("recipient @ REJECT"), Catch::Contains("access:1: recipient pattern '@' matches nothing"));
    CHECK_THAT(error_of("sender <bob@example.com> REJECT"), Catch::Contains("without angle brackets"));
    CHECK_THAT(error_of("sender @. REJECT"), Catch::Contains("empty domain label"));
    CHECK_THAT(error_of("sender @..example.com REJECT"), Catch::Contains("empty domain label"));
    CHECK_THAT(error_of("sender @example..com REJECT"), Catch::Contains("empty domain label"));
    CHECK_THAT(error_of("sender a@example.com. REJECT"), Catch::Contains("empty domain label"));
}

TEST_CASE("access: bad client patterns are errors naming the line", "[access]") {
    for (const char* bad : {"1.2.3", "1.2.3.4.5", "256.1.1.1", "[::1", "::1]", "10.1.2.3/8", "10.0.0.0/33",
                            "::/129", "2001:db8::g", "a..b", "exa mple", "-", "*.example.com", "example.com."}) {
        INFO(bad);
        auto e = error_of(std::string("# x\nclient ") + bad + " REJECT\n");
        CHECK_THAT(e, Catch::StartsWith("access:2: "));
    }
    CHECK_THAT(error_of("client 1.2.3 REJECT"), Catch::Contains("access:1: network '1.2.3': not an IPv4 or IPv6 address"));
    CHECK_THAT(error_of("client 10.1.2.3/8 REJECT"), Catch::Contains("access:1: network '10.1.2.3/8': host bits set beyond the /8 prefix"));
    CHECK_THAT(error_of("client 10.0.0.0/33 OK"), Catch::Contains("out of range for IPv4"));
    CHECK_THAT(error_of("client ::/129 OK"), Catch::Contains("out of range for IPv6"));
    CHECK_THAT(error_of("client *.example.com OK"), Catch::Contains("neither an address, a network nor a host name"));
    // The edges are fine.
    auto t = parse_ok("client 0.0.0.0/0 DEFER v4\nclient ::/0 DEFER v6\nclient 192.0.2.1/32 OK\nclient ::1/128 OK\n");
    CHECK(t.client("203.0.113.9", "unknown")->text == "v4");
    CHECK(t.client("2001:db8::9", "unknown")->text == "v6");
}

TEST_CASE("access: an unknown KIND or ACTION, or a missing field, is an error naming the line", "[access]") {
    CHECK(error_of("\n\nclients 1.2.3.4 OK\n") == "access:3: unknown kind 'clients' (client, helo, sender or recipient)");
    CHECK(error_of("client 1.2.3.4 ACCEPT\n") == "access:1: unknown action 'ACCEPT' (OK, REJECT or DEFER)");
    CHECK(error_of("client 1.2.3.4 550 no\n") == "access:1: unknown action '550' (OK, REJECT or DEFER)");
    CHECK(error_of("client 1.2.3.4\n") == "access:1: client line without an ACTION (OK, REJECT or DEFER)");
    CHECK(error_of("client 1.2.3.4   \t\n") == "access:1: client line without an ACTION (OK, REJECT or DEFER)");
    CHECK(error_of("sender\n") == "access:1: sender line without a PATTERN");
    CHECK(error_of("client 1.2.3.4 OK\nrecipient a@b\n") == "access:2: recipient line without an ACTION (OK, REJECT or DEFER)");
    // One bad line rejects the whole file, wherever it is.
    CHECK_THAT(error_of("client 1.2.3.4 OK\nsender a@b OK\nhelo x OK\nbogus\n"), Catch::StartsWith("access:4: unknown kind 'bogus'"));
}

TEST_CASE("access: TEXT is printable ASCII of at most 200 octets", "[access]") {
    std::string longest(200, 'x');
    CHECK(parse_ok("client 1.2.3.4 REJECT " + longest).client("1.2.3.4", "")->text == longest);
    CHECK(error_of("client 1.2.3.4 REJECT " + longest + "y") == "access:1: TEXT is longer than 200 octets");
    // Trailing blanks do not count.
    CHECK(parse_ok("client 1.2.3.4 REJECT " + longest + " \t ").size() == 1);
    CHECK_THAT(error_of("client 1.2.3.4 REJECT caf\xc3\xa9"), Catch::Contains("access:1: TEXT holds the byte 0xc3: it goes into an SMTP reply"));
    CHECK_THAT(error_of("client 1.2.3.4 REJECT a\x80z"), Catch::Contains("access:1: TEXT holds the byte 0x80"));
    CHECK_THAT(error_of("client 1.2.3.4 REJECT tab\there"), Catch::Contains("access:1: TEXT holds the byte 0x09"));
    // Printable ASCII in full, '#' included (comments are whole lines only).
    std::string printable;
    for (char c = 0x21; c < 0x7f; ++c) printable += c;
    CHECK(parse_ok("sender a@b DEFER " + printable).sender("a@b")->text == printable);
    CHECK(parse_ok("sender a@b DEFER # not a comment").sender("a@b")->text == "# not a comment");
    // OK may carry a TEXT too: for the log.
    CHECK(parse_ok("client 1.2.3.4 OK our partner").client("1.2.3.4", "")->text == "our partner");
}

TEST_CASE("access: NUL, bare CR and control characters are refused on any line", "[access]") {
    CHECK(error_of(std::string("client 1.2.3.4 REJECT a\0b\n", 26)) == "access:1: a NUL byte");
    CHECK(error_of(std::string("# comment \0\n", 12)) == "access:1: a NUL byte");
    CHECK(error_of(std::string("client 1.2.3.4\0 OK\n", 19)) == "access:1: a NUL byte");
    CHECK(error_of("client 1.2.3.4 OK\nclient 1.2.3.5 REJECT a\rb\n") == "access:2: a CR that does not end the line");
    CHECK(error_of("client 1.2.3.4 REJECT\r\r\n") == "access:1: a CR that does not end the line");
    CHECK(error_of("client 1.2.3.4 OK\rclient 1.2.3.5 OK\n") == "access:1: a CR that does not end the line");
    CHECK(error_of("client 1.2.3.4 REJECT \x1b[31mred\n") == "access:1: a control character (0x1b)");
    CHECK(error_of("client 1.2.3.4 REJECT \x7f\n") == "access:1: a control character (0x7f)");
    CHECK(error_of("# \x01\n") == "access:1: a control character (0x01)");
    CHECK(error_of("client 1.2.3.4 REJECT \x0c\n") == "access:1: a control character (0x0c)");
    // 8-bit bytes in a comment are fine (a name with an accent).
    CHECK(parse_ok("# J\xc3\xb6rg's rules\nclient 1.2.3.4 OK\n").size() == 1);
}

TEST_CASE("access: a line of more than 4096 octets is refused", "[access]") {
    std::string pad(4096 - std::string("client 1.2.3.4 REJECT ").size(), ' ');
    CHECK(parse_ok("client 1.2.3.4 REJECT " + pad + "\n").size() == 1);
    CHECK(parse_ok("client 1.2.3.4 REJECT " + pad + "\r\n").size() == 1);  // the CR is the line end
    CHECK(error_of("client 1.2.3.4 OK\nclient 1.2.3.4 REJECT " + pad + " \n") == "access:2: line is longer than 4096 octets");
    CHECK(error_of("# " + std::string(10000, 'x') + "\n") == "access:1: line is longer than 4096 octets");
    CHECK(error_of("sender " + std::string(10000, 'a') + "@b OK") == "access:1: line is longer than 4096 octets");
}

TEST_CASE("access: a file over 4 MiB is refused, read or parsed", "[access]") {
    // Comment lines only: the size alone decides.
    std::string line = "# " + std::string(1021, 'x') + "\n";  // 1024 octets
    std::string at_limit;
    for (int i = 0; i < 4096; ++i) at_limit += line;
    REQUIRE(at_limit.size() == AccessTable::max_file_bytes);
    CHECK(parse_ok(at_limit).size() == 0);
    CHECK(error_of(at_limit + "\n") == "access: file is larger than 4194304 octets (4 MiB)");

    mailroom::test::TempDir dir;
    std::string five_mb;
    for (int i = 0; i < 5 * 1024; ++i) five_mb += line;
    auto big = dir.write("access", five_mb);
    auto r = AccessTable::load(big);
    REQUIRE_FALSE(r.has_value());
    CHECK(r.error().message() == big + ": file is larger than 4194304 octets (4 MiB)");

    auto ok = AccessTable::load(dir.write("at_limit", at_limit));
    CHECK(ok.has_value());
}

TEST_CASE("access: load reads the file, its errors name the path and line", "[access]") {
    mailroom::test::TempDir dir;
    auto good = AccessTable::load(dir.write("access", "client 10.0.0.0/8 OK\nsender <> DEFER\n"));
    REQUIRE(good.has_value());
    CHECK(good->size() == 2);
    CHECK(act(good->sender("")) == "DEFER");

    auto path = dir.write("broken", "client 10.0.0.0/8 OK\n\n# x\nhelo x MAYBE\n");
    auto bad = AccessTable::load(path);
    REQUIRE_FALSE(bad.has_value());
    CHECK(bad.error().message() == path + ":4: unknown action 'MAYBE' (OK, REJECT or DEFER)");
    CHECK(bad.error().errno_value() == 0);

    auto missing = AccessTable::load(dir.path + "/missing");
    REQUIRE_FALSE(missing.has_value());
    CHECK(missing.error().errno_value() == ENOENT);
    CHECK_THAT(missing.error().message(), Catch::StartsWith("open " + dir.path + "/missing"));

    auto folder = AccessTable::load(dir.path);
    REQUIRE_FALSE(folder.has_value());
    CHECK_THAT(folder.error().message(), Catch::Contains(dir.path));

    // A FIFO at the path is refused at once, not waited on.
    std::string fifo = dir.path + "/fifo";
    REQUIRE(::mkfifo(fifo.c_str(), 0600) == 0);
    auto pipe = AccessTable::load(fifo);
    REQUIRE_FALSE(pipe.has_value());
    CHECK(pipe.error().message() == fifo + ": not a regular file");
}

TEST_CASE("access: a table is a value, copied and moved whole", "[access]") {
    auto t = parse_ok("client 10.0.0.1 REJECT a\nsender a@b OK\n");
    AccessTable copy = t;
    AccessTable moved = std::move(t);
    CHECK(copy.size() == 2);
    CHECK(moved.size() == 2);
    CHECK(copy.client("10.0.0.1", "")->text == "a");
    AccessTable assigned;
    assigned = copy;
    CHECK(act(assigned.sender("a@b")) == "OK");
}

TEST_CASE("access: kind and action names for log lines", "[access]") {
    using mailroom::smtp::access_action_name;
    using mailroom::smtp::access_kind_name;
    CHECK(access_kind_name(AccessKind::client) == "client");
    CHECK(access_kind_name(AccessKind::recipient) == "recipient");
    CHECK(access_action_name(AccessAction::defer) == "DEFER");
}
