#include "daemon.hpp"

#include <dirent.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sys/signalfd.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <sysexits.h>
#include <time.h>
#include <unistd.h>

#include <fmt/format.h>

#include <deque>
#include <map>
#include <memory>
#include <set>
#include <string>

#include "core/unique_fd.hpp"

namespace mailroom::mta {

namespace {

using Clock = std::chrono::steady_clock;

// More pending wake-ups than this and the daemon forgets them and scans instead.
constexpr size_t wakeup_backlog = 10'000;

class Daemon {
public:
    Daemon(const mail::RunnerContext& context, const DaemonSettings& settings, sigset_t old_mask)
        : context_(context), settings_(settings), old_mask_(old_mask) {}

    int run(int signal_fd, int trigger_fd) {
        signal_fd_ = signal_fd;
        trigger_fd_ = trigger_fd;
        next_scan_ = Clock::now();
        while (!stopping_ || !workers_.empty()) {
            if (stopping_ && Clock::now() >= stop_deadline_) {
                kill_workers();
                break;
            }
            dispatch();
            wait_for_events();
        }
        context_.logs.qmgr.info("daemon stopped");
        return EX_OK;
    }

private:
    void dispatch() {
        if (stopping_) return;
        while (!wanted_.empty() && workers_.size() < settings_.workers) {
            std::string id = std::move(wanted_.front());
            wanted_.pop_front();
            start_worker(id);
        }
        if (!scan_ && Clock::now() >= next_scan_) begin_scan();
        while (scan_ && workers_.size() < settings_.workers) {
            errno = 0;
            struct dirent* entry = ::readdir(scan_.get());
            if (!entry) {
                scan_.reset();
                next_scan_ = Clock::now() + settings_.queue_run_delay;
                break;
            }
            if (!mail::is_valid_queue_id(entry->d_name)) continue;
            struct stat st {};
            if (::fstatat(::dirfd(scan_.get()), entry->d_name, &st, AT_SYMLINK_NOFOLLOW) != 0) continue;
            // The mtime of an entry is when it is next due (docs/spool.md). Anything but
            // a file under a queue ID is due at once: the worker quarantines it.
            if (S_ISREG(st.st_mode) && st.st_mtime > context_.clock->now()) continue;
            start_worker(entry->d_name);
        }
    }

    void begin_scan() {
        context_.spool.sweep_tmp(context_.clock->now(), 86400);
        auto dir = context_.spool.open_scan(mail::QueueFolder::queue);
        if (!dir) {
            context_.logs.qmgr.error(fmt::format("cannot scan the queue: {}", dir.error().message()));
            next_scan_ = Clock::now() + settings_.queue_run_delay;
            return;
        }
        scan_ = std::move(*dir);
    }

    void start_worker(const std::string& id) {
        if (in_flight_.count(id)) return;
        pid_t pid = ::fork();
        if (pid < 0) {
            context_.logs.qmgr.warning(fmt::format("{}: cannot fork a worker: {}", id, std::strerror(errno)));
            return;
        }
        if (pid == 0) {
            // The worker leads a process group with its delivery processes, so that
            // kill_workers ends them all: a delivery left running past the daemon
            // would write the mailbox with its outcome never recorded (a duplicate).
            ::setpgid(0, 0);
            // The worker: none of the loop's descriptors or signal routing.
            ::close(signal_fd_);
            ::close(trigger_fd_);
            scan_.release();
            ::sigprocmask(SIG_SETMASK, &old_mask_, nullptr);
            mail::run_entry_and_notices(context_, id, false);
            ::_exit(0);
        }
        ::setpgid(pid, pid);  // also here: kill_workers may come before the child runs
        workers_[pid] = id;
        in_flight_.insert(id);
    }

