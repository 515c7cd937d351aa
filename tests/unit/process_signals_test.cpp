// core/process_signals: SIGPIPE and SIGXFSZ ignored by our programs, back to their
// defaults for a program they exec. Each case runs in a forked child, so the test
// binary's own dispositions never change.
#include "core/process_signals.hpp"

#include <signal.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

#include <catch2/catch.hpp>
#include <cerrno>
#include <functional>

#include "support/test_support.hpp"

namespace {

// The wait status of a child that runs body and exits with what it returns.
int in_child(const std::function<int()>& body) {
    pid_t pid = ::fork();
    REQUIRE(pid >= 0);
    if (pid == 0) ::_exit(body());
    int status = 0;
    REQUIRE(::waitpid(pid, &status, 0) == pid);
    return status;
}

// A child exec'ing a shell that sends itself SIGPIPE and then exits 0: killed when
// the shell got the default disposition.
int shell_sending_itself_sigpipe(bool restore) {
    mailroom::core::ignore_write_signals();
    if (restore) mailroom::core::restore_default_signals();
    ::execl("/bin/sh", "sh", "-c", "kill -PIPE $$; exit 0", static_cast<char*>(nullptr));
    return 127;
}

}  // namespace

TEST_CASE("With the write signals ignored, a closed pipe gives EPIPE and a file past RLIMIT_FSIZE EFBIG", "[signals]") {
    mailroom::test::TempDir tmp;
    int status = in_child([&] {
        mailroom::core::ignore_write_signals();
        int fds[2];
        if (::pipe(fds) != 0) return 10;
        ::close(fds[0]);
        if (::write(fds[1], "x", 1) != -1 || errno != EPIPE) return 11;
        struct rlimit limit {100, 100};
        if (::setrlimit(RLIMIT_FSIZE, &limit) != 0) return 12;
        FILE* file = std::fopen((tmp.path + "/big").c_str(), "w");
        if (!file) return 13;
        char block[200] = {};
        if (::write(::fileno(file), block, sizeof block) != 100) return 14;  // short: up to the limit
        if (::write(::fileno(file), block, sizeof block) != -1 || errno != EFBIG) return 15;
        return 0;
    });
    REQUIRE(WIFEXITED(status));
    CHECK(WEXITSTATUS(status) == 0);
}

TEST_CASE("restore_default_signals gives an exec'd program SIGPIPE back", "[signals]") {
    int restored = in_child([] { return shell_sending_itself_sigpipe(true); });
    CHECK(WIFSIGNALED(restored));
    CHECK((WIFSIGNALED(restored) && WTERMSIG(restored) == SIGPIPE));
    // Without it the shell inherits the ignored signal: what the reset is for.
    int inherited = in_child([] { return shell_sending_itself_sigpipe(false); });
    REQUIRE(WIFEXITED(inherited));
    CHECK(WEXITSTATUS(inherited) == 0);
}
