#include <grp.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstdint>

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
        REQUIRE(lock->set_record({::getpid(), 1234, std::nullopt}));
        CHECK(slurp(mbox + ".lock") == std::to_string(::getpid()) + " 1234\n");
        REQUIRE(lock->set_record({::getpid(), 1234, mailroom::core::FileId{7, 99}}));
        CHECK(slurp(mbox + ".lock") == std::to_string(::getpid()) + " 1234 7 99\n");
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
    CHECK(took < 30.0);  // generous: a loaded machine must not fail it
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
    auto lock = DotLock::acquire(mbox, quick(60s));
    CHECK(std::chrono::steady_clock::now() - start < 30s);  // not waited out: taken over at once
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

TEST_CASE("a record names the mailbox's device and inode, the older PID SIZE form still parses", "[dot_lock]") {
    auto r = parse_lock_record("1234 5678 2049 131\n");
    REQUIRE(r);
    CHECK(r->size == 5678u);
    REQUIRE(r->file);
    CHECK(r->file->dev == 2049u);
    CHECK(r->file->ino == 131u);
    auto old = parse_lock_record("1234 5678\n");
    REQUIRE(old);
    CHECK_FALSE(old->file);
    CHECK_FALSE(parse_lock_record("1234 5678 2049\n"));
    CHECK_FALSE(parse_lock_record("1234 5678 2049 \n"));
    CHECK_FALSE(parse_lock_record("1234 5678 2049 131"));  // still being written
    CHECK_FALSE(parse_lock_record("1234 5678 2049 131 7\n"));
    mailroom::core::LockRecord longest{2147483647, UINT64_MAX, mailroom::core::FileId{~dev_t{0}, ~ino_t{0}}};
    std::string text = format_lock_record(longest);
    CHECK(text.size() <= 74);
    auto back = parse_lock_record(text);
    REQUIRE(back);
    CHECK(back->file == longest.file);
}

namespace {

constexpr uid_t other_uid = 20001;  // plants the lock
constexpr uid_t owner_uid = 20002;  // owns the mailbox

// Runs fn in a child switched to owner_uid (we are root) and returns what it wrote.
template <typename Fn>
std::string as_owner(Fn fn) {
    return mailroom::test::output_of_child_as(owner_uid, fn);
}

std::string outcome(const mailroom::core::Result<DotLock>& lock) {
    if (lock) return "locked";
    return std::to_string(lock.error().errno_value()) + " " + lock.error().context;
}

}  // namespace

TEST_CASE("a lock of neither the owner nor root is removed at once, whatever its PID and age", "[dot_lock]") {
    TempDir dir;
    std::string mbox = dir.path + "/bob";
    spit(mbox + ".lock", "1\n");  // PID 1 lives for ever; the file is fresh
    DotLockOptions options = quick(60s);
    if (::geteuid() == 0) {
        REQUIRE(::chown((mbox + ".lock").c_str(), other_uid, other_uid) == 0);
        options.owner = owner_uid;
    } else {
        options.owner = ::geteuid() + 1;  // our own file is then another user's
    }
    auto start = std::chrono::steady_clock::now();
    auto lock = DotLock::acquire(mbox, options);
    CHECK(seconds_since(start) < 30.0);  // not waited out (generous bound)
    REQUIRE(lock);
    REQUIRE(lock->taken_over());
    CHECK_FALSE(lock->taken_over()->writer_gone);
    CHECK(lock->taken_over()->owner != *options.owner);
    CHECK(slurp(mbox + ".lock") == std::to_string(::getpid()) + "\n");
    // Without an owner given, the same lock is a live writer's until it is stale.
    lock->release();
    spit(mbox + ".lock", "1\n");
    auto waited = DotLock::acquire(mbox, quick(100ms));
    REQUIRE_FALSE(waited);
    CHECK(waited.error().errno_value() == EWOULDBLOCK);
}

TEST_CASE("a lock that should go but may not be removed is EEXIST at once, a fresh live one is waited for",
          "[dot_lock]") {
    if (::geteuid() != 0) {
        WARN("skipped: needs root to plant another user's lock in a sticky folder");
        return;
    }
    TempDir dir;
    REQUIRE(::chmod(dir.path.c_str(), 01777) == 0);
    std::string mbox = dir.path + "/bob", lock_path = mbox + ".lock";
    // Another user's lock: not waited for, and the sticky bit keeps us from removing it.
    spit(lock_path, "1\n");
    REQUIRE(::chown(lock_path.c_str(), other_uid, other_uid) == 0);
    std::string planted = as_owner([&] {
        return outcome(DotLock::acquire(mbox, DotLockOptions{60s, 300s, owner_uid}));
    });
    CHECK(planted == std::to_string(EEXIST) + " lock " + lock_path + " (uid " + std::to_string(other_uid) +
                         ", not the mailbox owner's) cannot be removed (Operation not permitted)");
    // root's lock with a live PID: waited for while fresh...
    REQUIRE(::unlink(lock_path.c_str()) == 0);
    spit(lock_path, "1\n");
    std::string fresh = as_owner([&] {
        return outcome(DotLock::acquire(mbox, DotLockOptions{200ms, 2s, owner_uid}));
    });
    CHECK(fresh.rfind(std::to_string(EWOULDBLOCK) + " ", 0) == 0);
    // ...and past the (injected, short) stale age it should go, but we may not remove it.
    age(lock_path, 10s);
    std::string stale = as_owner([&] {
        return outcome(DotLock::acquire(mbox, DotLockOptions{60s, 2s, owner_uid}));
    });
    CHECK(stale == std::to_string(EEXIST) + " lock " + lock_path + " (uid 0, stale) cannot be removed (Operation not permitted)");
    CHECK(slurp(lock_path) == "1\n");  // untouched
}

TEST_CASE("another user's lock we may not read or that is a symlink does not stop us", "[dot_lock]") {
    if (::geteuid() != 0) {
        WARN("skipped: needs root to plant another user's lock");
        return;
    }
    TempDir dir;
    REQUIRE(::chmod(dir.path.c_str(), 0777) == 0);  // no sticky bit: we may remove it
    std::string mbox = dir.path + "/bob", lock_path = mbox + ".lock";
    for (bool symlink : {false, true}) {
        if (symlink) {
            REQUIRE(::symlink(mbox.c_str(), lock_path.c_str()) == 0);
            REQUIRE(::lchown(lock_path.c_str(), other_uid, other_uid) == 0);
        } else {
            spit(lock_path, "1 0 1 1\n");
            REQUIRE(::chmod(lock_path.c_str(), 0600) == 0);  // the owner cannot read it
            REQUIRE(::chown(lock_path.c_str(), other_uid, other_uid) == 0);
        }
        std::string got = as_owner([&] {
            auto lock = DotLock::acquire(mbox, DotLockOptions{60s, 300s, owner_uid});
            if (!lock) return outcome(lock);
            return std::string(lock->taken_over() ? "taken over" : "locked");
        });
        INFO("symlink " << symlink);
        // Removed; an unreadable or symlinked lock has no record to report.
        CHECK(got == "locked");
        CHECK_FALSE(std::filesystem::exists(mbox));  // nothing followed the link
    }
}
