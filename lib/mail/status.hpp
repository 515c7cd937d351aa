// Status: the one outcome vocabulary of a delivery or protocol step. A class
// (2 success, 4 temporary, 5 permanent), an RFC 3463 enhanced code whose first
// digit equals the class, and a human text. One table (status.cpp) maps it to
// sysexits for mda, to SMTP/LMTP reply codes, and errno values into it.
// Only EX_TEMPFAIL and EX_OSERR are soft among the sysexits, as in Postfix.
// Statuses are values: never thrown.
#pragma once

#include <string>
#include <string_view>

#include "core/result.hpp"

namespace mailroom::mail {

class Status {
public:
    enum class Class { success = 2, temporary = 4, permanent = 5 };

    // code is an enhanced status code "X.Y.Z" whose X matches the class.
    static Status ok(std::string text = "delivered", std::string code = "2.0.0");
    static Status temp(std::string code, std::string text);
    static Status perm(std::string code, std::string text);
    // errno → status: ENOSPC 4.3.1, EDQUOT 4.2.2, EAGAIN/EWOULDBLOCK 4.2.0,
    // ENOMEM 4.3.0, EIO 4.3.0, EACCES/EPERM 4.2.0 (an admin can fix it: retry),
    // anything else 4.3.0. System errors are temporary: mail is never lost for them.
    static Status from_errno(int err, std::string text);
    static Status from_error(const core::Error& error);
    // sysexits → status (for a command's exit code, section 4 of SPEC).
    static Status from_sysexit(int code, std::string text);

    Class cls() const { return cls_; }
    bool is_ok() const { return cls_ == Class::success; }
    bool is_temporary() const { return cls_ == Class::temporary; }
    bool is_permanent() const { return cls_ == Class::permanent; }
    const std::string& code() const { return code_; }
    const std::string& text() const { return text_; }

    // The sysexits code for mda: 0, 75 for temporary; for permanent ones by subject:
    // 5.1.1 → 67 (no such user), 5.3.4/5.6.x → 65, 5.2.x/5.3.x → 73 or 74, 5.7.x → 77,
    // 5.4.6 (loop) → 65 (data error, as Postfix local), otherwise 69.
    int to_sysexit() const;
    // The SMTP/LMTP reply number: 250, 451/452, 550/552/553/554.
    int to_reply_code() const;
    // "dsn=X.Y.Z, status=sent (text)" style fragment for log lines.
    std::string to_log() const;

private:
    Status(Class cls, std::string code, std::string text);
    Class cls_;
    std::string code_;
    std::string text_;
};

// The exit code for several outcomes: a temporary failure (75) outranks every other,
// because a caller that retries then loses nothing; else the first failure; else 0.
int worst_exit_code(int current, int next);

}  // namespace mailroom::mail
