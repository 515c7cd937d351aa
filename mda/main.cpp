// mda — mailroom's local delivery agent.
//
// SYNOPSIS
//   mda [-C FILE] [-f SENDER] [-a ORIGINAL_RECIPIENT] [-m mbox|maildir] [-o PATH] USER...
//
// Reads one message on standard input (LF or CRLF lines) and appends it to each
// USER's mailbox as mailroom.conf says (mailbox_format, mail_spool_dir,
// home_mailbox, mailbox_lock, lock_timeout). A first line "From SENDER DATE" is
// the envelope sender when -f is absent, and is removed. -m overrides the format,
// -o the mailbox path (one USER only; a trailing '/' means Maildir). USER may be
// "name", "name+extension" or "name@domain". No alias or .forward expansion.
//
// EXIT STATUS (sysexits.h)
//   0 every USER got the message; 64 usage; 65 bad sender address or mail loop;
//   67 unknown USER; 73 message over message_size_limit; 75 temporary failure
//   (lock timeout, ENOSPC, EDQUOT, ulimit -f); 77 not allowed to write that mailbox;
//   78 bad configuration. With several USERs a temporary failure wins (a caller
//   that retries then loses nothing), else the first permanent code. One stderr
//   line per failed USER.
//
// PRIVILEGES
//   Run as root, each mailbox is written as its user: in this process after an
//   irrevocable switch when there is one USER, in a forked child per USER when
//   there are several (its own process group, killed at command_timeout: see
//   docs/targets.md). Run as a user, it can deliver only to that user. Running
//   set-id it reads only the installed configuration (-C, MAILROOM_CONF: exit 77).
#include <getopt.h>
#include <sysexits.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <cstring>
#include <ctime>
#include <exception>
#include <optional>
#include <string>
#include <vector>

#include <fmt/format.h>

#include "core/config.hpp"
#include "core/log.hpp"
#include "core/process_signals.hpp"
#include "core/users.hpp"
#include "mail/address.hpp"
#include "delivery/launcher.hpp"
#include "delivery/local_delivery.hpp"
#include "delivery/target.hpp"
#include "mail/message.hpp"

namespace core = mailroom::core;
namespace mail = mailroom::mail;

