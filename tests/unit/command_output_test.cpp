// delivery/command_output: a command's run judged as SPEC 4 says, as Postfix's pipe(8).
#include "delivery/command_output.hpp"

#include <signal.h>

#include <catch2/catch.hpp>

using namespace mailroom::mail;
using mailroom::core::SubprocessResult;

namespace {
SubprocessResult exited(int code, std::string output = "") {
    SubprocessResult result;
    result.exit_code = code;
    result.output = std::move(output);
    return result;
}
constexpr std::chrono::seconds hour{3600};
}  // namespace

TEST_CASE("Exit 0 = delivered, 75 (EX_TEMPFAIL) or 71 (EX_OSERR) = deferred, anything else = bounced", "[command_output]") {
    auto ok = command_status(exited(0, "ignored chatter\n"), "procmail", hour);
    CHECK(ok.is_ok());
    CHECK(ok.text() == "delivered to command: procmail");
    CHECK(command_status(exited(75), "x", hour).code() == "4.3.0");
    CHECK(command_status(exited(71), "x", hour).code() == "4.3.0");
    for (int code : {1, 2, 64, 67, 69, 77, 126, 127, 255}) {
        auto status = command_status(exited(code, "why\n"), "x", hour);
        CHECK(status.is_permanent());
        CHECK(status.code() == "5.3.0");
        CHECK(status.text() == "command \"x\" exited with status " + std::to_string(code) + ": why");
    }
    SubprocessResult killed;
    killed.signal = SIGSEGV;
    CHECK(command_status(killed, "x", hour).text() == "command \"x\" killed by signal " + std::to_string(SIGSEGV));
    CHECK(command_status(killed, "x", hour).is_permanent());
}

TEST_CASE("still running at command_timeout = bounced 5.3.0, whatever it printed", "[command_output]") {
    SubprocessResult result = exited(-1, "5.0.0 would say something else\n");
    result.exit_code = -1;
    result.signal = SIGKILL;
    result.timed_out = true;
    auto status = command_status(result, "x", std::chrono::seconds(30));
    CHECK(status.code() == "5.3.0");
    CHECK(status.text() == "command timed out after 30 s: 5.0.0 would say something else");
}

TEST_CASE("Output that begins with an enhanced status code decides instead, as in Postfix", "[command_output]") {
    CHECK(command_status(exited(1, "4.2.1 try later\n"), "x", hour).code() == "4.2.1");
    CHECK(command_status(exited(1, "4.2.1 try later\n"), "x", hour).is_temporary());
    CHECK(command_status(exited(0, "5.1.2 nope"), "x", hour).code() == "5.1.2");
    CHECK(command_status(exited(0, "5.1.2 nope"), "x", hour).text() == "nope");
    CHECK(command_status(exited(75, "2.0.0 kept it\n"), "x", hour).is_ok());
    // Not a code: the exit status decides.
    for (const char* output : {"4.2 short", "6.1.1 class", "5.1.1234 long", "5.1.1x glued", "x5.1.1 late", "5..1 empty",
                               " 5.1.1 indented"}) {
        CAPTURE(output);
        CHECK_FALSE(status_from_output(output));
        CHECK(command_status(exited(0, output), "x", hour).is_ok());
    }
    auto bare = status_from_output("5.7.1");
    REQUIRE(bare);
    CHECK(bare->code() == "5.7.1");
    CHECK(bare->text() == "(no text)");
}

TEST_CASE("a message not fed whole is never a success", "[command_output]") {
    auto result = exited(0, "2.0.0 fine\n");
    result.input_error = mailroom::core::errno_error("read message", EIO);
    auto status = command_status(result, "x", hour);
    CHECK(status.is_temporary());
    CHECK(status.code() == "4.3.0");
}

TEST_CASE("status texts are one line, the output breaks and tabs fold into single spaces", "[command_output]") {
    CHECK(one_line("  a\r\n\tb \n\n c\n") == "a b c");
    CHECK(one_line("") == "");
    auto status = command_status(exited(1, "line one\nline two\n"), "multi\nline", hour);
    CHECK(status.text() == "command \"multi line\" exited with status 1: line one line two");
}
