// check_password: is this the password of that user? Asked of PAM (service
// `smtpd_auth_service`, SPEC 2), for AUTH PLAIN and LOGIN (SPEC 7). Only a root
// process can answer it for local accounts (pam_unix reads /etc/shadow): the SMTP
// listener's root side (mta/password_service.hpp) calls it in a child per check.
// One call is one PAM transaction: pam_start, pam_authenticate, pam_acct_mgmt,
// pam_end; nothing is kept between calls.
// Invariants: the answer is `accepted` only when both PAM steps said PAM_SUCCESS; a
// broken or missing configuration or a back end that cannot be reached is
// `unavailable` (a 454 the client retries), never `refused` (a 535 it may report as
// a wrong password).
// Must never: log, keep or return the password (`why` holds PAM's text only), sleep
// on a failure (PAM's fail delay is the caller's to apply, see pam_password.cpp), or
// let PAM prompt anyone (PAM_SILENT, answers only from the arguments).
//
// Also the two helpers every holder of a password uses: secret_copy and wipe.
#pragma once

#include <string>
#include <string_view>

namespace mailroom::core {

// unavailable: PAM broken, service missing, a temporary failure.
enum class PasswordVerdict { accepted, refused, unavailable };

struct PasswordCheck {
    PasswordVerdict verdict = PasswordVerdict::unavailable;
    std::string why;  // PAM's error text for the log; never the password
};

// pam_start(service) → PAM_RHOST = remote (if not empty) → pam_authenticate (the
// conversation answers an ECHO_OFF prompt with the password, ECHO_ON with the user,
// ignores info and error messages, and fails on any other kind) → pam_acct_mgmt (an
// expired or locked account is refused, as is one whose password must be changed:
// SMTP cannot change it) → pam_end. PAM_SILENT and PAM_DISALLOW_NULL_AUTHTOK
// throughout; PAM_FAIL_DELAY set to a function that does not sleep.
// An empty user or password, or one holding a NUL, is refused without asking PAM
// (no C string can carry it); an empty service is unavailable.
PasswordCheck check_password(const std::string& service, const std::string& user, std::string_view password,
                             const std::string& remote = "");

// A copy of `bytes` in an allocation of its own, never in the string's inline
// (short string) buffer: moving the result moves the pointer and leaves no copy of
// the bytes behind in the moved-from string. For passwords, which are moved from
// the SASL decoder to the session to the asker.
std::string secret_copy(std::string_view bytes);

// Zeroes every byte of the string's buffer, its spare capacity included, in a way
// the compiler cannot drop (explicit_bzero), and leaves the string empty. For every
// string and buffer that held a password, when it is done with.
void wipe(std::string& secret);

}  // namespace mailroom::core
