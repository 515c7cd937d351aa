// RFC 5322 address lists as To:, Cc: and Bcc: carry them (SPEC 1, sendmail -t).
#include "mail/address_list.hpp"

#include <catch2/catch.hpp>
#include <string>
#include <vector>

using mailroom::mail::parse_address_list;
using Specs = std::vector<std::string>;

namespace {

Specs specs_of(std::string_view text) {
    auto list = parse_address_list(text);
    INFO(text);
    INFO((list ? std::string() : list.error().message()));
    REQUIRE(list);
    Specs out;
    for (const auto& a : *list) out.push_back(a.addr_spec);
    return out;
}

std::string error_of(std::string_view text) {
    auto list = parse_address_list(text);
    INFO(text);
    REQUIRE_FALSE(list);
    CHECK(list.error().code == std::error_code());
    return list.error().message();
}

}  // namespace

TEST_CASE("A list of plain addresses splits at commas", "[address_list]") {
    CHECK(specs_of("a@example.org") == Specs{"a@example.org"});
    CHECK(specs_of(" a@example.org , b@example.org,c@x ") ==
          Specs{"a@example.org", "b@example.org", "c@x"});
    CHECK(specs_of("bob") == Specs{"bob"});
    CHECK(specs_of("").empty());
    CHECK(specs_of("   ").empty());
}

TEST_CASE("Display names and angle addresses give the address in the brackets", "[address_list]") {
    CHECK(specs_of("John Doe <john@example.org>") == Specs{"john@example.org"});
    CHECK(specs_of("\"Doe, John\" <john@example.org>, Jane <jane@x>") ==
          Specs{"john@example.org", "jane@x"});
    CHECK(specs_of("<john@example.org>") == Specs{"john@example.org"});
    CHECK(specs_of("J. R. \"Bob\" Dobbs <bob@x>") == Specs{"bob@x"});
    CHECK(specs_of("bob@x <bob@x>") == Specs{"bob@x"});  // a common sloppy display name
    CHECK(specs_of("Ünïcode Name <u@x>") == Specs{"u@x"});
}

TEST_CASE("Comments are dropped wherever they are", "[address_list]") {
    CHECK(specs_of("john@example.org (John Doe)") == Specs{"john@example.org"});
    CHECK(specs_of("(lead) John <john (home) @ (the) example.org> (end)") ==
          Specs{"john@example.org"});
    CHECK(specs_of("a@x (nested (comment) here, with comma), b@y") == Specs{"a@x", "b@y"});
    CHECK(specs_of("a@x (escaped \\) paren)") == Specs{"a@x"});
    CHECK(specs_of("(only a comment)").empty());
}

TEST_CASE("Quoted local parts and domain literals are kept as written", "[address_list]") {
    CHECK(specs_of("\"john doe\"@example.org") == Specs{"\"john doe\"@example.org"});
    CHECK(specs_of("Name <\"a,b\"@x>, c@y") == Specs{"\"a,b\"@x", "c@y"});
    CHECK(specs_of("\"a\\\"b\"@x") == Specs{"\"a\\\"b\"@x"});
    CHECK(specs_of("root@[192.0.2.1]") == Specs{"root@[192.0.2.1]"});
    CHECK(specs_of("x <root@[IPv6:2001:db8::1]>") == Specs{"root@[IPv6:2001:db8::1]"});
}

TEST_CASE("Groups give their members, an empty group gives none", "[address_list]") {
    CHECK(specs_of("team: a@x, B <b@y>;") == Specs{"a@x", "b@y"});
    CHECK(specs_of("team: a@x, b@y;, c@z") == Specs{"a@x", "b@y", "c@z"});
    CHECK(specs_of("undisclosed-recipients:;").empty());
    CHECK(specs_of("undisclosed-recipients:").empty());
    CHECK(specs_of("a@x, \"The Team\": b@y; c@z") == Specs{"a@x", "b@y", "c@z"});
    CHECK(specs_of("g1: a@x;, g2: b@y;") == Specs{"a@x", "b@y"});
}

TEST_CASE("Folded header text and white space around dots and @ are accepted", "[address_list]") {
    CHECK(specs_of("a@x,\n b@y,\r\n\tJohn\n <john@z>") == Specs{"a@x", "b@y", "john@z"});
    CHECK(specs_of("john . doe @ example . org") == Specs{"john.doe@example.org"});
    CHECK(specs_of("\"folded\n quoted\"@x") == Specs{"\"folded quoted\"@x"});
}

TEST_CASE("Empty list elements are skipped", "[address_list]") {
    CHECK(specs_of("a@x,,b@y,") == Specs{"a@x", "b@y"});
    CHECK(specs_of(", ,").empty());
}

TEST_CASE("An obsolete source route is dropped", "[address_list]") {
    CHECK(specs_of("<@relay1,@relay2:joe@example.org>") == Specs{"joe@example.org"});
    CHECK_THAT(error_of("<@relay1 joe@example.org>"), Catch::Contains("bad source route"));
}

TEST_CASE("The null address <> gives an empty addr-spec", "[address_list]") {
    CHECK(specs_of("<>") == Specs{""});
}

TEST_CASE("Each address keeps its source text for error lines", "[address_list]") {
    auto list = parse_address_list("John (x) <j@x>, (c) b@y");
    REQUIRE(list);
    REQUIRE(list->size() == 2);
    CHECK((*list)[0].source == "John (x) <j@x>");
    CHECK((*list)[1].source == "b@y");
}

TEST_CASE("Text that does not split into addresses is an error naming it", "[address_list]") {
    CHECK(error_of("John Doe john@example.org") ==
          "two words without ',' or '<>' in \"John Doe john@example.org\"");
    CHECK(error_of("a@x b@y") == "two words without ',' or '<>' in \"a@x b@y\"");
    CHECK(error_of("John <john@x") == "'<' without '>' in \"John <john@x\"");
    CHECK(error_of("john@x>") == "'>' without '<' in \"john@x>\"");
    CHECK(error_of("<a@x> <b@x>") == "two angle addresses in \"<a@x> <b@x>\"");
    CHECK(error_of("<a@x> trailing") == "text after '>' in \"<a@x> trailing\"");
    CHECK(error_of("<a@x, b@y>") == "unexpected ',' in \"<a@x, b@y>\"");
    CHECK(error_of("<john doe@x>") == "two words without ',' or '<>' in \"<john doe@x>\"");
    CHECK_THAT(error_of("\"unterminated@x"), Catch::StartsWith("unterminated quoted string"));
    CHECK_THAT(error_of("a@x (open comment"), Catch::StartsWith("unterminated comment"));
    CHECK_THAT(error_of("a@[192.0.2.1"), Catch::StartsWith("unterminated domain literal"));
    CHECK_THAT(error_of("a@x)"), Catch::StartsWith("unbalanced ')'"));
    CHECK(error_of("g1: g2: a@x;;") == "a group inside a group in \"g2:\"");
    CHECK(error_of("a@x;") == "';' outside a group in \"a@x;\"");
    CHECK(error_of("<a@x>: b@y") == "':' after an angle address in \"<a@x>:\"");
}
