#include "smtpd.hpp"

#include <poll.h>
#include <signal.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <sysexits.h>
#include <unistd.h>

#include <cerrno>

#include <boost/asio/io_context.hpp>
#include <boost/asio/signal_set.hpp>
#include <fmt/format.h>

#include "core/clock.hpp"
#include "core/users.hpp"
#include "net/password_client.hpp"
#include "net/tls_server.hpp"
#include "password_service.hpp"
#include "smtp/smtp_policy.hpp"
#include "smtp_door.hpp"

namespace mailroom::mta {

namespace asio = boost::asio;

namespace {

// PAM checks running at once in the root side; more wait their turn.
constexpr size_t password_checks_at_once = 4;
// A password check that takes longer is answered "temporary failure".
constexpr std::chrono::seconds password_timeout{30};

core::Result<std::shared_ptr<const smtp::Gatekeeper>> make_policy(const core::Config& config, const core::Logger* log) {
    auto networks = smtp::NetworkList::parse(config.list("mynetworks"));
    if (!networks) return core::unexpected_input("mynetworks: " + networks.error().message());
    smtp::AccessTable access;
    if (const std::string& path = config.str("smtpd_access_file"); !path.empty()) {
        auto loaded = smtp::AccessTable::load(path);
        if (!loaded) return core::unexpected(loaded.error());
        access = std::move(*loaded);
    }
    std::shared_ptr<const smtp::Gatekeeper> policy = std::make_shared<const smtp::SmtpPolicy>(
        std::move(*networks), std::move(access), mail::RoutingSettings::from_config(config), log);
    return policy;
}

core::Result<core::Credentials> spool_owner(const mail::Spool& spool) {
    if (::geteuid() != 0) return core::Credentials{::geteuid(), ::getegid(), {}};
    if (spool.owner_uid() == 0) {
        return core::unexpected_input("the SMTP listener will not run its sessions as root: give spool_dir " + spool.dir() +
                                      " to an unprivileged account (docs/security.md)");
    }
    return core::Credentials{spool.owner_uid(), spool.owner_gid(), {}};
}

// --- the sessions process ---

// A session holds its socket and, in a transaction, its queue file: 1000 sessions
// need more than the usual soft limit of 1024 descriptors. The hard limit is the
// administrator's word.
void raise_descriptor_limit(const core::Logger& log) {
    struct rlimit limit {};
    if (::getrlimit(RLIMIT_NOFILE, &limit) != 0 || limit.rlim_cur >= limit.rlim_max) return;
    limit.rlim_cur = limit.rlim_max == RLIM_INFINITY ? 65536 : limit.rlim_max;
    if (::setrlimit(RLIMIT_NOFILE, &limit) != 0) log.warning(fmt::format("setrlimit NOFILE: {}", std::strerror(errno)));
}

int run_sessions(const core::Config& config, SmtpdSetup& setup, int channel, const core::Logger& log) {
    raise_descriptor_limit(log);
    auto spool = mail::Spool::open(config.str("spool_dir"));
    if (!spool) {
        log.error("cannot open the spool: " + spool.error().message());
        return EX_TEMPFAIL;
    }
    auto policy = make_policy(config, &log);
    if (!policy) {
        log.error(policy.error().message());
        return EX_CONFIG;
    }
    asio::io_context io;
    core::SystemClock clock;
    core::NssUserDb users;
    net::PasswordClient passwords(io.get_executor(), core::UniqueFd(channel), password_timeout);
    SmtpDoorSettings door_settings = SmtpDoorSettings::from_config(config);
    SmtpHandler::PasswordChecker checker = [&passwords](const smtp::ClientInfo&, const std::string& user,
                                                        std::string& password) -> asio::awaitable<smtp::AuthVerdict> {
        auto verdict = co_await passwords.check(user, std::move(password));
        switch (verdict) {
            case core::PasswordVerdict::accepted: co_return smtp::AuthVerdict::accepted;
            case core::PasswordVerdict::refused: co_return smtp::AuthVerdict::refused;
            case core::PasswordVerdict::unavailable: break;
        }
        co_return smtp::AuthVerdict::unavailable;
    };
    net::DiskSync disk(io.get_executor());
    SmtpHandler handler(*spool, door_settings, users, disk, log, checker);

    net::ServerSettings settings;
    settings.session = smtp::SessionSettings::from_config(config, smtp::Dialect::smtp);
    settings.session.auth_offered = setup.tls != nullptr;
    settings.session.etrn = true;
    settings.session.gatekeeper = *policy;
    settings.timeout = config.duration("smtpd_timeout");
    settings.tls = setup.tls;
    net::SessionServer server(io, settings, handler, log, clock);
    for (auto& listener : setup.listeners) server.listen(std::move(listener.bound), listener.role);
    setup.listeners.clear();

    asio::signal_set stop(io, SIGTERM, SIGINT);
    stop.async_wait([&](const boost::system::error_code& ec, int) {
        if (ec) return;
        log.info("stopping: finishing the sessions in progress");
        server.stop();
    });
    asio::signal_set reload(io, SIGHUP);
    std::function<void()> arm_reload = [&] {
        reload.async_wait([&](const boost::system::error_code& ec, int) {
            if (ec) return;
            auto fresh = make_policy(config, &log);
            if (!fresh) {
                log.error("keeping the access rules in force: " + fresh.error().message());
            } else {
                server.replace_gatekeeper(*fresh);
                log.info("access rules reloaded");
            }
            arm_reload();
        });
    };
    arm_reload();
    server.on_drained([&] {
        stop.cancel();
        reload.cancel();
    });
    io.run();
    return EX_OK;
}

// --- the root side ---

int serve_root_side(const core::Config& config, int channel, pid_t sessions, int signal_fd, const core::Logger& log) {
    PasswordService passwords(config.str("smtpd_auth_service"), password_checks_at_once, log);
    std::vector<char> packet(8 * 1024);
    for (;;) {
        struct pollfd fds[2] = {{signal_fd, POLLIN, 0}, {channel, POLLIN, 0}};
        int n = ::poll(fds, channel >= 0 ? 2 : 1, -1);
        if (n < 0 && errno != EINTR) return EX_OSERR;
        if (n <= 0) continue;
        if (fds[0].revents & POLLIN) {
            struct signalfd_siginfo info {};
            while (::read(signal_fd, &info, sizeof info) == static_cast<ssize_t>(sizeof info)) {
                if (info.ssi_signo == SIGTERM || info.ssi_signo == SIGINT || info.ssi_signo == SIGHUP)
                    ::kill(sessions, static_cast<int>(info.ssi_signo));
            }
            int status = 0;
            pid_t pid;
            while ((pid = ::waitpid(-1, &status, WNOHANG)) > 0) {
                if (pid == sessions) return WIFEXITED(status) ? WEXITSTATUS(status) : EX_SOFTWARE;
                passwords.reaped(pid);
            }
        }
        if (channel >= 0 && (fds[1].revents & (POLLIN | POLLHUP))) {
            ssize_t got = ::recv(channel, packet.data(), packet.size(), MSG_TRUNC | MSG_DONTWAIT);
            if (got == 0) {
                channel = -1;  // the sessions process is ending: wait for its SIGCHLD
            } else if (got > 0 && static_cast<size_t>(got) <= packet.size()) {
                passwords.on_request(channel, std::string_view(packet.data(), static_cast<size_t>(got)));
            }
            ::explicit_bzero(packet.data(), packet.size());
        }
    }
}

}  // namespace

std::variant<SmtpdSetup, SmtpdError> prepare_smtpd(const core::Config& config, const mail::Spool& spool) {
    SmtpdSetup setup;
    struct Kind {
        const char* key;
        net::ListenerRole role;
    };
    const Kind kinds[] = {{"smtpd_listen", {}}, {"submission_listen", {false, true}}, {"smtps_listen", {true, false}}};
    bool any = false;
    for (const auto& kind : kinds) any = any || !config.list(kind.key).empty();
    if (!any) return setup;

    const std::string& cert = config.str("smtpd_tls_cert_file");
    const std::string& key = config.str("smtpd_tls_key_file");
    if (!cert.empty() || !key.empty()) {
        auto tls = net::make_server_tls_context(cert, key);
        if (!tls) return SmtpdError{EX_CONFIG, tls.error().message()};
        setup.tls = std::move(*tls);
    }
    if (!setup.tls && (!config.list("submission_listen").empty() || !config.list("smtps_listen").empty())) {
        // Submission needs AUTH, and AUTH is only ever offered under TLS.
        return SmtpdError{EX_CONFIG, "submission_listen and smtps_listen need smtpd_tls_cert_file and smtpd_tls_key_file"};
    }
    if (auto policy = make_policy(config, nullptr); !policy) return SmtpdError{EX_CONFIG, policy.error().message()};
    auto owner = spool_owner(spool);
    if (!owner) return SmtpdError{EX_CONFIG, owner.error().message()};
    setup.sessions_user = std::move(*owner);

    for (const auto& kind : kinds) {
        for (const auto& text : config.list(kind.key)) {
            auto address = net::parse_listen_address(text);
            if (!address) return SmtpdError{EX_CONFIG, std::string(kind.key) + ": " + address.error().message()};
            auto bound = net::bind_listener(*address);
            if (!bound) return SmtpdError{EX_OSERR, "cannot listen on " + text + " (" + bound.error().message() + ")"};
            setup.listeners.push_back(SmtpListener{std::move(*bound), kind.role});
        }
    }
    return setup;
}

int run_smtpd(const core::Config& config, SmtpdSetup& setup, const core::Logger& log) {
    int ends[2];
    if (::socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, ends) != 0) {
        log.error(fmt::format("socketpair: {}", std::strerror(errno)));
        return EX_OSERR;
    }
    core::UniqueFd root_end(ends[0]), session_end(ends[1]);

