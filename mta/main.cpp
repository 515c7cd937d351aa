// mta — mailroom's queue runner and daemon.
//
// SYNOPSIS
//   mta [-C FILE] -q [-I ID...]     try every queued message once (or just these), then exit
//   mta [-C FILE] -d                daemon: start new submissions at once, scan every queue_run_delay
//   mta [-C FILE] -bs               one SMTP session on stdin/stdout (docs/smtpd.md)
//   mta [-C FILE] -n | -N           print the keys that differ from the defaults / every key
//
// Local recipients go to their mailboxes as their users; a recipient that cannot
// be delivered yet is retried on a doubling schedule and bounced after
// maximal_queue_lifetime (docs/spool.md). Several `mta -q` and one `mta -d` may
// run at once: a per-message lock keeps each message with one of them.
//
// EXIT STATUS
//   0 the run completed (even when some messages stay deferred); 64 usage;
//   75 the spool could not be read or a daemon already runs; 77 -C or MAILROOM_CONF
//   in a set-id run, or a spool folder that is a symbolic link or not the spool
//   owner's; 78 configuration.
//
// PRIVILEGES
//   Run as root to deliver to every user (each mailbox is written in a child
//   switched to its user). Run as another user it delivers only that user's mail
//   and leaves the rest, untouched, to the root-run daemon. Running set-id (started
//   by a set-uid sendmail) it reads only the installed configuration.
#include <sys/file.h>
#include <sysexits.h>
#include <unistd.h>

#include <cstdio>
#include <cstring>
#include <exception>
#include <string>
#include <vector>

#include <fmt/format.h>

#include "core/config.hpp"
#include "core/log.hpp"
#include "core/process_signals.hpp"
#include "core/unique_fd.hpp"
#include "core/users.hpp"
#include "daemon.hpp"
#include "smtpd.hpp"
#include "queue/queue_runner.hpp"
#include "net/transports.hpp"

namespace core = mailroom::core;
namespace mail = mailroom::mail;

