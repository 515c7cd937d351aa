// SMTP/LMTP command lines and the MAIL, RCPT and BDAT arguments (SPEC 7; RFC 5321
// 4.1, 1870, 3030, 3461, 6152, 6531).
#include "smtp/command.hpp"

#include <catch2/catch.hpp>
#include <string>
#include <variant>
#include <vector>

using mailroom::mail::DsnReturn;
using mailroom::mail::RecipientDsn;
using namespace mailroom::smtp;

namespace {

const PathRules lenient{};
const PathRules strict{.allow_utf8 = false, .lenient = false};
const PathRules utf8{.allow_utf8 = true, .lenient = true};

template <typename T>
T accepted(std::variant<T, Refusal> result) {
    if (auto* r = std::get_if<Refusal>(&result)) {
        FAIL("refused " << r->reply_code << " " << r->status.code() << " " << r->status.text());
    }
    return std::get<T>(std::move(result));
}

// Every refusal, whatever its cause, is a permanent status of the reply's class.
template <typename T>
Refusal refused(std::variant<T, Refusal> result) {
    if (!std::holds_alternative<Refusal>(result)) FAIL("accepted");
    Refusal r = std::get<Refusal>(std::move(result));
    CHECK(r.status.is_permanent());
    CHECK(r.reply_code / 100 == 5);
    CHECK(!r.status.text().empty());
    return r;
}

struct Expected {
    std::string input;
    int reply_code;
    std::string enhanced;
    std::string text;  // a substring of the status text
};

template <typename Parse>
void check_refusals(const std::vector<Expected>& table, Parse parse) {
    for (const auto& row : table) {
        INFO("input: " << row.input);
        Refusal r = refused(parse(row.input));
        CHECK(r.reply_code == row.reply_code);
        CHECK(r.status.code() == row.enhanced);
        CHECK_THAT(r.status.text(), Catch::Contains(row.text));
    }
}

CommandLine line_of(std::string_view line) { return accepted(parse_command_line(line)); }
MailFrom mail_of(std::string_view argument, const PathRules& rules = lenient) {
    return accepted(parse_mail_from(argument, rules));
}
RcptTo rcpt_of(std::string_view argument, const PathRules& rules = lenient) {
    return accepted(parse_rcpt_to(argument, rules));
}

auto mail_lenient = [](const std::string& s) { return parse_mail_from(s, lenient); };
auto rcpt_lenient = [](const std::string& s) { return parse_rcpt_to(s, lenient); };

// A line of exactly `octets` octets (without its CRLF) that starts with `start`.
std::string line_of_length(const std::string& start, size_t octets) {
    REQUIRE(start.size() <= octets);
    return start + std::string(octets - start.size(), 'x');
}

}  // namespace

// ---- command lines

TEST_CASE("A verb is matched without regard to case", "[command]") {
    struct Row {
        std::string line;
        Verb verb;
        std::string name;
    };
    const std::vector<Row> table = {
        {"helo client.example", Verb::helo, "HELO"}, {"eHlO client.example", Verb::ehlo, "EHLO"},
        {"LhLo client.example", Verb::lhlo, "LHLO"}, {"mAiL FROM:<a@b>", Verb::mail, "MAIL"},
        {"Rcpt TO:<a@b>", Verb::rcpt, "RCPT"},        {"data", Verb::data, "DATA"},
        {"bDaT 10 LAST", Verb::bdat, "BDAT"},         {"RsEt", Verb::rset, "RSET"},
        {"noop", Verb::noop, "NOOP"},                 {"QuIt", Verb::quit, "QUIT"},
        {"vrfy bob", Verb::vrfy, "VRFY"},             {"ExPn list", Verb::expn, "EXPN"},
        {"help", Verb::help, "HELP"},                 {"StartTls", Verb::starttls, "STARTTLS"},
        {"auth PLAIN", Verb::auth, "AUTH"},           {"eTrN @example.org", Verb::etrn, "ETRN"},
    };
    for (const auto& row : table) {
        INFO(row.line);
        auto command = line_of(row.line);
        CHECK(command.verb == row.verb);
        CHECK(command.name == row.name);
    }
}

TEST_CASE("An unknown verb is not refused: it is Verb::unknown with its name", "[command]") {
    struct Row {
        std::string line, name, argument;
    };
    const std::vector<Row> table = {
        {"xyzzy plugh", "XYZZY", "plugh"},
        {"MAILX FROM:<a@b>", "MAILX", "FROM:<a@b>"},
        {"MAI", "MAI", ""},
        {"STARTTLSX", "STARTTLSX", ""},
        // An 8-bit byte makes the verb one we do not know; its bytes are kept.
        {"M\xc3\x81IL FROM:<a@b>", "M\xc3\x81IL", "FROM:<a@b>"},
        {"HELO\xff", "HELO\xff", ""},
        // The verb ends at a space, not a TAB.
        {"HELO\tclient", "HELO\tCLIENT", ""},
        {" NOOP", "", "NOOP"},
    };
    for (const auto& row : table) {
        INFO(row.line);
        auto command = line_of(row.line);
        CHECK(command.verb == Verb::unknown);
        CHECK(command.name == row.name);
        CHECK(command.argument == row.argument);
    }
}

