#include "daemon.hpp"

#include <dirent.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
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
#include <vector>

#include "core/unique_fd.hpp"
#include "delivery/agent_handoff.hpp"
#include "delivery/delivery_agent.hpp"
#include "delivery/routing.hpp"

namespace mailroom::mta {

namespace {

using Clock = std::chrono::steady_clock;

// More pending wake-ups than this and the daemon forgets them and scans instead.
constexpr size_t wakeup_backlog = 10'000;
// A worker runs this many entries, then exits and a fresh one is forked when
// needed: whatever a run leaks (memory, a descriptor) cannot pile up (Postfix's
// max_use). Forking a worker per entry cost about as much CPU as the delivery.
constexpr unsigned worker_max_runs = 100;
// A worker left idle this long exits: a quiet daemon keeps no processes around.
constexpr std::chrono::seconds worker_max_idle{60};
// After a failed fork of a worker, the next try waits this long.
constexpr std::chrono::seconds fork_retry{1};
// ETRN scans of the queue, at most one this often.
constexpr std::chrono::seconds etrn_interval{10};
// What a worker answers when it has finished the entry it was handed.
constexpr std::string_view done_message = "done";
// The longest packet a worker sends: an agent request with its groups (agent_handoff.hpp).
constexpr size_t max_worker_packet = 1024 * 1024;

// One forked worker: a root process of the daemon's own image that runs queue
// entries one at a time, each handed over its channel as a queue ID. It never
// switches to a user itself: a mailbox or file write goes to the daemon's delivery
// agent for the user, asked for over the channel (delivery/agent_handoff.hpp), any
// other delivery is a child of its own (lib/delivery/launcher.cpp), so the model of
// docs/security.md is unchanged.
struct Worker {
    core::UniqueFd channel;  // the daemon's end of a SOCK_SEQPACKET pair; empty once retired
    std::string entry;       // the entry it runs, empty while idle
    unsigned runs = 0;
    Clock::time_point idle_since;
};

class Daemon {
public:
    Daemon(const mail::RunnerContext& context, const DaemonSettings& settings, sigset_t old_mask)
        : context_(context), settings_(settings), old_mask_(old_mask) {}

    int run(int signal_fd, int trigger_fd) {
        signal_fd_ = signal_fd;
        trigger_fd_ = trigger_fd;
        next_scan_ = Clock::now();
        listener_again_at_ = Clock::now();
        while (!stopping_ || !workers_.empty() || listener_ > 0) {
            if (stopping_ && Clock::now() >= stop_deadline_) {
                kill_workers();
                if (listener_ > 0) {
                    ::kill(listener_, SIGKILL);
                    ::waitpid(listener_, nullptr, 0);
                    listener_ = 0;
                }
                break;
            }
            dispatch();
            wait_for_events();
        }
        context_.logs.qmgr.info("daemon stopped");
        return EX_OK;
    }

private:
    // The listener is a child of its own, never a worker: it runs until stopped.
    void start_listener() {
        pid_t pid = ::fork();
        if (pid < 0) {
            context_.logs.qmgr.warning(fmt::format("cannot fork the SMTP listener: {}", std::strerror(errno)));
            listener_again_at_ = Clock::now() + fork_retry;
            return;
        }
        if (pid == 0) {
            ::close(signal_fd_);
            ::close(trigger_fd_);
            scan_.release();
            for (auto& [other, worker] : workers_) worker.channel.reset();
            agents_.forget();
            ::sigprocmask(SIG_SETMASK, &old_mask_, nullptr);
            ::prctl(PR_SET_PDEATHSIG, SIGTERM);
            ::_exit(settings_.run_listener());
        }
        listener_ = pid;
    }

