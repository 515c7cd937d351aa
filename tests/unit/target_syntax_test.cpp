// Target syntax (SPEC 5, aliases(5)): every form, every bad input, the outside rule.
#include "delivery/target_syntax.hpp"

#include <catch2/catch.hpp>
#include <string>
#include <vector>

using mailroom::mail::max_item_bytes;
using mailroom::mail::max_targets;
using mailroom::mail::parse_targets;
using mailroom::mail::ParsedTargets;
using mailroom::mail::render_targets;
using mailroom::mail::TargetKind;
using mailroom::mail::TargetSource;
using mailroom::mail::TextPosition;

namespace {

struct Expect {
    TargetKind kind;
    std::string value;
};

ParsedTargets parse_ok(std::string_view text, TargetSource source = TargetSource::aliases) {
    auto r = parse_targets(text, source);
    INFO("text: " << text << " error: " << (r.error ? r.error->what : ""));
    REQUIRE(r.ok());
    return r;
}

void check(std::string_view text, const std::vector<Expect>& want, TargetSource source = TargetSource::aliases) {
    auto r = parse_ok(text, source);
    INFO("text: " << text);
    REQUIRE(r.targets.size() == want.size());
    for (std::size_t i = 0; i < want.size(); ++i) {
        CHECK(r.targets[i].kind == want[i].kind);
        CHECK(r.targets[i].value == want[i].value);
    }
}

std::string error_of(std::string_view text, TargetSource source = TargetSource::aliases) {
    auto r = parse_targets(text, source);
    INFO("text: " << text);
    REQUIRE_FALSE(r.ok());
    CHECK(r.targets.empty());
    return r.error->what;
}

}  // namespace

TEST_CASE("targets are addresses, commands, files, includes, own mailboxes and errors", "[target_syntax]") {
    check("bob", {{TargetKind::address, "bob"}});
    check("bob@host.example", {{TargetKind::address, "bob@host.example"}});
    check("\"odd name\"@host", {{TargetKind::address, "\"odd name\"@host"}});
    check("<bob@host>", {{TargetKind::address, "bob@host"}});
    check("|/usr/bin/vacation bob", {{TargetKind::command, "/usr/bin/vacation bob"}});
    check("\"|/bin/cat >> /tmp/x, y\"", {{TargetKind::command, "/bin/cat >> /tmp/x, y"}});
    check("/var/log/mail.archive", {{TargetKind::file, "/var/log/mail.archive"}});
    check("\"/path with space\"", {{TargetKind::file, "/path with space"}});
    check(":include:/etc/mail/list", {{TargetKind::include, "/etc/mail/list"}});
    check(":INCLUDE: /etc/mail/list", {{TargetKind::include, "/etc/mail/list"}});
    check("\":include:/a list\"", {{TargetKind::include, "/a list"}});
    check(":include:\"/a list\"", {{TargetKind::include, "/a list"}});
    check("\\bob", {{TargetKind::own_mailbox, "bob"}});
    check("error:5.1.1 no such user here", {{TargetKind::error, "no such user here"}});
    check("error:4.3.0", {{TargetKind::error, ""}});
}

TEST_CASE("an error target keeps its status code and runs to the next comma", "[target_syntax]") {
    auto r = parse_ok("error:5.7.1 go away, bob");
    REQUIRE(r.targets.size() == 2);
    CHECK(r.targets[0].status_code == "5.7.1");
    CHECK(r.targets[0].value == "go away");
    CHECK(r.targets[1].value == "bob");
    auto q = parse_ok("\"error:5.2.2 full, sorry\"");
    REQUIRE(q.targets.size() == 1);
    CHECK(q.targets[0].status_code == "5.2.2");
    CHECK(q.targets[0].value == "full, sorry");
}

TEST_CASE("an unquoted command runs to the next comma, a quoted one keeps its commas", "[target_syntax]") {
    check("|cmd a b, bob", {{TargetKind::command, "cmd a b"}, {TargetKind::address, "bob"}});
    check("\"|cmd a, b\", bob", {{TargetKind::command, "cmd a, b"}, {TargetKind::address, "bob"}});
    // A comma inside a quoted argument of an unquoted command does not end it.
    check("|procmail -a \"x, y\", bob",
          {{TargetKind::command, "procmail -a \"x, y\""}, {TargetKind::address, "bob"}});
}

