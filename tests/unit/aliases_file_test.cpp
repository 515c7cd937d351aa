// The aliases(5) text file: entries, continuations, comments, names, duplicates,
// postmaster, errors as FILE:LINE: error: WHAT, and every cap.
#include "delivery/aliases_file.hpp"

#include <catch2/catch.hpp>
#include <string>

#include "support/test_support.hpp"

using mailroom::mail::AliasesFile;
using mailroom::mail::AliasesOptions;
using mailroom::mail::parse_aliases;
using mailroom::mail::read_aliases_file;
using mailroom::mail::render_aliases;
using mailroom::mail::TargetKind;

namespace {

AliasesFile parse_ok(std::string_view text, const AliasesOptions& limits = {}) {
    auto r = parse_aliases(text, "aliases", limits);
    INFO("text: " << text << (r ? "" : " error: " + r.error().message()));
    REQUIRE(r.has_value());
    return std::move(r).value();
}

std::string error_of(std::string_view text, const AliasesOptions& limits = {}) {
    auto r = parse_aliases(text, "aliases", limits);
    INFO("text: " << text);
    REQUIRE_FALSE(r.has_value());
    CHECK(r.error().errno_value() == 0);
    return r.error().message();
}

}  // namespace

TEST_CASE("aliases: name: targets, continuation lines, comments and blank lines", "[aliases_file]") {
    auto f = parse_ok(
        "# the team\n"
        "\n"
        "team: bob,\n"
        "  carol\n"
        "# a comment inside the entry\n"
        "\t|/usr/bin/log-it\n"
        "root: alice\n");
    REQUIRE(f.entries.size() == 2);
    const auto& team = f.entries[0];
    CHECK(team.name == "team");
    CHECK(team.at.line == 3);
    CHECK(team.at.column == 7);
    REQUIRE(team.targets.size() == 3);
    CHECK(team.targets[1].value == "carol");
    CHECK(team.targets[1].at.line == 4);
    CHECK(team.targets[2].kind == TargetKind::command);
    CHECK(team.targets[2].value == "/usr/bin/log-it");
    CHECK(team.targets[2].at.line == 6);
    CHECK(f.entries[1].name == "root");
    CHECK(f.entries[1].at.line == 7);
    CHECK(f.warnings.empty());
}

TEST_CASE("aliases: names are case-insensitive, stored in lowercase, and may be quoted", "[aliases_file]") {
    auto f = parse_ok("PostMaster: root\n\"Odd Name\": bob\nx : y\n");
    REQUIRE(f.entries.size() == 3);
    CHECK(f.entries[0].name == "postmaster");
    CHECK(f.entries[1].name == "odd name");
    CHECK(f.entries[2].name == "x");
    CHECK_FALSE(f.needs_postmaster());
}

TEST_CASE("aliases: a name given twice keeps the first entry and warns naming both lines", "[aliases_file]") {
    auto f = parse_ok("bob: first\nalice: a\nBOB: second\n");
    REQUIRE(f.entries.size() == 2);
    CHECK(f.entries[0].targets[0].value == "first");
    REQUIRE(f.warnings.size() == 1);
    CHECK(f.warnings[0] == "aliases:3: warning: duplicate alias 'bob' ignored: the entry at line 1 is used");
}

TEST_CASE("aliases: without a postmaster entry the database must add one", "[aliases_file]") {
    CHECK(parse_ok("bob: alice\n").needs_postmaster());
    CHECK(parse_ok("").needs_postmaster());
}

TEST_CASE("aliases: a CRLF file reads as an LF file", "[aliases_file]") {
    auto f = parse_ok("bob: alice,\r\n  carol\r\n");
    REQUIRE(f.entries.size() == 1);
    CHECK(f.entries[0].targets.size() == 2);
}

