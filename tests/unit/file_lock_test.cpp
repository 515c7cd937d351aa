#include <fcntl.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <catch2/catch.hpp>
#include <chrono>
#include <string>

#include "core/file_lock.hpp"
#include "core/unique_fd.hpp"
#include "support/test_support.hpp"

using mailroom::core::FileLock;
using mailroom::core::UniqueFd;
using namespace mailroom::test;
using namespace std::chrono_literals;

namespace {

// An empty file, mode 0600, in a fresh folder.
struct TempFile {
    TempDir dir;
    std::string path = dir.path + "/mbox";
    TempFile() {
        UniqueFd fd(::open(path.c_str(), O_RDWR | O_CREAT, 0600));
        REQUIRE(fd);
    }
};

// In a child: can another process lock the file now?
bool another_process_can_lock(const std::string& path) {
    pid_t pid = ::fork();
    REQUIRE(pid >= 0);
    if (pid == 0) {
        int fd = ::open(path.c_str(), O_RDWR);
        struct flock fl {};
        fl.l_type = F_WRLCK;
        fl.l_whence = SEEK_SET;
        ::_exit(fd >= 0 && ::fcntl(fd, F_SETLK, &fl) == 0 ? 0 : 1);
    }
    int status = 0;
    REQUIRE(::waitpid(pid, &status, 0) == pid);
    return WIFEXITED(status) && WEXITSTATUS(status) == 0;
}

}  // namespace

TEST_CASE("an fcntl lock is held for the whole file until the FileLock is destroyed") {
    TempFile file;
    UniqueFd fd(::open(file.path.c_str(), O_RDWR));
    REQUIRE(fd);
    {
        auto lock = FileLock::acquire(fd.get(), 1s);
        REQUIRE(lock);
        CHECK(lock->held());
        CHECK_FALSE(another_process_can_lock(file.path));
    }
    CHECK(another_process_can_lock(file.path));
}

TEST_CASE("release unlocks early and a moved-from FileLock unlocks nothing") {
    TempFile file;
    UniqueFd fd(::open(file.path.c_str(), O_RDWR));
    auto lock = FileLock::acquire(fd.get(), 1s);
    REQUIRE(lock);
    FileLock moved = std::move(*lock);
    CHECK_FALSE(lock->held());
    CHECK_FALSE(another_process_can_lock(file.path));
    moved.release();
    CHECK(another_process_can_lock(file.path));
}

TEST_CASE("a lock held by another process times out with EWOULDBLOCK after the timeout") {
    TempFile file;
    pid_t holder = hold_lock_in_child(file.path, 10s);
    UniqueFd fd(::open(file.path.c_str(), O_RDWR));
    auto start = std::chrono::steady_clock::now();
    auto lock = FileLock::acquire(fd.get(), 300ms);
    double took = seconds_since(start);
    ::kill(holder, SIGKILL);
    ::waitpid(holder, nullptr, 0);
    REQUIRE_FALSE(lock);
    CHECK(lock.error().errno_value() == EWOULDBLOCK);
    CHECK(lock.error().message().find("timed out") != std::string::npos);
    CHECK(took >= 0.29);
    CHECK(took < 30.0);  // generous: a loaded machine must not fail it
}

TEST_CASE("a lock is taken within milliseconds of its holder letting go") {
    TempFile file;
    pid_t holder = hold_lock_in_child(file.path, 150ms);
    UniqueFd fd(::open(file.path.c_str(), O_RDWR));
    auto start = std::chrono::steady_clock::now();
    auto lock = FileLock::acquire(fd.get(), 60s);
    double took = seconds_since(start);
    ::waitpid(holder, nullptr, 0);
    REQUIRE(lock);
    CHECK(took < 30.0);  // the holder's release was noticed, not waited out (generous bound)
}

TEST_CASE("a bad fd fails at once instead of waiting") {
    auto start = std::chrono::steady_clock::now();
    auto lock = FileLock::acquire(-1, 60s);
    REQUIRE_FALSE(lock);
    CHECK(lock.error().errno_value() == EBADF);
    CHECK(seconds_since(start) < 30.0);  // not the 60 s timeout
}
