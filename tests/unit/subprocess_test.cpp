// core/subprocess: a child in its own process group, with exactly the environment and
// descriptors given, fed and read without deadlock, killed with its group at the
// deadline, never left behind.
#include "core/subprocess.hpp"

#include <fcntl.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <catch2/catch.hpp>
#include <chrono>
#include <string>
#include <thread>

#include "core/process_signals.hpp"
#include "support/test_support.hpp"

using namespace mailroom::core;
using Clock = std::chrono::steady_clock;

namespace {

Clock::time_point in(std::chrono::milliseconds ms) { return Clock::now() + ms; }

SubprocessResult run_shell(const std::string& script, const SubprocessOptions& options = {},
                           const Subprocess::Input& input = {},
                           std::chrono::milliseconds timeout = std::chrono::seconds(20)) {
    auto child = Subprocess::exec({"/bin/sh", "-c", script}, options);
    REQUIRE(child);
    auto result = child->run(input, in(timeout));
    REQUIRE(result);
    return *result;
}

// An input of `total` bytes of 'x' in lines of 64.
Subprocess::Input bytes_of_x(uint64_t total) {
    auto given = std::make_shared<uint64_t>(0);
    return [given, total](char* buf, size_t size) -> Result<size_t> {
        size_t n = static_cast<size_t>(std::min<uint64_t>(size, total - *given));
        for (size_t i = 0; i < n; ++i) buf[i] = (*given + i) % 64 == 63 ? '\n' : 'x';
        *given += n;
        return n;
    };
}

// True once pid is gone or a zombie (then it runs no more; its reaper is init's business).
bool gone_or_dead(pid_t pid) {
    for (int i = 0; i < 200; ++i) {
        std::string stat = mailroom::test::slurp("/proc/" + std::to_string(pid) + "/stat");
        if (stat.empty()) return true;
        auto close = stat.rfind(')');
        if (close != std::string::npos && close + 2 < stat.size() && stat[close + 2] == 'Z') return true;
        std::this_thread::sleep_for(std::chrono::milliseconds(10));
    }
    return false;
}

}  // namespace

TEST_CASE("a child's exit code, or the signal that ended it, is reported", "[subprocess]") {
    auto three = run_shell("exit 3");
    CHECK(three.exited_with(3));
    CHECK(three.signal == 0);
    CHECK_FALSE(three.timed_out);
    auto killed = run_shell("kill -TERM $$");
    CHECK(killed.signal == SIGTERM);
    CHECK(killed.exit_code == -1);
    auto body = Subprocess::start([] { return 42; }, {});
    REQUIRE(body);
    auto result = body->run({}, in(std::chrono::seconds(10)));
    REQUIRE(result);
    CHECK(result->exited_with(42));
}

TEST_CASE("an exec'd program gets exactly the environment given, never the parent's", "[subprocess]") {
    ::setenv("MAILROOM_PARENT_ONLY", "leak", 1);
    SubprocessOptions options;
    options.environment = {"A=1", "B=two words"};
    auto child = Subprocess::exec({"/usr/bin/env"}, options);
    ::unsetenv("MAILROOM_PARENT_ONLY");
    REQUIRE(child);
    auto result = child->run({}, in(std::chrono::seconds(10)));
    REQUIRE(result);
    CHECK(result->output == "A=1\nB=two words\n");
}

TEST_CASE("descriptors beyond 0-2 are closed in the child, but those named to keep", "[subprocess]") {
    int inherited = ::open("/dev/null", O_RDONLY);  // no O_CLOEXEC: only the launcher closes it
    int kept = ::open("/dev/null", O_RDONLY);
    REQUIRE(inherited > 2);
    REQUIRE(kept > 2);
    SubprocessOptions options;
    options.keep_fds = {kept};
    auto body = Subprocess::start(
        [&] {
            for (int fd = 3; fd < 1024; ++fd) {
                if (fd != kept && ::fcntl(fd, F_GETFD) != -1) return 10;
            }
            return ::fcntl(kept, F_GETFD) == -1 ? 11 : 0;
        },
        options);
    REQUIRE(body);
    auto result = body->run({}, in(std::chrono::seconds(10)));
    REQUIRE(result);
    CHECK(result->exited_with(0));

    auto shell = run_shell("[ -e /proc/$$/fd/" + std::to_string(inherited) + " ] && echo open || echo closed");
    CHECK(shell.output == "closed\n");
    ::close(inherited);
    ::close(kept);
}

