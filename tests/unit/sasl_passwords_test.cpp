// lib/net/sasl_passwords.hpp: smtp_sasl_password_file's lines, Postfix's lookup order,
// ':' in passwords, comments, errors with line numbers that never show a password,
// and a file every user may read refused.
#include "net/sasl_passwords.hpp"

#include <sys/stat.h>
#include <unistd.h>

#include <string>

#include "support/test_support.hpp"

using mailroom::net::Relayhost;
using mailroom::net::SaslPasswords;
using mailroom::test::TempDir;

namespace {

Relayhost relay(const char* text) {
    auto parsed = Relayhost::parse(text);
    REQUIRE(parsed);
    REQUIRE(parsed->has_value());
    return **parsed;
}

SaslPasswords parsed(std::string_view text) {
    auto table = SaslPasswords::parse(text, "sasl_passwd");
    INFO((table ? std::string() : table.error().message()));
    REQUIRE(table);
    return std::move(*table);
}

std::string error_of(std::string_view text) {
    auto table = SaslPasswords::parse(text, "sasl_passwd");
    REQUIRE(!table);
    return table.error().message();
}

}  // namespace

TEST_CASE("the exact relayhost text is looked up first, then the bare host name") {
    auto table = parsed("[smtp.example.com]:587 exact:one\n"
                        "smtp.example.com bare:two\n"
                        "[other.example.com] bracketed:three\n");
    CHECK(table.size() == 3);
    auto exact = table.find(relay("[smtp.example.com]:587"));
    REQUIRE(exact);
    CHECK(exact->user == "exact");
    CHECK(exact->password == "one");
    // Another form of the same host falls back to the bare name.
    auto bare = table.find(relay("[smtp.example.com]:465"));
    REQUIRE(bare);
    CHECK(bare->user == "bare");
    CHECK(table.find(relay("smtp.example.com"))->user == "bare");
    CHECK(table.find(relay("smtp.example.com:2525"))->user == "bare");
    // Only the exact text finds a bracketed line: "[other.example.com]" is no bare name.
    CHECK(table.find(relay("[other.example.com]"))->user == "bracketed");
    CHECK(!table.find(relay("other.example.com")));
    CHECK(!table.find(relay("[other.example.com]:25")));
    CHECK(!table.find(relay("[nowhere.example]:587")));
}

TEST_CASE("HOST matches without regard to case, and a relayhost built by hand is looked up as written") {
    auto table = parsed("[SMTP.Example.COM]:587 user:pw\n");
    CHECK(table.find(relay("[smtp.example.com]:587"))->user == "user");
    CHECK(table.find(Relayhost{"smtp.example.com", 587, false})->user == "user");
    CHECK(!table.find(Relayhost{"smtp.example.com", 587, true}));
}

TEST_CASE("a password may hold ':' and inner spaces, the user ends at the first ':'") {
    auto table = parsed("relay.example   alice@example.com:pa:ss w:ord  \n");
    auto login = table.find(relay("relay.example"));
    REQUIRE(login);
    CHECK(login->user == "alice@example.com");
    CHECK(login->password == "pa:ss w:ord");
    auto utf8 = parsed("relay.example\tbob:p\xc3\xa4ss\n").find(relay("relay.example"));
    REQUIRE(utf8);
    CHECK(utf8->password == "p\xc3\xa4ss");
}

TEST_CASE("comments, blank lines, CRLF line ends and a last line without a newline are read") {
    auto table = parsed("# logins for the relay\r\n"
                        "\r\n"
                        "   # indented comment\n"
                        "\t\n"
                        "a.example a:1\r\n"
                        "b.example b:2");
    CHECK(table.size() == 2);
    CHECK(table.find(relay("a.example"))->password == "1");
    CHECK(table.find(relay("b.example"))->password == "2");
    CHECK(parsed("").size() == 0);
    CHECK(!SaslPasswords().find(relay("a.example")));
}

