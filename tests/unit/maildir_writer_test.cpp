#include <grp.h>
#include <signal.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <catch2/catch.hpp>
#include <chrono>
#include <set>
#include <string>
#include <vector>

#include "delivery/maildir_writer.hpp"
#include "support/test_support.hpp"

using mailroom::mail::DeliveryInfo;
using mailroom::mail::MaildirWriter;
using mailroom::mail::Message;
using mailroom::mail::MessageOptions;
using mailroom::mail::Status;
using namespace mailroom::test;
using namespace std::chrono_literals;

namespace {

DeliveryInfo info_for(const std::string& path) {
    DeliveryInfo info;
    info.sender = "alice@example.org";
    info.recipient = "bob@example.com";
    info.path = path;
    info.uid = ::geteuid();
    info.gid = ::getegid();
    info.hostname = "mx.example.com";
    return info;
}

Message message_of(std::string_view text, size_t memory_limit = 256 * 1024) {
    MessageOptions options;
    options.memory_limit = memory_limit;
    auto message = Message::from_string(text, options);
    REQUIRE(message);
    return std::move(*message);
}

mode_t mode_of(const std::string& path) {
    struct stat st;
    REQUIRE(::lstat(path.c_str(), &st) == 0);
    return st.st_mode;
}

// Parses "TIME.M<usec>P<pid>Q<n>.HOST,S=SIZE" by hand (std::regex is heavy to compile).
// Returns SIZE, or -1 when the name is malformed.
long long maildir_name_size(std::string_view name, std::string_view host) {
    auto digits = [&name]() {
        size_t n = 0;
        while (n < name.size() && name[n] >= '0' && name[n] <= '9') ++n;
        std::string_view d = name.substr(0, n);
        name.remove_prefix(n);
        return d;
    };
    auto literal = [&name](std::string_view text) {
        if (name.substr(0, text.size()) != text) return false;
        name.remove_prefix(text.size());
        return true;
    };
    if (digits().empty() || !literal(".M") || digits().empty() || !literal("P") ||
        digits().empty() || !literal("Q") || digits().empty() || !literal(".") ||
        !literal(host) || !literal(",S="))
        return -1;
    std::string_view size = digits();
    if (size.empty() || !name.empty()) return -1;
    return std::stoll(std::string(size));
}

const std::string sample = "Subject: hi\n\nhello\n";

// The uid and gid a test drops to when it runs as root ("nobody" on most systems).
constexpr unsigned unprivileged_id = 65534;

// Runs check() in a child process that is uid/gid (when the test runs as root, it
// drops to them for good first) and returns the child's exit code: check()'s result,
// or 100 + errno when the switch failed, 99 when the child did not exit normally.
// The child uses no Catch2 macros.
template <typename Check>
int exit_code_as_unprivileged(uid_t uid, gid_t gid, Check check) {
    pid_t pid = ::fork();
    REQUIRE(pid >= 0);
    if (pid == 0) {
        if (::geteuid() == 0 &&
            (::setgroups(0, nullptr) != 0 || ::setgid(gid) != 0 || ::setuid(uid) != 0 || ::geteuid() == 0))
            ::_exit(100 + errno);
        ::_exit(check());
    }
    int wstatus = 0;
    REQUIRE(::waitpid(pid, &wstatus, 0) == pid);
    return WIFEXITED(wstatus) ? WEXITSTATUS(wstatus) : 99;
}

}  // namespace

TEST_CASE("Maildir: tmp, new and cur are created as needed with mode 0700") {
    TempDir dir;
    const std::string maildir = dir.path + "/Maildir";
    auto status = MaildirWriter().deliver(message_of(sample), info_for(maildir + "/"));
    REQUIRE(status.is_ok());
    for (const char* sub : {"", "/tmp", "/new", "/cur"}) {
        mode_t mode = mode_of(maildir + sub);
        CHECK(S_ISDIR(mode));
        CHECK((mode & 07777) == 0700);
    }
}

TEST_CASE("Maildir: the file in new/ is the delivery headers then the message, S= is its size") {
    TempDir dir;
    const std::string maildir = dir.path + "/Maildir";
    const auto info = info_for(maildir);
    // No final newline: Maildir content is never altered, S= counts exactly what is written.
    const std::string text = "Subject: hi\n\nno newline at the end";
    std::string path;
    auto status = MaildirWriter().deliver(message_of(text), info, &path);
    REQUIRE(status.is_ok());
    CHECK(status.code() == "2.0.0");

    auto names = names_in(maildir + "/new");
    REQUIRE(names.size() == 1);
    CHECK(path == maildir + "/new/" + names[0]);
    const std::string content = slurp(path);
    CHECK(content == "Return-Path: <alice@example.org>\nDelivered-To: bob@example.com\n" + text);
    CHECK(maildir_name_size(names[0], "mx.example.com") == static_cast<long long>(content.size()));
    CHECK((mode_of(path) & 07777) == 0600);
    CHECK(names_in(maildir + "/tmp").empty());
    CHECK(names_in(maildir + "/cur").empty());
}

