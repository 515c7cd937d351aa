#include "mail/status.hpp"

#include <sysexits.h>

#include <cassert>
#include <cerrno>
#include <utility>

namespace mailroom::mail {

namespace {
bool starts_with(std::string_view s, std::string_view prefix) {
    return s.substr(0, prefix.size()) == prefix;
}
}  // namespace

Status::Status(Class cls, std::string code, std::string text)
    : cls_(cls), code_(std::move(code)), text_(std::move(text)) {
    assert(!code_.empty() && code_[0] == static_cast<char>('0' + static_cast<int>(cls_)));
}

Status Status::ok(std::string text, std::string code) {
    return Status(Class::success, std::move(code), std::move(text));
}
Status Status::temp(std::string code, std::string text) {
    return Status(Class::temporary, std::move(code), std::move(text));
}
Status Status::perm(std::string code, std::string text) {
    return Status(Class::permanent, std::move(code), std::move(text));
}

Status Status::from_errno(int err, std::string text) {
    switch (err) {
        case ENOSPC: return temp("4.3.1", std::move(text));
        case EDQUOT: return temp("4.2.2", std::move(text));
        // A message over a size limit stays over it: RFC 3463 5.3.4, never a retry.
        case EMSGSIZE: return perm("5.3.4", std::move(text));
        case EAGAIN: return temp("4.2.0", std::move(text));
        case EACCES:
        case EPERM: return temp("4.2.0", std::move(text));
        default: return temp("4.3.0", std::move(text));
    }
}

Status Status::from_error(const core::Error& error) {
    return from_errno(error.errno_value(), error.message());
}

Status Status::from_sysexit(int code, std::string text) {
    switch (code) {
        case EX_OK: return ok(std::move(text));
        case EX_TEMPFAIL: return temp("4.3.0", std::move(text));
        case EX_OSERR: return temp("4.3.0", std::move(text));
        case EX_NOUSER: return perm("5.1.1", std::move(text));
        case EX_NOHOST: return perm("5.1.2", std::move(text));
        case EX_DATAERR: return perm("5.6.0", std::move(text));
        case EX_USAGE: return perm("5.3.0", std::move(text));
        case EX_UNAVAILABLE: return perm("5.3.0", std::move(text));
        case EX_SOFTWARE: return perm("5.3.0", std::move(text));
        case EX_CANTCREAT: return perm("5.2.0", std::move(text));
        case EX_IOERR: return perm("5.3.0", std::move(text));
        case EX_NOPERM: return perm("5.7.1", std::move(text));
        case EX_CONFIG: return perm("5.3.5", std::move(text));
        default: return perm("5.3.0", std::move(text));
    }
}

int Status::to_sysexit() const {
    if (is_ok()) return EX_OK;
    if (is_temporary()) return EX_TEMPFAIL;
    if (code_ == "5.1.1") return EX_NOUSER;
    if (starts_with(code_, "5.1.2")) return EX_NOHOST;
    if (code_ == "5.4.6") return EX_DATAERR;
    if (starts_with(code_, "5.6.") || code_ == "5.3.4") return EX_DATAERR;
    if (starts_with(code_, "5.7.")) return EX_NOPERM;
    if (code_ == "5.3.5") return EX_CONFIG;
    if (starts_with(code_, "5.2.")) return EX_CANTCREAT;
    if (starts_with(code_, "5.1.")) return EX_DATAERR;
    return EX_UNAVAILABLE;
}

int Status::to_reply_code() const {
    switch (cls_) {
        case Class::success: return 250;
        case Class::temporary:
            return (code_ == "4.2.2" || code_ == "4.3.1" || starts_with(code_, "4.5.3")) ? 452 : 451;
        case Class::permanent:
            if (code_ == "5.2.2" || code_ == "5.3.4") return 552;
            if (starts_with(code_, "5.1.")) return code_ == "5.1.1" ? 550 : 553;
            if (starts_with(code_, "5.7.")) return 554;
            return 550;
    }
    return 451;
}

std::string Status::to_log() const {
    const char* word = is_ok() ? "sent" : is_temporary() ? "deferred" : "bounced";
    return "dsn=" + code_ + ", status=" + word + " (" + text_ + ")";
}

int worst_exit_code(int current, int next) {
    if (current == EX_TEMPFAIL || next == EX_TEMPFAIL) return EX_TEMPFAIL;
    return current != EX_OK ? current : next;
}

}  // namespace mailroom::mail
