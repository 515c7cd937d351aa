// mailctl — queue administration and address tracing.
//
// SYNOPSIS
//   mailctl [-C FILE] hold ID...|ALL       stop delivery attempts (the entry moves to hold/)
//   mailctl [-C FILE] release ID...|ALL    resume them
//   mailctl [-C FILE] delete ID...|ALL     remove from the queue (quarantined IDs too)
//   mailctl [-C FILE] requeue ID...|ALL    every deferred recipient due now; wakes the daemon
//   mailctl [-C FILE] flush                wake the daemon, or run the queue once here
//   mailctl [-C FILE] check                configuration, spool owners and modes, aliases db
//   mailctl [-C FILE] trace [--json] ADDRESS...
//                                          where mail for ADDRESS would go (sendmail -bv):
//                                          alias lines, .forward files, each final target
//                                          and the user it runs as; nothing is delivered
// An ID "-" reads IDs from standard input (a trailing * or ! as mailq prints is
// dropped), as postsuper does. Each change is logged as Postfix's postsuper logs it,
// and a summary goes to stderr ("mailctl: Placed on hold: 2 messages").
//
// EXIT STATUS (docs/mailq.md)
//   hold/release/delete/requeue: 0 every ID was found; 67 some ID is in no queue
//   folder (each gets an error line, the others are still done); 75 the spool failed;
//   77 the caller is neither root nor the spool owner. check: 0 sound (warnings
//   allowed), 78 configuration or aliases db, 73 a spool folder or the trigger
//   missing, 77 wrong owner, mode or links. trace: 0 deliverable, 65 bad address,
//   67 unknown user, 75 would be deferred. 64 usage, 78 configuration, everywhere;
//   77 -C or MAILROOM_CONF when running set-id (only the installed file is read).
#include <sys/stat.h>
#include <sysexits.h>
#include <pwd.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <ctime>
#include <exception>
#include <iostream>
#include <optional>
#include <string>
#include <vector>

#include <fmt/format.h>

#include "core/config.hpp"
#include "core/log.hpp"
#include "core/process_signals.hpp"
#include "core/users.hpp"
#include "queue/queue_admin.hpp"
#include "queue/queue_listing.hpp"
#include "queue/queue_runner.hpp"
#include "delivery/expansion_sources.hpp"
#include "delivery/trace.hpp"
#include "queue/spool_check.hpp"
#include "net/transports.hpp"

namespace core = mailroom::core;
namespace mail = mailroom::mail;

