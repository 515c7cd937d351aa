// sendmail — mailroom's sendmail(1)-compatible submission program.
//
// SYNOPSIS
//   sendmail [-t] [-i|-oi] [-f SENDER] [-F NAME] [-odi|-odb|-odq] [-v] [-C FILE] [--] [RECIPIENT...]
//   sendmail -bp | -bi | -bs | -bd | -bv ADDRESS... | -q[INTERVAL]
//
// Reads a message on standard input, adds the headers it lacks (From:, Date:,
// Message-ID:) and a Received: header, and queues it durably in spool_dir for
// the recipients given (and, with -t, those of To:/Cc:/Bcc:, Bcc: removed).
// A sender (-f) or recipient without a domain gets @myhostname, as with
// Postfix's append_at_myorigin.
// Without -i a line holding only "." ends the message. Then, by default (-odb),
// it wakes the running `mta -d`, or starts `mta -q -I ID` in the background when
// none runs; -odi delivers before exiting, -odq only queues. The other modes hand
// over to mailq (-bp), newaliases (-bi), mta (-bs, -bd, -q) and mailctl (-bv).
//
// EXIT STATUS
//   0 the message is on stable storage in the queue; 64 usage (no recipients and
//   no -t); 65 an address that does not parse, or -t found none; 73 message over
//   message_size_limit; 75 the spool could not take it (full disk, ulimit -f...); 77 -C or
//   MAILROOM_CONF in a set-id run, or a spool folder that is a symbolic link or not
//   the spool owner's; 78 configuration.
//
// PRIVILEGES
//   Meant to be installed set-uid to the spool's owner (never root): queue files
//   belong to that owner, not to the submitter (docs/security.md). Run as root,
//   it writes them for that owner too. Running set-id it reads only the installed
//   configuration (-C and MAILROOM_CONF: exit 77, before any file is opened), and
//   the programs it starts get that configuration and only PATH=/usr/bin:/bin as
//   their environment (docs/sendmail.md).
#include <fcntl.h>
#include <sysexits.h>
#include <unistd.h>

#include <cstdio>
#include <exception>
#include <string>
#include <vector>

#include <fmt/format.h>

#include "core/config.hpp"
#include "core/log.hpp"
#include "core/process_signals.hpp"
#include "core/users.hpp"
#include "mail/address.hpp"
#include "queue/queue_runner.hpp"
#include "queue/queue_submission.hpp"
#include "mail/sendmail_options.hpp"
#include "delivery/routing.hpp"
#include "sibling_exec.hpp"

namespace core = mailroom::core;
namespace mail = mailroom::mail;
using mailroom::mta::exec_sibling;
using mailroom::mta::spawn_sibling;