    void dispatch() {
        if (stopping_) return;
        if (settings_.run_listener && listener_ == 0 && Clock::now() >= listener_again_at_) start_listener();
        retire_idle_workers(Clock::now());
        agents_.retire_idle(Clock::now());
        while (!wanted_.empty() && has_room()) {
            std::string id = std::move(wanted_.front());
            wanted_.pop_front();
            if (!hand_out(id)) {
                wanted_.push_front(std::move(id));
                break;
            }
        }
        if (!scan_ && Clock::now() >= next_scan_) begin_scan();
        while (scan_ && has_room()) {
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
            if (!hand_out(entry->d_name)) {
                // No worker could take it after all (a fork failed): it waits with the wake-ups.
                if (wanted_.size() < wakeup_backlog) wanted_.emplace_back(entry->d_name);
                break;
            }
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

    size_t busy_workers() const {
        size_t busy = 0;
        for (const auto& [pid, worker] : workers_) busy += !worker.entry.empty();
        return busy;
    }

    // A worker can take an entry now: an idle one, or a free place to fork one. A
    // retired worker (its channel closed) keeps its place until it is reaped: counting
    // only busy workers here once let a retiring worker's place swallow every entry
    // of a scan, left for the next one (queue_run_delay later).
    bool has_room() const {
        return !idle_.empty() || (workers_.size() < settings_.workers && Clock::now() >= fork_again_at_);
    }

    // Gives entry `id` to an idle worker, forking one when none is idle; false when
    // no worker could take it (the caller keeps the ID). An entry already in a
    // worker's hands is not given twice.
    // An ID with a leading '!' (from ETRN) is run "due or not", as mta -q runs entries.
    bool hand_out(const std::string& wanted) {
        const std::string id = wanted.starts_with('!') ? wanted.substr(1) : wanted;
        if (in_flight_.count(id)) return true;
        while (true) {
            pid_t pid = 0;
            if (!idle_.empty()) {
                pid = idle_.back();  // the most recently used: its pages are warm
                idle_.pop_back();
            } else if (workers_.size() < settings_.workers && Clock::now() >= fork_again_at_) {
                pid = start_worker();
                if (pid <= 0) {
                    fork_again_at_ = Clock::now() + fork_retry;  // no busy loop on EAGAIN
                    return false;
                }
            } else {
                return false;
            }
            Worker& worker = workers_.at(pid);
            if (::send(worker.channel.get(), wanted.data(), wanted.size(), MSG_DONTWAIT | MSG_NOSIGNAL) ==
                static_cast<ssize_t>(wanted.size())) {
                worker.entry = id;
                in_flight_.insert(id);
                return true;
            }
            // It died meanwhile (reaped when its SIGCHLD is read): try another.
            worker.channel.reset();
        }
    }

    // Forks an idle worker; its pid, or 0 when the fork failed.
    pid_t start_worker() {
        int ends[2];
        if (::socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, ends) != 0) {
            context_.logs.qmgr.warning(fmt::format("cannot make a worker channel: {}", std::strerror(errno)));
            return 0;
        }
        core::UniqueFd ours(ends[0]), theirs(ends[1]);
        pid_t pid = ::fork();
        if (pid < 0) {
            context_.logs.qmgr.warning(fmt::format("cannot fork a worker: {}", std::strerror(errno)));
            return 0;
        }
        if (pid == 0) {
            // The worker leads a process group with its delivery processes, so that
            // kill_workers ends them all: a delivery left running past the daemon
            // would write the mailbox with its outcome never recorded (a duplicate).
            ::setpgid(0, 0);
            // The worker: none of the loop's descriptors or signal routing, and no
            // other worker's channel (its end of it would keep that worker alive).
            ::close(signal_fd_);
            ::close(trigger_fd_);
            scan_.release();
            for (auto& [other, worker] : workers_) worker.channel.reset();
            agents_.forget();  // our copies of their control sockets would keep them alive
            ours.reset();
            ::sigprocmask(SIG_SETMASK, &old_mask_, nullptr);
            run_worker(theirs.get());
        }
        ::setpgid(pid, pid);  // also here: kill_workers may come before the child runs
        Worker& worker = workers_[pid];
        worker.channel = std::move(ours);
        return pid;
    }

    // The worker's loop: one queue ID per message, "done" after it; the channel's
    // end (the daemon retires it, stops, or died) ends the worker. Its mailbox writes
    // go to the daemon's agents, asked for over the same channel while it runs an
    // entry. When a request went unanswered (its source broke) the channel is out
    // of step: the worker ends without "done", the daemon reaps it, and what was
    // not recorded of the entry is run again.
    [[noreturn]] void run_worker(int channel) {
        auto source = std::make_unique<mail::ChannelAgentSource>(channel);
        const mail::ChannelAgentSource& agents = *source;
        context_.agents->use_source(std::move(source));
        char id[256];
        for (;;) {
            ssize_t n = ::recv(channel, id, sizeof id, 0);
            if (n < 0 && errno == EINTR) continue;
            if (n <= 0) ::_exit(0);
            std::string_view entry(id, static_cast<size_t>(n));
            const bool force = entry.starts_with('!');
            if (force) entry.remove_prefix(1);
            if (!mail::is_valid_queue_id(entry)) ::_exit(EX_TEMPFAIL);  // not the daemon's: out of step
            mail::run_entry_and_notices(context_, entry, force);
            if (agents.broken()) ::_exit(EX_TEMPFAIL);
            if (::send(channel, done_message.data(), done_message.size(), MSG_NOSIGNAL) < 0) ::_exit(0);
        }
    }

    // A worker that said "done": idle again, or retired after its last run.
    void finished(pid_t pid, Worker& worker) {
        in_flight_.erase(worker.entry);
        worker.entry.clear();
        if (++worker.runs >= worker_max_runs || stopping_) {
            worker.channel.reset();  // it reads the end and exits; reaped on SIGCHLD
            return;
        }
        worker.idle_since = Clock::now();
        idle_.push_back(pid);
    }

    void retire_idle_workers(Clock::time_point now) {
        std::erase_if(idle_, [&](pid_t pid) {
            Worker& worker = workers_.at(pid);
            if (!stopping_ && now - worker.idle_since < worker_max_idle) return false;
            worker.channel.reset();
            return true;
        });
    }

    void read_channel(pid_t pid, Worker& worker) {
        if (!packet_) packet_.reset(new char[max_worker_packet]);
        ssize_t n = ::recv(worker.channel.get(), packet_.get(), max_worker_packet, MSG_DONTWAIT);
        if (n < 0 && (errno == EAGAIN || errno == EINTR)) return;
        std::string_view packet(packet_.get(), n > 0 ? static_cast<size_t>(n) : 0);
        if (n > 0 && !worker.entry.empty() && packet == done_message) {
            finished(pid, worker);
            return;
        }
        if (n > 0 && !worker.entry.empty() && mail::is_agent_request(packet)) {
            mail::answer_agent_request(worker.channel.get(), packet, agents_);
            return;
        }
        // Its end closed: it died (reaped on SIGCHLD, which logs how).
        std::erase(idle_, pid);
        worker.channel.reset();
    }

    void wait_for_events() {
        std::vector<struct pollfd> fds = {{signal_fd_, POLLIN, 0}, {trigger_fd_, POLLIN, 0}};
        int timeout_ms = -1;
        auto now = Clock::now();
        bool room = has_room() && !stopping_;
        if (stopping_) {
            timeout_ms = 100;
        } else if (scan_ && room) {
            timeout_ms = 0;
        } else if (!scan_) {
            auto wait = std::chrono::duration_cast<std::chrono::milliseconds>(next_scan_ - now).count();
            timeout_ms = static_cast<int>(std::clamp<long long>(wait, 0, 60'000));
        }
        if (!idle_.empty()) {
            // Wake up to retire the longest idle worker in time.
            Clock::time_point oldest = now;
            for (pid_t pid : idle_) oldest = std::min(oldest, workers_.at(pid).idle_since);
            auto wait = std::chrono::ceil<std::chrono::milliseconds>(oldest + worker_max_idle - now).count();
            int idle_ms = static_cast<int>(std::clamp<long long>(wait, 0, 60'000));
            timeout_ms = timeout_ms < 0 ? idle_ms : std::min(timeout_ms, idle_ms);
        }
        if (!stopping_ && settings_.run_listener && listener_ == 0) {
            auto wait = std::chrono::ceil<std::chrono::milliseconds>(listener_again_at_ - now).count();
            int retry_ms = static_cast<int>(std::clamp<long long>(wait, 0, 60'000));
            timeout_ms = timeout_ms < 0 ? retry_ms : std::min(timeout_ms, retry_ms);
        }
        if (!stopping_ && (scan_ || !wanted_.empty()) && fork_again_at_ > now) {
            // Work waits for a fork to be tried again.
            auto wait = std::chrono::ceil<std::chrono::milliseconds>(fork_again_at_ - now).count();
            int retry_ms = static_cast<int>(std::clamp<long long>(wait, 0, 60'000));
            timeout_ms = timeout_ms < 0 ? retry_ms : std::min(timeout_ms, retry_ms);
        }
        // With every worker busy, leave wake-ups in the FIFO until there is room.
        if (!room) fds[1].fd = -1;
        std::vector<pid_t> polled;
        for (const auto& [pid, worker] : workers_) {
            if (!worker.channel) continue;
            fds.push_back({worker.channel.get(), POLLIN, 0});
            polled.push_back(pid);
        }
        int n = ::poll(fds.data(), fds.size(), timeout_ms);
        if (n <= 0) return;
        for (size_t i = 0; i < polled.size(); ++i) {
            if (fds[i + 2].revents == 0) continue;
            auto it = workers_.find(polled[i]);
            if (it != workers_.end() && it->second.channel) read_channel(it->first, it->second);
        }
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
                context_.logs.qmgr.info(fmt::format("stopping: waiting for {} deliveries", busy_workers()));
                retire_idle_workers(Clock::now());
                if (listener_ > 0) ::kill(listener_, SIGTERM);
            } else if (info.ssi_signo == SIGHUP) {
                next_scan_ = Clock::now();  // like `mailctl flush`
                if (listener_ > 0) ::kill(listener_, SIGHUP);  // it rereads the access rules
            }
        }
        reap();
    }

    void reap() {
        int status = 0;
        pid_t pid;
        while ((pid = ::waitpid(-1, &status, WNOHANG)) > 0) {
            if (pid == listener_) {
                listener_ = 0;
                if (!stopping_) {
                    context_.logs.qmgr.warning(fmt::format("the SMTP listener ended (status {}); starting it again", status));
                    listener_again_at_ = Clock::now() + fork_retry;
                }
                continue;
            }
            auto it = workers_.find(pid);
            if (it == workers_.end()) {
                agents_.reaped(pid);  // a delivery agent (or nothing of ours)
                continue;
            }
            const std::string& entry = it->second.entry;
            if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) {
                context_.logs.qmgr.warning(fmt::format("{}: worker {} ended abnormally (status {})",
                                                       entry.empty() ? std::string("idle") : entry, pid, status));
            }
            if (!entry.empty()) in_flight_.erase(entry);
            std::erase(idle_, pid);
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
            } else if (id.starts_with("etrn ")) {
                etrn(id.substr(5));
            } else if (mail::is_valid_queue_id(id)) {
                if (wanted_.size() < wakeup_backlog) wanted_.push_back(id);
                else next_scan_ = Clock::now();
            }
        }
        partial_.erase(0, start);
        if (partial_.size() > 256) partial_.clear();  // not ours: garbage in the FIFO
    }

    // ETRN DOMAIN (from the SMTP listener): every entry with a recipient at DOMAIN is
    // run now, due or not. It reads each entry of queue/, so at most one such scan
    // runs every etrn_interval, whoever asks: a client repeating ETRN cannot keep the
    // daemon reading the queue.
    void etrn(const std::string& domain) {
        if (Clock::now() < etrn_again_at_) {
            context_.logs.qmgr.info("ETRN " + domain + ": too soon after the last one, ignored");
            return;
        }
        etrn_again_at_ = Clock::now() + etrn_interval;
        auto dir = context_.spool.open_scan(mail::QueueFolder::queue);
        if (!dir) return;
        size_t found = 0;
        while (struct dirent* entry = ::readdir(dir->get())) {
            if (!mail::is_valid_queue_id(entry->d_name)) continue;
            auto snapshot = mail::read_entry(context_.spool, mail::QueueFolder::queue, entry->d_name);
            if (!snapshot) continue;
            for (const auto& recipient : snapshot->envelope.recipients) {
                size_t at = recipient.rfind('@');
                if (at == std::string::npos || mail::lowercase_ascii(recipient.substr(at + 1)) != domain) continue;
                if (wanted_.size() < wakeup_backlog) wanted_.push_back("!" + std::string(entry->d_name));
                ++found;
                break;
            }
        }
        context_.logs.qmgr.info(fmt::format("ETRN {}: {} messages to run", domain, found));
    }

    void kill_workers() {
        context_.logs.qmgr.warning(fmt::format("stopping: {} deliveries abandoned, retried at the next start",
                                               busy_workers()));
        for (const auto& [pid, worker] : workers_) ::kill(-pid, SIGKILL);  // with its delivery processes
        for (const auto& [pid, worker] : workers_) ::waitpid(pid, nullptr, 0);
        workers_.clear();
        idle_.clear();
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
    std::map<pid_t, Worker> workers_;
    std::vector<pid_t> idle_;  // workers waiting for an entry, the most recently used last
    std::set<std::string> in_flight_;
    // The delivery agents the workers write through, ended (killed and reaped) with
    // the daemon, when no worker is left.
    mail::AgentRegistry agents_;
    std::unique_ptr<char[]> packet_;  // a worker's packet, allocated at the first
    Clock::time_point fork_again_at_;
    pid_t listener_ = 0;  // the SMTP listener's root side
    Clock::time_point etrn_again_at_;
    Clock::time_point listener_again_at_;
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
