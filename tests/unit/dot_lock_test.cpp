#include <sys/stat.h>
#include <unistd.h>

#include <catch2/catch.hpp>
#include <chrono>
#include <filesystem>
#include <string>

#include "core/dot_lock.hpp"
#include "support/test_support.hpp"

using mailroom::core::DotLock;
using mailroom::core::DotLockOptions;
using mailroom::core::format_lock_record;
using mailroom::core::parse_lock_record;
using mailroom::core::process_is_gone;
using namespace mailroom::test;
using namespace std::chrono_literals;

namespace {

DotLockOptions quick(std::chrono::milliseconds timeout = 300ms) { return {timeout, 300s}; }

}  // namespace

TEST_CASE("lock records are PID or PID OLD_SIZE on one line") {
    auto r = parse_lock_record("1234 5678\n");
    REQUIRE(r);
    CHECK(r->pid == 1234);
    CHECK(r->size == 5678u);
    auto p = parse_lock_record("42\n");
    REQUIRE(p);
    CHECK_FALSE(p->size);
    CHECK_FALSE(parse_lock_record(""));        // created, not yet written
    CHECK_FALSE(parse_lock_record("1234 56"));  // still being written
    CHECK_FALSE(parse_lock_record("0\n"));
    CHECK_FALSE(parse_lock_record("-5\n"));
    CHECK_FALSE(parse_lock_record("abc\n"));
    CHECK(format_lock_record({77, 99u}) == "77 99\n");
    CHECK(format_lock_record({77, std::nullopt}) == "77\n");
}

TEST_CASE("a process is gone only when kill says ESRCH") {
    CHECK_FALSE(process_is_gone(::getpid()));
    CHECK_FALSE(process_is_gone(1));
    CHECK(process_is_gone(dead_pid()));
}

TEST_CASE("the dotlock is PATH.lock holding our PID and is unlinked by the destructor") {
    TempDir dir;
    std::string mbox = dir.path + "/bob";
    {
        auto lock = DotLock::acquire(mbox, quick());
        REQUIRE(lock);
        CHECK(lock->path() == mbox + ".lock");
        CHECK(slurp(mbox + ".lock") == std::to_string(::getpid()) + "\n");
        REQUIRE(lock->set_record(::getpid(), 1234));
        CHECK(slurp(mbox + ".lock") == std::to_string(::getpid()) + " 1234\n");
        CHECK_FALSE(lock->taken_over());
        struct stat st {};
        REQUIRE(::lstat((mbox + ".lock").c_str(), &st) == 0);
        CHECK((st.st_mode & 0777) == 0600);
    }
    CHECK_FALSE(std::filesystem::exists(mbox + ".lock"));
}

TEST_CASE("a live writer's fresh dotlock is waited for and times out with EWOULDBLOCK") {
    TempDir dir;
    std::string mbox = dir.path + "/bob";
    spit(mbox + ".lock", std::to_string(::getpid()) + " 10\n");
    auto start = std::chrono::steady_clock::now();
    auto lock = DotLock::acquire(mbox, quick(300ms));
    double took = seconds_since(start);
    REQUIRE_FALSE(lock);
    CHECK(lock.error().errno_value() == EWOULDBLOCK);
    CHECK(took >= 0.29);
    CHECK(took < 1.0);
    CHECK(slurp(mbox + ".lock") == std::to_string(::getpid()) + " 10\n");  // untouched
}

TEST_CASE("an unreadable fresh dotlock counts as live until it is stale") {
    TempDir dir;
    std::string mbox = dir.path + "/bob";
    spit(mbox + ".lock", "");  // a peer between O_EXCL and writing its PID
    auto lock = DotLock::acquire(mbox, quick(100ms));
    REQUIRE_FALSE(lock);
    CHECK(std::filesystem::exists(mbox + ".lock"));
}

