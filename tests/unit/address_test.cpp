// Address parsing (RFC 5321 4.1.2, 4.5.3.1), rendering and the extension split.
#include "mail/address.hpp"

#include <sysexits.h>

#include <catch2/catch.hpp>
#include <string>
#include <vector>

using mailroom::mail::Address;
using mailroom::mail::ParseFlags;
using mailroom::mail::ParseMode;

namespace {

struct Valid {
    std::string text;
    ParseMode mode;
    std::string local, domain, canonical;
};

struct Invalid {
    std::string text;
    ParseMode mode;
    std::string message;  // a substring of Error::message()
};

const ParseFlags null_ok{.allow_null = true};
const ParseFlags utf8_ok{.allow_utf8 = true};

std::string rep(char c, std::size_t n) { return std::string(n, c); }
// A host name of exactly n octets made of labels of at most 50 octets; the
// REQUIREs catch an n that would leave an empty last label.
std::string domain_of(std::size_t n) {
    std::string d;
    while (d.size() < n) {
        if (!d.empty()) d += '.';
        d += rep('d', std::min<std::size_t>(50, n - d.size()));
    }
    REQUIRE(d.size() == n);
    REQUIRE(d.back() == 'd');
    return d;
}

}  // namespace

TEST_CASE("An address is parsed once at the door: valid forms", "[address]") {
    const std::vector<Valid> table = {
        {"<bob@example.org>", ParseMode::path, "bob", "example.org", "bob@example.org"},
        {"<first.last@sub.example.org>", ParseMode::path, "first.last", "sub.example.org",
         "first.last@sub.example.org"},
        {"<x!#$%&'*+-/=?^_`{|}~@h>", ParseMode::path, "x!#$%&'*+-/=?^_`{|}~", "h",
         "x!#$%&'*+-/=?^_`{|}~@h"},
        {"<\"john doe\"@example.org>", ParseMode::path, "john doe", "example.org",
         "\"john doe\"@example.org"},
        {R"(<"say \"hi\" \\ x"@h>)", ParseMode::path, R"(say "hi" \ x)", "h", R"("say \"hi\" \\ x"@h)"},
        {"<\"plain\"@h>", ParseMode::path, "plain", "h", "plain@h"},
        {"<\"a..b\"@h>", ParseMode::path, "a..b", "h", "\"a..b\"@h"},
        {"<\"a@b\"@h>", ParseMode::path, "a@b", "h", "\"a@b\"@h"},
        {"<\"\"@h>", ParseMode::path, "", "h", "\"\"@h"},
        {"<u@[192.0.2.1]>", ParseMode::path, "u", "[192.0.2.1]", "u@[192.0.2.1]"},
        {"<u@[IPv6:2001:db8::1]>", ParseMode::path, "u", "[IPv6:2001:db8::1]", "u@[IPv6:2001:db8::1]"},
        {"<u@[ipv6:::ffff:192.0.2.1]>", ParseMode::path, "u", "[ipv6:::ffff:192.0.2.1]",
         "u@[ipv6:::ffff:192.0.2.1]"},
        {"<u@[x-tag:some/thing]>", ParseMode::path, "u", "[x-tag:some/thing]", "u@[x-tag:some/thing]"},
        {"<@a.example,@b.example:user@host>", ParseMode::path, "user", "host", "user@host"},
        {"<@relay:u@h>", ParseMode::path, "u", "h", "u@h"},
        {"<Bob@Example.ORG>", ParseMode::path, "Bob", "Example.ORG", "Bob@Example.ORG"},
        {"<bob>", ParseMode::path, "bob", "", "bob"},
        {"bob", ParseMode::bare, "bob", "", "bob"},
        {"bob@example.org", ParseMode::bare, "bob", "example.org", "bob@example.org"},
        {"  <bob@example.org>\t", ParseMode::bare, "bob", "example.org", "bob@example.org"},
        {" carol ", ParseMode::bare, "carol", "", "carol"},
        {"a-b.c-d@x-1.y2.example", ParseMode::bare, "a-b.c-d", "x-1.y2.example",
         "a-b.c-d@x-1.y2.example"},
        {"/etc/passwd", ParseMode::bare, "/etc/passwd", "", "/etc/passwd"},
        {"\"|cmd\"@host", ParseMode::bare, "|cmd", "host", "|cmd@host"},
        {rep('l', 64) + "@x", ParseMode::bare, rep('l', 64), "x", rep('l', 64) + "@x"},
        {"u@" + rep('d', 63) + ".com", ParseMode::bare, "u", rep('d', 63) + ".com",
         "u@" + rep('d', 63) + ".com"},
    };
    for (const auto& row : table) {
        INFO("text: " << row.text);
        auto a = Address::parse(row.text, row.mode);
        REQUIRE(a.has_value());
        CHECK_FALSE(a->is_null());
        CHECK(a->local_part() == row.local);
        CHECK(a->domain() == row.domain);
        CHECK(a->str() == row.canonical);
        CHECK(a->path() == "<" + row.canonical + ">");
        // The canonical form parses back to the same mailbox.
        auto again = Address::parse(a->str(), ParseMode::bare);
        REQUIRE(again.has_value());
        CHECK(again->same_mailbox(*a));
    }
}

