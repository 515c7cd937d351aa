// The text forms of notice fields: dates, typed addresses, one-line diagnostics,
// folding, and readable text for people. Each must keep its syntax whatever it is fed.
#include "mail/dsn_text.hpp"

#include <catch2/catch.hpp>
#include <string>

#include "bounce_test_support.hpp"
#include "support/test_support.hpp"

using namespace mailroom::mail;
using bounce_test::TimeZone;
using mailroom::test::lines_of;

TEST_CASE("notice dates are RFC 5322 dates in local time with a numeric zone", "[dsn]") {
    {
        TimeZone utc("UTC");
        CHECK(rfc5322_date(0) == "Thu, 1 Jan 1970 00:00:00 +0000");
        CHECK(rfc5322_date(1717420931) == "Mon, 3 Jun 2024 13:22:11 +0000");
    }
    {
        TimeZone east("XST-5:30");
        CHECK(rfc5322_date(1717420931) == "Mon, 3 Jun 2024 18:52:11 +0530");
    }
    {
        TimeZone west("YST+3");
        CHECK(rfc5322_date(1717420931) == "Mon, 3 Jun 2024 10:22:11 -0300");
    }
}

TEST_CASE("an ASCII address is typed rfc822, a UTF-8 one utf-8 in xtext form (RFC 6533)", "[dsn]") {
    CHECK(typed_address("bob@example.org") == "rfc822; bob@example.org");
    CHECK(typed_address("bob\r\n@example.org") == "rfc822; bob@example.org");
    CHECK(typed_address("j\xc3\xb6rg+list@example.org") == "utf-8; j\\x{F6}rg\\x{2B}list@example.org");
    CHECK(typed_address("\xe2\x82\xac=x@example.org") == "utf-8; \\x{20AC}\\x{3D}x@example.org");
    CHECK(typed_address("\xf0\x9f\x93\xa8@example.org") == "utf-8; \\x{1F4E8}@example.org");
    // Invalid UTF-8 stays visible as the replacement character, still 7-bit.
    CHECK(typed_address("a\xff@b") == "utf-8; a\\x{FFFD}@b");
    CHECK(typed_address("\xc0\xaf@b") == "utf-8; \\x{FFFD}\\x{FFFD}@b");
    auto long_one = typed_address(std::string(2000, '\xe9'));
    CHECK(long_one.size() <= 900);
    CHECK(long_one.find_first_of("\r\n") == std::string::npos);
}

TEST_CASE("a diagnostic on one line has no controls, no 8-bit octets and a bounded size", "[dsn]") {
    CHECK(one_line_ascii("  user unknown\r\n  (see log)\t\x07 ", 100) == "user unknown (see log)");
    CHECK(one_line_ascii("caf\xc3\xa9", 100) == "caf??");
    std::string cut = one_line_ascii(std::string(5000, 'a'), 100);
    CHECK(cut.size() == 100);
    CHECK(cut.substr(97) == "...");
}

TEST_CASE("fields are folded at spaces within 78 columns and never exceed 998 octets", "[dsn]") {
    CHECK(folded_field("Status", "5.1.1") == "Status: 5.1.1\n");
    std::string words;
    for (int i = 0; i < 60; ++i) words += "word" + std::to_string(i) + " ";
    std::string field = folded_field("Diagnostic-Code", "x-unix; " + words);
    auto lines = lines_of(field);
    REQUIRE(lines.size() > 1);
    CHECK(lines[0].rfind("Diagnostic-Code: x-unix; word0", 0) == 0);
    for (size_t i = 0; i < lines.size(); ++i) {
        CHECK(lines[i].size() <= 78);
        if (i > 0) CHECK(lines[i][0] == ' ');
    }
    // Unfolding (removing the line breaks) gives the value back.
    std::string unfolded;
    for (const auto& line : lines) unfolded += line;
    CHECK(unfolded == "Diagnostic-Code: x-unix; " + words.substr(0, words.size() - 1));

    std::string huge = folded_field("Diagnostic-Code", "smtp; " + std::string(5000, 'h'));
    for (const auto& line : lines_of(huge)) CHECK(line.size() <= 998);
    CHECK(huge.back() == '\n');
}

TEST_CASE("readable text keeps UTF-8 and line breaks, indents, and bounds its lines", "[dsn]") {
    CHECK(readable_text("line one\r\nline two\n", "  ", 100) == "  line one\n  line two\n");
    CHECK(readable_text("a\n\nb", "  ", 100) == "  a\n\n  b\n");
    CHECK(readable_text("gr\xc3\xbc\xc3\x9f" "e\x1b[1m\xff", "", 100) == "gr\xc3\xbc\xc3\x9f" "e?[1m?\n");
    CHECK(readable_text("", "  ", 100).empty());
    std::string long_line = readable_text(std::string(3000, '\xc3') + "x", "    ", 10000);
    for (const auto& line : lines_of(long_line)) CHECK(line.size() <= 998);
    std::string utf8_line;
    for (int i = 0; i < 1500; ++i) utf8_line += "\xc3\xa4";
    for (const auto& line : lines_of(readable_text(utf8_line, "    ", 10000))) {
        CHECK(line.size() <= 998);
        CHECK((static_cast<unsigned char>(line.back()) == 0xa4));  // never split inside a character
    }
    std::string capped = readable_text(std::string(10000, 'c'), "", 4096);
    CHECK(capped.size() <= 4096 + 8);
    CHECK(capped.find("...") != std::string::npos);
}

TEST_CASE("8-bit content is recognised by any octet over 127", "[dsn]") {
    CHECK_FALSE(has_8bit("plain ASCII\t\n"));
    CHECK(has_8bit("\x80"));
}