namespace {

constexpr const char* usage_line =
    "usage: mailctl [-C FILE] hold|release|delete|requeue ID...|ALL | flush | check | trace [--json] ADDRESS...";

int fail(int code, const std::string& what) {
    core::report_on_stderr("mailctl", core::Logger::Severity::error, what);
    return code;
}

core::Logger open_log(const std::string& role, const core::Config& config) {
    auto opened = core::Logger::open(role, config.str("log"));
    return opened ? std::move(*opened) : core::Logger::to_stderr(role);
}

// The spool, opened only by its owner or root: every change needs their rights, and
// mailctl may be installed set-uid, so the real uid is the one that counts.
std::optional<int> open_spool_as_admin(const core::Config& config, const std::string& command,
                                       std::optional<mail::Spool>& spool) {
    const std::string& dir = config.str("spool_dir");
    struct stat st {};
    if (::stat(dir.c_str(), &st) != 0) return fail(EX_TEMPFAIL, "cannot open the spool (spool_dir " + dir + ": " + std::strerror(errno) + ")");
    if (::getuid() != 0 && ::getuid() != st.st_uid) {
        return fail(EX_NOPERM, fmt::format("{}: only root or the spool owner (uid {}) may change the queue (you are uid {})",
                                           command, st.st_uid, ::getuid()));
    }
    auto opened = mail::Spool::open(dir);
    if (!opened) return fail(EX_TEMPFAIL, "cannot open the spool (" + opened.error().message() + ")");
    spool.emplace(std::move(*opened));
    return std::nullopt;
}

std::optional<std::vector<std::string>> queue_ids(const std::vector<std::string>& args, bool& all) {
    std::vector<std::string> ids;
    auto take = [&](std::string id) {
        if (id == "ALL") return all = true;
        if (!id.empty() && (id.back() == '*' || id.back() == '!')) id.pop_back();
        if (!mail::is_valid_queue_id(id)) return false;
        ids.push_back(std::move(id));
        return true;
    };
    for (const auto& arg : args) {
        if (arg == "-") {
            for (std::string word; std::cin >> word;) {
                if (take(word)) continue;
                fail(EX_USAGE, "'" + mail::printable_text(word) + "' on standard input is not a queue ID");
                return std::nullopt;
            }
        } else if (!take(arg)) {
            fail(EX_USAGE, "'" + mail::printable_text(arg) + "' is not a queue ID (10-20 letters and digits, or ALL)");
            return std::nullopt;
        }
    }
    return ids;
}

int administer(const core::Config& config, mail::AdminAction action, const std::string& command,
               const std::vector<std::string>& args) {
    bool all = false;
    auto ids = queue_ids(args, all);
    if (!ids) return EX_USAGE;
    if (ids->empty() && !all) return fail(EX_USAGE, command + " needs queue IDs or ALL (" + usage_line + ")");
    std::optional<mail::Spool> spool;
    if (auto stop = open_spool_as_admin(config, command, spool)) return *stop;
    if (all) {
        auto names = mail::sorted_entry_names(*spool, mail::folders_for_all(action));
        if (!names) return fail(EX_TEMPFAIL, "cannot read the queue (" + names.error().message() + ")");
        for (auto& name : *names) ids->push_back(std::move(name.id));
    }
    core::Logger log = open_log("postsuper", config);
    int exit_code = EX_OK;
    size_t changed = 0;
    for (const auto& id : *ids) {
        auto result = mail::administer(*spool, action, id, ::time(nullptr), log);
        switch (result.outcome) {
        case mail::AdminResult::Outcome::done: ++changed; break;
        case mail::AdminResult::Outcome::unchanged:
            core::report_on_stderr("mailctl", core::Logger::Severity::warning, id + ": " + result.why);
            break;
        case mail::AdminResult::Outcome::not_found:
            // With ALL, an entry that went meanwhile was simply delivered.
            if (!all) exit_code = mail::worst_exit_code(exit_code, fail(EX_NOUSER, id + ": no such message in the queue"));
            break;
        case mail::AdminResult::Outcome::failed:
            exit_code = mail::worst_exit_code(exit_code, fail(EX_TEMPFAIL, id + ": " + command + " failed (" + result.why + ")"));
            break;
        }
    }
    std::fprintf(stderr, "mailctl: %s: %zu message%s\n", mail::admin_summary_word(action), changed, changed == 1 ? "" : "s");
    if (action == mail::AdminAction::requeue && changed > 0) spool->notify_daemon("flush");
    return exit_code;
}

int flush(const core::Config& config) {
    auto spool = mail::Spool::open(config.str("spool_dir"));
    if (spool && spool->notify_daemon("flush")) return EX_OK;
    // No daemon reads the trigger: run the queue once here, as `mta -q` does.
    std::optional<mail::Spool> admin;
    if (auto stop = open_spool_as_admin(config, "flush (no daemon runs)", admin)) return *stop;
    auto context = mail::RunnerContext::from_config(config, *admin);
    if (auto attached = mailroom::net::attach_transports(context, config); !attached)
        return fail(EX_CONFIG, attached.error().message());
    admin->sweep_tmp(context.clock->now(), 86400);
    auto summary = mail::run_queue_once(context, true);
    if (!summary) return fail(EX_TEMPFAIL, "cannot scan the queue (" + summary.error().message() + ")");
    std::fprintf(stderr, "mailctl: no daemon runs: ran the queue once (%zu message%s tried, %zu finished)\n",
                 summary->seen, summary->seen == 1 ? "" : "s", summary->finished);
    return EX_OK;
}

// Every account of the password database (getpwent goes through NSS, so through
// nss_wrapper in the tests), for the home folders that hold mboxes.
std::vector<mail::HomeOfUser> every_account() {
    std::vector<mail::HomeOfUser> accounts;
    ::setpwent();
    while (const struct passwd* pw = ::getpwent()) {
        if (pw->pw_dir && pw->pw_dir[0] == '/') accounts.push_back({pw->pw_name, pw->pw_dir});
    }
    ::endpwent();
    return accounts;
}

int check(const core::Config& config) {
    auto findings = mail::check_spool(config.str("spool_dir"));
    auto aliases = mail::check_aliases(config.str("aliases"));
    findings.insert(findings.end(), aliases.begin(), aliases.end());
    // Where mboxes live: mail_spool_dir, or with home_mailbox each user's home.
    const std::string& home_mailbox = config.str("home_mailbox");
    auto folder = home_mailbox.empty() ? mail::check_mail_folder(config.str("mail_spool_dir"))
                                       : mail::check_home_mail_folders(home_mailbox, every_account());
    findings.insert(findings.end(), folder.begin(), folder.end());
    for (const auto& finding : findings) {
        bool error = finding.severity == mail::CheckFinding::Severity::error;
        core::report_on_stderr("mailctl", error ? core::Logger::Severity::error : core::Logger::Severity::warning,
                               finding.text);
    }
    return mail::check_exit_code(findings);
}

// The expander's own walk, each leaf resolved as delivery resolves it
// (lib/delivery/trace.hpp). As root it can read every .forward; as a user it sees
// what that user may, and says when a step needs more rights.
int trace(const core::Config& config, std::vector<std::string> args) {
    bool json = false;
    if (!args.empty() && args.front() == "--json") {
        json = true;
        args.erase(args.begin());
    }
    if (!args.empty() && args.front() == "--") args.erase(args.begin());
    if (args.empty()) return fail(EX_USAGE, std::string("trace needs addresses (") + usage_line + ")");
    auto users = std::make_shared<core::NssUserDb>();
    auto environment = mail::ExpansionEnvironment::from_config(config, users);
    auto local = mail::LocalDeliverySettings::from_config(config);
    mail::TraceContext context{environment.settings, *environment.sources, *environment.sources, *users, local,
                               environment.run_as, mail::DeliveryRights::of_this_process(), config.str("relayhost")};
    int exit_code = EX_OK;
    for (const auto& address : args) {
        auto result = mail::trace_address(address, context);
        if (json) std::printf("%s\n", result.json.c_str());
        else for (const auto& line : result.lines) std::printf("%s\n", line.c_str());
        exit_code = mail::worst_exit_code(exit_code, result.exit_code);
    }
    return exit_code;
}

int run(int argc, char** argv) {
    std::string config_file;
    int i = 1;
    for (; i < argc && argv[i][0] == '-'; ++i) {
        std::string arg = argv[i];
        if (arg == "--help") {
            std::printf("%s\nHold, release, delete or requeue queued messages; flush the queue; check the spool;\n"
                        "trace where an address goes.\n", usage_line);
            return EX_OK;
        } else if (arg == "--version") {
            std::printf("mailctl (mailroom) %s\n", MAILROOM_VERSION);
            return EX_OK;
        } else if (arg.rfind("-C", 0) == 0) {
            if (arg.size() > 2) config_file = arg.substr(2);
            else if (i + 1 < argc) config_file = argv[++i];
            else return fail(EX_USAGE, std::string("option -C needs a value (") + usage_line + ")");
        } else {
            return fail(EX_USAGE, "bad option " + arg + " (" + usage_line + ")");
        }
    }
    if (i == argc) return fail(EX_USAGE, std::string("no command (") + usage_line + ")");
    std::string command = argv[i];
    std::vector<std::string> args(argv + i + 1, argv + argc);
    auto source = core::Config::choose_source(config_file);
    if (!source) return fail(EX_NOPERM, source.error().message());
    auto config = core::Config::load_for_program(*source);
    if (!config) return fail(EX_CONFIG, config.error().message());
    if (command == "hold") return administer(*config, mail::AdminAction::hold, command, args);
    if (command == "release") return administer(*config, mail::AdminAction::release, command, args);
    if (command == "delete") return administer(*config, mail::AdminAction::remove, command, args);
    if (command == "requeue") return administer(*config, mail::AdminAction::requeue, command, args);
    if (command == "trace") return trace(*config, args);
    if (!args.empty()) return fail(EX_USAGE, command + " takes no arguments (" + usage_line + ")");
    if (command == "flush") return flush(*config);
    if (command == "check") return check(*config);
    return fail(EX_USAGE, "unknown command " + mail::printable_text(command) + " (" + usage_line + ")");
}

}  // namespace

int main(int argc, char** argv) {
    mailroom::core::ignore_write_signals();
    try {
        return run(argc, argv);
    } catch (const std::exception&) {
        std::fputs("mailctl: error: internal error (unexpected exception)\n", stderr);
        return EX_SOFTWARE;
    }
}