TEST_CASE("bad lines are refused with the file name and line number") {
    CHECK(error_of("# ok\na.example a:1\nb.example\n") == "sasl_passwd:3: HOST without USER:PASSWORD");
    CHECK(error_of("a.example nocolon\n") == "sasl_passwd:1: want USER:PASSWORD after HOST (no ':' found)");
    CHECK(error_of("a.example :pw\n") == "sasl_passwd:1: empty USER before ':'");
    CHECK(error_of("\n\na.example user:\n") == "sasl_passwd:3: empty PASSWORD after ':'");
    CHECK(error_of("[a.example user:pw\n") ==
          "sasl_passwd:1: HOST is not written as relayhost is (host, host:port, [host] or [host]:port)");
    CHECK(error_of("a.example:0 user:pw\n").rfind("sasl_passwd:1: HOST is not", 0) == 0);
    CHECK(error_of("a.example a:1\nA.EXAMPLE b:2\n") == "sasl_passwd:2: HOST A.EXAMPLE is given again (first on line 1)");
    CHECK(error_of("a.example a:1\nb.example b:\x01secret\n") == "sasl_passwd:2: a control character (0x01)");
    CHECK(error_of("a.example a:se\rcret\n") == "sasl_passwd:1: a control character (0x0d)");
    CHECK(error_of(std::string("a.example a:se\0cret\n", 20)) == "sasl_passwd:1: a control character (0x00)");
    CHECK(error_of("a.example a:" + std::string(5000, 'x') + "\n") == "sasl_passwd:1: line is longer than 4096 octets");
    CHECK(error_of(std::string(SaslPasswords::max_file_bytes + 1, '#')) ==
          "sasl_passwd: file is larger than 1048576 octets (1 MiB)");
}

TEST_CASE("no error quotes a user or a password") {
    for (const char* text : {"alice:hunter2\n", "alice:hunter2 more\n", "[alice:hunter2\n", "a.example alice\x01hunter2\n",
                             "a.example alice:hunter2\na.example alice:hunter2\n"}) {
        INFO(text);
        auto message = error_of(text);
        CHECK(message.find("hunter2") == std::string::npos);
    }
}

TEST_CASE("a password file every user may read or write is refused") {
    TempDir dir;
    std::string path = dir.write("sasl_passwd", "[smtp.example.com]:587 user:secret\n");
    REQUIRE(::chmod(path.c_str(), 0600) == 0);
    auto ok = SaslPasswords::load(path);
    REQUIRE(ok);
    CHECK(ok->find(relay("[smtp.example.com]:587"))->password == "secret");
    REQUIRE(::chmod(path.c_str(), 0640) == 0);
    CHECK(SaslPasswords::load(path));

    REQUIRE(::chmod(path.c_str(), 0644) == 0);
    auto readable = SaslPasswords::load(path);
    REQUIRE(!readable);
    CHECK(readable.error().message() == path + ": readable by every user (mode 0644), and it holds passwords: make it "
                                               "mode 0600 or 0640 (chmod o-rw " + path + ")");
    REQUIRE(::chmod(path.c_str(), 0602) == 0);
    auto writable = SaslPasswords::load(path);
    REQUIRE(!writable);
    CHECK(writable.error().message().find("writable by every user (mode 0602)") != std::string::npos);
}

TEST_CASE("a password file that is missing, not a regular file, or too large is refused") {
    TempDir dir;
    auto missing = SaslPasswords::load(dir.path + "/none");
    REQUIRE(!missing);
    CHECK(missing.error().message().rfind("open " + dir.path + "/none", 0) == 0);
    auto folder = SaslPasswords::load(dir.path);
    REQUIRE(!folder);
    CHECK(folder.error().message() == dir.path + ": not a regular file");
    std::string fifo = dir.path + "/fifo";
    REQUIRE(::mkfifo(fifo.c_str(), 0600) == 0);
    auto pipe = SaslPasswords::load(fifo);  // returns at once: never waits for a writer
    REQUIRE(!pipe);
    CHECK(pipe.error().message() == fifo + ": not a regular file");
    std::string big = dir.write("big", std::string(SaslPasswords::max_file_bytes + 1, '#'));
    REQUIRE(::chmod(big.c_str(), 0600) == 0);
    auto large = SaslPasswords::load(big);
    REQUIRE(!large);
    CHECK(large.error().message() == big + ": file is larger than 1048576 octets (1 MiB)");
}

TEST_CASE("an error in a loaded file names its path and line") {
    TempDir dir;
    std::string path = dir.write("sasl_passwd", "a.example a:1\n\nb.example\n");
    REQUIRE(::chmod(path.c_str(), 0600) == 0);
    auto table = SaslPasswords::load(path);
    REQUIRE(!table);
    CHECK(table.error().message() == path + ":3: HOST without USER:PASSWORD");
}