namespace {

int fail(int code, const std::string& what) {
    core::report_on_stderr("sendmail", core::Logger::Severity::error, what);
    return code;
}

// A file the caller named goes on to the program started; the installed one need
// not (and a set-id run has no other: the program started reads it by itself).
std::vector<std::string> with_config(std::vector<std::string> args, const core::ConfigSource& source) {
    if (source.named) args.insert(args.begin(), {"-C", source.path});
    return args;
}

// Whether the queued entry names a recipient outside mydestination. (One that an
// alias turns into a remote address is found only at delivery: it waits for the
// daemon's next scan.)
bool has_remote_recipient(const core::Config& config, const mail::Spool& spool, const std::string& id) {
    auto entry = mail::read_entry(spool, mail::QueueFolder::queue, id);
    if (!entry) return false;
    auto routing = mail::RoutingSettings::from_config(config);
    for (const auto& recipient : entry->envelope.recipients) {
        if (mail::route_address(recipient, routing).kind == mail::Route::Kind::remote) return true;
    }
    return false;
}

// The other modes are other programs' jobs: hand over, keeping -C.
int hand_over(const mail::SendmailOptions& options, const core::ConfigSource& source) {
    switch (options.mode) {
    case mail::SendmailMode::list_queue: return exec_sibling("mailq", with_config({}, source));
    case mail::SendmailMode::rebuild_aliases: return exec_sibling("newaliases", with_config({}, source));
    // mta -bs writes the queue as this process may: set-uid to the spool owner, the
    // exec keeps that effective uid, and the submitter is still the real one.
    case mail::SendmailMode::smtp_session: return exec_sibling("mta", with_config({"-bs"}, source));
    case mail::SendmailMode::daemon: return exec_sibling("mta", with_config({"-d"}, source));
    case mail::SendmailMode::run_queue:
        return exec_sibling("mta", with_config({options.queue_interval ? "-d" : "-q"}, source));
    case mail::SendmailMode::verify: {
        std::vector<std::string> args{"trace", "--"};
        args.insert(args.end(), options.recipients.begin(), options.recipients.end());
        return exec_sibling("mailctl", with_config(args, source));
    }
    default: return EX_SOFTWARE;
    }
}

int submit(const mail::SendmailOptions& options, const core::ConfigSource& source, const core::Config& config) {
    if (options.recipients.empty() && !options.recipients_from_headers) {
        return fail(EX_USAGE, "no recipients given and no -t (usage: sendmail [options] [--] recipient...)");
    }
    mail::SubmitRequest request;
    for (const auto& given : options.recipients) {
        auto address = mail::Address::parse(given, mail::ParseMode::bare);
        if (!address || address->is_null()) {
            return fail(EX_DATAERR, "bad recipient address '" + given + "' (" +
                                        (address ? std::string("empty address") : address.error().message()) + ")");
        }
        request.recipients.push_back(address->str());
    }
    core::NssUserDb users;
    uid_t uid = ::getuid();
    auto me = users.find_uid(uid);
    std::string login = me && *me ? (*me)->name : std::to_string(uid);
    const std::string& hostname = config.str("myhostname");
    // pickup logs the sender as given, or the login name, as Postfix's pickup does.
    std::string pickup_from = login;
    if (options.sender) {
        auto sender = mail::Address::parse(*options.sender, mail::ParseMode::bare, mail::ParseFlags{.allow_null = true});
        if (!sender) return fail(EX_DATAERR, "bad sender address '" + *options.sender + "' (" + sender.error().message() + ")");
        request.sender = sender->str();
        // submit_message appends @myhostname to a bare sender (Postfix's append_at_myorigin).
        pickup_from = request.sender;  // "" for the null sender: from=<>
    } else {
        request.sender = login + "@" + hostname;
    }
    request.filter.myhostname = hostname;
    request.default_domain = hostname;
    request.filter.login = login;
    request.filter.uid = uid;
    request.filter.full_name = options.full_name ? *options.full_name
                               : me && *me       ? core::gecos_full_name((*me)->gecos, login)
                                                 : "";
    request.filter.recipients_from_headers = options.recipients_from_headers;
    request.filter.dot_ends_message = options.dot_ends_message;
    request.filter.size_limit = config.size("message_size_limit");

    auto spool = mail::Spool::open(config.str("spool_dir"));
    if (!spool) {
        // EPERM: a folder arranged by someone else; retrying will not help.
        int code = spool.error().errno_value() == EPERM ? EX_NOPERM : EX_TEMPFAIL;
        return fail(code, "cannot open the queue (" + spool.error().message() + ")");
    }
    auto queued = mail::submit_message(*spool, std::move(request), STDIN_FILENO);
    if (!queued) {
        int err = queued.error().errno_value();
        if (err == EMSGSIZE) return fail(EX_CANTCREAT, "message larger than message_size_limit (nothing queued)");
        if (err == EFBIG) {
            // The caller's RLIMIT_FSIZE, not the message: it may well fit another time.
            return fail(EX_TEMPFAIL, "cannot queue the message: file size limit exceeded (ulimit -f) (" +
                                         queued.error().message() + "); nothing was queued");
        }
        if (err == EDESTADDRREQ) return fail(EX_DATAERR, "no recipient addresses found in the message header");
        if (err == 0) return fail(EX_DATAERR, queued.error().message());
        return fail(EX_TEMPFAIL, "cannot queue the message (" + queued.error().message() + "); nothing was queued");
    }
    auto pickup = core::Logger::open("pickup", config.str("log"));
    if (pickup) {
        pickup->info(fmt::format("{}: uid={} from=<{}>", queued->id, uid, pickup_from));
    }
    if (auto cleanup = core::Logger::open("cleanup", config.str("log")); cleanup && !queued->message_id.empty()) {
        cleanup->info(fmt::format("{}: message-id={}", queued->id, queued->message_id));
    }
    if (options.verbose) std::fprintf(stderr, "sendmail: queued as %s\n", queued->id.c_str());

    if (options.delivery == mail::DeliveryMode::queue_only) return EX_OK;
    if (options.delivery == mail::DeliveryMode::background) {
        if (!spool->wake_daemon(queued->id)) spawn_sibling("mta", with_config({"-q", "-I", queued->id}, source));
        return EX_OK;
    }
    // -odi with local_transport = lmtp:...: the runner that has the LMTP client does
    // it, in the foreground (sendmail itself stays free of the network code, so that
    // it starts fast). The message is queued whatever happens.
    // So does a message with a remote recipient: SMTP is the runner's (mta's) too.
    if (config.str("local_transport") != "local" || has_remote_recipient(config, *spool, queued->id)) {
        (void)exec_sibling("mta", with_config({"-q", "-I", queued->id}, source));
        return EX_OK;  // queued: a runner delivers it later if mta could not start
    }
    // -odi: deliver now, in this process; the message is queued whatever happens.
    auto context = mail::RunnerContext::from_config(config, *spool, options.verbose);
    mail::run_entry_and_notices(context, queued->id, true);
    return EX_OK;
}

}  // namespace

int main(int argc, char** argv) {
    mailroom::core::ignore_write_signals();
    try {
        auto options = mail::parse_sendmail_options(std::vector<std::string>(argv + 1, argv + argc));
        if (!options) return fail(EX_USAGE, options.error().message());
        if (options->mode == mail::SendmailMode::help) {
            std::puts("usage: sendmail [-t] [-i] [-f SENDER] [-F NAME] [-odi|-odb|-odq] [-v] [-C FILE] [--] recipient...\n"
                      "Queue the message on standard input for delivery.");
            return EX_OK;
        }
        if (options->mode == mail::SendmailMode::version) {
            std::printf("sendmail (mailroom) %s\n", MAILROOM_VERSION);
            return EX_OK;
        }
        // Before any hand-over: what a set-id run starts must not get the caller's file either.
        auto source = core::Config::choose_source(options->config_file ? *options->config_file : "");
        if (!source) return fail(EX_NOPERM, source.error().message());
        if (options->mode != mail::SendmailMode::deliver) return hand_over(*options, *source);
        auto config = core::Config::load_for_program(*source);
        if (!config) return fail(EX_CONFIG, config.error().message());
        return submit(*options, *source, *config);
    } catch (const std::exception&) {
        std::fputs("sendmail: error: internal error (unexpected exception)\n", stderr);
        return EX_SOFTWARE;
    }
}
