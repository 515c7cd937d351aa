#include "lmtp/lmtpd.hpp"

#include <poll.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <sysexits.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include <boost/asio/io_context.hpp>
#include <boost/asio/signal_set.hpp>
#include <boost/asio/steady_timer.hpp>
#include <fmt/format.h>

#include "core/descriptors.hpp"
#include "core/privilege.hpp"
#include "core/users.hpp"
#include "delivery/agent_handoff.hpp"
#include "delivery/launcher.hpp"
#include "lmtp/lmtp_door.hpp"

namespace mailroom::lmtp {

namespace asio = boost::asio;

namespace {

// Whom the sessions process runs as: default_privs, never the spool owner — lmtpd
// needs no spool, and a taken-over session must not be able to forge queue entries.
core::Result<core::Credentials> session_user(const core::Config& config, const core::UserDb& users) {
    if (::geteuid() != 0) return core::Credentials{::geteuid(), ::getegid(), {}};
    auto found = users.find(config.str("default_privs"));
    if (!found) return core::unexpected(found.error());
    if (!*found) return core::unexpected_input("default_privs user " + config.str("default_privs") + " does not exist");
    if ((*found)->uid == 0) return core::unexpected_input("lmtpd will not run its sessions as root (default_privs)");
    return core::Credentials{(*found)->uid, (*found)->gid, {}};
}

struct SocketPair {
    core::UniqueFd root_end, session_end;
};

core::Result<SocketPair> channel_pair() {
    int ends[2];
    if (::socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, ends) != 0)
        return core::unexpected_errno("socketpair for lmtpd's sessions");
    return SocketPair{core::UniqueFd(ends[0]), core::UniqueFd(ends[1])};
}

// --- the sessions process ---

int run_sessions(const core::Config& config, const LmtpdOptions& options, std::vector<net::BoundListener> listeners,
                 int channel, const core::Logger& log) {
    asio::io_context io;
    core::SystemClock clock;
    core::NssUserDb users;
    mail::ChannelAgentSource agents(channel, std::chrono::seconds(60), mail::ChannelAgentSource::Request::mailbox);
    // Lanes: a user's messages arriving on several sessions at once are written by
    // as many agents (up to 8), so their syncs overlap instead of queueing.
    net::AgentWriter writer(io.get_executor(), agents, config.duration("command_timeout"), 8);
    auto door_settings = smtp::DeliveryDoorSettings::from_config(config);
    LmtpHandler handler(door_settings, users, clock, writer, log);

    net::ServerSettings settings;
    settings.session = smtp::SessionSettings::from_config(config, smtp::Dialect::lmtp);
    settings.timeout = config.duration("smtpd_timeout");
    net::SessionServer server(io, settings, handler, log, clock);
    if (options.inetd) {
        server.serve_stdio();
    } else {
        for (auto& listener : listeners) server.listen(std::move(listener));
    }

    asio::signal_set stop(io, SIGTERM, SIGINT);
    stop.async_wait([&](const boost::system::error_code& ec, int) {
        if (ec) return;
        log.info("stopping: finishing the sessions in progress");
        server.stop();
    });
    // Idle agent connections are let go, so that their agents end.
    asio::steady_timer retire(io);
    std::function<void()> arm = [&] {
        retire.expires_after(std::chrono::seconds(10));
        retire.async_wait([&](const boost::system::error_code& ec) {
            if (ec) return;
            writer.retire_idle(net::AgentWriter::Clock::now());
            arm();
        });
    };
    arm();
    // Ends when the listeners are closed and the last session is over.
    server.on_drained([&] {
        stop.cancel();
        retire.cancel();
    });
    io.run();
    return EX_OK;
}

// --- the root side ---

class RootSide {
public:
    RootSide(const core::Config& config, const core::Logger& log)
        : settings_(mail::LocalDeliverySettings::from_config(config)), log_(log) {}

