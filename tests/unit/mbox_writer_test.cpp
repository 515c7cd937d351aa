#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <catch2/catch.hpp>
#include <filesystem>
#include <string>

#include "delivery/mbox_writer.hpp"
#include "support/test_support.hpp"
#include "unit/mbox_test_support.hpp"

using mailroom::mail::mbox_from_line;
using mailroom::mail::MboxEscaper;
using mailroom::mail::MboxWriter;
using namespace mailroom::test;
using namespace mbox_test;

namespace {

// Quotes text fed in pieces of piece bytes.
std::string quote(std::string_view text, size_t piece = 1 << 20) {
    MboxEscaper escaper;
    std::string out;
    for (size_t i = 0; i < text.size(); i += piece) escaper.feed(text.substr(i, piece), out);
    escaper.finish(out);
    return out;
}

}  // namespace

TEST_CASE("body lines matching ^>*From get one more > (mboxrd)") {
    struct Golden {
        const char* in;
        const char* out;
    } goldens[] = {
        {"From me\n", ">From me\n"},
        {">From me\n", ">>From me\n"},
        {">>From me\n", ">>>From me\n"},
        {"a\nFrom x\nb\n", "a\n>From x\nb\n"},
        {"From\n", "From\n"},              // no space: untouched
        {"Fromage\n", "Fromage\n"},
        {" From x\n", " From x\n"},        // not at line start
        {"x From y\n", "x From y\n"},
        {">>\n", ">>\n"},
        {">F\n>Fr", ">F\n>Fr"},            // held-back prefixes flushed at the end
        {"From ", ">From "},
        {"FFrom x\n", "FFrom x\n"},
        {"\nFrom \n\nFrom ", "\n>From \n\n>From "},
        {"", ""},
    };
    for (const auto& g : goldens) {
        INFO("input: " << g.in);
        CHECK(quote(g.in) == g.out);
        for (size_t piece : {1, 2, 3, 5, 7}) CHECK(quote(g.in, piece) == g.out);
    }
}

TEST_CASE("a From line split across chunk boundaries is still quoted") {
    std::string text = "first\n>>From the middle\nlast\n";
    for (size_t piece = 1; piece <= text.size(); ++piece) {
        INFO("piece " << piece);
        CHECK(quote(text, piece) == "first\n>>>From the middle\nlast\n");
    }
}

TEST_CASE("a 1 MB line, a long run of > and NUL bytes pass through unchanged") {
    std::string long_line(1 << 20, 'x');
    long_line += "From \n";
    CHECK(quote(long_line, 65536) == long_line);
    std::string run(200000, '>');
    CHECK(quote(run + "From x\n", 4096) == run + ">From x\n");
    std::string nuls("a\0b\nFrom \0\n", 11);
    CHECK(quote(nuls, 3) == std::string("a\0b\n>From \0\n", 12));
}

TEST_CASE("the escaper knows whether the message ended at a line start") {
    MboxEscaper e;
    std::string out;
    CHECK(e.at_line_start());
    e.feed("abc", out);
    CHECK_FALSE(e.at_line_start());
    e.feed("\n", out);
    CHECK(e.at_line_start());
}

TEST_CASE("the From line is From sender asctime-date, MAILER-DAEMON for the null sender") {
    use_utc();
    CHECK(mbox_from_line("alice@example.org", 1795292614) == "From alice@example.org Sat Nov 21 20:23:34 2026\n");
    CHECK(mbox_from_line("", arrival) == "From MAILER-DAEMON Thu Mar  5 07:08:09 2026\n");
    CHECK(mbox_from_line("a b\nc", arrival) == "From a_b_c Thu Mar  5 07:08:09 2026\n");
}

TEST_CASE("two deliveries append two messages, each ending with an empty line") {
    use_utc();
    TempDir dir;
    std::string path = dir.path + "/bob";
    MboxWriter writer;
    auto first = writer.deliver(message("Subject: one\n\nFrom here\nbye"), info_for(path));
    CHECK(first.is_ok());
    CHECK(first.text() == "delivered to mailbox");
    auto second = writer.deliver(message("Subject: two\n\n>From there\n"), info_for(path));
    CHECK(second.is_ok());
    CHECK(slurp(path) == delivered("Subject: one\n\n>From here\nbye") +
                             delivered("Subject: two\n\n>>From there\n"));
}

TEST_CASE("content starting with From is quoted on its very first line") {
    use_utc();
    TempDir dir;
    std::string path = dir.path + "/bob";
    CHECK(MboxWriter().deliver(message("From nobody\n"), info_for(path)).is_ok());
    CHECK(slurp(path) == delivered(">From nobody\n"));
}

TEST_CASE("CRLF content arrives in the mbox with LF line ends") {
    use_utc();
    TempDir dir;
    std::string path = dir.path + "/bob";
    CHECK(MboxWriter().deliver(message("Subject: x\r\n\r\nFrom y\r\n"), info_for(path)).is_ok());
    CHECK(slurp(path) == delivered("Subject: x\n\n>From y\n"));
}

