// SPEC section 2 (mailroom.conf), the syntax: lines, comments, continuations,
// expansion, unknown keys, and input that is not a configuration file at all.
#include <catch2/catch.hpp>
#include <random>
#include <string>

#include "core/config.hpp"
#include "core/config_keys.hpp"
#include "support/test_support.hpp"
#include "unit/config_test_helpers.hpp"

using config_test::error_of;
using config_test::parsed;
using mailroom::core::Config;
using namespace mailroom::test;
using namespace std::chrono_literals;

TEST_CASE("Lines key = value, # starts a comment line, blank lines are ignored") {
    auto c = parsed("# a comment\n"
                    "\n"
                    "   \t\n"
                    "   # an indented comment is still a comment\n"
                    "spool_dir=/srv/spool\n"
                    "aliases   =   /etc/mail/aliases   \n"
                    "relayhost = [smart.example]:587 # not a comment: only whole lines are\n");
    CHECK(c.str("spool_dir") == "/srv/spool");
    CHECK(c.str("aliases") == "/etc/mail/aliases");
    CHECK(c.str("relayhost") == "[smart.example]:587 # not a comment: only whole lines are");
    CHECK(c.name() == "t.conf");
}

TEST_CASE("A line starting with white space continues the previous one") {
    auto c = parsed("mynetworks = 127.0.0.0/8,\n"
                    "    10.0.0.0/8,\n"
                    "# comments and blank lines in between are skipped, as in Postfix\n"
                    "\n"
                    "\t[::1]/128\n"
                    "home_mailbox =\n"
                    "  Maildir/\n");
    CHECK(c.str("mynetworks") == "127.0.0.0/8, 10.0.0.0/8, [::1]/128");
    CHECK(c.list("mynetworks") == std::vector<std::string>{"127.0.0.0/8", "10.0.0.0/8", "[::1]/128"});
    CHECK(c.str("home_mailbox") == "Maildir/");
    CHECK(error_of("  spool_dir = /x\n") ==
          "t.conf:1: continuation line with no 'key = value' line before it");
}

TEST_CASE("Lists are separated by commas and/or white space") {
    auto c = parsed("mydestination = a.example,b.example  c.example ,, d.example\te.example,\n");
    CHECK(c.list("mydestination") ==
          std::vector<std::string>{"a.example", "b.example", "c.example", "d.example", "e.example"});
    CHECK(parsed("mydestination =").list("mydestination").empty());
}

TEST_CASE("$key and ${key} expand to another key's value") {
    auto c = parsed("myhostname = mail.example.org\n"
                    "spool_dir = /srv/q\n"
                    "aliases = ${spool_dir}/aliases\n"
                    "mail_spool_dir = $aliases.d\n");
    CHECK(c.str("mydestination") == "mail.example.org, localhost.example.org, localhost");
    CHECK(c.str("lmtpd_listen") == "unix:/srv/q/lmtp");
    CHECK(c.str("aliases") == "/srv/q/aliases");
    CHECK(c.str("mail_spool_dir") == "/srv/q/aliases.d");  // recursive, and '.' ends the name
}

TEST_CASE("$name that is not a key is kept for delivery time, and $$ is a literal $") {
    auto c = Config::defaults();
    // forward_path: $home and ${extension} stay, ${recipient_delimiter} is a key.
    CHECK(c.str("forward_path") == "$home/.forward+${extension}, $home/.forward");
    CHECK(c.list("forward_path") ==
          std::vector<std::string>{"$home/.forward+${extension}", "$home/.forward"});
    CHECK(parsed("recipient_delimiter =\n").str("forward_path") ==
          "$home/.forward${extension}, $home/.forward");
    CHECK(parsed("spool_dir = /a$$b/$$spool_dir").str("spool_dir") == "/a$b/$spool_dir");
    CHECK(parsed("spool_dir = /x/$ /y$ ${ ${unclosed $").str("spool_dir") == "/x/$ /y$ ${ ${unclosed $");
    CHECK(parsed("default_privs = ${spool_dir").str("default_privs") == "${spool_dir");
}

TEST_CASE("An expansion loop is an error naming the key") {
    CHECK(error_of("spool_dir = $aliases\naliases = ${spool_dir}/x\n") ==
          "t.conf:1: expansion loop in 'spool_dir': spool_dir -> aliases -> spool_dir");
    CHECK(error_of("# x\nspool_dir = ${spool_dir}/x\n") ==
          "t.conf:2: expansion loop in 'spool_dir': spool_dir -> spool_dir");
    // Through a default: mydestination and mydomain follow myhostname.
    CHECK(error_of("myhostname = $mydestination\n") ==
          "t.conf:1: expansion loop in 'myhostname': myhostname -> mydestination -> myhostname");
    CHECK(error_of("myhostname = x.$mydomain\n") ==
          "t.conf:1: expansion loop in 'myhostname': myhostname -> mydomain -> myhostname");
}