TEST_CASE("at the deadline the whole process group is killed, a grandchild included", "[subprocess]") {
    auto started = Clock::now();
    auto result = run_shell("sleep 30 & echo $!; sleep 30", {}, {}, std::chrono::milliseconds(500));
    CHECK(mailroom::test::seconds_since(started) < 5);
    CHECK(result.timed_out);
    CHECK(result.signal == SIGKILL);
    pid_t grandchild = std::stoi(result.output);
    CHECK(gone_or_dead(grandchild));
}

TEST_CASE("a grandchild left running after the child exits is killed with the group", "[subprocess]") {
    auto started = Clock::now();
    // The grandchild holds the output pipe open: the run waits a short grace, no more.
    auto result = run_shell("sleep 30 & echo $!; exit 0");
    CHECK(mailroom::test::seconds_since(started) < 5);
    CHECK(result.exited_with(0));
    CHECK_FALSE(result.timed_out);
    CHECK(gone_or_dead(std::stoi(result.output)));
}

TEST_CASE("1 MB through a child that echoes it: no deadlock, 4 KB of output kept, the rest drained", "[subprocess]") {
    const uint64_t size = 1 << 20;
    auto result = run_shell("exec cat", {}, bytes_of_x(size));
    CHECK(result.exited_with(0));
    CHECK(result.bytes_fed == size);
    CHECK_FALSE(result.input_refused);
    CHECK(result.output.size() == Subprocess::default_output_limit);
    CHECK(result.output_dropped == size - Subprocess::default_output_limit);
    CHECK(result.output.substr(0, 64) == std::string(63, 'x') + "\n");
}

TEST_CASE("a child that exits without reading its stdin is judged by its exit code", "[subprocess]") {
    const uint64_t size = 10 << 20;
    auto result = run_shell("exit 5", {}, bytes_of_x(size));
    CHECK(result.exited_with(5));
    CHECK(result.bytes_fed < size);
    CHECK(result.input_refused);
    CHECK_FALSE(result.timed_out);
    CHECK_FALSE(result.input_error);

    auto reads_a_line = run_shell("read line; echo \"$line\"; exit 0", {}, bytes_of_x(size));
    CHECK(reads_a_line.exited_with(0));
    CHECK(reads_a_line.output == std::string(63, 'x') + "\n");
}

TEST_CASE("a child's stdin may be a descriptor given instead of a pipe", "[subprocess]") {
    mailroom::test::TempDir tmp;
    int file = ::open(tmp.write("input", "from a file\n").c_str(), O_RDONLY | O_CLOEXEC);
    REQUIRE(file > 2);
    SubprocessOptions options;
    options.stdin_fd = file;
    auto result = run_shell("cat", options, bytes_of_x(100));
    ::close(file);
    CHECK(result.exited_with(0));
    CHECK(result.output == "from a file\n");
    CHECK(result.bytes_fed == 0);
}

TEST_CASE("an input that fails is reported, and the child sees its stdin end", "[subprocess]") {
    Subprocess::Input failing = [](char*, size_t) -> Result<size_t> { return unexpected_errno("read spool", EIO); };
    auto result = run_shell("cat >/dev/null; exit 0", {}, failing);
    CHECK(result.exited_with(0));
    REQUIRE(result.input_error);
    CHECK(result.input_error->errno_value() == EIO);
}

TEST_CASE("a child that is never run is killed with its group and reaped by the destructor", "[subprocess]") {
    pid_t pid = 0;
    {
        auto child = Subprocess::exec({"/bin/sh", "-c", "sleep 30"}, {});
        REQUIRE(child);
        pid = child->pid();
        CHECK(::kill(pid, 0) == 0);
    }
    CHECK(::kill(pid, 0) == -1);
    CHECK(errno == ESRCH);
}

TEST_CASE("a program that cannot be exec'd, or a setup step that fails, is an error and runs nothing", "[subprocess]") {
    auto missing = Subprocess::exec({"/nonexistent/program"}, {});
    REQUIRE_FALSE(missing);
    CHECK(missing.error().errno_value() == ENOENT);
    CHECK_FALSE(Subprocess::exec({"relative/program"}, {}));

    SubprocessOptions as_root;
    as_root.credentials = Credentials{0, 0, {}};
    bool ran = false;
    auto refused = Subprocess::start([&] { ran = true; return 0; }, as_root);
    REQUIRE_FALSE(refused);
    CHECK(refused.error().errno_value() == EPERM);
    CHECK_THAT(refused.error().message(), Catch::Contains("root"));
}

