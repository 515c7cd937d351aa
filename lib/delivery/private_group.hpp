// The user's own private group (docs/forward.md): the one group whose write bit on a
// .forward does not let anybody else change it. Used by ForwardFile to decide whether a
// group-writable .forward may be read (SPEC 5).
//
// Definition: group G is USER's private group when all of these hold:
//   - G's gid is USER's primary gid (the passwd entry's gid),
//   - G's name is USER's login name,
//   - G lists no member but USER (its member list is empty or names only USER).
// Limit: an account other than USER whose *primary* gid is G is not looked for (that
// needs a scan of every account, which LDAP and other NSS sources may not allow);
// "user private groups" as useradd(8) makes them never have one.
// Invariants: "no such group" is a plain "not private"; a lookup that failed (NSS down)
// is an error, so the caller can defer instead of refusing a file it cannot judge.
// Must never: keep pointers into libc's static group buffers, throw.
#pragma once

#include <sys/types.h>

#include <optional>
#include <string>
#include <vector>

#include "core/result.hpp"
#include "core/users.hpp"

namespace mailroom::mail {

struct GroupInfo {
    std::string name;
    gid_t gid = 0;
    std::vector<std::string> members;  // gr_mem: supplementary members only
};

class GroupDb {
public:
    virtual ~GroupDb() = default;
    // Empty optional: no such group. Error: the lookup itself failed.
    virtual core::Result<std::optional<GroupInfo>> find_gid(gid_t gid) const = 0;
};

// The system's groups through the name service switch (getgrgid_r).
class NssGroupDb final : public GroupDb {
public:
    core::Result<std::optional<GroupInfo>> find_gid(gid_t gid) const override;
};

// True when gid is user's private group as defined above.
core::Result<bool> is_private_group(const core::UserInfo& user, gid_t gid, const GroupDb& groups);

}  // namespace mailroom::mail
