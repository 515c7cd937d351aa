// escape_line and report_on_stderr: every log and error line is one line whatever
// bytes its text came from (docs/logging.md), and the escapes can be read back.
#include <fcntl.h>
#include <unistd.h>

#include <catch2/catch.hpp>
#include <string>
#include <vector>

#include "core/log.hpp"

using mailroom::core::escape_line;
using mailroom::core::format_message;
using mailroom::core::Logger;
using namespace std::string_literals;

TEST_CASE("escape_line: printable text and valid UTF-8 are kept as they are", "[log][escape]") {
    CHECK(escape_line("to=<bob@test.example>, status=sent (delivered to mailbox)") ==
          "to=<bob@test.example>, status=sent (delivered to mailbox)");
    CHECK(escape_line("caf\xc3\xa9 \xe2\x82\xac \xf0\x9f\x93\xa7") == "caf\xc3\xa9 \xe2\x82\xac \xf0\x9f\x93\xa7");
    CHECK(escape_line("") == "");
}

TEST_CASE("escape_line: line breaks, controls and backslash become C-style escapes", "[log][escape]") {
    CHECK(escape_line("nosuch\nDec  2 10:00:00 host mailroom/local[1]: FAKE") ==
          "nosuch\\nDec  2 10:00:00 host mailroom/local[1]: FAKE");
    CHECK(escape_line("a\r\nb\tc") == "a\\r\\nb\\tc");
    CHECK(escape_line("\x1b[31mred\x7f") == "\\x1b[31mred\\x7f");
    CHECK(escape_line("nul\0byte"s) == "nul\\x00byte");
    CHECK(escape_line("\x01\x1f") == "\\x01\\x1f");
    // A backslash is doubled, so text that already looks like an escape stays apart
    // from a real one: "a\nb" typed by a user is not a newline in the log.
    CHECK(escape_line("a\\nb") == "a\\\\nb");
    CHECK(escape_line("C:\\x") == "C:\\\\x");
}

TEST_CASE("escape_line: C1 controls and bytes outside valid UTF-8 become \\xHH per byte", "[log][escape]") {
    CHECK(escape_line("csi\xc2\x9b" "2J") == "csi\\xc2\\x9b2J");          // U+009B, a terminal's CSI
    CHECK(escape_line("\xc2\x80|\xc2\xa0") == "\\xc2\\x80|\xc2\xa0");    // U+0080 escaped, U+00A0 kept
    CHECK(escape_line("latin1 caf\xe9!") == "latin1 caf\\xe9!");
    CHECK(escape_line("\xc0\xaf") == "\\xc0\\xaf");                        // overlong '/'
    CHECK(escape_line("\xed\xa0\x80") == "\\xed\\xa0\\x80");              // a surrogate
    CHECK(escape_line("cut \xe2\x82") == "cut \\xe2\\x82");               // sequence cut short
    CHECK(escape_line("\x9b") == "\\x9b");                                 // a raw 8-bit CSI byte
}

TEST_CASE("escape_line: no result holds a byte below 0x20, DEL or a lone backslash", "[log][escape]") {
    std::string all;
    for (int i = 0; i < 256; ++i) all += static_cast<char>(i);
    std::string out = escape_line(all + all, 1 << 20);
    for (char c : out) {
        auto u = static_cast<unsigned char>(c);
        CHECK((u >= 0x20 && u != 0x7f));
        CHECK(u < 0x80);  // every byte of `all` above 0x7f is alone: none is valid UTF-8
    }
    CHECK(out.find("\\x00\\x01") == 0);
}

TEST_CASE("escape_line: the limit counts escaped bytes and never cuts an escape in half", "[log][escape]") {
    CHECK(escape_line("abcdef", 4) == "abcd");
    CHECK(escape_line("ab\ncd", 3) == "ab");        // "\\n" would not fit whole
    CHECK(escape_line("ab\ncd", 4) == "ab\\n");
    CHECK(escape_line("a\x01", 4) == "a");          // "\\x01" is 4 bytes
    CHECK(escape_line("a\xc3\xa9", 2) == "a");      // no half a UTF-8 character
    std::string long_controls(Logger::max_text, '\n');
    CHECK(escape_line(long_controls).size() == Logger::max_text);
    CHECK(format_message(Logger::Severity::info, long_controls).size() == Logger::max_text);
}

TEST_CASE("Logger lines are escaped: one event is one line", "[log][escape]") {
    std::vector<std::string> lines;
    Logger log = Logger::capture("local", &lines);
    log.error("unknown user nosuch\nDec  2 10:00:00 host mailroom/local[1]: FAKE");
    log.info("to=<a\\b@test.example>, status=sent");
    REQUIRE(lines.size() == 2);
    CHECK(lines[0] == "error: unknown user nosuch\\nDec  2 10:00:00 host mailroom/local[1]: FAKE");
    CHECK(lines[1] == "to=<a\\\\b@test.example>, status=sent");
}

TEST_CASE("report_on_stderr writes one escaped line with the program and severity", "[log][escape]") {
    char name[] = "/tmp/mailroom-report-XXXXXX";
    int fd = ::mkstemp(name);
    REQUIRE(fd >= 0);
    ::unlink(name);
    int saved = ::dup(STDERR_FILENO);
    ::dup2(fd, STDERR_FILENO);
    mailroom::core::report_on_stderr("mda", Logger::Severity::error, "unknown user x\r\nFAKE\x1b[2J");
    mailroom::core::report_on_stderr("mta", Logger::Severity::warning, "w");
    mailroom::core::report_on_stderr("mailctl", Logger::Severity::info, "i");
    ::dup2(saved, STDERR_FILENO);
    ::close(saved);
    std::string text(4096, '\0');
    ssize_t n = ::pread(fd, text.data(), text.size(), 0);
    ::close(fd);
    REQUIRE(n > 0);
    text.resize(static_cast<size_t>(n));
    CHECK(text == "mda: error: unknown user x\\r\\nFAKE\\x1b[2J\nmta: warning: w\nmailctl: i\n");
}