    void wait_for_events() {
        struct pollfd fds[2] = {{signal_fd_, POLLIN, 0}, {trigger_fd_, POLLIN, 0}};
        int timeout_ms = -1;
        auto now = Clock::now();
        if (stopping_) {
            timeout_ms = 100;
        } else if (scan_ && workers_.size() < settings_.workers) {
            timeout_ms = 0;
        } else if (!scan_) {
            auto wait = std::chrono::duration_cast<std::chrono::milliseconds>(next_scan_ - now).count();
            timeout_ms = static_cast<int>(std::clamp<long long>(wait, 0, 60'000));
        }
        bool room = workers_.size() < settings_.workers && !stopping_;
        // With every worker busy, leave wake-ups in the FIFO until there is room.
        int n = ::poll(fds, room ? 2 : 1, timeout_ms);
        if (n <= 0) return;
        if (fds[0].revents & POLLIN) handle_signals();
        if (room && (fds[1].revents & POLLIN)) read_trigger();
    }

    void handle_signals() {
        struct signalfd_siginfo info {};
        while (::read(signal_fd_, &info, sizeof info) == static_cast<ssize_t>(sizeof info)) {
            if (info.ssi_signo == SIGCHLD) {
                reap();
            } else if ((info.ssi_signo == SIGTERM || info.ssi_signo == SIGINT) && !stopping_) {
                stopping_ = true;
                stop_deadline_ = Clock::now() + settings_.shutdown_grace;
                context_.logs.qmgr.info(fmt::format("stopping: waiting for {} deliveries", workers_.size()));
            } else if (info.ssi_signo == SIGHUP) {
                next_scan_ = Clock::now();  // like `mailctl flush`
            }
        }
        reap();
    }

    void reap() {
        int status = 0;
        pid_t pid;
        while ((pid = ::waitpid(-1, &status, WNOHANG)) > 0) {
            auto it = workers_.find(pid);
            if (it == workers_.end()) continue;
            if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) {
                context_.logs.qmgr.warning(fmt::format("{}: worker {} ended abnormally (status {})", it->second, pid, status));
            }
            in_flight_.erase(it->second);
            workers_.erase(it);
        }
    }

    void read_trigger() {
        char buf[4096];
        ssize_t n = ::read(trigger_fd_, buf, sizeof buf);
        if (n <= 0) return;
        partial_.append(buf, static_cast<size_t>(n));
        size_t start = 0;
        for (size_t nl; (nl = partial_.find('\n', start)) != std::string::npos; start = nl + 1) {
            std::string id = partial_.substr(start, nl - start);
            if (id.empty() || id == "flush") {
                next_scan_ = Clock::now();
            } else if (mail::is_valid_queue_id(id)) {
                if (wanted_.size() < wakeup_backlog) wanted_.push_back(id);
                else next_scan_ = Clock::now();
            }
        }
        partial_.erase(0, start);
        if (partial_.size() > 256) partial_.clear();  // not ours: garbage in the FIFO
    }

    void kill_workers() {
        context_.logs.qmgr.warning(fmt::format("stopping: {} deliveries abandoned, retried at the next start",
                                               workers_.size()));
        for (const auto& [pid, id] : workers_) ::kill(-pid, SIGKILL);  // with its delivery processes
        for (const auto& [pid, id] : workers_) ::waitpid(pid, nullptr, 0);
        workers_.clear();
    }

    const mail::RunnerContext& context_;
    const DaemonSettings& settings_;
    sigset_t old_mask_;
    int signal_fd_ = -1;
    int trigger_fd_ = -1;
    mail::DirStream scan_{nullptr, ::closedir};
    Clock::time_point next_scan_;
    std::deque<std::string> wanted_;
    std::string partial_;
    std::map<pid_t, std::string> workers_;
    std::set<std::string> in_flight_;
    bool stopping_ = false;
    Clock::time_point stop_deadline_;
};

}  // namespace

int run_queue_daemon(const mail::RunnerContext& context, const DaemonSettings& settings) {
    sigset_t mask, old_mask;
    sigemptyset(&mask);
    for (int sig : {SIGCHLD, SIGTERM, SIGINT, SIGHUP}) sigaddset(&mask, sig);
    ::sigprocmask(SIG_BLOCK, &mask, &old_mask);
    int sfd = ::signalfd(-1, &mask, SFD_NONBLOCK | SFD_CLOEXEC);
    if (sfd < 0) {
        context.logs.qmgr.error(fmt::format("signalfd: {}", std::strerror(errno)));
        return EX_OSERR;
    }
    core::UniqueFd signal_fd(sfd);
    // Read-write: the FIFO then always has a writer, so poll never sees an endless EOF.
    std::string trigger = context.spool.trigger_path();
    int tfd = ::open(trigger.c_str(), O_RDWR | O_NONBLOCK | O_CLOEXEC);
    if (tfd < 0) {
        context.logs.qmgr.error(fmt::format("open {}: {}", trigger, std::strerror(errno)));
        return EX_OSERR;
    }
    core::UniqueFd trigger_fd(tfd);
    // Load the name service modules and the time zone once, here: every worker is a
    // fork of this process and would otherwise load them again for each message.
    if (auto root = context.users->find("root"); root && *root) (void)core::supplementary_groups(**root);
    ::tzset();
    context.logs.qmgr.info(fmt::format("daemon started -- version {}, spool {}", MAILROOM_VERSION, context.spool.dir()));
    Daemon daemon(context, settings, old_mask);
    return daemon.run(signal_fd.get(), trigger_fd.get());
}

}  // namespace mailroom::mta