TEST_CASE("the child runs in its working folder, or in / when it cannot go there", "[subprocess]") {
    mailroom::test::TempDir tmp;
    SubprocessOptions options;
    options.working_directory = tmp.path;
    CHECK(run_shell("pwd", options).output == tmp.path + "\n");
    options.working_directory = tmp.path + "/missing";
    CHECK(run_shell("pwd", options).output == "/\n");
}

TEST_CASE("the child runs in its own session and process group", "[subprocess]") {
    auto result = run_shell("ps -o pgid= -o sid= -p $$ 2>/dev/null || cut -d' ' -f5,6 /proc/$$/stat; echo $$");
    auto lines = mailroom::test::lines_of(result.output);
    REQUIRE(lines.size() == 2);
    std::string pid = lines[1];
    std::string ids = lines[0];
    // "PGID SID" with the shell's own pid in both.
    CHECK(ids.find(pid) != std::string::npos);
    CHECK(ids.find(pid, ids.find(pid) + pid.size()) != std::string::npos);
}

TEST_CASE("the child switches to the credentials given for good (root only)", "[subprocess][root]") {
    if (::geteuid() != 0) {
        WARN("skipped: switching to another uid needs root");
        return;
    }
    SubprocessOptions options;
    options.credentials = Credentials{20011, 20012, {20012, 100}};
    auto child = Subprocess::start(
        [] {
            uid_t r, e, s;
            gid_t rg, eg, sg;
            ::getresuid(&r, &e, &s);
            ::getresgid(&rg, &eg, &sg);
            gid_t groups[8];
            int n = ::getgroups(8, groups);
            std::string out = std::to_string(r) + " " + std::to_string(e) + " " + std::to_string(s) + " " +
                              std::to_string(rg) + " " + std::to_string(eg) + " " + std::to_string(sg) + " " +
                              std::to_string(n) + (::setuid(0) == 0 ? " root-again" : "");
            (void)!::write(1, out.data(), out.size());
            return 0;
        },
        options);
    REQUIRE(child);
    auto result = child->run({}, in(std::chrono::seconds(10)));
    REQUIRE(result);
    CHECK(result->output == "20011 20011 20011 20012 20012 20012 2");
}

TEST_CASE("an exec'd child gets SIGPIPE and SIGXFSZ back at their defaults", "[subprocess][signals]") {
    // In a forked child, so that the test binary's own dispositions never change.
    pid_t pid = ::fork();
    REQUIRE(pid >= 0);
    if (pid == 0) {
        ignore_write_signals();
        auto pipe = Subprocess::exec({"/bin/sh", "-c", "kill -PIPE $$; exit 0"}, {});
        auto xfsz = Subprocess::exec({"/bin/sh", "-c", "kill -XFSZ $$; exit 0"}, {});
        if (!pipe || !xfsz) ::_exit(10);
        auto p = pipe->run({}, Clock::now() + std::chrono::seconds(10));
        auto x = xfsz->run({}, Clock::now() + std::chrono::seconds(10));
        if (!p || !x) ::_exit(11);
        ::_exit(p->signal == SIGPIPE && x->signal == SIGXFSZ ? 0 : 12);
    }
    int status = 0;
    REQUIRE(::waitpid(pid, &status, 0) == pid);
    REQUIRE(WIFEXITED(status));
    CHECK(WEXITSTATUS(status) == 0);
}

TEST_CASE("a child dies with the process that started it, even one killed without a chance to clean up",
          "[subprocess]") {
    int pids[2];
    REQUIRE(::pipe(pids) == 0);
    pid_t runner = ::fork();
    REQUIRE(runner >= 0);
    if (runner == 0) {
        // A runner that starts a long child, says its pid, and is then killed -9:
        // no destructor runs, and the child is in a group of its own.
        ::close(pids[0]);
        auto child = Subprocess::exec({"/bin/sleep", "30"}, {});
        if (!child) ::_exit(1);
        std::string pid = std::to_string(child->pid()) + "\n";
        (void)!::write(pids[1], pid.data(), pid.size());
        ::pause();
        ::_exit(0);
    }
    ::close(pids[1]);
    char buf[32] = {};
    REQUIRE(::read(pids[0], buf, sizeof buf - 1) > 0);
    ::close(pids[0]);
    pid_t child = std::stoi(buf);
    ::kill(runner, SIGKILL);
    int status = 0;
    ::waitpid(runner, &status, 0);
    CHECK(gone_or_dead(child));
}