TEST_CASE("Maildir: a message larger than one chunk is streamed whole") {
    TempDir dir;
    std::string text = "Subject: big\n\n";
    for (int i = 0; text.size() < 300 * 1024; ++i) text += "line " + std::to_string(i) + "\n";
    std::string path;
    // A small memory limit so the content comes from the spill file.
    auto status = MaildirWriter().deliver(message_of(text, 4096), info_for(dir.path + "/M"), &path);
    REQUIRE(status.is_ok());
    const std::string content = slurp(path);
    CHECK(content == mailroom::mail::delivery_headers(info_for(dir.path + "/M")) + text);
    CHECK(path.ends_with(",S=" + std::to_string(content.size())));
}

TEST_CASE("Maildir: names are unique over 1000 deliveries in one process") {
    std::set<std::string> names;
    for (int i = 0; i < 10000; ++i) names.insert(mailroom::mail::maildir_unique_name("h", 1));
    CHECK(names.size() == 10000);

    TempDir dir;
    const auto info = info_for(dir.path + "/Maildir");
    const auto message = message_of(sample);
    const MaildirWriter writer;
    int failures = 0;
    for (int i = 0; i < 1000; ++i)
        if (!writer.deliver(message, info).is_ok()) ++failures;
    CHECK(failures == 0);
    CHECK(names_in(info.path + "/new").size() == 1000);
    CHECK(names_in(info.path + "/tmp").empty());
}

TEST_CASE("Maildir: names are unique across 4 processes delivering 100 each") {
    TempDir dir;
    const auto info = info_for(dir.path + "/Maildir");
    const auto message = message_of(sample);
    std::vector<pid_t> children;
    for (int c = 0; c < 4; ++c) {
        pid_t pid = ::fork();
        REQUIRE(pid >= 0);
        if (pid == 0) {
            // Child: no Catch2 macros; the exit code says whether every delivery worked.
            const MaildirWriter writer;
            int failures = 0;
            for (int i = 0; i < 100; ++i)
                if (!writer.deliver(message, info).is_ok()) ++failures;
            ::_exit(failures == 0 ? 0 : 1);
        }
        children.push_back(pid);
    }
    for (pid_t pid : children) {
        int wstatus = 0;
        REQUIRE(::waitpid(pid, &wstatus, 0) == pid);
        CHECK(WIFEXITED(wstatus));
        CHECK(WEXITSTATUS(wstatus) == 0);
    }
    CHECK(names_in(info.path + "/new").size() == 400);
    CHECK(names_in(info.path + "/tmp").empty());
}

TEST_CASE("Maildir: a tmp/ leftover older than 36 hours is removed, a fresh one stays") {
    TempDir dir;
    const auto info = info_for(dir.path + "/Maildir");
    for (const char* folder : {"", "/tmp", "/new", "/cur"}) REQUIRE(::mkdir((info.path + folder).c_str(), 0700) == 0);
    const std::string tmp = info.path + "/tmp/";
    spit(tmp + "old", "x");
    spit(tmp + "fresh", "x");
    spit(dir.path + "/outside", "x");
    REQUIRE(::symlink((dir.path + "/outside").c_str(), (tmp + "oldlink").c_str()) == 0);
    age(tmp + "old", 37h);
    age(tmp + "fresh", 35h);
    age(tmp + "oldlink", 37h);
    age(dir.path + "/outside", 37h);

    REQUIRE(MaildirWriter().deliver(message_of(sample), info).is_ok());
    auto left = names_in(tmp);
    std::sort(left.begin(), left.end());
    CHECK(left == std::vector<std::string>{"fresh", "oldlink"});
    CHECK(slurp(dir.path + "/outside") == "x");

    // A process sweeps one tmp/ at most once an hour (a delivery agent writes the same
    // Maildir again and again): a leftover planted since stays until then.
    spit(tmp + "old2", "x");
    age(tmp + "old2", 37h);
    REQUIRE(MaildirWriter().deliver(message_of(sample), info).is_ok());
    CHECK(names_in(tmp).size() == 3);
}

TEST_CASE("Maildir: a Maildir folder that is a symlink is refused and its target untouched") {
    TempDir dir;
    const std::string target = dir.path + "/target";
    REQUIRE(::mkdir(target.c_str(), 0700) == 0);
    const std::string link = dir.path + "/Maildir";
    REQUIRE(::symlink(target.c_str(), link.c_str()) == 0);
    for (const std::string& path : {link, link + "/"}) {
        auto status = MaildirWriter().deliver(message_of(sample), info_for(path));
        CHECK(status.is_temporary());
        CHECK(status.code() == "4.2.0");
        CHECK(status.text().find("symbolic link") != std::string::npos);
        CHECK(names_in(target).empty());
    }
}