TEST_CASE("items are separated by commas, white space and continuation newlines", "[target_syntax]") {
    check("  a ,b\tc,,  , d\n  e  ", {{TargetKind::address, "a"},
                                       {TargetKind::address, "b"},
                                       {TargetKind::address, "c"},
                                       {TargetKind::address, "d"},
                                       {TargetKind::address, "e"}});
    check("", {});
    check(" , ,, ", {});
}

TEST_CASE("with aliases an unquoted command runs on over a continuation line, elsewhere it ends there",
          "[target_syntax]") {
    check("|cmd a\n  b, c", {{TargetKind::command, "cmd a   b"}, {TargetKind::address, "c"}});
    check("|cmd a\nb, c", {{TargetKind::command, "cmd a"}, {TargetKind::address, "b"}, {TargetKind::address, "c"}},
          TargetSource::forward);
}

TEST_CASE("backslash escapes inside quotes take the next byte", "[target_syntax]") {
    check(R"("|echo \"hi\" \\ there")", {{TargetKind::command, R"(echo "hi" \ there)"}});
    check(R"("/tmp/a\"b")", {{TargetKind::file, "/tmp/a\"b"}});
}

TEST_CASE("each target keeps the line and column it starts at", "[target_syntax]") {
    auto r = parse_targets("bob, |cmd x,\n  /f", TargetSource::aliases, TextPosition{7, 10});
    REQUIRE(r.ok());
    REQUIRE(r.targets.size() == 3);
    CHECK(r.targets[0].at.line == 7);
    CHECK(r.targets[0].at.column == 10);
    CHECK(r.targets[1].at.line == 7);
    CHECK(r.targets[1].at.column == 15);
    CHECK(r.targets[2].at.line == 8);
    CHECK(r.targets[2].at.column == 3);
}

TEST_CASE("an address from outside is always an address: never a command, file or include",
          "[target_syntax]") {
    check("\"|cmd\"@localhost", {{TargetKind::address, "|cmd@localhost"}}, TargetSource::outside);
    check(" a@b , c ", {{TargetKind::address, "a@b"}, {TargetKind::address, "c"}}, TargetSource::outside);
    check("/etc/passwd@localhost", {{TargetKind::address, "/etc/passwd@localhost"}}, TargetSource::outside);
    check("\"/etc/passwd\"", {{TargetKind::address, "/etc/passwd"}}, TargetSource::outside);
    check("\"|cmd\"", {{TargetKind::address, "|cmd"}}, TargetSource::outside);
    CHECK_THAT(error_of(":include:/x@localhost", TargetSource::outside), Catch::Contains("bad address"));
    CHECK_THAT(error_of("\\bob", TargetSource::outside), Catch::Contains("bad address"));
    CHECK_THAT(error_of("|cmd args", TargetSource::outside), Catch::Contains("bad address"));
    CHECK_THAT(error_of("error:5.1.1 x", TargetSource::outside), Catch::Contains("bad address"));
    for (auto source : {TargetSource::outside}) {
        auto r = parse_targets("a@b, \"|x\"@h, /p@h, \"/q\"", source);
        REQUIRE(r.ok());
        for (const auto& t : r.targets) CHECK(t.kind == TargetKind::address);
    }
}

TEST_CASE("the same items from aliases, include and forward files are what they say", "[target_syntax]") {
    for (auto source : {TargetSource::aliases, TargetSource::include, TargetSource::forward}) {
        auto r = parse_targets("|cmd, /file, :include:/inc, \\me, error:5.1.1 x, a@b", source);
        REQUIRE(r.ok());
        REQUIRE(r.targets.size() == 6);
        CHECK(r.targets[0].kind == TargetKind::command);
        CHECK(r.targets[1].kind == TargetKind::file);
        CHECK(r.targets[2].kind == TargetKind::include);
        CHECK(r.targets[3].kind == TargetKind::own_mailbox);
        CHECK(r.targets[4].kind == TargetKind::error);
        CHECK(r.targets[5].kind == TargetKind::address);
    }
}

