#include "core/subprocess.hpp"

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <climits>
#include <cstdlib>
#include <cstring>
#include <memory>

#include "core/descriptors.hpp"
#include "core/process_signals.hpp"

namespace mailroom::core {

namespace {

constexpr size_t chunk_size = 64 * 1024;
// Output is read this much at a time: most of it is dropped past output_limit anyway.
constexpr size_t output_chunk_size = 16 * 1024;
// How long the output may still flow once the child has exited (a grandchild holding
// the pipe): then the rest of its group is killed and the run is over.
constexpr std::chrono::milliseconds output_grace{1000};
// Without pidfd (kernels before 5.3) the child's exit is looked for this often.
constexpr std::chrono::milliseconds exit_tick{20};
// The child's exit code when a setup step failed (the reason went back on the report pipe).
constexpr int setup_failed_code = 127;

struct Pipe {
    UniqueFd read, write;
};

Result<Pipe> make_pipe(const char* what) {
    int fds[2];
    if (::pipe2(fds, O_CLOEXEC) != 0) return unexpected_errno(std::string("pipe for ") + what);
    UniqueFd r(fds[0]), w(fds[1]);
    auto read = above_stdio(std::move(r));
    if (!read) return unexpected(read.error());
    auto write = above_stdio(std::move(w));
    if (!write) return unexpected(write.error());
    return Pipe{std::move(*read), std::move(*write)};
}

Result<void> set_nonblocking(int fd) {
    int flags = ::fcntl(fd, F_GETFL);
    if (flags < 0 || ::fcntl(fd, F_SETFL, flags | O_NONBLOCK) != 0) return unexpected_errno("set O_NONBLOCK");
    return {};
}

// --- the child's side: nothing here returns ---

[[noreturn]] void child_fail(int report_fd, const std::string& what, int err) {
    std::string line = std::to_string(err) + " " + what;
    (void)!::write(report_fd, line.data(), line.size());
    ::_exit(setup_failed_code);
}

void close_range_or_loop(unsigned first, unsigned last) {
    if (first > last) return;
    if (::syscall(SYS_close_range, first, last, 0) == 0) return;
    // Kernels before 5.9: one close per possible descriptor, up to the limit.
    struct rlimit limit {};
    unsigned top = 65536;
    if (::getrlimit(RLIMIT_NOFILE, &limit) == 0 && limit.rlim_cur != RLIM_INFINITY)
        top = static_cast<unsigned>(std::min<rlim_t>(limit.rlim_cur, 1u << 20));
    for (unsigned fd = first; fd <= last && fd < top; ++fd) ::close(static_cast<int>(fd));
}

// Closes every descriptor from 3 up except those in keep (sorted).
void close_all_but(const std::vector<int>& keep) {
    unsigned next = STDERR_FILENO + 1;
    for (int fd : keep) {
        if (fd < static_cast<int>(next)) continue;
        close_range_or_loop(next, static_cast<unsigned>(fd) - 1);
        next = static_cast<unsigned>(fd) + 1;
    }
    close_range_or_loop(next, UINT_MAX);
}

[[noreturn]] void run_child(const Subprocess::Body* body, char* const* argv, char* const* envp,
                            const SubprocessOptions& options, int stdin_fd, int output_fd, int report_fd,
                            pid_t parent) {
    // Its own session and process group: the parent kills the group, never just the child.
    if (::setsid() < 0) child_fail(report_fd, "setsid", errno);
    if (::dup2(stdin_fd, STDIN_FILENO) < 0 || ::dup2(output_fd, STDOUT_FILENO) < 0 ||
        ::dup2(output_fd, STDERR_FILENO) < 0)
        child_fail(report_fd, "set up the standard descriptors", errno);
    std::vector<int> keep = options.keep_fds;
    keep.push_back(report_fd);
    std::sort(keep.begin(), keep.end());
    close_all_but(keep);

    if (options.credentials) {
        auto switched = PrivilegeSwitch::become(*options.credentials, PrivilegeSwitch::Mode::permanent, options.root);
        if (!switched) child_fail(report_fd, switched.error().message(), switched.error().errno_value());
    }
    // The child dies with its parent, which alone records its outcome: a worker the
    // daemon kills at shutdown must not leave a delivery writing on (a duplicate at
    // the next start), and setsid() put the child out of the parent's process group.
    // Set after the switch, which clears it (commit_creds); the getppid() check
    // covers a parent that died before it was set.
    if (::prctl(PR_SET_PDEATHSIG, SIGKILL) != 0) child_fail(report_fd, "prctl PR_SET_PDEATHSIG", errno);
    if (::getppid() != parent) child_fail(report_fd, "parent gone", ESRCH);
    // As the user: a home on NFS with root squashed is reachable only so.
    if (!options.working_directory.empty() && ::chdir(options.working_directory.c_str()) != 0 && ::chdir("/") != 0)
        child_fail(report_fd, "chdir /", errno);

    if (argv) {
        sigset_t none;
        sigemptyset(&none);
        ::sigprocmask(SIG_SETMASK, &none, nullptr);
        // Ignored signals stay ignored across execve (core/process_signals.hpp).
        restore_default_signals();
        ::execve(argv[0], argv, envp);
        child_fail(report_fd, std::string("exec ") + argv[0], errno);
    }
    // No exec: the report pipe is not closed for us. Closing it tells the parent
    // that the setup held.
    ::close(report_fd);
    int code = 70;  // EX_SOFTWARE: a body that throws is a bug
    try {
        code = (*body)();
    } catch (...) {
    }
    ::_exit(code);
}

// --- the parent's side ---

// Blocks SIGPIPE for the life of the object and swallows one it caused: a write to
// the stdin of a child that stopped reading then fails with EPIPE, whatever the
// caller's disposition of SIGPIPE.
class SigpipeBlock {
public:
    SigpipeBlock() {
        sigemptyset(&pipe_);
        sigaddset(&pipe_, SIGPIPE);
        ::sigprocmask(SIG_BLOCK, &pipe_, &old_);
        sigset_t pending;
        sigpending(&pending);
        was_pending_ = sigismember(&pending, SIGPIPE) == 1;
    }
    ~SigpipeBlock() {
        sigset_t pending;
        sigpending(&pending);
        if (!was_pending_ && sigismember(&pending, SIGPIPE) == 1) {
            struct timespec now {};
            ::sigtimedwait(&pipe_, nullptr, &now);
        }
        ::sigprocmask(SIG_SETMASK, &old_, nullptr);
    }
    SigpipeBlock(const SigpipeBlock&) = delete;
    SigpipeBlock& operator=(const SigpipeBlock&) = delete;

private:
    sigset_t pipe_{};
    sigset_t old_{};
    bool was_pending_ = false;
};

bool has_exited(pid_t pid) {
    siginfo_t info {};
    return ::waitid(P_PID, static_cast<id_t>(pid), &info, WEXITED | WNOHANG | WNOWAIT) == 0 && info.si_pid == pid;
}

std::vector<char*> c_strings(const std::vector<std::string>& strings) {
    std::vector<char*> out;
    out.reserve(strings.size() + 1);
    for (const auto& s : strings) out.push_back(const_cast<char*>(s.c_str()));
    out.push_back(nullptr);
    return out;
}

}  // namespace

Result<Subprocess> Subprocess::start(const Body& body, const SubprocessOptions& options) {
    return spawn(&body, nullptr, options);
}

Result<Subprocess> Subprocess::exec(const std::vector<std::string>& argv, const SubprocessOptions& options) {
    if (argv.empty() || argv[0].empty() || argv[0][0] != '/')
        return unexpected_errno("exec: a program is run by its full path", EINVAL);
    return spawn(nullptr, &argv, options);
}

Result<Subprocess> Subprocess::spawn(const Body* body, const std::vector<std::string>* argv,
                                     const SubprocessOptions& options) {
    auto in = make_pipe("the child's input");
    if (!in) return unexpected(in.error());
    auto out = make_pipe("the child's output");
    if (!out) return unexpected(out.error());
    auto report = make_pipe("the child's setup report");
    if (!report) return unexpected(report.error());
    // Built before the fork: the child only reads them.
    std::vector<char*> args = argv ? c_strings(*argv) : std::vector<char*>{};
    std::vector<char*> env = c_strings(options.environment);

    const int child_stdin = options.stdin_fd >= 0 ? options.stdin_fd : in->read.get();
    const pid_t parent = ::getpid();
    pid_t pid = ::fork();
    if (pid < 0) return unexpected_errno("fork");
    if (pid == 0) {
        run_child(body, argv ? args.data() : nullptr, env.data(), options, child_stdin, out->write.get(),
                  report->write.get(), parent);
    }
    // A given stdin: no pipe to feed.
    if (options.stdin_fd >= 0) in->write.reset();
    in->read.reset();
    out->write.reset();
    report->write.reset();
    Subprocess child(pid, std::move(in->write), std::move(out->read));

    // Until EOF: the child closes it when its setup held (function) or at exec.
    std::string failure;
    char buf[512];
    for (;;) {
        ssize_t n = ::read(report->read.get(), buf, sizeof buf);
        if (n < 0 && errno == EINTR) continue;
        if (n <= 0) break;
        failure.append(buf, static_cast<size_t>(n));
    }
    if (failure.empty()) return child;
    // The setup failed: the child is exiting; reap it (the destructor) and say why.
    char* end = nullptr;
    long err = std::strtol(failure.c_str(), &end, 10);
    std::string what = end && *end == ' ' ? std::string(end + 1) : failure;
    Error error = err > 0 ? errno_error(what, static_cast<int>(err)) : input_error(what);
    return unexpected(std::move(error));
}

Result<SubprocessResult> Subprocess::run(const Input& input, std::chrono::steady_clock::time_point deadline,
                                         size_t output_limit) {
    using Clock = std::chrono::steady_clock;
    SubprocessResult result;
    SigpipeBlock sigpipe;
    if (!input) stdin_.reset();
    if (stdin_) {
        if (auto r = set_nonblocking(stdin_.get()); !r) return unexpected(r.error());
    }
    if (auto r = set_nonblocking(output_.get()); !r) return unexpected(r.error());
    // Readable when the child exits, or none (then we look every exit_tick). The
    // child stays a zombie until reaped, so its pid and group id cannot be reused meanwhile.
    UniqueFd pidfd = open_pidfd(pid_);

    // Allocated, never zero-filled, and the input buffer only when there is input:
    // this runs right after the fork, when every page the parent writes is a
    // copy-on-write fault (a mailbox writer's 4 KB message touched 32 pages here).
    std::unique_ptr<char[]> pending;
    if (stdin_) pending.reset(new char[chunk_size]);
    size_t pending_begin = 0, pending_end = 0;
    std::unique_ptr<char[]> chunk(new char[output_chunk_size]);
    bool exited = false;
    std::optional<Clock::time_point> grace_end;

    for (;;) {
        if (!exited && !pidfd) exited = has_exited(pid_);
        if (exited) {
            // Input left over: the child ended without taking it all.
            if (stdin_) result.input_refused = true;
            stdin_.reset();
            if (!output_) break;
            if (!grace_end) grace_end = std::min(deadline, Clock::now() + output_grace);
        }
        const auto until = exited ? *grace_end : deadline;
        const auto now = Clock::now();
        if (now >= until) {
            result.timed_out = !exited;
            break;
        }

        // Fill the input buffer before polling, so that an input at its end closes
        // stdin without waiting for the pipe to be writable.
        if (stdin_ && pending_begin == pending_end) {
            auto n = input(pending.get(), chunk_size);
            if (!n) {
                result.input_error = n.error();
                stdin_.reset();
            } else if (*n == 0) {
                stdin_.reset();
            } else {
                pending_begin = 0;
                pending_end = *n;
            }
        }

        struct pollfd fds[3];
        nfds_t count = 0;
        int in_slot = -1, out_slot = -1, pid_slot = -1;
        if (stdin_) {
            in_slot = static_cast<int>(count);
            fds[count++] = {stdin_.get(), POLLOUT, 0};
        }
        if (output_) {
            out_slot = static_cast<int>(count);
            fds[count++] = {output_.get(), POLLIN, 0};
        }
        if (!exited && pidfd) {
            pid_slot = static_cast<int>(count);
            fds[count++] = {pidfd.get(), POLLIN, 0};
        }
        auto wait = std::chrono::ceil<std::chrono::milliseconds>(until - now);
        if (!pidfd && !exited) wait = std::min(wait, exit_tick);
        int timeout = static_cast<int>(std::min<int64_t>(wait.count(), INT_MAX));
        int ready = ::poll(fds, count, timeout);
        if (ready < 0) {
            if (errno == EINTR) continue;
            return unexpected_errno("poll on the child's pipes");
        }

        if (in_slot >= 0 && fds[in_slot].revents != 0) {
            ssize_t w = ::write(stdin_.get(), pending.get() + pending_begin, pending_end - pending_begin);
            if (w > 0) {
                pending_begin += static_cast<size_t>(w);
                result.bytes_fed += static_cast<uint64_t>(w);
            } else if (w < 0 && errno != EAGAIN && errno != EINTR) {
                // EPIPE: the child closed its stdin. Judged by its exit status, not here.
                result.input_refused = true;
                stdin_.reset();
            }
        }
        if (out_slot >= 0 && fds[out_slot].revents != 0) {
            ssize_t n = ::read(output_.get(), chunk.get(), output_chunk_size);
            if (n == 0 || (n < 0 && errno != EAGAIN && errno != EINTR)) {
                output_.reset();
            } else if (n > 0) {
                size_t keep = std::min(static_cast<size_t>(n), output_limit - std::min(output_limit, result.output.size()));
                result.output.append(chunk.get(), keep);
                result.output_dropped += static_cast<uint64_t>(n) - keep;
            }
        }
        if (pid_slot >= 0 && fds[pid_slot].revents != 0) exited = true;
    }

    stdin_.reset();
    output_.reset();
    // The child has exited or timed out: nothing of its group may run on.
    kill_group();
    auto status = reap();
    if (!status) return unexpected(status.error());
    if (WIFSIGNALED(*status)) {
        result.signal = WTERMSIG(*status);
    } else {
        result.exit_code = WEXITSTATUS(*status);
    }
    return result;
}

void Subprocess::kill_group() {
    if (pid_ <= 0) return;
    // Unreaped, the child (at worst a zombie) keeps its pid and group id from reuse.
    ::kill(-pid_, SIGKILL);
}

Result<int> Subprocess::reap() {
    int status = 0;
    while (::waitpid(pid_, &status, 0) < 0) {
        if (errno != EINTR) {
            pid_ = -1;
            return unexpected_errno("waitpid");
        }
    }
    pid_ = -1;
    return status;
}

void Subprocess::close_pipes() {
    stdin_.reset();
    output_.reset();
}

bool Subprocess::reap_if_exited() {
    if (pid_ <= 0) return true;
    int status = 0;
    pid_t r;
    do {
        r = ::waitpid(pid_, &status, WNOHANG);
    } while (r < 0 && errno == EINTR);
    if (r == 0) return false;
    // Reaped, or not ours to reap (ECHILD): either way it is gone.
    stdin_.reset();
    output_.reset();
    pid_ = -1;
    return true;
}

void Subprocess::release() {
    stdin_.reset();
    output_.reset();
    pid_ = -1;
}

Subprocess::Subprocess(Subprocess&& other) noexcept
    : pid_(std::exchange(other.pid_, -1)), stdin_(std::move(other.stdin_)), output_(std::move(other.output_)) {}

Subprocess::~Subprocess() {
    if (pid_ <= 0) return;
    stdin_.reset();
    output_.reset();
    kill_group();
    (void)reap();
}

}  // namespace mailroom::core