TEST_CASE("a stale dotlock older than 5 minutes is removed, even with a live PID") {
    TempDir dir;
    std::string mbox = dir.path + "/bob";
    spit(mbox + ".lock", std::to_string(::getpid()) + " 10\n");
    age(mbox + ".lock", 6min);
    auto lock = DotLock::acquire(mbox, quick());
    REQUIRE(lock);
    REQUIRE(lock->taken_over());
    CHECK(lock->taken_over()->stale);
    CHECK_FALSE(lock->taken_over()->writer_gone);
    CHECK(lock->taken_over()->record.size == 10u);
    CHECK(slurp(mbox + ".lock") == std::to_string(::getpid()) + "\n");
}

TEST_CASE("a stale dotlock with foreign content is removed and nothing is reported") {
    TempDir dir;
    std::string mbox = dir.path + "/bob";
    spit(mbox + ".lock", "");
    age(mbox + ".lock", 6min);
    auto lock = DotLock::acquire(mbox, quick());
    REQUIRE(lock);
    CHECK_FALSE(lock->taken_over());
}

TEST_CASE("a dotlock whose PID no longer exists is taken over at once with its record") {
    TempDir dir;
    std::string mbox = dir.path + "/bob";
    pid_t dead = dead_pid();
    spit(mbox + ".lock", std::to_string(dead) + " 4096\n");
    auto start = std::chrono::steady_clock::now();
    auto lock = DotLock::acquire(mbox, quick(5s));
    CHECK(std::chrono::steady_clock::now() - start < 1s);
    REQUIRE(lock);
    REQUIRE(lock->taken_over());
    CHECK(lock->taken_over()->writer_gone);
    CHECK_FALSE(lock->taken_over()->stale);
    CHECK(lock->taken_over()->record.pid == dead);
    CHECK(lock->taken_over()->record.size == 4096u);
}

TEST_CASE("a dotlock that is a symlink is never followed") {
    TempDir dir;
    std::string mbox = dir.path + "/bob";
    std::string target = dir.path + "/target";
    REQUIRE(::symlink(target.c_str(), (mbox + ".lock").c_str()) == 0);
    auto lock = DotLock::acquire(mbox, quick(100ms));
    CHECK_FALSE(lock);
    CHECK_FALSE(std::filesystem::exists(target));
}

TEST_CASE("releasing leaves alone a lock that replaced ours") {
    TempDir dir;
    std::string mbox = dir.path + "/bob";
    auto lock = DotLock::acquire(mbox, quick());
    REQUIRE(lock);
    // Someone removed ours as stale and took the lock.
    REQUIRE(::unlink((mbox + ".lock").c_str()) == 0);
    spit(mbox + ".lock", "1\n");
    lock->release();
    CHECK(slurp(mbox + ".lock") == "1\n");
}

TEST_CASE("a dotlock appears with its record already in it and leaves no temporary file") {
    TempDir dir;
    std::string mbox = dir.path + "/bob";
    // A leftover named temporary of a dead process that had our pid is no obstacle.
    spit(mbox + ".lock." + std::to_string(::getpid()), "junk");
    auto lock = DotLock::acquire(mbox, quick());
    REQUIRE(lock);
    // Linked into place whole: never an empty PATH.lock that others must wait out.
    CHECK(slurp(mbox + ".lock") == std::to_string(::getpid()) + "\n");
    size_t entries = names_in(dir.path).size();
    // bob.lock, plus the junk file only when O_TMPFILE was used (then it was never looked at).
    CHECK(entries <= 2);
    auto second = DotLock::acquire(mbox, quick(50ms));
    REQUIRE_FALSE(second);
    CHECK(second.error().errno_value() == EWOULDBLOCK);
}

TEST_CASE("A writer that was killed but never reaped (a zombie) counts as gone", "[dot_lock]") {
    pid_t child = ::fork();
    if (child == 0) ::_exit(0);
    // Not reaped yet: a zombie until waitpid below.
    bool zombie_seen = false;
    for (int i = 0; i < 200 && !zombie_seen; ++i) {
        zombie_seen = mailroom::core::process_is_gone(child);
        if (!zombie_seen) ::usleep(5000);
    }
    CHECK(zombie_seen);
    ::waitpid(child, nullptr, 0);
    CHECK(mailroom::core::process_is_gone(child));
    CHECK_FALSE(mailroom::core::process_is_gone(::getpid()));
}