    // Serves the sessions process until it ends; its exit code.
    int serve(int channel, pid_t sessions, int signal_fd) {
        std::vector<char> packet(64 * 1024);
        for (;;) {
            struct pollfd fds[2] = {{signal_fd, POLLIN, 0}, {channel, POLLIN, 0}};
            int n = ::poll(fds, channel >= 0 ? 2 : 1, 10'000);
            if (n < 0 && errno != EINTR) return EX_OSERR;
            registry_.retire_idle(mail::AgentRegistry::Clock::now());
            if (n <= 0) continue;
            if (fds[0].revents & POLLIN) {
                struct signalfd_siginfo info {};
                while (::read(signal_fd, &info, sizeof info) == static_cast<ssize_t>(sizeof info)) {
                    if (info.ssi_signo == SIGTERM || info.ssi_signo == SIGINT) ::kill(sessions, SIGTERM);
                }
                int status = 0;
                pid_t pid;
                while ((pid = ::waitpid(-1, &status, WNOHANG)) > 0) {
                    if (pid == sessions) return WIFEXITED(status) ? WEXITSTATUS(status) : EX_SOFTWARE;
                    registry_.reaped(pid);
                }
            }
            if (channel >= 0 && (fds[1].revents & (POLLIN | POLLHUP))) {
                ssize_t got = ::recv(channel, packet.data(), packet.size(), MSG_TRUNC | MSG_DONTWAIT);
                if (got == 0) {
                    channel = -1;  // the sessions process is ending: wait for its SIGCHLD
                } else if (got > 0 && static_cast<size_t>(got) <= packet.size()) {
                    mail::answer_mailbox_request(channel, std::string_view(packet.data(), static_cast<size_t>(got)),
                                                 registry_, [this](const std::string& name) { return resolve(name); });
                }
            }
        }
    }

private:
    // The agent for NAME's mailbox, decided here and never by the asker.
    std::variant<mail::AgentIdentity, mail::Status> resolve(const std::string& name) {
        auto user = users_.find(name);
        if (!user) {
            log_.warning("cannot look up user " + name + ": " + user.error().message());
            return mail::Status::temp("4.3.0", "cannot look up user " + name + ": " + user.error().message());
        }
        if (!*user) return mail::Status::perm("5.1.1", "no such user " + name);
        auto location = mail::mailbox_location(settings_, **user);
        auto credentials = mail::mailbox_credentials(**user, location);
        if (!credentials) return mail::Status::from_error(credentials.error());
        mail::AgentIdentity as;
        as.credentials = std::move(*credentials);
        // Root's own mailbox is written as root (docs/security.md), and only it.
        as.root = (*user)->uid == 0 ? core::PrivilegeSwitch::RootTarget::allow : core::PrivilegeSwitch::RootTarget::refuse;
        as.name = name;
        as.only = location;
        return as;
    }

    mail::LocalDeliverySettings settings_;
    const core::Logger& log_;
    core::NssUserDb users_;
    mail::AgentRegistry registry_;
};

}  // namespace

int run_lmtpd(const core::Config& config, const LmtpdOptions& options, const core::Logger& log) {
    std::vector<net::BoundListener> listeners;
    if (!options.inetd) {
        auto wanted = options.listen.empty() ? config.list("lmtpd_listen") : options.listen;
        if (wanted.empty()) {
            log.error("no listen address (-l or lmtpd_listen)");
            return EX_USAGE;
        }
        for (const auto& text : wanted) {
            auto address = net::parse_listen_address(text);
            if (!address) {
                core::report_on_stderr("lmtpd", core::Logger::Severity::error, address.error().message());
                return EX_CONFIG;
            }
            auto bound = net::bind_listener(*address);
            if (!bound) {
                core::report_on_stderr("lmtpd", core::Logger::Severity::error, "cannot listen on " + text + " (" +
                                                                                    bound.error().message() + ")");
                return EX_OSERR;
            }
            listeners.push_back(std::move(*bound));
        }
    }
    core::NssUserDb users;
    auto runs_as = session_user(config, users);
    if (!runs_as) {
        core::report_on_stderr("lmtpd", core::Logger::Severity::error, runs_as.error().message());
        return EX_CONFIG;
    }
    auto channel = channel_pair();
    if (!channel) {
        core::report_on_stderr("lmtpd", core::Logger::Severity::error, channel.error().message());
        return EX_OSERR;
    }

    sigset_t mask, old_mask;
    sigemptyset(&mask);
    for (int sig : {SIGCHLD, SIGTERM, SIGINT}) sigaddset(&mask, sig);
    ::sigprocmask(SIG_BLOCK, &mask, &old_mask);
    core::UniqueFd signal_fd(::signalfd(-1, &mask, SFD_NONBLOCK | SFD_CLOEXEC));
    if (!signal_fd) return EX_OSERR;

    pid_t sessions = ::fork();
    if (sessions < 0) return EX_OSERR;
    if (sessions == 0) {
        signal_fd.reset();
        channel->root_end.reset();
        ::sigprocmask(SIG_SETMASK, &old_mask, nullptr);
        ::prctl(PR_SET_PDEATHSIG, SIGTERM);  // the root side gone: no agents to be had
        auto dropped = core::PrivilegeSwitch::become(*runs_as, core::PrivilegeSwitch::Mode::permanent);
        if (!dropped) {
            log.error("cannot switch the sessions process to uid " + std::to_string(runs_as->uid) + ": " +
                      dropped.error().message());
            ::_exit(EX_OSERR);
        }
        ::_exit(run_sessions(config, options, std::move(listeners), channel->session_end.get(), log));
    }
    listeners.clear();  // the root side accepts nothing
    channel->session_end.reset();
    RootSide root(config, log);
    return root.serve(channel->root_end.get(), sessions, signal_fd.get());
}

}  // namespace mailroom::lmtp