TEST_CASE("aliases: every syntax error is FILE:LINE: error: WHAT", "[aliases_file]") {
    using namespace std::string_literals;
    CHECK(error_of("a: b\nno colon here\n") == "aliases:2: error: missing ':' after alias name 'no'");
    CHECK(error_of("  b\n") == "aliases:1: error: continuation line with no alias before it");
    CHECK(error_of("a:\n") == "aliases:1: error: alias 'a' has no targets");
    CHECK(error_of(": b\n") == "aliases:1: error: empty alias name");
    CHECK(error_of("\"ab: c\n") == "aliases:1: error: unterminated quoted alias name");
    CHECK(error_of("a@host: b\n") ==
          "aliases:1: error: alias name 'a@host' is not a local name (no @domain on the left)");
    CHECK(error_of("a: b\nc: d\0e\n"s) == "aliases:2: error: NUL byte at column 5");
    CHECK(error_of("a: b\rc\n") == "aliases:1: error: carriage return at column 5");
    CHECK(error_of("a: b\r") == "aliases:1: error: carriage return at column 5");
    CHECK(error_of("a: \x1b[2J\n") == "aliases:1: error: control character 0x1b at column 4");
    // A target error names the line of the target, not of the name.
    CHECK(error_of("a: b,\n  c@@d\n").rfind("aliases:2: error: bad address 'c@@d' at column 3: ", 0) == 0);
    CHECK(error_of("a: error:9.9.9 x\n").rfind("aliases:1: error: error: target needs a status code", 0) == 0);
}

TEST_CASE("aliases: a line longer than max_line_bytes is refused", "[aliases_file]") {
    CHECK(error_of("a: " + std::string(1 << 20, 'b') + "\n") == "aliases:1: error: line is longer than 65536 bytes");
    AliasesOptions small{.max_line_bytes = 20};
    CHECK(parse_ok("a: 123456789012345\n", small).entries.size() == 1);
    CHECK(error_of("a: 1234567890123456789\n", small) == "aliases:1: error: line is longer than 20 bytes");
}

TEST_CASE("aliases: an entry longer than max_entry_bytes is refused", "[aliases_file]") {
    AliasesOptions small{.max_entry_bytes = 30};
    CHECK(parse_ok("a: b1, b2, b3,\n  b4, b5\n", small).entries.size() == 1);
    CHECK(error_of("a: b1, b2, b3,\n  b4, b5,\n  b6, b7, b8\n", small) ==
          "aliases:1: error: alias 'a' is longer than 30 bytes");
}

TEST_CASE("aliases: more than max_entries entries are refused", "[aliases_file]") {
    AliasesOptions small{.max_entries = 3};
    CHECK(parse_ok("a: x\nb: x\nc: x\n", small).entries.size() == 3);
    CHECK(error_of("a: x\nb: x\nc: x\nd: x\n", small) == "aliases:4: error: more than 3 aliases");
}

TEST_CASE("aliases: a name longer than max_name_bytes and a file larger than max_file_bytes are refused",
          "[aliases_file]") {
    CHECK(error_of(std::string(257, 'n') + ": x\n") == "aliases:1: error: alias name is longer than 256 bytes");
    AliasesOptions small{.max_file_bytes = 10};
    CHECK(error_of("a: bbbbbbbbbbbb\n", small) == "aliases: error: file is larger than 10 bytes");
}

TEST_CASE("aliases: entries render back to text that parses to the same entries", "[aliases_file]") {
    auto f = parse_ok(
        "\"odd: name\": \"|cmd a, b\", /file, :include:/inc\n"
        "plain: \\me, error:5.1.1 gone away, \"x y\"@h\n"
        "\"#hash\": bob\n");
    auto again = parse_ok(render_aliases(f.entries));
    REQUIRE(again.entries.size() == f.entries.size());
    for (std::size_t i = 0; i < f.entries.size(); ++i) {
        CHECK(again.entries[i].name == f.entries[i].name);
        REQUIRE(again.entries[i].targets.size() == f.entries[i].targets.size());
        for (std::size_t k = 0; k < f.entries[i].targets.size(); ++k)
            CHECK(again.entries[i].targets[k].value == f.entries[i].targets[k].value);
    }
}

TEST_CASE("aliases: read_aliases_file reports a missing file as an errno error", "[aliases_file]") {
    mailroom::test::TempDir tmp;
    auto missing = read_aliases_file(tmp.path + "/none");
    REQUIRE_FALSE(missing.has_value());
    CHECK(missing.error().errno_value() == ENOENT);
    auto path = tmp.write("aliases", "bob: alice\n");
    auto f = read_aliases_file(path);
    REQUIRE(f.has_value());
    CHECK(f->path == path);
    CHECK(f->entries.size() == 1);
}

TEST_CASE("aliases: keep_targets = false still checks every target but keeps only the text", "[aliases_file]") {
    AliasesOptions lean{.keep_targets = false};
    auto f = parse_ok("a: b, |cmd\n", lean);
    REQUIRE(f.entries.size() == 1);
    CHECK(f.entries[0].targets.empty());
    CHECK(f.entries[0].text == "b, |cmd");
    CHECK(error_of("a: b@@c\n", lean).rfind("aliases:1: error: bad address", 0) == 0);
}
