// PasswordService: the SMTP listener's root side answering "is this the password of
// user U?" (smtp/password_request.hpp) for the sessions process, which runs as an
// unprivileged user (mta/smtpd.hpp). The root side's loop reads each request
// packet off the channel and hands it here, and tells the service about every
// child it reaps.
//
// Each well-formed request is checked in a child of its own (forked, so that a slow
// PAM back end never stalls the loop and a crash in a PAM module takes only that
// check): at most `max_checks` children at once, the rest waiting in arrival order
// (at most max_waiting; past that a request is answered "tmp" at once). The child
// runs the check (PAM, core::check_password, by default), sends the answer on the
// channel itself (one SEQPACKET packet: sends are atomic, so children answering at
// once never interleave), logs one line, and _exits; a check that runs past
// `time_limit` is ended by SIGALRM and answered nothing (the asker times out,
// "unavailable"). The parent reaps (reaped()) and starts the next waiting check.
//
// Log lines, info level, one per check:
//   smtpd auth: user=NAME verdict=ok|no|tmp [why=PAM's text, for tmp]
// NAME as given, but for a space, written %20, and a %, written %25: the Logger
// escapes control bytes and backslashes (once, as in every line), so a user name
// can neither forge a line nor a field. A malformed request: a warning, no answer.
// Must never: log, keep or answer with a password; every buffer that held one is
// zeroed (explicit_bzero) when done with, in the parent and in the child. The
// caller zeroes its own receive buffer after on_request.
#pragma once

#include <sys/types.h>

#include <chrono>
#include <cstddef>
#include <deque>
#include <functional>
#include <map>
#include <string>
#include <string_view>

#include "core/log.hpp"
#include "core/pam_password.hpp"
#include "smtp/password_request.hpp"

namespace mailroom::mta {

class PasswordService {
public:
    // The check a child runs; PAM's by default. Tests give their own.
    using Checker = std::function<core::PasswordCheck(const std::string& user, std::string_view password)>;
    static constexpr size_t max_waiting = 1024;

    PasswordService(std::string pam_service, size_t max_checks /* at once, e.g. 4 */, const core::Logger& log);
    PasswordService(Checker check, size_t max_checks, const core::Logger& log,
                    std::chrono::seconds time_limit = std::chrono::seconds(60));
    // Waiting requests are dropped (their passwords zeroed); running children are not
    // waited for: the caller reaps them.
    ~PasswordService();

    // A packet read from the channel: a malformed one is answered nothing and logged; a good one is checked in a
    // child (or waits its turn). The child sends the answer on `channel`.
    void on_request(int channel, std::string_view packet);
    // SIGCHLD: the parent's loop reaps and tells the service; false if pid was not one of its children.
    bool reaped(pid_t pid);
    // The same with the wait status: a child ended by a signal (its time limit, a
    // crash in a PAM module) has its check logged here, as "tmp".
    bool reaped(pid_t pid, int status);
    size_t running() const { return running_.size(); }
    size_t queued() const { return waiting_.size(); }

    PasswordService(const PasswordService&) = delete;
    PasswordService& operator=(const PasswordService&) = delete;

private:
    struct Pending {
        int channel;
        smtp::PasswordRequest request;
    };
    // Forks the child for `pending` (whose password is zeroed here, in the parent).
    void start(Pending& pending);
    [[noreturn]] void run_child(Pending& pending);
    void log_verdict(const std::string& user, core::PasswordVerdict verdict, std::string_view why) const;

    Checker check_;
    size_t max_checks_;
    const core::Logger& log_;
    std::chrono::seconds time_limit_;
    std::map<pid_t, std::string> running_;  // child → the user it checks, for a child that dies unheard
    std::deque<Pending> waiting_;
};

}  // namespace mailroom::mta
