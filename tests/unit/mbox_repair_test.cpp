// Locking and crash repair of MboxWriter: lock timeouts, stale and dead dotlocks, and
// writers that die (SIGXFSZ under RLIMIT_FSIZE) or fail (EFBIG) in the middle of an append.
#include <grp.h>
#include <signal.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <catch2/catch.hpp>
#include <chrono>
#include <filesystem>
#include <string>
#include <vector>

#include "delivery/mbox_repair.hpp"
#include "delivery/mbox_writer.hpp"
#include "support/test_support.hpp"
#include "unit/mbox_test_support.hpp"

using mailroom::mail::DeliveryInfo;
using mailroom::mail::LockKind;
using mailroom::mail::MboxWriter;
using namespace mailroom::test;
using namespace mbox_test;
using namespace std::chrono_literals;

namespace {

DeliveryInfo with_locks(const std::string& path, std::vector<LockKind> order,
                        std::chrono::milliseconds timeout = 2000ms) {
    auto info = info_for(path);
    info.locks.order = std::move(order);
    info.locks.timeout = timeout;
    return info;
}

// A record as a writer of ours leaves it: PID, old size, and the mailbox's device and inode.
std::string record_for(pid_t pid, uint64_t size, const std::string& mailbox) {
    struct stat st {};
    REQUIRE(::stat(mailbox.c_str(), &st) == 0);
    return std::to_string(pid) + " " + std::to_string(size) + " " + std::to_string(st.st_dev) + " " +
           std::to_string(st.st_ino) + "\n";
}

std::string big_body() {
    std::string body = "Subject: big\n\n";
    while (body.size() < 300'000) body += "From a line that is quoted, and filler text after it\n";
    return body;
}

// Delivers in a child whose file size limit stops the append part-way. With SIGXFSZ
// left at its default the child is killed mid-append (a crash); ignored, the write
// fails with EFBIG. Returns the child's wait status.
int deliver_with_size_limit(const DeliveryInfo& info, const std::string& body, off_t limit, bool crash) {
    pid_t pid = ::fork();
    REQUIRE(pid >= 0);
    if (pid == 0) {
        struct rlimit no_core {0, 0};
        ::setrlimit(RLIMIT_CORE, &no_core);
        struct rlimit fsize {static_cast<rlim_t>(limit), static_cast<rlim_t>(limit)};
        ::signal(SIGXFSZ, crash ? SIG_DFL : SIG_IGN);
        auto m = message(body);
        ::setrlimit(RLIMIT_FSIZE, &fsize);
        auto status = MboxWriter().deliver(m, info);
        bool efbig = status.is_temporary() && status.text().find("File too large") != std::string::npos;
        ::_exit(efbig ? 0 : 1);
    }
    int status = 0;
    REQUIRE(::waitpid(pid, &status, 0) == pid);
    return status;
}

}  // namespace

TEST_CASE("a mailbox fcntl-locked by another process defers 4.2.0 after the lock timeout") {
    TempDir dir;
    std::string path = dir.path + "/bob";
    spit(path, "");
    REQUIRE(::chmod(path.c_str(), 0600) == 0);
    pid_t holder = hold_lock_in_child(path, 30s);
    auto start = std::chrono::steady_clock::now();
    auto status = MboxWriter().deliver(message("hi\n"), with_locks(path, {LockKind::fcntl, LockKind::dotlock}, 300ms));
    double took = seconds_since(start);
    ::kill(holder, SIGKILL);
    ::waitpid(holder, nullptr, 0);
    CHECK(status.code() == "4.2.0");
    CHECK(status.to_sysexit() == 75);
    CHECK(status.text() == "cannot lock mailbox " + path + ": timed out after 0.3s");
    CHECK(took >= 0.29);
    // The holder keeps the lock for 30 s: the bound tells giving up at the timeout
    // from waiting for the holder, with room for a loaded host.
    CHECK(took < 15.0);
    CHECK(slurp(path).empty());
    CHECK_FALSE(std::filesystem::exists(path + ".lock"));
}

TEST_CASE("a live writer's dotlock and record are never acted on") {
    TempDir dir;
    std::string path = dir.path + "/bob";
    spit(path, "From x Thu Mar  5 07:08:09 2026\npartial");
    REQUIRE(::chmod(path.c_str(), 0600) == 0);
    spit(path + ".lock", std::to_string(::getpid()) + " 0\n");
    auto status = MboxWriter().deliver(message("hi\n"), with_locks(path, {LockKind::dotlock}, 200ms));
    CHECK(status.code() == "4.2.0");
    CHECK(slurp(path) == "From x Thu Mar  5 07:08:09 2026\npartial");
    CHECK(std::filesystem::exists(path + ".lock"));
}

TEST_CASE("a stale dotlock older than 5 minutes is removed and the delivery goes ahead") {
    TempDir dir;
    std::string path = dir.path + "/bob";
    spit(path + ".lock", "");  // foreign lock, no record
    age(path + ".lock", 6min);
    auto status = MboxWriter().deliver(message("hi\n"), with_locks(path, {LockKind::fcntl, LockKind::dotlock}));
    CHECK(status.is_ok());
    CHECK_FALSE(std::filesystem::exists(path + ".lock"));
}

TEST_CASE("a dead writer's dotlock is taken over and its torn tail cut before the next message") {
    use_utc();
    TempDir dir;
    std::string path = dir.path + "/bob";
    auto order = GENERATE(std::vector<LockKind>{LockKind::dotlock},
                          std::vector<LockKind>{LockKind::fcntl, LockKind::dotlock},
                          std::vector<LockKind>{LockKind::dotlock, LockKind::fcntl});
    REQUIRE(MboxWriter().deliver(message("one\n"), with_locks(path, order)).is_ok());
    std::string before = slurp(path);
    spit(path + ".lock", record_for(dead_pid(), before.size(), path));
    std::string torn = "From alice@example.org Thu Mar  5 07:08:09 2026\nReturn-Path: <alice@exa";
    spit(path, torn, true);
    auto status = MboxWriter().deliver(message("two\n"), with_locks(path, order));
    CHECK(status.is_ok());
    CHECK(status.text() == "delivered to mailbox (first cut " + std::to_string(torn.size()) +
                               " bytes left by an interrupted delivery)");
    CHECK(slurp(path) == before + delivered("two\n"));
    CHECK_FALSE(std::filesystem::exists(path + ".lock"));
}

TEST_CASE("a stale dotlock whose writer still lives is removed but nothing is cut") {
    use_utc();
    TempDir dir;
    std::string path = dir.path + "/bob";
    REQUIRE(MboxWriter().deliver(message("one\n"), with_locks(path, {LockKind::dotlock})).is_ok());
    std::string before = slurp(path);
    // Our own PID: alive. A slow writer still appending after 5 minutes looks like this.
    spit(path + ".lock", record_for(::getpid(), before.size(), path));
    age(path + ".lock", 6min);
    std::string in_progress = "From alice@example.org Thu Mar  5 07:08:09 2026\nSubject: slow\n\nstill wri";
    spit(path, in_progress, true);
    auto status = MboxWriter().deliver(message("two\n"), with_locks(path, {LockKind::dotlock}));
    CHECK(status.is_ok());
    CHECK(status.text() == "delivered to mailbox");
    CHECK(slurp(path).substr(0, before.size() + in_progress.size()) == before + in_progress);
}

TEST_CASE("in fcntl-only mode a leftover append record repairs the mailbox") {
    use_utc();
    TempDir dir;
    std::string path = dir.path + "/bob";
    REQUIRE(MboxWriter().deliver(message("one\n"), with_locks(path, {LockKind::fcntl})).is_ok());
    CHECK_FALSE(std::filesystem::exists(path + ".mailroom-append"));  // removed after success
    std::string before = slurp(path);
    spit(path + ".mailroom-append", record_for(999999, before.size(), path));
    spit(path, "From alice@example.org Thu Mar  5 07:08:09 2026\nSubject: torn\n\nhalf a li", true);
    auto status = MboxWriter().deliver(message("two\n"), with_locks(path, {LockKind::fcntl}));
    CHECK(status.is_ok());
    CHECK(slurp(path) == before + delivered("two\n"));
    CHECK_FALSE(std::filesystem::exists(path + ".mailroom-append"));
}

TEST_CASE("a torn tail after the separator we add to an unterminated mailbox is cut") {
    use_utc();
    TempDir dir;
    std::string path = dir.path + "/bob";
    std::string before = "From x Thu Mar  5 07:08:09 2026\n\nno newline";
    spit(path, before + "\n\nFrom alice@example.org Thu Mar  5 07:08:09 2026\ntorn");
    REQUIRE(::chmod(path.c_str(), 0600) == 0);
    spit(path + ".mailroom-append", record_for(999999, before.size(), path));
    CHECK(MboxWriter().deliver(message("two\n"), with_locks(path, {LockKind::fcntl})).is_ok());
    CHECK(slurp(path) == before + "\n\n" + delivered("two\n"));
}

TEST_CASE("a tail that holds a later writer's message is not cut") {
    use_utc();
    TempDir dir;
    std::string path = dir.path + "/bob";
    REQUIRE(MboxWriter().deliver(message("one\n"), with_locks(path, {LockKind::fcntl})).is_ok());
    std::string before = slurp(path);
    spit(path + ".mailroom-append", record_for(999999, before.size(), path));
    std::string tail = "From alice@example.org Thu Mar  5 07:08:09 2026\ntorn\n"
                       "From procmail Thu Mar  5 07:08:09 2026\n\nkept\n\n";
    spit(path, tail, true);
    CHECK(MboxWriter().deliver(message("two\n"), with_locks(path, {LockKind::fcntl})).is_ok());
    CHECK(slurp(path) == before + tail + delivered("two\n"));
    // Nor is a tail that does not start as our From_ line does.
    std::string now = slurp(path);
    spit(path + ".mailroom-append", record_for(999999, now.size(), path));
    spit(path, "garbage\n", true);
    CHECK(MboxWriter().deliver(message("three\n"), with_locks(path, {LockKind::fcntl})).is_ok());
    CHECK(slurp(path) == now + "garbage\n\n" + delivered("three\n"));
}

TEST_CASE("an append record is not trusted without the fcntl lock") {
    TempDir dir;
    std::string path = dir.path + "/bob";
    std::string torn = "From alice@example.org Thu Mar  5 07:08:09 2026\ntorn";
    spit(path, torn);
    REQUIRE(::chmod(path.c_str(), 0600) == 0);
    spit(path + ".mailroom-append", record_for(::getpid(), 0, path));
    CHECK(MboxWriter().deliver(message("two\n"), with_locks(path, {LockKind::dotlock})).is_ok());
    CHECK(slurp(path).substr(0, torn.size()) == torn);
}

TEST_CASE("a writer killed mid-append is repaired by the next delivery") {
    use_utc();
    auto order = GENERATE(std::vector<LockKind>{LockKind::fcntl},
                          std::vector<LockKind>{LockKind::fcntl, LockKind::dotlock},
                          std::vector<LockKind>{LockKind::dotlock});
    TempDir dir;
    std::string path = dir.path + "/bob";
    REQUIRE(MboxWriter().deliver(message("one\n"), with_locks(path, order)).is_ok());
    std::string before = slurp(path);
    auto info = with_locks(path, order);
    int status = deliver_with_size_limit(info, big_body(), static_cast<off_t>(before.size() + 100'000), true);
    REQUIRE(WIFSIGNALED(status));
    CHECK(WTERMSIG(status) == SIGXFSZ);
    CHECK(slurp(path).size() > before.size());  // the torn tail is there
    auto next = MboxWriter().deliver(message("two\n"), info);
    CHECK(next.is_ok());
    CHECK(next.text().find("first cut") != std::string::npos);
    CHECK(slurp(path) == before + delivered("two\n"));
    CHECK_FALSE(std::filesystem::exists(path + ".lock"));
    CHECK_FALSE(std::filesystem::exists(path + ".mailroom-append"));
}

TEST_CASE("on a write error the mailbox is truncated back to its old size") {
    use_utc();
    auto order = GENERATE(std::vector<LockKind>{LockKind::fcntl},
                          std::vector<LockKind>{LockKind::fcntl, LockKind::dotlock});
    TempDir dir;
    std::string path = dir.path + "/bob";
    REQUIRE(MboxWriter().deliver(message("one\n"), with_locks(path, order)).is_ok());
    std::string before = slurp(path);
    int status = deliver_with_size_limit(with_locks(path, order), big_body(),
                                         static_cast<off_t>(before.size() + 100'000), false);
    REQUIRE(WIFEXITED(status));
    CHECK(WEXITSTATUS(status) == 0);  // a temporary status naming EFBIG
    CHECK(slurp(path) == before);
    CHECK_FALSE(std::filesystem::exists(path + ".lock"));
    CHECK_FALSE(std::filesystem::exists(path + ".mailroom-append"));
}

namespace {

using mailroom::mail::FoundRecord;
using mailroom::mail::judge_record;

constexpr uid_t owner_uid = 20002;  // owns the mailbox
constexpr uid_t other_uid = 20001;  // plants files beside it

// Delivers in a child switched to owner_uid (we are root); returns "CODE TEXT".
std::string deliver_as_owner(const DeliveryInfo& info, const std::string& body) {
    return mailroom::test::output_of_child_as(owner_uid, [&] {
        auto status = MboxWriter().deliver(message(body), info);
        return status.code() + " " + status.text();
    });
}

}  // namespace

TEST_CASE("judge_record trusts only the owner's single-linked record bound to this mailbox") {
    struct stat mailbox {};
    mailbox.st_dev = 2049;
    mailbox.st_ino = 131;
    mailbox.st_size = 5000;
    auto found = [](std::string text, uid_t owner = 1000, nlink_t links = 1) {
        FoundRecord f;
        f.path = "/var/mail/bob.mailroom-append";
        f.record = mailroom::core::parse_lock_record(text);
        f.owner = owner;
        f.links = links;
        return f;
    };
    struct Case {
        FoundRecord record;
        std::optional<uint64_t> cut_to;
        std::string ignored;
    } cases[] = {
        {found("77 4000 2049 131\n"), 4000u, ""},
        {found("77 5000 2049 131\n"), 5000u, ""},               // as long as the mailbox: cuts nothing
        {found("77 4000 2049 131\n", 0), 4000u, ""},            // root's
        {found("77 4000 2049 131\n", 1001), std::nullopt, "owned by uid 1001"},
        {found("77 4000 2049 131\n", 1000, 2), std::nullopt, "has 2 links"},
        {found("77 4000\n"), std::nullopt, "old format without the mailbox's device and inode"},
        {found("77 4000 2049 132\n"), std::nullopt, "written for another file (device 2049, inode 132)"},
        {found("77 4000 2050 131\n"), std::nullopt, "written for another file (device 2050, inode 131)"},
        {found("77 5001 2049 131\n"), std::nullopt, "offset 5001 is past the end of the mailbox (5000 bytes)"},
        {found("garbage"), std::nullopt, "cannot be parsed"},
        {found("77\n"), std::nullopt, ""},  // a plain dotlock: nothing to act on, nothing to say
        {found("77\n", 1001), std::nullopt, "owned by uid 1001"},
    };
    for (const auto& c : cases) {
        auto verdict = judge_record(c.record, mailbox, 1000);
        INFO("owner " << c.record.owner << " links " << c.record.links << " expecting " << c.ignored);
        CHECK(verdict.cut_to == c.cut_to);
        CHECK(verdict.ignored == c.ignored);
    }
    FoundRecord link;
    link.path = "/var/mail/bob.lock";
    link.unreadable = "is a symbolic link";
    link.owner = 1000;
    CHECK(judge_record(link, mailbox, 1000).ignored == "is a symbolic link");
    CHECK_FALSE(judge_record(link, mailbox, 1000).cut_to);
}

TEST_CASE("a sidecar that is a symlink, a FIFO or unreadable is reported, never followed") {
    TempDir dir;
    std::string path = dir.path + "/bob", sidecar = path + ".mailroom-append";
    CHECK_FALSE(mailroom::mail::read_append_record(sidecar));  // none there
    REQUIRE(::symlink(path.c_str(), sidecar.c_str()) == 0);
    auto link = mailroom::mail::read_append_record(sidecar);
    REQUIRE(link);
    CHECK(link->unreadable == "is a symbolic link");
    REQUIRE(::unlink(sidecar.c_str()) == 0);
    REQUIRE(::mkfifo(sidecar.c_str(), 0600) == 0);
    auto fifo = mailroom::mail::read_append_record(sidecar);  // must not hang
    REQUIRE(fifo);
    CHECK(fifo->unreadable == "is not a regular file");
}

TEST_CASE("an old-format record (PID SIZE) is never acted on, and the delivery says so") {
    use_utc();
    TempDir dir;
    std::string path = dir.path + "/bob";
    REQUIRE(MboxWriter().deliver(message("one\n"), with_locks(path, {LockKind::fcntl})).is_ok());
    std::string before = slurp(path);
    std::string tail = delivered("two\n");  // a complete message: exactly what an attacker would cut
    spit(path, tail, true);
    spit(path + ".mailroom-append", "999999 " + std::to_string(before.size()) + "\n");
    auto status = MboxWriter().deliver(message("three\n"), with_locks(path, {LockKind::fcntl}));
    CHECK(status.is_ok());
    CHECK(status.text() == "delivered to mailbox (ignored crash-repair record " + path +
                               ".mailroom-append: old format without the mailbox's device and inode)");
    CHECK(slurp(path) == before + tail + delivered("three\n"));
}

TEST_CASE("a record written for another mailbox file is not acted on") {
    use_utc();
    TempDir dir;
    std::string path = dir.path + "/bob", other = dir.path + "/other";
    spit(other, "");
    REQUIRE(MboxWriter().deliver(message("one\n"), with_locks(path, {LockKind::dotlock})).is_ok());
    std::string before = slurp(path);
    spit(path, delivered("two\n"), true);
    spit(path + ".lock", record_for(dead_pid(), before.size(), other));
    auto status = MboxWriter().deliver(message("three\n"), with_locks(path, {LockKind::dotlock}));
    CHECK(status.is_ok());
    CHECK(status.text().find("ignored crash-repair record " + path + ".lock: written for another file") !=
          std::string::npos);
    CHECK(slurp(path) == before + delivered("two\n") + delivered("three\n"));
}

TEST_CASE("a record another user planted is ignored, naming its owner") {
    if (::geteuid() != 0) {
        WARN("skipped: needs root to plant another user's file");
        return;
    }
    use_utc();
    for (auto order : {std::vector<LockKind>{LockKind::fcntl}, std::vector<LockKind>{LockKind::fcntl, LockKind::dotlock},
                       std::vector<LockKind>{LockKind::dotlock}}) {
        TempDir dir;
        std::string path = dir.path + "/bob";
        REQUIRE(MboxWriter().deliver(message("one\n"), with_locks(path, order)).is_ok());
        std::string before = slurp(path);
        spit(path, delivered("two\n"), true);
        bool dotlock_only = order.size() == 1 && order[0] == LockKind::dotlock;
        // The sidecar counts under the fcntl lock; the dotlock's record when we take it over.
        std::string planted = path + (dotlock_only ? ".lock" : ".mailroom-append");
        spit(planted, record_for(dead_pid(), before.size(), path));
        REQUIRE(::chown(planted.c_str(), other_uid, other_uid) == 0);
        auto status = MboxWriter().deliver(message("three\n"), with_locks(path, order));
        CHECK(status.is_ok());
        CHECK(status.text() == "delivered to mailbox (ignored crash-repair record " + planted + ": owned by uid " +
                                   std::to_string(other_uid) + ")");
        CHECK(slurp(path) == before + delivered("two\n") + delivered("three\n"));
    }
}

TEST_CASE("a stale dotlock that may not be removed: fcntl alone after the stale age, or a deferral") {
    if (::geteuid() != 0) {
        WARN("skipped: needs root to plant a lock the owner may not remove");
        return;
    }
    use_utc();
    TempDir dir;
    REQUIRE(::chmod(dir.path.c_str(), 01777) == 0);  // sticky: only a file's owner removes it
    std::string path = dir.path + "/bob", lock = path + ".lock";
    spit(path, "");
    REQUIRE(::chown(path.c_str(), owner_uid, owner_uid) == 0);
    REQUIRE(::chmod(path.c_str(), 0600) == 0);
    spit(lock, "1\n");  // root's, PID 1: alive
    auto info = with_locks(path, {LockKind::fcntl, LockKind::dotlock}, 300ms);
    info.uid = owner_uid;
    info.gid = owner_uid;
    info.locks.stale_dotlock_age = std::chrono::seconds(2);  // injected: no 5-minute wait
    // Fresh: a live writer's lock, waited for.
    CHECK(deliver_as_owner(info, "one\n") == "4.2.0 cannot lock mailbox " + path + ": timed out after 0.3s");
    age(lock, 10s);
    // Stale but ours to leave: delivered under the fcntl lock alone.
    for (auto order : {std::vector<LockKind>{LockKind::fcntl, LockKind::dotlock},
                       std::vector<LockKind>{LockKind::dotlock, LockKind::fcntl}}) {
        info.locks.order = order;
        CHECK(deliver_as_owner(info, "two\n") == "2.0.0 delivered to mailbox (under the fcntl lock alone: "
                                                 "lock " + lock + " (uid 0, stale) cannot be removed (Operation not "
                                                 "permitted))");
    }
    info.locks.order = {LockKind::dotlock};
    CHECK(deliver_as_owner(info, "three\n") == "4.2.0 cannot lock mailbox " + path + ": lock " + lock +
                                                   " (uid 0, stale) cannot be removed (Operation not permitted), and "
                                                   "mailbox_lock has no fcntl lock to deliver under instead");
    CHECK(slurp(path) == delivered("two\n") + delivered("two\n"));
    CHECK(slurp(lock) == "1\n");
}
