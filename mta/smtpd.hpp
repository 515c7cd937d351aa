// The SMTP listener of `mta -d` (SPEC 1, 7; docs/smtpd.md), and `mta -bs`.
//
// Process model (docs/security.md "The SMTP listener"): the daemon binds every
// listener of smtpd_listen, submission_listen and smtps_listen as root, loads the
// TLS key and the access file, and forks the listener. Its root side forks the
// sessions process and then only answers "is this the password of user U?" (PAM,
// mta/password_service.*) and passes signals on. The sessions process is switched
// for good to the spool's owner before it reads a byte: it runs every SMTP session
// in one thread (Asio), writes queue entries through the FrontDoor and wakes the
// queue runner through the trigger — nothing more than a set-uid sendmail can do.
// The daemon starts the listener again when it dies, and stops it with SIGTERM;
// SIGHUP rereads smtpd_access_file (an error keeps the rules in force).
// Must never: run sessions as root, or let the sessions process choose what the
// root side does beyond asking about one password.
#pragma once

#include <memory>
#include <string>
#include <vector>

#include <boost/asio/ssl/context.hpp>

#include "core/config.hpp"
#include "core/log.hpp"
#include "core/privilege.hpp"
#include "net/listen_address.hpp"
#include "net/session_server.hpp"
#include "queue/spool.hpp"

namespace mailroom::mta {

struct SmtpListener {
    net::BoundListener bound;
    net::ListenerRole role;
};

// Everything the listener needs that only root can get, made before any fork.
struct SmtpdSetup {
    std::vector<SmtpListener> listeners;
    std::shared_ptr<boost::asio::ssl::context> tls;  // none without smtpd_tls_cert_file
    core::Credentials sessions_user;                 // the spool's owner

    bool empty() const { return listeners.empty(); }
};

struct SmtpdError {
    int exit_code;  // EX_CONFIG or EX_OSERR
    std::string text;
};

// Binds the configured listeners, loads the TLS context, checks mynetworks and the
// access file. No listener configured: an empty setup.
std::variant<SmtpdSetup, SmtpdError> prepare_smtpd(const core::Config& config, const mail::Spool& spool);

// The listener process (in a child of the daemon): runs until SIGTERM; its exit code.
int run_smtpd(const core::Config& config, SmtpdSetup& setup, const core::Logger& log);

// `mta -bs`: one session on standard input and output, as the caller (a local
// submitter: no TLS, no AUTH, no relay control, as `sendmail` itself).
int run_smtp_stdio(const core::Config& config, const mail::Spool& spool, const core::Logger& log);

}  // namespace mailroom::mta