TEST_CASE("The argument follows the verb and one or more spaces, trailing spaces and tabs are removed", "[command]") {
    struct Row {
        std::string line, argument;
    };
    const std::vector<Row> table = {
        {"NOOP", ""},
        {"NOOP ", ""},
        {"NOOP   \t \t", ""},
        {"HELO client.example", "client.example"},
        {"HELO     client.example", "client.example"},
        {"MAIL FROM:<a@b>  SIZE=10 \t ", "FROM:<a@b>  SIZE=10"},
        {"VRFY a\tb", "a\tb"},
        {"EHLO \tclient", "\tclient"},
        // 8-bit text in the argument is kept: the session and Address::parse decide.
        {"HELO h\xc3\xa9llo.example", "h\xc3\xa9llo.example"},
        {"VRFY \xff\xfe", "\xff\xfe"},
    };
    for (const auto& row : table) {
        INFO(row.line);
        CHECK(line_of(row.line).argument == row.argument);
    }
}

TEST_CASE("A command line is at most 512 octets with its CRLF", "[command]") {
    for (std::string start : {"NOOP ", "HELO ", "DATA ", "BDAT ", "XYZZY ", "MAILX "}) {
        INFO(start);
        auto at_limit = line_of_length(start, command_line_limit - 2);
        CHECK(line_of(at_limit).argument.size() == at_limit.size() - start.size());
        auto r = refused(parse_command_line(line_of_length(start, command_line_limit - 1)));
        CHECK(r.reply_code == 500);
        CHECK(r.status.code() == "5.5.2");
        CHECK(r.status.text() == "line too long");
    }
}

