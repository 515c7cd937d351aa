// Looking up local accounts: the UserDb interface (so delivery code can be tested
// with a fake) and NssUserDb over getpwnam_r/getpwuid_r, plus the group list and
// full name derived from an account.
// Invariants: "not found" and "lookup failed" are different answers: a name that
// does not exist is a permanent bounce, a broken NSS source (LDAP down, EIO) must
// only defer. A name that cannot be an account ("../x", "-f", control bytes) is
// "not found" without asking NSS. Must never: keep pointers into libc's static
// passwd buffers (the non-reentrant getpwnam), or throw.
#pragma once

#include <sys/types.h>

#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "core/result.hpp"

namespace mailroom::core {

struct UserInfo {
    std::string name;
    uid_t uid = 0;
    gid_t gid = 0;
    std::string home;
    std::string shell;
    std::string gecos;
};

class UserDb {
public:
    virtual ~UserDb() = default;
    // Empty optional: no such user. Error: the lookup itself failed (retry later).
    virtual Result<std::optional<UserInfo>> find(std::string_view name) const = 0;
    virtual Result<std::optional<UserInfo>> find_uid(uid_t uid) const = 0;
};

// The system's accounts through the name service switch.
class NssUserDb final : public UserDb {
public:
    Result<std::optional<UserInfo>> find(std::string_view name) const override;
    Result<std::optional<UserInfo>> find_uid(uid_t uid) const override;
};

// False for names that no account may have: empty, longer than 256 bytes, holding
// '/', NUL, a control byte or a space, or starting with '-' or '.'.
bool is_plausible_user_name(std::string_view name);

// Every group the user is in, the primary gid first (getgrouplist), ready for setgroups.
Result<std::vector<gid_t>> supplementary_groups(const UserInfo& user);

// The full name in a GECOS field: its first comma-separated field, with '&'
// replaced by the login name capitalised, as finger and sendmail read it.
std::string gecos_full_name(std::string_view gecos, std::string_view login);

}  // namespace mailroom::core