TEST_CASE("Maildir: a tmp/ or new/ that is a symlink is refused") {
    TempDir dir;
    const auto info = info_for(dir.path + "/Maildir");
    const std::string elsewhere = dir.path + "/elsewhere";
    REQUIRE(::mkdir(info.path.c_str(), 0700) == 0);
    REQUIRE(::mkdir(elsewhere.c_str(), 0700) == 0);
    SECTION("tmp") { REQUIRE(::symlink(elsewhere.c_str(), (info.path + "/tmp").c_str()) == 0); }
    SECTION("new") { REQUIRE(::symlink(elsewhere.c_str(), (info.path + "/new").c_str()) == 0); }
    auto status = MaildirWriter().deliver(message_of(sample), info);
    CHECK(status.code() == "4.2.0");
    CHECK(names_in(elsewhere).empty());
}

TEST_CASE("Maildir: a Maildir not owned by the recipient is refused") {
    TempDir dir;
    auto info = info_for(dir.path + "/Maildir");
    REQUIRE(::mkdir(info.path.c_str(), 0700) == 0);
    info.uid = ::geteuid() + 12345;
    auto status = MaildirWriter().deliver(message_of(sample), info);
    CHECK(status.code() == "4.2.0");
    CHECK(status.text().find("owned by uid") != std::string::npos);
    CHECK(names_in(info.path).empty());
}

TEST_CASE("Maildir: as root, created folders and the file belong to the recipient") {
    if (::geteuid() != 0) {
        // Only root can give a file to another user: not a pass, say so.
        WARN("SKIPPED: needs root to give the folders to another uid");
        return;
    }
    TempDir dir;
    auto info = info_for(dir.path + "/Maildir");
    info.uid = 12345;
    info.gid = 12346;
    std::string path;
    REQUIRE(MaildirWriter().deliver(message_of(sample), info, &path).is_ok());
    for (const std::string& p : {info.path, info.path + "/tmp", info.path + "/new",
                                 info.path + "/cur", path}) {
        struct stat st;
        REQUIRE(::stat(p.c_str(), &st) == 0);
        CHECK(st.st_uid == 12345u);
        CHECK(st.st_gid == 12346u);
    }
}

TEST_CASE("Maildir: a failed write leaves nothing in tmp/ or new/") {
    TempDir dir;
    const auto info = info_for(dir.path + "/Maildir");
    const auto message = message_of(sample + std::string(4000, 'x') + "\n");
    pid_t pid = ::fork();
    REQUIRE(pid >= 0);
    if (pid == 0) {
        // Child: a 1000-byte file size limit makes the write fail with EFBIG.
        ::signal(SIGXFSZ, SIG_IGN);
        struct rlimit limit{1000, 1000};
        if (::setrlimit(RLIMIT_FSIZE, &limit) != 0) ::_exit(2);
        auto status = MaildirWriter().deliver(message, info);
        bool expected = status.code() == "4.3.0" &&
                        status.text().find("File too large") != std::string::npos;
        ::_exit(expected ? 0 : 1);
    }
    int wstatus = 0;
    REQUIRE(::waitpid(pid, &wstatus, 0) == pid);
    CHECK(WIFEXITED(wstatus));
    CHECK(WEXITSTATUS(wstatus) == 0);
    CHECK(names_in(info.path + "/tmp").empty());
    CHECK(names_in(info.path + "/new").empty());
}

TEST_CASE("Maildir: a read-only new/ fails temporarily and cleans tmp/") {
    // Root writes into read-only folders anyway: the delivery runs in a child that
    // is an unprivileged user (as a real delivery is), whoever runs the test.
    TempDir dir;
    const uid_t uid = ::geteuid() == 0 ? unprivileged_id : ::geteuid();
    const gid_t gid = ::geteuid() == 0 ? unprivileged_id : ::getegid();
    REQUIRE(::chown(dir.path.c_str(), uid, gid) == 0);
    auto info = info_for(dir.path + "/Maildir");
    info.uid = uid;
    info.gid = gid;
    const auto message = message_of(sample);
    const int failed_check = exit_code_as_unprivileged(uid, gid, [&] {
        if (!MaildirWriter().deliver(message, info).is_ok()) return 1;
        if (::chmod((info.path + "/new").c_str(), 0500) != 0) return 2;
        auto status = MaildirWriter().deliver(message, info);
        ::chmod((info.path + "/new").c_str(), 0700);
        if (status.code() != "4.2.0") return 3;
        return 0;
    });
    INFO("1: first delivery failed, 2: chmod failed, 3: delivery to a read-only new/ was not 4.2.0");
    CHECK(failed_check == 0);
    CHECK(names_in(info.path + "/tmp").empty());
    CHECK(names_in(info.path + "/new").size() == 1);
}

TEST_CASE("Maildir: '/' and ':' in the host name are written as \\057 and \\072") {
    CHECK(mailroom::mail::maildir_host("a/b:c.example") == "a\\057b\\072c.example");
    CHECK(!mailroom::mail::maildir_host("").empty());

    TempDir dir;
    auto info = info_for(dir.path + "/Maildir");
    info.hostname = "mx/1:2";
    REQUIRE(MaildirWriter().deliver(message_of(sample), info).is_ok());
    auto names = names_in(info.path + "/new");
    REQUIRE(names.size() == 1);
    CHECK(maildir_name_size(names[0], "mx\\0571\\0722") > 0);
    CHECK(names[0].find(':') == std::string::npos);
}