TEST_CASE("An address at the RFC 5321 limits is accepted", "[address]") {
    // 64 + 1 + 189 + 2 = 256 octets of path.
    std::string text = "<" + rep('l', 64) + "@" + domain_of(189) + ">";
    REQUIRE(text.size() == 256);
    CHECK(Address::parse(text, ParseMode::path).has_value());
    CHECK(Address::parse(text, ParseMode::bare).has_value());
}

TEST_CASE("The null path is accepted only where allowed", "[address]") {
    auto p = Address::parse("<>", ParseMode::path, null_ok);
    REQUIRE(p.has_value());
    CHECK(p->is_null());
    CHECK(p->str().empty());
    CHECK(p->path() == "<>");
    CHECK(Address().is_null());

    for (std::string text : {"<>", "", "  "}) {
        INFO("text: '" << text << "'");
        auto b = Address::parse(text, ParseMode::bare, null_ok);
        REQUIRE(b.has_value());
        CHECK(b->is_null());
    }
    auto refused = Address::parse("<>", ParseMode::path);
    REQUIRE_FALSE(refused.has_value());
    CHECK_THAT(refused.error().message(), Catch::Contains("null address"));
    auto empty = Address::parse("", ParseMode::bare);
    REQUIRE_FALSE(empty.has_value());
    CHECK(empty.error().message() == "empty address");
    CHECK_FALSE(Address::parse("", ParseMode::path, null_ok).has_value());
}

TEST_CASE("An address it cannot parse is refused with a clear reason", "[address]") {
    const std::vector<Invalid> table = {
        {"", ParseMode::path, "empty address"},
        {"a..b@x", ParseMode::bare, "local part contains '..'"},
        {".a@x", ParseMode::bare, "local part starts with '.'"},
        {"a.@x", ParseMode::bare, "local part ends with '.'"},
        {"a@-x.com", ParseMode::bare, "domain label starts with '-'"},
        {"a@x-.com", ParseMode::bare, "domain label ends with '-'"},
        {"a@x.-y.com", ParseMode::bare, "domain label starts with '-'"},
        {"a@" + rep('d', 64) + ".com", ParseMode::bare, "domain label longer than 63 octets"},
        {rep('l', 65) + "@x", ParseMode::bare, "local part longer than 64 octets"},
        {"\"" + rep('l', 63) + "\"@x", ParseMode::bare, "local part longer than 64 octets"},
        {"a@" + domain_of(256), ParseMode::bare, "domain longer than 255 octets"},
        {"<" + rep('l', 64) + "@" + domain_of(190) + ">", ParseMode::path,
         "address longer than 256 octets"},
        {rep('l', 64) + "@" + domain_of(190), ParseMode::bare, "address longer than 256 octets"},
        {"<a\r@b>", ParseMode::path, "address contains a control character"},
        {"<a@b\r\n>", ParseMode::path, "address contains a control character"},
        {"a@b\n", ParseMode::bare, "address contains a control character"},
        {std::string("a\0b@c", 5), ParseMode::bare, "address contains a control character"},
        {"a\x01@b", ParseMode::bare, "address contains a control character"},
        {"a@b\x7f", ParseMode::bare, "address contains a control character"},
        {"\"a\tb\"@c", ParseMode::bare, "address contains a control character"},
        {"<a@b", ParseMode::path, "missing '>'"},
        {"<a@b", ParseMode::bare, "missing '>'"},
        {"a@b>", ParseMode::bare, "missing '<'"},
        {"a@b", ParseMode::path, "missing '<'"},
        {"<a@b> x", ParseMode::path, "unexpected text after '>'"},
        {"<>x", ParseMode::path, "unexpected text after '>'"},
        {"\"a@b", ParseMode::bare, "unbalanced quotes"},
        {"<\"a@b>", ParseMode::path, "unbalanced quotes"},
        {"\"a\\", ParseMode::bare, "unbalanced quotes"},
        {"a@[300.1.1.1]", ParseMode::bare, "invalid IPv4 address literal"},
        {"a@[1.2.3]", ParseMode::bare, "invalid IPv4 address literal"},
        {"a@[IPv6:zz]", ParseMode::bare, "invalid IPv6 address literal"},
        {"a@[IPv6:1.2.3.4]", ParseMode::bare, "invalid IPv6 address literal"},
        {"a@[tag-:x]", ParseMode::bare, "invalid address literal tag"},
        {"a@[x:]", ParseMode::bare, "empty address literal"},
        {"a@[x:a b]", ParseMode::bare, "invalid character in address literal"},
        {"a@[1.2.3.4", ParseMode::bare, "missing ']'"},
        {"a@[1.2.3.4]x", ParseMode::bare, "invalid character 'x' in domain"},
        {"a b@c", ParseMode::bare, "invalid character ' ' in local part"},
        {"a(b)@c", ParseMode::bare, "invalid character '(' in local part"},
        {"\"a\"b@c", ParseMode::bare, "invalid character 'b' in local part"},
        {"@b", ParseMode::bare, "missing local part"},
        {"a@", ParseMode::bare, "missing domain after '@'"},
        {"<a@>", ParseMode::path, "missing domain after '@'"},
        {"a@b@c", ParseMode::bare, "address contains more than one '@'"},
        {"a@.b", ParseMode::bare, "domain starts with '.'"},
        {"a@b..c", ParseMode::bare, "domain contains '..'"},
        {"a@b.", ParseMode::bare, "domain ends with '.'"},
        {"a@b_c.d", ParseMode::bare, "invalid character '_' in domain"},
        {"\"\"", ParseMode::bare, "empty local part needs a domain"},
        {"<@a.example:>", ParseMode::path, "missing local part"},
        {"<@a.example>", ParseMode::path, "source route missing ':'"},
        {"<@a,b:u@h>", ParseMode::path, "source route hop missing '@'"},
        {"<@-a:u@h>", ParseMode::path, "domain label starts with '-'"},
        {"bj\xc3\xb6rn@x", ParseMode::bare, "8-bit characters"},
        {"b@\xc3\xa9.x", ParseMode::bare, "8-bit characters"},
    };
    for (const auto& row : table) {
        INFO("text: " << row.text);
        auto a = Address::parse(row.text, row.mode);
        REQUIRE_FALSE(a.has_value());
        CHECK_THAT(a.error().message(), Catch::Contains(row.message));
    }
}