TEST_CASE("MAIL and RCPT lines may take 4096 octets with their CRLF", "[command]") {
    for (std::string start : {"MAIL FROM:<a@b> ", "mail ", "RCPT TO:<a@b> ", "rCpT "}) {
        INFO(start);
        auto at_limit = line_of_length(start, parameter_line_limit - 2);
        auto command = line_of(at_limit);
        CHECK((command.verb == Verb::mail || command.verb == Verb::rcpt));
        auto r = refused(parse_command_line(line_of_length(start, parameter_line_limit - 1)));
        CHECK(r.reply_code == 500);
        CHECK(r.status.code() == "5.5.2");
        CHECK(r.status.text() == "line too long");
    }
    // A huge line is refused the same way, whatever it holds.
    std::string huge(100'000, 'M');
    huge[50] = '\0';
    CHECK(refused(parse_command_line("MAIL " + huge)).status.text() == "line too long");
}

TEST_CASE("An empty line, a NUL or a control character other than TAB is refused 500 5.5.2", "[command]") {
    using namespace std::string_literals;
    check_refusals({
        {"", 500, "5.5.2", "empty line"},
        {"NOOP\0"s, 500, "5.5.2", "NUL"},
        {"NO\0OP"s, 500, "5.5.2", "NUL"},
        {"\0"s, 500, "5.5.2", "NUL"},
        {"MAIL FROM:<a@b>\0 SIZE=1"s, 500, "5.5.2", "NUL"},
        // A CR or LF left inside the line is a bare one: the smuggling probes.
        {"NOOP\r", 500, "5.5.2", "bare CR or LF"},
        {"\r", 500, "5.5.2", "bare CR or LF"},
        {"\n", 500, "5.5.2", "bare CR or LF"},
        {"RCPT TO:<a@b>\nRCPT TO:<c@d>", 500, "5.5.2", "bare CR or LF"},
        {"DATA\r\n.\r\nMAIL FROM:<x@y>", 500, "5.5.2", "bare CR or LF"},
        {"HELO a\rb", 500, "5.5.2", "bare CR or LF"},
        {"HELO a\x1b[31mb", 500, "5.5.2", "control character"},
        {"NOOP \x7f", 500, "5.5.2", "control character"},
    }, [](const std::string& s) { return parse_command_line(s); });

    for (int c = 1; c < 0x20; ++c) {
        INFO("octet " << c);
        std::string line = "NOOP a" + std::string(1, static_cast<char>(c)) + "b";
        if (c == '\t') {
            CHECK(line_of(line).argument == "a\tb");
        } else {
            auto r = refused(parse_command_line(line));
            CHECK(r.reply_code == 500);
            CHECK(r.status.code() == "5.5.2");
        }
    }
}

// ---- MAIL FROM

TEST_CASE("MAIL FROM takes a path in angle brackets, the null path <> included", "[command]") {
    struct Row {
        std::string argument;
        std::string sender;  // str(); "" for the null path
        std::string local;
    };
    const std::vector<Row> table = {
        {"FROM:<alice@example.org>", "alice@example.org", "alice"},
        {"from:<alice@example.org>", "alice@example.org", "alice"},
        {"FrOm:<Alice@Example.ORG>", "Alice@Example.ORG", "Alice"},
        {"FROM:<bob>", "bob", "bob"},
        // A source route is accepted and dropped (RFC 5321 4.1.2, C).
        {"FROM:<@a.example,@b.example:u@d.example>", "u@d.example", "u"},
        {"FROM:<@a.example:u@d.example>", "u@d.example", "u"},
        // The path ends at its own '>', not at one in a quoted local part.
        {"FROM:<\"a b>\"@x>", "\"a b>\"@x", "a b>"},
        {"FROM:<\"a\\\"> b\"@x>", "\"a\\\"> b\"@x", "a\"> b"},
        {"FROM:<\">\"@x> SIZE=7", "\">\"@x", ">"},
        // Nor at one inside a general address literal.
        {"FROM:<u@[x-tag:a>b]> BODY=7BIT", "u@[x-tag:a>b]", "u"},
        {"FROM:<u@[IPv6:2001:db8::1]>", "u@[IPv6:2001:db8::1]", "u"},
    };
    for (const auto& row : table) {
        INFO(row.argument);
        auto mail = mail_of(row.argument);
        CHECK(!mail.sender.is_null());
        CHECK(mail.sender.str() == row.sender);
        CHECK(mail.sender.local_part() == row.local);
        CHECK(mail_of(row.argument, strict).sender.str() == row.sender);
    }
    for (const auto& rules : {lenient, strict}) {
        auto null = mail_of("FROM:<>", rules);
        CHECK(null.sender.is_null());
        CHECK(null.sender.path() == "<>");
        CHECK(!null.size);
        CHECK(null.body == BodyType::unspecified);
        CHECK(!null.smtputf8);
        CHECK(null.ret == DsnReturn::unspecified);
        CHECK(null.envid.empty());
        CHECK(null.auth.empty());
    }
}

TEST_CASE("MAIL without FROM: and a path is refused 501 5.5.4", "[command]") {
    check_refusals({
        {"", 501, "5.5.4", "syntax: MAIL FROM:<address>"},
        {"FROM", 501, "5.5.4", "syntax: MAIL FROM:<address>"},
        {"FROM <a@b>", 501, "5.5.4", "syntax: MAIL FROM:<address>"},
        {"FROM :<a@b>", 501, "5.5.4", "syntax: MAIL FROM:<address>"},
        {"FROMM:<a@b>", 501, "5.5.4", "syntax: MAIL FROM:<address>"},
        {"TO:<a@b>", 501, "5.5.4", "syntax: MAIL FROM:<address>"},
        {"<a@b>", 501, "5.5.4", "syntax: MAIL FROM:<address>"},
        {"FROM:", 501, "5.5.4", "syntax: MAIL FROM:<address>"},
        {"FROM:   ", 501, "5.5.4", "syntax: MAIL FROM:<address>"},
        // Parameters are separated from the path by a space.
        {"FROM:<a@b>SIZE=10", 501, "5.5.4", "syntax: MAIL FROM:<address>"},
        {"FROM:<>x", 501, "5.5.4", "syntax: MAIL FROM:<address>"},
        {"FROM:<<a@b>>", 501, "5.5.4", "syntax: MAIL FROM:<address>"},
    }, mail_lenient);
}

TEST_CASE("Lenient paths take a space after the colon and a path without brackets, strict ones refuse them", "[command]") {
    struct Row {
        std::string argument, sender;
    };
    const std::vector<Row> table = {
        {"FROM: <a@b.example>", "a@b.example"},
        {"FROM:    <a@b.example>", "a@b.example"},
        {"FROM:a@b.example", "a@b.example"},
        {"FROM: a@b.example", "a@b.example"},
        {"FROM:bob", "bob"},
        {"FROM: <@relay.example:a@b.example>", "a@b.example"},
    };
    for (const auto& row : table) {
        INFO(row.argument);
        CHECK(mail_of(row.argument).sender.str() == row.sender);
        auto r = refused(parse_mail_from(row.argument, strict));
        CHECK(r.reply_code == 501);
        CHECK(r.status.code() == "5.5.4");
    }
    CHECK(mail_of("FROM: <>").sender.is_null());
    auto bare = mail_of("FROM:a@b.example SIZE=5 BODY=8BITMIME");
    CHECK(bare.sender.str() == "a@b.example");
    CHECK(bare.size == 5u);
    CHECK(bare.body == BodyType::eight_bit_mime);
    auto spaced = mail_of("FROM: <a@b.example>   SIZE=5");
    CHECK(spaced.size == 5u);
    // A bare path is one word: what follows a space is a parameter.
    CHECK(refused(parse_mail_from("FROM:a b", lenient)).status.text() == "unsupported parameter B");
}

TEST_CASE("A sender that does not parse is refused 553 5.1.7", "[command]") {
    const std::string long_local(65, 'l');
    check_refusals({
        {"FROM:<a@@b>", 553, "5.1.7", "bad sender address syntax"},
        {"FROM:<a@b", 553, "5.1.7", "missing '>'"},
        {"FROM:<a@b SIZE=10", 553, "5.1.7", "bad sender address syntax"},
        {"FROM:<\"a b@x> SIZE=1", 553, "5.1.7", "bad sender address syntax"},
        {"FROM:<a..b@x>", 553, "5.1.7", "'..'"},
        {"FROM:<@a.example:>", 553, "5.1.7", "bad sender address syntax"},
        {"FROM:<@a.example,b.example:u@x>", 553, "5.1.7", "bad sender address syntax"},
        {"FROM:<a b@x>", 553, "5.1.7", "bad sender address syntax"},
        {"FROM:<a@-x.example>", 553, "5.1.7", "bad sender address syntax"},
        {"FROM:<a@[300.1.1.1]>", 553, "5.1.7", "bad sender address syntax"},
        {"FROM:<a@[1.2.3.4>", 553, "5.1.7", "bad sender address syntax"},
        {"FROM:<a\tb@x>", 553, "5.1.7", "control character"},
        {"FROM:<" + long_local + "@x>", 553, "5.1.7", "longer than 64"},
        {"FROM:a@b>", 553, "5.1.7", "missing '<'"},
    }, mail_lenient);
}

TEST_CASE("A UTF-8 sender needs SMTPUTF8 on the same MAIL or allowed by the session", "[command]") {
    const std::string utf8_path = "FROM:<j\xc3\xb8ran@b\xc3\xa6r.example>";
    auto r = refused(parse_mail_from(utf8_path, lenient));
    CHECK(r.reply_code == 553);
    CHECK(r.status.code() == "5.1.7");
    CHECK_THAT(r.status.text(), Catch::Contains("8-bit"));

    auto with_parameter = mail_of(utf8_path + " SMTPUTF8");
    CHECK(with_parameter.smtputf8);
    CHECK(with_parameter.sender.local_part() == "j\xc3\xb8ran");
    CHECK(with_parameter.sender.needs_smtputf8());
    CHECK(mail_of(utf8_path + " smtputf8 BODY=8BITMIME").smtputf8);

    auto allowed = mail_of(utf8_path, utf8);
    CHECK(!allowed.smtputf8);
    CHECK(allowed.sender.str() == "j\xc3\xb8ran@b\xc3\xa6r.example");

    // Not valid UTF-8: refused even with SMTPUTF8.
    r = refused(parse_mail_from("FROM:<a\xff@b> SMTPUTF8", lenient));
    CHECK(r.reply_code == 553);
    CHECK(r.status.code() == "5.1.7");
    // An ASCII sender with SMTPUTF8 is fine.
    CHECK(mail_of("FROM:<a@b> SMTPUTF8").smtputf8);
}

TEST_CASE("MAIL parameters SIZE, BODY, SMTPUTF8, RET, ENVID and AUTH are taken, names without regard to case", "[command]") {
    auto all = mail_of("FROM:<a@b.example> SIZE=12345 BODY=8BITMIME SMTPUTF8 RET=HDRS ENVID=QQ+2B314 AUTH=bob+40b.example");
    CHECK(all.sender.str() == "a@b.example");
    CHECK(all.size == 12345u);
    CHECK(all.body == BodyType::eight_bit_mime);
    CHECK(all.smtputf8);
    CHECK(all.ret == DsnReturn::hdrs);
    CHECK(all.envid == "QQ+2B314");
    CHECK(all.auth == "bob+40b.example");

    auto lower = mail_of("FROM:<> size=0 body=7bit smtputf8 ret=full envid=x auth=<>");
    CHECK(lower.sender.is_null());
    CHECK(lower.size == 0u);
    CHECK(lower.body == BodyType::seven_bit);
    CHECK(lower.smtputf8);
    CHECK(lower.ret == DsnReturn::full);
    CHECK(lower.envid == "x");
    CHECK(lower.auth == "<>");

    // One or more spaces between parameters, in any order.
    auto spaced = mail_of("FROM:<a@b>    RET=hdrs   Size=99    Body=8bitMIME");
    CHECK(spaced.size == 99u);
    CHECK(spaced.ret == DsnReturn::hdrs);
    CHECK(spaced.body == BodyType::eight_bit_mime);
}

TEST_CASE("SIZE is a decimal of at most 20 digits that fits 64 bits", "[command]") {
    CHECK(mail_of("FROM:<a@b> SIZE=0").size == 0u);
    CHECK(mail_of("FROM:<a@b> SIZE=18446744073709551615").size == UINT64_MAX);
    CHECK(mail_of("FROM:<a@b> SIZE=00000000000000000001").size == 1u);
    check_refusals({
        {"FROM:<a@b> SIZE", 501, "5.5.4", "SIZE must be a number"},
        {"FROM:<a@b> SIZE=", 501, "5.5.4", "SIZE must be a number"},
        {"FROM:<a@b> SIZE=abc", 501, "5.5.4", "SIZE must be a number"},
        {"FROM:<a@b> SIZE=-1", 501, "5.5.4", "SIZE must be a number"},
        {"FROM:<a@b> SIZE=+1", 501, "5.5.4", "SIZE must be a number"},
        {"FROM:<a@b> SIZE=1k", 501, "5.5.4", "SIZE must be a number"},
        {"FROM:<a@b> SIZE=1=2", 501, "5.5.4", "SIZE must be a number"},
        {"FROM:<a@b> SIZE=1\tBODY=7BIT", 501, "5.5.4", "SIZE must be a number"},
        {"FROM:<a@b> SIZE=18446744073709551616", 555, "5.5.4", "SIZE out of range"},
        {"FROM:<a@b> SIZE=99999999999999999999", 555, "5.5.4", "SIZE out of range"},
        {"FROM:<a@b> SIZE=000000000000000000001", 555, "5.5.4", "SIZE out of range"},
        {"FROM:<a@b> SIZE=" + std::string(1000, '9'), 555, "5.5.4", "SIZE out of range"},
    }, mail_lenient);
}

TEST_CASE("BODY is 7BIT or 8BITMIME, BINARYMIME and anything else is refused 555 5.5.4", "[command]") {
    CHECK(mail_of("FROM:<a@b> BODY=7BIT").body == BodyType::seven_bit);
    CHECK(mail_of("FROM:<a@b> BODY=8bitmime").body == BodyType::eight_bit_mime);
    check_refusals({
        {"FROM:<a@b> BODY=BINARYMIME", 555, "5.5.4", "BODY must be 7BIT or 8BITMIME"},
        {"FROM:<a@b> BODY=8BIT", 555, "5.5.4", "BODY must be 7BIT or 8BITMIME"},
        {"FROM:<a@b> BODY=", 555, "5.5.4", "BODY must be 7BIT or 8BITMIME"},
        {"FROM:<a@b> BODY", 555, "5.5.4", "BODY must be 7BIT or 8BITMIME"},
    }, mail_lenient);
}

TEST_CASE("SMTPUTF8 takes no value, RET is FULL or HDRS", "[command]") {
    check_refusals({
        {"FROM:<a@b> SMTPUTF8=yes", 501, "5.5.4", "SMTPUTF8 takes no value"},
        {"FROM:<a@b> SMTPUTF8=", 501, "5.5.4", "SMTPUTF8 takes no value"},
        {"FROM:<a@b> RET", 501, "5.5.4", "RET must be FULL or HDRS"},
        {"FROM:<a@b> RET=", 501, "5.5.4", "RET must be FULL or HDRS"},
        {"FROM:<a@b> RET=ALL", 501, "5.5.4", "RET must be FULL or HDRS"},
        {"FROM:<a@b> RET=FULLX", 501, "5.5.4", "RET must be FULL or HDRS"},
    }, mail_lenient);
}

TEST_CASE("ENVID is xtext of at most 100 octets, kept as given", "[command]") {
    CHECK(mail_of("FROM:<a@b> ENVID=QQ314159").envid == "QQ314159");
    CHECK(mail_of("FROM:<a@b> ENVID=a+2Bb+3Dc").envid == "a+2Bb+3Dc");
    CHECK(mail_of("FROM:<a@b> ENVID=" + std::string(100, 'e')).envid == std::string(100, 'e'));
    check_refusals({
        {"FROM:<a@b> ENVID", 501, "5.5.4", "ENVID"},
        {"FROM:<a@b> ENVID=", 501, "5.5.4", "ENVID"},
        {"FROM:<a@b> ENVID=a=b", 501, "5.5.4", "ENVID"},
        {"FROM:<a@b> ENVID=a+2", 501, "5.5.4", "ENVID"},
        {"FROM:<a@b> ENVID=a+zz", 501, "5.5.4", "ENVID"},
        {"FROM:<a@b> ENVID=caf\xc3\xa9", 501, "5.5.4", "ENVID"},
        {"FROM:<a@b> ENVID=" + std::string(101, 'e'), 501, "5.5.4", "ENVID"},
    }, mail_lenient);
}

TEST_CASE("AUTH is xtext or <>, kept as given for the session to judge", "[command]") {
    CHECK(mail_of("FROM:<a@b> AUTH=<>").auth == "<>");
    CHECK(mail_of("FROM:<a@b> AUTH=bob+40example.org").auth == "bob+40example.org");
    CHECK(mail_of("FROM:<a@b> AUTH=<bob>").auth == "<bob>");
    check_refusals({
        {"FROM:<a@b> AUTH", 501, "5.5.4", "AUTH must be xtext or <>"},
        {"FROM:<a@b> AUTH=", 501, "5.5.4", "AUTH must be xtext or <>"},
        {"FROM:<a@b> AUTH=a=b", 501, "5.5.4", "AUTH must be xtext or <>"},
        {"FROM:<a@b> AUTH=a+4", 501, "5.5.4", "AUTH must be xtext or <>"},
        {"FROM:<a@b> AUTH=a+4a", 501, "5.5.4", "AUTH must be xtext or <>"},
        {"FROM:<a@b> AUTH=a+2b", 501, "5.5.4", "AUTH must be xtext or <>"},
        {"FROM:<a@b> AUTH=b\xc3\xb8" "b", 501, "5.5.4", "AUTH must be xtext or <>"},
    }, mail_lenient);
}

TEST_CASE("A MAIL parameter given twice is refused 555 5.5.4", "[command]") {
    check_refusals({
        {"FROM:<a@b> SIZE=1 SIZE=1", 555, "5.5.4", "duplicate parameter SIZE"},
        {"FROM:<a@b> SIZE=1 size=2", 555, "5.5.4", "duplicate parameter SIZE"},
        {"FROM:<a@b> BODY=7BIT BODY=8BITMIME", 555, "5.5.4", "duplicate parameter BODY"},
        {"FROM:<a@b> SMTPUTF8 smtputf8", 555, "5.5.4", "duplicate parameter SMTPUTF8"},
        {"FROM:<a@b> RET=FULL RET=HDRS", 555, "5.5.4", "duplicate parameter RET"},
        {"FROM:<a@b> ENVID=x SIZE=3 envid=y", 555, "5.5.4", "duplicate parameter ENVID"},
        {"FROM:<a@b> AUTH=<> AUTH=<>", 555, "5.5.4", "duplicate parameter AUTH"},
    }, mail_lenient);
}

TEST_CASE("An unknown or malformed MAIL parameter is refused 555 5.5.4, an unknown one named", "[command]") {
    check_refusals({
        {"FROM:<a@b> FOO", 555, "5.5.4", "unsupported parameter FOO"},
        {"FROM:<a@b> foo=bar", 555, "5.5.4", "unsupported parameter FOO"},
        {"FROM:<a@b> X-Thing=1", 555, "5.5.4", "unsupported parameter X-THING"},
        {"FROM:<a@b> SIZE=1 XYZ", 555, "5.5.4", "unsupported parameter XYZ"},
        {"FROM:<a@b> NOTIFY=NEVER", 555, "5.5.4", "unsupported parameter NOTIFY"},
        {"FROM:<a@b> ORCPT=rfc822;a@b", 555, "5.5.4", "unsupported parameter ORCPT"},
        {"FROM:<a@b> BDAT", 555, "5.5.4", "unsupported parameter BDAT"},
        {"FROM:<a@b> =x", 555, "5.5.4", "malformed parameter"},
        {"FROM:<a@b> -X=1", 555, "5.5.4", "malformed parameter"},
        {"FROM:<a@b> A_B=1", 555, "5.5.4", "malformed parameter"},
        {"FROM:<a@b> \xc3\xa9=1", 555, "5.5.4", "malformed parameter"},
        {"FROM:<a@b> SIZE\t=1", 555, "5.5.4", "malformed parameter"},
    }, mail_lenient);
    // A long name is cut short: the reply line has room for little.
    auto r = refused(parse_mail_from("FROM:<a@b> " + std::string(3000, 'Q'), lenient));
    CHECK(r.reply_code == 555);
    CHECK(r.status.text().size() < 100);
}

TEST_CASE("Parameters are checked before the path: a bad parameter is named even after a bad path", "[command]") {
    // SMTPUTF8 must be seen before the path is parsed, so every parameter is.
    CHECK(refused(parse_mail_from("FROM:<a@@b> FOO", lenient)).reply_code == 555);
    CHECK(refused(parse_rcpt_to("TO:<a@@b> NOTIFY=x", lenient)).reply_code == 501);
}

// ---- RCPT TO

TEST_CASE("RCPT TO takes a path, <Postmaster> and other bare names without a domain are accepted", "[command]") {
    struct Row {
        std::string argument, recipient;
    };
    const std::vector<Row> table = {
        {"TO:<bob@example.org>", "bob@example.org"},
        {"to:<Bob@Example.ORG>", "Bob@Example.ORG"},
        {"tO:<bob@example.org>", "bob@example.org"},
        {"TO:<Postmaster>", "Postmaster"},
        {"TO:<postmaster>", "postmaster"},
        {"TO:<POSTMASTER>", "POSTMASTER"},
        {"TO:<user>", "user"},
        {"TO:<@hop.example:bob@example.org>", "bob@example.org"},
        {"TO:<\"x> y\"@example.org>", "\"x> y\"@example.org"},
        {"TO:<u@[192.0.2.1]>", "u@[192.0.2.1]"},
    };
    for (const auto& row : table) {
        INFO(row.argument);
        auto rcpt = rcpt_of(row.argument);
        CHECK(rcpt.recipient.str() == row.recipient);
        CHECK(rcpt.dsn.empty());
        CHECK(rcpt_of(row.argument, strict).recipient.str() == row.recipient);
    }
}

TEST_CASE("RCPT refuses the null path 553 5.1.3, a path that does not parse likewise, and a missing TO: 501 5.5.4", "[command]") {
    check_refusals({
        {"TO:<>", 553, "5.1.3", "bad recipient address syntax"},
        {"TO: <>", 553, "5.1.3", "bad recipient address syntax"},
        {"TO:<a@@b>", 553, "5.1.3", "bad recipient address syntax"},
        {"TO:<a@b", 553, "5.1.3", "missing '>'"},
        {"TO:<.a@b>", 553, "5.1.3", "bad recipient address syntax"},
        {"TO:<a@b.>", 553, "5.1.3", "bad recipient address syntax"},
        {"TO:a@b>", 553, "5.1.3", "bad recipient address syntax"},
        {"", 501, "5.5.4", "syntax: RCPT TO:<address>"},
        {"TO", 501, "5.5.4", "syntax: RCPT TO:<address>"},
        {"TO <a@b>", 501, "5.5.4", "syntax: RCPT TO:<address>"},
        {"FROM:<a@b>", 501, "5.5.4", "syntax: RCPT TO:<address>"},
        {"TO:", 501, "5.5.4", "syntax: RCPT TO:<address>"},
        {"TO:<a@b>NOTIFY=NEVER", 501, "5.5.4", "syntax: RCPT TO:<address>"},
    }, rcpt_lenient);
}

TEST_CASE("RCPT with lenient paths takes a space after the colon and a bare address", "[command]") {
    CHECK(rcpt_of("TO: <bob@example.org>").recipient.str() == "bob@example.org");
    CHECK(rcpt_of("TO:bob@example.org").recipient.str() == "bob@example.org");
    CHECK(rcpt_of("TO:bob").recipient.str() == "bob");
    auto rcpt = rcpt_of("TO:bob@example.org NOTIFY=NEVER");
    CHECK(rcpt.dsn.notify == RecipientDsn::notify_never);
    for (const char* argument : {"TO: <bob@example.org>", "TO:bob@example.org", "TO:bob"}) {
        INFO(argument);
        CHECK(refused(parse_rcpt_to(argument, strict)).reply_code == 501);
    }
}

TEST_CASE("A UTF-8 recipient is accepted only when the session allows SMTPUTF8", "[command]") {
    const std::string path = "TO:<j\xc3\xb8ran@example.org>";
    auto r = refused(parse_rcpt_to(path, lenient));
    CHECK(r.reply_code == 553);
    CHECK(r.status.code() == "5.1.3");
    CHECK(rcpt_of(path, utf8).recipient.local_part() == "j\xc3\xb8ran");
    // SMTPUTF8 belongs to MAIL, not RCPT.
    CHECK(refused(parse_rcpt_to(path + " SMTPUTF8", lenient)).status.text() == "unsupported parameter SMTPUTF8");
}

TEST_CASE("NOTIFY is NEVER or a list of SUCCESS, FAILURE and DELAY, ORCPT is type,xtext kept as given", "[command]") {
    CHECK(rcpt_of("TO:<a@b> NOTIFY=NEVER").dsn.notify == RecipientDsn::notify_never);
    CHECK(rcpt_of("TO:<a@b> notify=success,failure").dsn.notify ==
          (RecipientDsn::notify_success | RecipientDsn::notify_failure));
    CHECK(rcpt_of("TO:<a@b> NOTIFY=DELAY,SUCCESS,FAILURE").dsn.notify ==
          (RecipientDsn::notify_success | RecipientDsn::notify_failure | RecipientDsn::notify_delay));

    auto with_orcpt = rcpt_of("TO:<a@b> ORCPT=rfc822;Bob+2Bx@Example.org NOTIFY=FAILURE");
    CHECK(with_orcpt.dsn.orcpt == "rfc822;Bob+2Bx@Example.org");
    CHECK(with_orcpt.dsn.notify == RecipientDsn::notify_failure);
    CHECK(rcpt_of("TO:<a@b> orcpt=utf-8;j\xc3\xb8ran@x").dsn.orcpt == "utf-8;j\xc3\xb8ran@x");

    check_refusals({
        {"TO:<a@b> NOTIFY", 501, "5.5.4", "NOTIFY"},
        {"TO:<a@b> NOTIFY=", 501, "5.5.4", "NOTIFY"},
        {"TO:<a@b> NOTIFY=ALWAYS", 501, "5.5.4", "NOTIFY"},
        {"TO:<a@b> NOTIFY=NEVER,SUCCESS", 501, "5.5.4", "NOTIFY"},
        {"TO:<a@b> NOTIFY=SUCCESS,SUCCESS", 501, "5.5.4", "NOTIFY"},
        {"TO:<a@b> NOTIFY=SUCCESS,", 501, "5.5.4", "NOTIFY"},
        {"TO:<a@b> ORCPT", 501, "5.5.4", "ORCPT"},
        {"TO:<a@b> ORCPT=", 501, "5.5.4", "ORCPT"},
        {"TO:<a@b> ORCPT=bob@example.org", 501, "5.5.4", "ORCPT"},
        {"TO:<a@b> ORCPT=;bob@example.org", 501, "5.5.4", "ORCPT"},
        {"TO:<a@b> ORCPT=rfc822;", 501, "5.5.4", "ORCPT"},
        {"TO:<a@b> ORCPT=rfc822;a=b", 501, "5.5.4", "ORCPT"},
        {"TO:<a@b> ORCPT=rfc822;" + std::string(500, 'o'), 501, "5.5.4", "ORCPT"},
    }, rcpt_lenient);
}

TEST_CASE("An RCPT parameter given twice, unknown or malformed is refused 555 5.5.4", "[command]") {
    check_refusals({
        {"TO:<a@b> NOTIFY=NEVER NOTIFY=NEVER", 555, "5.5.4", "duplicate parameter NOTIFY"},
        {"TO:<a@b> NOTIFY=NEVER notify=SUCCESS", 555, "5.5.4", "duplicate parameter NOTIFY"},
        {"TO:<a@b> ORCPT=rfc822;a@b ORCPT=rfc822;c@d", 555, "5.5.4", "duplicate parameter ORCPT"},
        {"TO:<a@b> SIZE=10", 555, "5.5.4", "unsupported parameter SIZE"},
        {"TO:<a@b> BODY=7BIT", 555, "5.5.4", "unsupported parameter BODY"},
        {"TO:<a@b> xfoo", 555, "5.5.4", "unsupported parameter XFOO"},
        {"TO:<a@b> _x", 555, "5.5.4", "malformed parameter"},
    }, rcpt_lenient);
}

TEST_CASE("A MAIL or RCPT line goes from parse_command_line to its parser unchanged", "[command]") {
    auto mail_line = line_of("mail from:<a@b.example>  size=10 \t");
    REQUIRE(mail_line.verb == Verb::mail);
    CHECK(mail_of(mail_line.argument, strict).size == 10u);
    auto rcpt_line = line_of("RCPT TO:<\"q > r\"@b.example> NOTIFY=NEVER  ");
    REQUIRE(rcpt_line.verb == Verb::rcpt);
    CHECK(rcpt_of(rcpt_line.argument, strict).recipient.local_part() == "q > r");
}

// ---- BDAT

TEST_CASE("BDAT takes a size of at most 19 digits and an optional LAST", "[command]") {
    struct Row {
        std::string argument;
        uint64_t size;
        bool last;
    };
    const std::vector<Row> table = {
        {"0", 0, false},
        {"0 LAST", 0, true},
        {"10", 10, false},
        {"10 LAST", 10, true},
        {"10 last", 10, true},
        {"10 LaSt", 10, true},
        {"10  LAST", 10, true},
        {"0010", 10, false},
        {"9999999999999999999", 9999999999999999999u, false},
        {"1234567890123456789 LAST", 1234567890123456789u, true},
    };
    for (const auto& row : table) {
        INFO(row.argument);
        auto chunk = accepted(parse_bdat(row.argument));
        CHECK(chunk.size == row.size);
        CHECK(chunk.last == row.last);
    }
    std::vector<Expected> bad;
    for (std::string argument : {"", "-1", "+1", "abc", "12345678901234567890", "99999999999999999999",
                                 "10 LAST extra", "10 FIRST", "10 LASTX", "10LAST", "LAST", "LAST 10",
                                 "10\tLAST", "1 0", "0x10", "1e3", "\xd9\xa1"}) {
        bad.push_back({argument, 501, "5.5.4", "syntax: BDAT size [LAST]"});
    }
    check_refusals(bad, [](const std::string& s) { return parse_bdat(s); });
}

// ---- xtext

TEST_CASE("xtext: every octet survives encode then decode", "[command]") {
    std::string all;
    for (int c = 0; c < 256; ++c) {
        std::string one(1, static_cast<char>(c));
        std::string encoded = encode_xtext(one);
        INFO("octet " << c << " encoded " << encoded);
        bool literal = c >= 33 && c <= 126 && c != '+' && c != '=';
        CHECK(encoded.size() == (literal ? 1u : 3u));
        auto decoded = decode_xtext(encoded);
        REQUIRE(decoded);
        CHECK(*decoded == one);
        all += one;
    }
    std::string encoded = encode_xtext(all);
    for (char c : encoded) CHECK((c >= 33 && c <= 126 && c != '='));
    CHECK(decode_xtext(encoded) == all);
}

TEST_CASE("xtext: '+' and two upper-case hex digits stand for an octet, '!' to '~' but '+' and '=' for themselves", "[command]") {
    CHECK(encode_xtext("a+b=c d") == "a+2Bb+3Dc+20d");
    CHECK(encode_xtext(std::string("\0\xff\r\n", 4)) == "+00+FF+0D+0A");
    CHECK(encode_xtext("") == "");
    CHECK(decode_xtext("") == std::string());
    CHECK(decode_xtext("bob+40example.org") == std::string("bob@example.org"));
    CHECK(decode_xtext("+41+2B+3D") == std::string("A+="));
    CHECK(decode_xtext("!~") == std::string("!~"));
    const std::vector<std::string> bad_texts = {"+", "+4", "a+", "+2b", "+g0", "+ 0", "a=b", "a b",
                                                "\x7f", "\x80", "\t", std::string("a\0b", 3)};
    for (const auto& bad : bad_texts) {
        INFO(bad);
        CHECK(!decode_xtext(bad));
    }
}