TEST_CASE("NUL, CR and control bytes are refused with the column named", "[target_syntax]") {
    using namespace std::string_literals;
    CHECK(error_of("bob, a\0b"s) == "NUL byte at column 7");
    CHECK(error_of("bob\r") == "carriage return at column 4");
    CHECK(error_of("b\x1b[31m") == "control character 0x1b at column 2");
    CHECK(error_of("b\x7f") == "control character 0x7f at column 2");
    auto r = parse_targets("x,\n  y\x01", TargetSource::aliases, TextPosition{3, 8});
    REQUIRE_FALSE(r.ok());
    CHECK(r.error->at.line == 4);
    CHECK(r.error->at.column == 4);
}

TEST_CASE("bad items are refused with a message naming the column", "[target_syntax]") {
    CHECK(error_of("bob, \"unterminated") == "unterminated quoted string starting at column 6");
    CHECK(error_of("\"a\nb\"") == "unterminated quoted string starting at column 1");
    CHECK(error_of("|") == "empty command after '|' at column 1");
    CHECK(error_of("\"|  \"") == "empty command after '|' at column 1");
    CHECK_THAT(error_of("error:6.1.1 x"), Catch::Contains("status code 4.x.y or 5.x.y"));
    CHECK_THAT(error_of("error:2.0.0 ok"), Catch::Contains("4.x.y or 5.x.y"));
    CHECK_THAT(error_of("error:5.1 x"), Catch::Contains("4.x.y or 5.x.y"));
    CHECK_THAT(error_of("error:5.1.1234 x"), Catch::Contains("4.x.y or 5.x.y"));
    CHECK_THAT(error_of("error:nouser x"), Catch::Contains("4.x.y or 5.x.y"));
    CHECK(error_of(":include:") == ":include: needs an absolute path (at column 1)");
    CHECK(error_of(":include:relative/path") == ":include: needs an absolute path (at column 1)");
    CHECK_THAT(error_of("\\"), Catch::Contains("local user name"));
    CHECK_THAT(error_of("\\bob@host"), Catch::Contains("local user name"));
    CHECK_THAT(error_of("a, b@@c"), Catch::StartsWith("bad address 'b@@c' at column 4"));
    CHECK_THAT(error_of("<>"), Catch::Contains("at column 1"));
    CHECK_THAT(error_of("@host"), Catch::Contains("bad address"));
}

TEST_CASE("an item longer than max_item_bytes is refused", "[target_syntax]") {
    std::string cmd = "|" + std::string(max_item_bytes, 'x');
    CHECK(error_of("a, " + cmd) == "item longer than 4096 bytes at column 4");
    CHECK(error_of("/" + std::string(max_item_bytes, 'p')) == "item longer than 4096 bytes at column 1");
    std::string fits = "|" + std::string(max_item_bytes - 1, 'x');
    CHECK(parse_ok(fits).targets.size() == 1);
}

TEST_CASE("more than max_targets targets are refused", "[target_syntax]") {
    std::string text;
    for (std::size_t i = 0; i < max_targets; ++i) text += "u" + std::to_string(i) + ",";
    CHECK(parse_ok(text).targets.size() == max_targets);
    CHECK_THAT(error_of(text + "one_more"), Catch::StartsWith("more than 10000 targets"));
}

TEST_CASE("targets render back to text that parses to the same targets", "[target_syntax]") {
    const char* texts[] = {
        "bob, \"odd name\"@h, <\"|x y\">, </etc/x>, <\"error:5.1.1\">, \"|x\"@h, \"/p\"@h, \"\\\\q\"@h",
        "|cmd a b, \"|cmd, with commas\", \"|echo \\\"q\\\" \\\\\"",
        "/f, \"/with space\", :include:/i, \":include:/i j\", \\bob, \\\"odd user\"",
        "error:5.1.1 nope, error:4.2.2, \"error:5.0.0 a, b\"",
    };
    for (const char* text : texts) {
        auto first = parse_ok(text);
        std::string rendered = render_targets(first.targets);
        INFO("rendered: " << rendered);
        auto second = parse_ok(rendered);
        REQUIRE(second.targets.size() == first.targets.size());
        for (std::size_t i = 0; i < first.targets.size(); ++i) {
            CHECK(second.targets[i].kind == first.targets[i].kind);
            CHECK(second.targets[i].value == first.targets[i].value);
            CHECK(second.targets[i].status_code == first.targets[i].status_code);
        }
    }
}
