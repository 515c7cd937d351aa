// Result<T>: reading the wrong side (value() of an error, error() of a value) is a
// bug that must stop the program in every build type, release included, with a
// message saying what happened. Checked by running the misuse in a forked child.
#include "core/result.hpp"

#include <fcntl.h>
#include <signal.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

#include <catch2/catch.hpp>
#include <cerrno>
#include <functional>
#include <string>

using mailroom::core::Result;

namespace {

struct ChildOutcome {
    int status = 0;
    std::string err;  // what the child wrote to stderr
};

// Runs `misuse` in a child whose stderr is a pipe; the child exits 0 if misuse
// returns (the bug would go unnoticed), so the parent sees either a signal or 0.
ChildOutcome run_in_child(const std::function<void()>& misuse) {
    int fds[2];
    REQUIRE(::pipe(fds) == 0);
    pid_t pid = ::fork();
    REQUIRE(pid >= 0);
    if (pid == 0) {
        ::dup2(fds[1], STDERR_FILENO);
        ::close(fds[0]);
        ::close(fds[1]);
        // No core file from an intended abort.
        struct rlimit no_core {0, 0};
        ::setrlimit(RLIMIT_CORE, &no_core);
        ::signal(SIGABRT, SIG_DFL);
        misuse();
        ::_exit(0);
    }
    ::close(fds[1]);
    ChildOutcome out;
    char buf[512];
    ssize_t n;
    while ((n = ::read(fds[0], buf, sizeof buf)) > 0 || (n < 0 && errno == EINTR)) {
        if (n > 0) out.err.append(buf, static_cast<size_t>(n));
    }
    ::close(fds[0]);
    while (::waitpid(pid, &out.status, 0) < 0 && errno == EINTR) {
    }
    return out;
}

bool aborted(const ChildOutcome& out) {
    return WIFSIGNALED(out.status) && WTERMSIG(out.status) == SIGABRT;
}

Result<int> failed_int() { return mailroom::core::unexpected_errno("open /var/mail/bob", ENOENT); }
Result<void> failed_void() { return mailroom::core::unexpected_input("bad line"); }

}  // namespace

TEST_CASE("Result::value() on an error aborts with a message in every build", "[result]") {
    SECTION("Result<int>") {
        auto out = run_in_child([] {
            auto r = failed_int();
            volatile int v = r.value();
            (void)v;
        });
        CHECK(aborted(out));
        CHECK(out.err.find("mailroom: bug: Result::value() called on an error") != std::string::npos);
        CHECK(out.err.find("open /var/mail/bob") != std::string::npos);
    }
    SECTION("Result<int> through operator*") {
        auto out = run_in_child([] {
            auto r = failed_int();
            volatile int v = *r;
            (void)v;
        });
        CHECK(aborted(out));
    }
    SECTION("Result<void>") {
        auto out = run_in_child([] { failed_void().value(); });
        CHECK(aborted(out));
        CHECK(out.err.find("Result::value() called on an error: bad line") != std::string::npos);
    }
}

TEST_CASE("Result::error() on a value aborts with a message in every build", "[result]") {
    SECTION("Result<int>") {
        auto out = run_in_child([] {
            Result<int> r(3);
            volatile int e = r.error().errno_value();
            (void)e;
        });
        CHECK(aborted(out));
        CHECK(out.err.find("mailroom: bug: Result::error() called on a value") != std::string::npos);
    }
    SECTION("Result<void>") {
        auto out = run_in_child([] {
            Result<void> r;
            volatile int e = r.error().errno_value();
            (void)e;
        });
        CHECK(aborted(out));
        CHECK(out.err.find("Result::error() called on a value") != std::string::npos);
    }
}

TEST_CASE("Result: the right side reads normally", "[result]") {
    Result<int> ok(7);
    CHECK(ok.value() == 7);
    CHECK(failed_int().error().errno_value() == ENOENT);
    Result<void> fine;
    fine.value();
    CHECK(failed_void().error().message() == "bad line");
}
