// Subprocess: one child process, owned from fork to reap. The one place that starts
// a process as another user (ARCHITECTURE "Processes and privileges").
//
// In the child, before anything of the caller's runs: setsid() (its own session and
// process group, so that the whole group can be killed), stdin from a pipe the parent
// feeds (or a descriptor given), stdout and stderr into one pipe the parent reads, every other descriptor
// closed except the ones the caller names, then the permanent switch to the given
// Credentials (groups, gid, uid, verified; uid 0 refused unless the caller allows it),
// then the parent-death signal (SIGKILL: the child never outlives the process that
// records its outcome), then chdir to the working folder ("/" when that fails). What runs is either a
// function (no exec: our own code, e.g. a mailbox writer, kept fast) or a program by
// execve with exactly the environment given and SIGPIPE/SIGXFSZ back to their default.
// A failure of any of these steps is reported back through a close-on-exec pipe, so
// start() and exec() return it as an Error and nothing of the caller's ever runs.
//
// In the parent, run() feeds stdin while it reads the output (poll on both: a child
// that writes a lot while we write cannot deadlock us), keeps the first bytes of the
// output and drains the rest, and at the deadline kills the whole process group with
// SIGKILL. When the child has exited, whatever it left running in its group is killed
// too (after at most a short grace for the output to end): a delivery leaves no stray
// processes. A child that stops reading stdin (EPIPE) is not an error by itself: the
// caller judges it by the exit status.
//
// Must never: use threads, let the child see the parent's environment (exec) or its
// descriptors, leave a zombie or a live group behind (the destructor kills and reaps
// an unreaped child), or let SIGPIPE from the stdin pipe kill the caller.
#pragma once

#include <sys/types.h>

#include <chrono>
#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <vector>

#include "core/privilege.hpp"
#include "core/result.hpp"
#include "core/unique_fd.hpp"

namespace mailroom::core {

struct SubprocessOptions {
    // Switched to for good in the child (PrivilegeSwitch permanent). Absent: the
    // child keeps the caller's ids.
    std::optional<Credentials> credentials;
    // uid 0 as credentials: refused unless allow (root's own mailbox).
    PrivilegeSwitch::RootTarget root = PrivilegeSwitch::RootTarget::refuse;
    // chdir here in the child (after the switch, as the user); "/" when it fails.
    // Empty: stay where the parent is.
    std::string working_directory;
    // exec(): the whole environment, "NAME=value" each. A function child keeps the
    // process's environment: it runs only our code and never execs.
    std::vector<std::string> environment;
    // >= 0: the child's stdin is this descriptor (a file to read), and run() feeds
    // nothing. -1: a pipe that run() feeds.
    int stdin_fd = -1;
    // Descriptors the child keeps at the same numbers (all >= 3): what a function
    // child reads, e.g. the message's spill file. Everything else >= 3 is closed.
    std::vector<int> keep_fds;
};

// What a finished child came to.
struct SubprocessResult {
    // Exactly one of these describes the end: exit_code >= 0 or signal > 0.
    int exit_code = -1;
    int signal = 0;
    // Still running at the deadline: the group was killed (signal is then SIGKILL).
    bool timed_out = false;
    // The first output_limit bytes of stdout+stderr, as written.
    std::string output;
    // Bytes of output beyond that, read and dropped.
    uint64_t output_dropped = 0;
    // Bytes of stdin the child took.
    uint64_t bytes_fed = 0;
    // The child closed its stdin (EPIPE) or exited before taking all of the input.
    bool input_refused = false;
    // Reading the input failed: the child saw a cut stdin (then closed), whatever it
    // did with it. The caller must not count such a run as a success.
    std::optional<Error> input_error;

    bool exited_with(int code) const { return signal == 0 && exit_code == code; }
};

class Subprocess {
public:
    // What run() feeds on stdin: fills buf, returns the bytes given, 0 at the end.
    using Input = std::function<Result<size_t>(char* buf, size_t size)>;
    // A function child's body; its return value is the exit code.
    using Body = std::function<int()>;

    static constexpr size_t default_output_limit = 4096;

    // Forks a child that runs body (no exec).
    static Result<Subprocess> start(const Body& body, const SubprocessOptions& options);
    // Forks a child that execs argv[0] (a full path) with argv and options.environment.
    static Result<Subprocess> exec(const std::vector<std::string>& argv, const SubprocessOptions& options);

    // Feeds input (none: stdin is closed at once) and reads the output until the child
    // has exited, then reaps it. At `deadline` the whole group is killed.
    Result<SubprocessResult> run(const Input& input, std::chrono::steady_clock::time_point deadline,
                                 size_t output_limit = default_output_limit);

    pid_t pid() const { return pid_; }

    // Closes our ends of the child's stdin and output pipes, for a long-lived child
    // that talks over descriptors of its own (a delivery agent): what it writes on
    // stdout or stderr then fails with EPIPE. run() is then not to be called.
    void close_pipes();

    // True once the child has exited, reaping it without waiting (then pid() is -1):
    // for a long-lived child whose end is noticed later (a retired delivery agent).
    bool reap_if_exited();

    // Forgets the child without killing or reaping it, closing our pipe ends: for a
    // forked copy of the owner, whose child it is not.
    void release();

    Subprocess(Subprocess&& other) noexcept;
    Subprocess& operator=(Subprocess&&) = delete;
    Subprocess(const Subprocess&) = delete;
    Subprocess& operator=(const Subprocess&) = delete;
    // An unreaped child: its group is killed and it is reaped.
    ~Subprocess();

private:
    Subprocess(pid_t pid, UniqueFd stdin_fd, UniqueFd output_fd)
        : pid_(pid), stdin_(std::move(stdin_fd)), output_(std::move(output_fd)) {}
    static Result<Subprocess> spawn(const Body* body, const std::vector<std::string>* argv,
                                    const SubprocessOptions& options);
    Result<int> reap();
    void kill_group();

    pid_t pid_ = -1;
    UniqueFd stdin_;
    UniqueFd output_;
};

}  // namespace mailroom::core