TEST_CASE("Expansion is bounded: a value may not grow past 64 KiB") {
    std::string text = "spool_dir = /" + std::string(999, 'x') + "\n";
    text += "aliases = $spool_dir$spool_dir$spool_dir$spool_dir$spool_dir$spool_dir$spool_dir$spool_dir\n";
    text += "mail_spool_dir = $aliases$aliases$aliases$aliases$aliases$aliases$aliases$aliases\n";
    text += "home_mailbox = $mail_spool_dir$mail_spool_dir$mail_spool_dir$mail_spool_dir\n";
    CHECK(error_of(text) == "t.conf:4: value of 'home_mailbox' is longer than 65536 bytes after expansion");
}

TEST_CASE("An unknown key is an error naming file, line and key") {
    CHECK(error_of("spool_dir = /x\n\nfoo = bar\n") == "t.conf:3: unknown key 'foo'");
    CHECK(error_of("Spool_Dir = /x\n") == "t.conf:1: unknown key 'Spool_Dir'");
    CHECK(error_of("spool_dir /x\n") == "t.conf:1: line is not 'key = value'");
    CHECK(error_of("= /x\n") == "t.conf:1: line is not 'key = value'");
    CHECK(error_of("spool dir = /x\n") == "t.conf:1: line is not 'key = value'");
}

TEST_CASE("A key given twice: the last wins") {
    auto c = parsed("spool_dir = /first\nlock_timeout = 1m\nspool_dir = /second\n");
    CHECK(c.str("spool_dir") == "/second");
    CHECK(c.str("lmtpd_listen") == "unix:/second/lmtp");
    // A later good line does not hide that an earlier one was an unknown key.
    CHECK(error_of("bogus = 1\nspool_dir = /x\n") == "t.conf:1: unknown key 'bogus'");
}

TEST_CASE("NUL bytes, bare CR, 1 MB lines and binary garbage give a clean error") {
    using namespace std::string_literals;
    CHECK(error_of("spool_dir = /a\0b\n"s) == "t.conf:1: line contains a NUL byte");
    CHECK(error_of("# comment\0\n"s) == "t.conf:1: line contains a NUL byte");
    CHECK(error_of("spool_dir = /a\rb\n") ==
          "t.conf:1: line contains a carriage return not followed by a newline");
    CHECK(error_of("spool_dir = /a\x1b[31m\n") == "t.conf:1: line contains the control character 0x1b");
    // CRLF files (edited elsewhere) are read as LF.
    CHECK(parsed("spool_dir = /a\r\nlock_timeout = 2m\r\n").duration("lock_timeout") == 2min);
    CHECK(error_of("spool_dir = " + std::string(1 << 20, 'a') + "\n") ==
          "t.conf:1: line is longer than 65536 bytes");
    std::string joined = "mynetworks = a\n";
    for (int i = 0; i < 40; ++i) joined += " " + std::string(2000, 'b') + "\n";
    CHECK(error_of(joined) == "t.conf:34: line is longer than 65536 bytes");  // the joined line
    CHECK(error_of(std::string((4 << 20) + 1, '#')) == "t.conf: file is larger than 4194304 bytes");

    std::mt19937 rng(20240601);
    for (int round = 0; round < 200; ++round) {
        std::string junk(1 + rng() % 4096, '\0');
        for (char& ch : junk) ch = static_cast<char>(rng());
        auto c = Config::parse(junk, "junk");  // must return, not crash
        if (!c) CHECK(c.error().message().starts_with("junk:"));
    }
    // Printable garbage made of the syntax's own characters.
    const std::string alphabet = "ab_=$${}# \t\n,:/spool_dirlock_timeout";
    for (int round = 0; round < 500; ++round) {
        std::string junk(rng() % 200, ' ');
        for (char& ch : junk) ch = alphabet[rng() % alphabet.size()];
        auto c = Config::parse(junk, "junk");
        if (!c) CHECK(c.error().message().starts_with("junk"));
    }
}

TEST_CASE("A missing or unreadable file is an error naming it") {
    TempDir dir;
    auto missing = Config::load(dir.path + "/nope.conf");
    REQUIRE(!missing);
    CHECK(missing.error().message() == "cannot open " + dir.path + "/nope.conf: No such file or directory");
    auto folder = Config::load(dir.path);
    REQUIRE(!folder);
    CHECK(folder.error().message() == "read " + dir.path + ": Is a directory");

    std::string file = dir.write("m.conf", "# test\nlock_timeout = 7m\nlog = x\n");
    auto bad = Config::load(file);
    REQUIRE(!bad);
    CHECK(bad.error().message() == file + ":3: bad value for 'log': 'x' (syslog, stderr or an absolute file path)");
    file = dir.write("m.conf", "lock_timeout = 7m\n");
    auto good = Config::load(file);
    REQUIRE(good);
    CHECK(good->duration("lock_timeout") == 7min);
    CHECK(good->name() == file);
}

TEST_CASE("An Error with no code is its own message, with a code it names the cause") {
    using mailroom::core::Error;
    CHECK(mailroom::core::input_error("f:1: unknown key 'x'").message() == "f:1: unknown key 'x'");
    CHECK(mailroom::core::errno_error("open /x", ENOENT).message() == "open /x: No such file or directory");
    CHECK(Error{std::make_error_code(std::errc::invalid_argument), "x"}.message() == "x: Invalid argument");
}