namespace {

constexpr const char* usage_line = "usage: mta [-C FILE] -q [-I ID...] | -d | -bs | -n | -N";

enum class Mode { none, run_once, daemon, smtp_session, print_changed, print_all };

struct Options {
    std::string config_file;
    Mode mode = Mode::none;
    std::vector<std::string> ids;
};

int fail(int code, const std::string& what) {
    core::report_on_stderr("mta", core::Logger::Severity::error, what);
    return code;
}

std::optional<int> parse_options(int argc, char** argv, Options& options) {
    bool ids_follow = false;
    for (int i = 1; i < argc; ++i) {
        std::string arg = argv[i];
        auto set_mode = [&](Mode mode) -> std::optional<int> {
            if (options.mode != Mode::none && options.mode != mode) {
                return fail(EX_USAGE, "choose one of -q, -d, -bs, -n, -N (" + std::string(usage_line) + ")");
            }
            options.mode = mode;
            return std::nullopt;
        };
        std::optional<int> stop;
        if (arg == "--help") {
            std::printf("%s\nDeliver queued mail: once (-q), or as a daemon (-d).\n", usage_line);
            return EX_OK;
        } else if (arg == "--version") {
            std::printf("mta (mailroom) %s\n", MAILROOM_VERSION);
            return EX_OK;
        } else if (arg == "-C" || arg.rfind("-C", 0) == 0) {
            if (arg.size() > 2) options.config_file = arg.substr(2);
            else if (i + 1 < argc) options.config_file = argv[++i];
            else return fail(EX_USAGE, "option -C needs a value");
        } else if (arg == "-q") {
            stop = set_mode(Mode::run_once);
        } else if (arg == "-I") {
            ids_follow = true;
        } else if (arg == "-d") {
            stop = set_mode(Mode::daemon);
        } else if (arg == "-bs") {
            stop = set_mode(Mode::smtp_session);
        } else if (arg == "-n") {
            stop = set_mode(Mode::print_changed);
        } else if (arg == "-N") {
            stop = set_mode(Mode::print_all);
        } else if (ids_follow && arg[0] != '-') {
            if (!mail::is_valid_queue_id(arg)) return fail(EX_USAGE, "'" + arg + "' is not a queue ID");
            options.ids.push_back(arg);
        } else {
            return fail(EX_USAGE, "bad option " + arg + " (" + usage_line + ")");
        }
        if (stop) return stop;
    }
    if (options.mode == Mode::none) return fail(EX_USAGE, std::string("nothing to do (") + usage_line + ")");
    if (ids_follow && (options.mode != Mode::run_once || options.ids.empty())) {
        return fail(EX_USAGE, "-I takes one or more queue IDs, with -q");
    }
    return std::nullopt;
}

int run(const Options& options) {
    auto source = core::Config::choose_source(options.config_file);
    if (!source) return fail(EX_NOPERM, source.error().message());
    auto config = core::Config::load_for_program(*source);
    if (!config) return fail(EX_CONFIG, config.error().message());
    if (options.mode == Mode::print_changed || options.mode == Mode::print_all) {
        std::fputs(config->dump(options.mode == Mode::print_all).c_str(), stdout);
        return EX_OK;
    }
    auto spool = mail::Spool::open(config->str("spool_dir"));
    if (!spool) {
        // EPERM: a folder arranged by someone else (a symbolic link, another owner).
        int code = spool.error().errno_value() == EPERM ? EX_NOPERM : EX_TEMPFAIL;
        return fail(code, "cannot open the spool (" + spool.error().message() + ")");
    }
    if (options.mode == Mode::smtp_session) {
        auto log = core::Logger::open("smtpd", config->str("log"));
        if (!log) return fail(EX_CONFIG, "log: " + log.error().message());
        return mailroom::mta::run_smtp_stdio(*config, *spool, *log);
    }
    auto context = mail::RunnerContext::from_config(*config, *spool);
    if (auto attached = mailroom::net::attach_transports(context, *config); !attached)
        return fail(EX_CONFIG, attached.error().message());

    if (options.mode == Mode::daemon) {
        // One daemon per spool: a second one would only double the scans.
        std::string lock_path = spool->dir() + "/daemon.lock";
        core::UniqueFd lock(::open(lock_path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0600));
        if (!lock || ::flock(lock.get(), LOCK_EX | LOCK_NB) != 0) {
            return fail(EX_TEMPFAIL, "another mta -d runs on " + spool->dir() + " (" + lock_path + " is locked)");
        }
        // Like every file in the spool, it belongs to the spool owner (docs/spool.md).
        if (::geteuid() == 0 && spool->owner_uid() != 0) (void)::fchown(lock.get(), spool->owner_uid(), spool->owner_gid());
        mailroom::mta::DaemonSettings daemon;
        daemon.queue_run_delay = config->duration("queue_run_delay");
        daemon.workers = static_cast<unsigned>(config->number("delivery_workers"));
        // Listeners are bound here, as root and before anything runs, so that a port
        // in use or a bad key stops the start with its exit code.
        auto prepared = mailroom::mta::prepare_smtpd(*config, *spool);
        if (auto* error = std::get_if<mailroom::mta::SmtpdError>(&prepared)) return fail(error->exit_code, error->text);
        auto& smtpd = std::get<mailroom::mta::SmtpdSetup>(prepared);
        std::optional<core::Logger> smtpd_log;
        if (!smtpd.empty()) {
            auto opened = core::Logger::open("smtpd", config->str("log"));
            if (!opened) return fail(EX_CONFIG, "log: " + opened.error().message());
            smtpd_log.emplace(std::move(*opened));
            daemon.run_listener = [&] { return mailroom::mta::run_smtpd(*config, smtpd, *smtpd_log); };
        }
        return mailroom::mta::run_queue_daemon(context, daemon);
    }
    if (!options.ids.empty()) {
        for (const auto& id : options.ids) {
            auto run = mail::run_entry_and_notices(context, id, true);
            if (run.outcome == mail::EntryRun::Outcome::gone) {
                core::report_on_stderr("mta", core::Logger::Severity::warning,
                                       id + " is not in the queue (delivered or held)");
            }
        }
        return EX_OK;
    }
    spool->sweep_tmp(context.clock->now(), 86400);
    auto summary = mail::run_queue_once(context, true);
    if (!summary) return fail(EX_TEMPFAIL, "cannot scan the queue (" + summary.error().message() + ")");
    return EX_OK;
}

}  // namespace

int main(int argc, char** argv) {
    mailroom::core::ignore_write_signals();
    try {
        Options options;
        if (auto stop = parse_options(argc, argv, options)) return *stop;
        return run(options);
    } catch (const std::exception&) {
        std::fputs("mta: error: internal error (unexpected exception)\n", stderr);
        return EX_SOFTWARE;
    }
}