TEST_CASE("The error message is the reason alone, ready for 'PROGRAM: error: WHAT (WHY)'",
          "[address]") {
    auto a = Address::parse(rep('l', 65) + "@x", ParseMode::bare);
    REQUIRE_FALSE(a.has_value());
    CHECK(a.error().message() == "local part longer than 64 octets");
    CHECK(a.error().errno_value() == 0);
}

TEST_CASE("SMTPUTF8 allows valid UTF-8 in local part and domain", "[address]") {
    auto a = Address::parse("<bj\xc3\xb6rn@b\xc3\xbc\x63her.example>", ParseMode::path, utf8_ok);
    REQUIRE(a.has_value());
    CHECK(a->local_part() == "bj\xc3\xb6rn");
    CHECK(a->domain() == "b\xc3\xbc\x63her.example");
    CHECK(a->needs_smtputf8());
    CHECK(a->str() == "bj\xc3\xb6rn@b\xc3\xbc\x63her.example");
    CHECK(Address::parse("\"\xe2\x82\xac x\"@h", ParseMode::bare, utf8_ok).has_value());
    CHECK(Address::parse("\xf0\x9f\x93\xa7@h", ParseMode::bare, utf8_ok).has_value());
    CHECK_FALSE(Address::parse("ascii@h", ParseMode::bare, utf8_ok)->needs_smtputf8());

    const std::vector<std::string> bad = {
        "\xff@h",              // never valid
        "a\xc3@h",             // truncated sequence
        "a\xc3",               // truncated at the end
        "\xc0\xaf@h",          // overlong '/'
        "\xe0\x80\xaf@h",      // overlong, 3 bytes
        "\xed\xa0\x80@h",      // UTF-16 surrogate
        "\xf4\x90\x80\x80@h",  // above U+10FFFF
        "\x80@h",              // lone continuation byte
    };
    for (const auto& text : bad) {
        INFO("text: " << text);
        auto r = Address::parse(text, ParseMode::bare, utf8_ok);
        REQUIRE_FALSE(r.has_value());
        CHECK(r.error().message() == "address is not valid UTF-8");
    }
    // quoted-pair stays ASCII even under SMTPUTF8.
    auto qp = Address::parse("\"\\\xc3\xa9\"@h", ParseMode::bare, utf8_ok);
    REQUIRE_FALSE(qp.has_value());
    CHECK_THAT(qp.error().message(), Catch::Contains("quoted-pair"));
}