namespace {

constexpr const char* usage_line =
    "usage: mda [-C FILE] [-f SENDER] [-a ORIGINAL_RECIPIENT] [-m mbox|maildir] [-o PATH] USER...";

struct Options {
    std::string config_file;
    std::optional<std::string> sender;
    std::string original_recipient;
    std::optional<mail::MailboxFormat> format;
    std::optional<std::string> path;
    std::vector<std::string> users;
};

int fail(int code, const std::string& what) {
    core::report_on_stderr("mda", core::Logger::Severity::error, what);
    return code;
}

// Returns an exit code when the program must stop now (usage, --help, --version).
std::optional<int> parse_options(int argc, char** argv, Options& options) {
    for (int i = 1; i < argc && std::strcmp(argv[i], "--") != 0; ++i) {
        if (std::strcmp(argv[i], "--help") == 0) {
            std::printf("%s\nDeliver the message on standard input into each USER's mailbox.\n", usage_line);
            return EX_OK;
        }
        if (std::strcmp(argv[i], "--version") == 0) {
            std::printf("mda (mailroom) %s\n", MAILROOM_VERSION);
            return EX_OK;
        }
    }
    int opt;
    opterr = 0;
    while ((opt = ::getopt(argc, argv, "+:C:f:a:m:o:")) != -1) {
        switch (opt) {
            case 'C': options.config_file = optarg; break;
            case 'f': options.sender = optarg; break;
            case 'a': options.original_recipient = optarg; break;
            case 'o': options.path = optarg; break;
            case 'm':
                if (std::strcmp(optarg, "mbox") == 0) options.format = mail::MailboxFormat::mbox;
                else if (std::strcmp(optarg, "maildir") == 0) options.format = mail::MailboxFormat::maildir;
                else return fail(EX_USAGE, std::string("unknown mailbox format '") + optarg + "' (mbox or maildir)");
                break;
            case ':':
                return fail(EX_USAGE, std::string("option -") + static_cast<char>(optopt) + " needs a value (" +
                                          usage_line + ")");
            default:
                return fail(EX_USAGE, std::string("bad option -") + static_cast<char>(optopt) + " (" + usage_line + ")");
        }
    }
    for (int i = optind; i < argc; ++i) options.users.emplace_back(argv[i]);
    if (options.users.empty()) return fail(EX_USAGE, std::string("no USER given (") + usage_line + ")");
    if (options.path && options.users.size() > 1) return fail(EX_USAGE, "-o takes exactly one USER");
    return std::nullopt;
}

int run(const Options& options) {
    auto source = core::Config::choose_source(options.config_file);
    if (!source) return fail(EX_NOPERM, source.error().message());
    auto config = core::Config::load_for_program(*source);
    if (!config) return fail(EX_CONFIG, config.error().message());
    // A log that cannot be opened must not stop delivery: fall back to syslog.
    auto opened = core::Logger::open("local", config->str("log"));
    core::Logger log = opened ? std::move(*opened) : std::move(*core::Logger::open("local", "syslog"));
    auto settings = mail::LocalDeliverySettings::from_config(*config);

    mail::MessageOptions message_options;
    if (const char* tmp = std::getenv("TMPDIR"); tmp && *tmp) message_options.tmp_dir = tmp;
    message_options.size_limit = config->size("message_size_limit");
    auto message = mail::Message::read_from(STDIN_FILENO, message_options);
    if (!message) {
        int err = message.error().errno_value();
        if (err == EMSGSIZE) return fail(EX_CANTCREAT, "message larger than message_size_limit");
        if (err == EFBIG) {
            return fail(EX_TEMPFAIL, "cannot read the message: file size limit exceeded (ulimit -f) (" +
                                         message.error().message() + ")");
        }
        return fail(err == ENOSPC || err == EDQUOT ? EX_TEMPFAIL : EX_IOERR,
                    "cannot read the message (" + message.error().message() + ")");
    }

    core::NssUserDb users;
    std::string caller = "MAILER-DAEMON";
    if (!options.sender && !message->from_line_sender()) {
        if (auto me = users.find_uid(::getuid()); me && *me) caller = (*me)->name;
    }
    auto sender = mail::envelope_sender(options.sender, *message, caller);
    if (!sender) return fail(EX_DATAERR, sender.error().message());

    auto context = mail::DeliveryContext::from_settings(settings);
    context.sender = *sender;
    context.original_recipient = options.original_recipient;
    context.arrival = std::time(nullptr);
    // One USER: the delivery is this process's last act, so it switches for good
    // without a fork (the fast path the benchmark measures).
    context.isolation = options.users.size() == 1 ? mail::Isolation::in_process : mail::Isolation::child_process;
    auto started = std::chrono::steady_clock::now();
    int exit_code = EX_OK;
    for (const auto& name : options.users) {
        std::string local = name.substr(0, name.find('@'));
        auto parts = mail::split_extension(local, config->str("recipient_delimiter"));
        auto user = users.find(parts.user);
        if (!user) {
            exit_code = mail::worst_exit_code(exit_code, fail(EX_TEMPFAIL, "cannot look up user " + parts.user + " (" +
                                                               user.error().message() + ")"));
            continue;
        }
        if (!*user) {
            exit_code = mail::worst_exit_code(exit_code, fail(EX_NOUSER, "unknown user " + parts.user + " (no such user)"));
            continue;
        }
        auto target = mail::Target::mailbox(parts.user + "@" + config->str("myhostname"), **user,
                                            mail::mailbox_location(settings, **user, options.format, options.path));
        auto status = mail::deliver(target, *message, context).status;
        std::string orig = options.original_recipient.empty() ? "" : ", orig_to=<" + options.original_recipient + ">";
        std::chrono::duration<double> delay = std::chrono::steady_clock::now() - started;
        log.info(fmt::format("to=<{}>{}, relay=local, delay={:.2f}, {}", target.address, orig, delay.count(),
                             status.to_log()));
        if (!status.is_ok()) {
            exit_code = mail::worst_exit_code(exit_code, fail(status.to_sysexit(), "cannot deliver to " + parts.user + " (" +
                                                                      status.code() + " " + status.text() + ")"));
        }
    }
    return exit_code;
}

}  // namespace

int main(int argc, char** argv) {
    mailroom::core::ignore_write_signals();
    try {
        Options options;
        if (auto stop = parse_options(argc, argv, options)) return *stop;
        return run(options);
    } catch (const std::exception&) {
        // Only a bug gets here; the exception text is not for users.
        std::fputs("mda: error: internal error (unexpected exception)\n", stderr);
        return EX_SOFTWARE;
    }
}
