// Locking and crash repair of MboxWriter: lock timeouts, stale and dead dotlocks, and
// writers that die (SIGXFSZ under RLIMIT_FSIZE) or fail (EFBIG) in the middle of an append.
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

#include "mail/mbox_writer.hpp"
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
    spit(path + ".lock", std::to_string(dead_pid()) + " " + std::to_string(before.size()) + "\n");
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
    spit(path + ".lock", std::to_string(::getpid()) + " " + std::to_string(before.size()) + "\n");
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
    spit(path + ".mailroom-append", "999999 " + std::to_string(before.size()) + "\n");
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
    spit(path + ".mailroom-append", "999999 " + std::to_string(before.size()) + "\n");
    CHECK(MboxWriter().deliver(message("two\n"), with_locks(path, {LockKind::fcntl})).is_ok());
    CHECK(slurp(path) == before + "\n\n" + delivered("two\n"));
}

TEST_CASE("a tail that holds a later writer's message is not cut") {
    use_utc();
    TempDir dir;
    std::string path = dir.path + "/bob";
    REQUIRE(MboxWriter().deliver(message("one\n"), with_locks(path, {LockKind::fcntl})).is_ok());
    std::string before = slurp(path);
    spit(path + ".mailroom-append", "999999 " + std::to_string(before.size()) + "\n");
    std::string tail = "From alice@example.org Thu Mar  5 07:08:09 2026\ntorn\n"
                       "From procmail Thu Mar  5 07:08:09 2026\n\nkept\n\n";
    spit(path, tail, true);
    CHECK(MboxWriter().deliver(message("two\n"), with_locks(path, {LockKind::fcntl})).is_ok());
    CHECK(slurp(path) == before + tail + delivered("two\n"));
    // Nor is a tail that does not start as our From_ line does.
    std::string now = slurp(path);
    spit(path + ".mailroom-append", "999999 " + std::to_string(now.size()) + "\n");
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
    spit(path + ".mailroom-append", std::to_string(::getpid()) + " 0\n");
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