    sigset_t mask, old_mask;
    sigemptyset(&mask);
    for (int sig : {SIGCHLD, SIGTERM, SIGINT, SIGHUP}) sigaddset(&mask, sig);
    ::sigprocmask(SIG_BLOCK, &mask, &old_mask);
    core::UniqueFd signal_fd(::signalfd(-1, &mask, SFD_NONBLOCK | SFD_CLOEXEC));
    if (!signal_fd) return EX_OSERR;

    pid_t sessions = ::fork();
    if (sessions < 0) return EX_OSERR;
    if (sessions == 0) {
        signal_fd.reset();
        root_end.reset();
        ::sigprocmask(SIG_SETMASK, &old_mask, nullptr);
        ::prctl(PR_SET_PDEATHSIG, SIGTERM);  // the root side gone: no passwords to be checked
        auto dropped = core::PrivilegeSwitch::become(setup.sessions_user, core::PrivilegeSwitch::Mode::permanent);
        if (!dropped) {
            log.error(fmt::format("cannot switch the SMTP sessions to uid {}: {}", setup.sessions_user.uid,
                                  dropped.error().message()));
            ::_exit(EX_OSERR);
        }
        ::_exit(run_sessions(config, setup, session_end.release(), log));
    }
    setup.listeners.clear();  // the root side accepts nothing
    setup.tls.reset();
    session_end.reset();
    return serve_root_side(config, root_end.get(), sessions, signal_fd.get(), log);
}

int run_smtp_stdio(const core::Config& config, const mail::Spool& spool, const core::Logger& log) {
    asio::io_context io;
    core::SystemClock clock;
    core::NssUserDb users;
    SmtpDoorSettings door_settings = SmtpDoorSettings::from_config(config);
    net::DiskSync disk(io.get_executor());
    SmtpHandler handler(spool, door_settings, users, disk, log);
    net::ServerSettings settings;
    settings.session = smtp::SessionSettings::from_config(config, smtp::Dialect::smtp);
    settings.timeout = config.duration("smtpd_timeout");
    net::SessionServer server(io, settings, handler, log, clock);
    server.serve_stdio();
    io.run();
    return EX_OK;
}

}  // namespace mailroom::mta