TEST_CASE("a large message with NULs and a 1 MB line is streamed in whole") {
    use_utc();
    TempDir dir;
    std::string path = dir.path + "/bob";
    std::string body = "Subject: big\n\n" + std::string(1 << 20, 'y') + "\n";
    body += std::string("nul\0here\n", 9);
    for (int i = 0; i < 20000; ++i) body += "From line " + std::to_string(i) + "\n";
    std::string quoted = body;
    for (size_t at = 0; (at = quoted.find("\nFrom line", at)) != std::string::npos; at += 2) quoted.insert(at + 1, ">");
    CHECK(MboxWriter().deliver(message(body), info_for(path)).is_ok());
    CHECK(slurp(path) == delivered(quoted));
}

TEST_CASE("a mailbox left without a final newline gets one before our From line") {
    use_utc();
    TempDir dir;
    std::string path = dir.path + "/bob";
    spit(path, "From x Thu Mar  5 07:08:09 2026\n\nno newline");
    REQUIRE(::chmod(path.c_str(), 0600) == 0);
    CHECK(MboxWriter().deliver(message("hi\n"), info_for(path)).is_ok());
    CHECK(slurp(path) == "From x Thu Mar  5 07:08:09 2026\n\nno newline\n\n" + delivered("hi\n"));
}

TEST_CASE("a new mailbox is created mode 0600 owned by the user") {
    TempDir dir;
    std::string path = dir.path + "/bob";
    mode_t old_umask = ::umask(022);
    auto info = info_for(path);
    if (::geteuid() == 0) {
        info.uid = 1000;
        info.gid = 1000;
    }
    auto status = MboxWriter().deliver(message("hi\n"), info);
    ::umask(old_umask);
    REQUIRE(status.is_ok());
    struct stat st {};
    REQUIRE(::stat(path.c_str(), &st) == 0);
    CHECK((st.st_mode & 07777) == 0600);
    CHECK(st.st_uid == info.uid);
    CHECK(st.st_gid == info.gid);
}

TEST_CASE("a symlinked mailbox is refused and its target untouched") {
    TempDir dir;
    std::string path = dir.path + "/bob", target = dir.path + "/target";
    spit(target, "precious\n");
    REQUIRE(::symlink(target.c_str(), path.c_str()) == 0);
    auto status = MboxWriter().deliver(message("hi\n"), info_for(path));
    CHECK(status.is_temporary());
    CHECK(status.code() == "4.2.0");
    CHECK(status.text() == "mailbox " + path + " is a symbolic link");
    CHECK(slurp(target) == "precious\n");
    // A dangling symlink must not be created through either.
    REQUIRE(::unlink(target.c_str()) == 0);
    CHECK(MboxWriter().deliver(message("hi\n"), info_for(path)).is_temporary());
    CHECK_FALSE(std::filesystem::exists(target));
}

TEST_CASE("a mailbox with more than one hard link is refused") {
    TempDir dir;
    std::string path = dir.path + "/bob", other = dir.path + "/other";
    spit(path, "");
    REQUIRE(::link(path.c_str(), other.c_str()) == 0);
    auto status = MboxWriter().deliver(message("hi\n"), info_for(path));
    CHECK(status.code() == "4.2.0");
    CHECK(status.text() == "mailbox " + path + " has 2 hard links");
    CHECK(slurp(path).empty());
}

TEST_CASE("a mailbox not owned by the user is refused") {
    TempDir dir;
    std::string path = dir.path + "/bob";
    spit(path, "");
    auto info = info_for(path);
    info.uid = ::geteuid() + 1;  // as root this is also what a chown to another uid tests
    auto status = MboxWriter().deliver(message("hi\n"), info);
    CHECK(status.code() == "4.2.0");
    CHECK(status.text() == "mailbox " + path + " is owned by uid " + std::to_string(::geteuid()) +
                               ", not " + std::to_string(info.uid));
    if (::geteuid() == 0) {
        REQUIRE(::chown(path.c_str(), 1001, 1001) == 0);
        info.uid = 1000;
        CHECK(MboxWriter().deliver(message("hi\n"), info).text() ==
              "mailbox " + path + " is owned by uid 1001, not 1000");
    }
    CHECK(slurp(path).empty());
}

TEST_CASE("a mailbox that is not a regular file is refused") {
    TempDir dir;
    std::string fifo = dir.path + "/fifo", folder = dir.path + "/folder";
    REQUIRE(::mkfifo(fifo.c_str(), 0600) == 0);
    REQUIRE(::mkdir(folder.c_str(), 0700) == 0);
    for (const auto& path : {fifo, folder}) {
        auto status = MboxWriter().deliver(message("hi\n"), info_for(path));
        CHECK(status.code() == "4.2.0");
        CHECK(status.text() == "mailbox " + path + " is not a regular file");
    }
}