TEST_CASE("A bare local name may be refused where a domain is required", "[address]") {
    const ParseFlags need{.require_domain = true};
    auto bob = Address::parse("<bob>", ParseMode::path, need);
    REQUIRE_FALSE(bob.has_value());
    CHECK(bob.error().message() == "address has no domain");
    auto pm = Address::parse("<Postmaster>", ParseMode::path, need);
    REQUIRE(pm.has_value());
    CHECK(pm->local_part() == "Postmaster");
    CHECK(Address::parse("<bob@h>", ParseMode::path, need).has_value());
}

TEST_CASE("Domains compare without regard to case, local parts exactly", "[address]") {
    auto a = Address::parse("Bob@Example.ORG", ParseMode::bare);
    auto b = Address::parse("Bob@example.org", ParseMode::bare);
    auto c = Address::parse("bob@example.org", ParseMode::bare);
    REQUIRE((a && b && c));
    CHECK(a->iequal_domain("EXAMPLE.org"));
    CHECK_FALSE(a->iequal_domain("example.com"));
    CHECK(a->lowercase_domain() == "example.org");
    CHECK(a->domain() == "Example.ORG");
    CHECK(a->same_mailbox(*b));
    CHECK_FALSE(a->same_mailbox(*c));
    CHECK_FALSE(a->same_mailbox(Address()));
    CHECK(Address().same_mailbox(Address()));
    CHECK(mailroom::mail::iequals_ascii("MAILER-daemon", "mailer-DAEMON"));
    auto lit = Address::parse("u@[192.0.2.1]", ParseMode::bare);
    CHECK(lit->has_address_literal());
    CHECK_FALSE(a->has_address_literal());
}

TEST_CASE("The local part is quoted only when needed", "[address]") {
    CHECK(Address::quote_local("bob") == "bob");
    CHECK(Address::quote_local("a.b+c") == "a.b+c");
    CHECK(Address::quote_local("john doe") == "\"john doe\"");
    CHECK(Address::quote_local("a..b") == "\"a..b\"");
    CHECK(Address::quote_local(".a") == "\".a\"");
    CHECK(Address::quote_local("a.") == "\"a.\"");
    CHECK(Address::quote_local("a\"b\\c") == R"("a\"b\\c")");
    CHECK(Address::quote_local("a@b") == "\"a@b\"");
    CHECK(Address::quote_local("") == "\"\"");
}

TEST_CASE("user+ext is accepted when recipient_delimiter is set", "[address]") {
    using mailroom::mail::split_extension;
    struct Row {
        std::string local, delimiter, user, extension;
    };
    const std::vector<Row> table = {
        {"bob+lists", "+", "bob", "lists"},
        {"bob+a+b", "+", "bob", "a+b"},
        {"bob-x+y", "+-", "bob", "x+y"},  // the first delimiter found splits
        {"bob+x-y", "-+", "bob", "x-y"},
        {"bob+", "+", "bob", ""},
        {"bob", "+", "bob", ""},
        {"bob+lists", "", "bob+lists", ""},
        {"+lists", "+", "+lists", ""},  // never an empty user
        {"postmaster+x", "+", "postmaster", "x"},
        {"postmaster", "+", "postmaster", ""},
        {"MAILER-DAEMON", "-", "MAILER-DAEMON", ""},
        {"owner-list", "-", "owner-list", ""},  // list names survive '-'
        {"list-request", "-", "list-request", ""},
        {"owner-list", "+", "owner-list", ""},
        {"bob-ext", "-", "bob", "ext"},
    };
    for (const auto& row : table) {
        INFO(row.local << " with delimiter '" << row.delimiter << "'");
        auto parts = split_extension(row.local, row.delimiter);
        CHECK(parts.user == row.user);
        CHECK(parts.extension == row.extension);
    }
}

TEST_CASE("An address it cannot parse: exit 65 (EX_DATAERR)", "[address]") {
    using mailroom::mail::AddressRole;
    using mailroom::mail::bad_address_status;
    auto a = Address::parse("a..b@x", ParseMode::bare);
    REQUIRE_FALSE(a.has_value());
    auto rcpt = bad_address_status(a.error());
    CHECK(rcpt.is_permanent());
    CHECK(rcpt.code() == "5.1.3");
    CHECK_THAT(rcpt.text(), Catch::Contains("local part contains '..'"));
    CHECK(rcpt.to_sysexit() == EX_DATAERR);
    CHECK(rcpt.to_reply_code() == 553);
    auto sender = bad_address_status(a.error(), AddressRole::sender);
    CHECK(sender.code() == "5.1.7");
    CHECK(sender.to_sysexit() == EX_DATAERR);
    CHECK(sender.to_reply_code() == 553);
}
