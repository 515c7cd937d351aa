// Changing the process's user: PrivilegeSwitch is the one place that calls
// setgroups/setgid/setuid. Mode::revocable changes only the effective ids (the
// saved uid stays root) and the destructor changes them back; Mode::permanent sets
// real, effective and saved ids, then verifies the drop and that root cannot be
// regained, for a forked delivery child that will never need root again.
// Invariants: the order is always groups, then gid, then uid (after the uid the
// process could no longer change its groups); a switch to uid 0 is refused unless
// the caller says RootTarget::allow; when not root, "switching" to one's own uid is
// a no-op success and any other uid is EPERM. Switches do not nest.
// Must never: let a process continue as root, or with the old groups, after it asked
// for a permanent drop. On any error from a permanent switch the process is in an
// unknown state and must _exit; if a revocable switch cannot be undone in the
// destructor the process aborts (as Postfix's set_eugid is fatal).
#pragma once

#include <sys/types.h>

#include <vector>

#include "core/result.hpp"
#include "core/users.hpp"

namespace mailroom::core {

struct Credentials {
    uid_t uid = 0;
    gid_t gid = 0;
    std::vector<gid_t> groups;  // the complete supplementary list given to setgroups
};

// The user's uid, primary gid and every group it is a member of.
Result<Credentials> credentials_for(const UserInfo& user);

class [[nodiscard]] PrivilegeSwitch {
public:
    enum class Mode { revocable, permanent };
    enum class RootTarget { refuse, allow };

    static Result<PrivilegeSwitch> become(const Credentials& target, Mode mode,
                                          RootTarget root = RootTarget::refuse);

    PrivilegeSwitch(PrivilegeSwitch&& other) noexcept;
    PrivilegeSwitch& operator=(PrivilegeSwitch&&) = delete;
    PrivilegeSwitch(const PrivilegeSwitch&) = delete;
    PrivilegeSwitch& operator=(const PrivilegeSwitch&) = delete;
    // Revocable: restores the saved identity, aborting if it cannot.
    ~PrivilegeSwitch();

    // Revocable: back to the euid, egid and groups from before the switch, now,
    // with errors reported. Afterwards (and for the other kinds) a no-op.
    Result<void> restore();
    // True while a revocable switch is in force and owes a restore.
    bool pending_restore() const { return pending_restore_; }

private:
    PrivilegeSwitch() = default;

    bool pending_restore_ = false;
    uid_t saved_euid_ = 0;
    gid_t saved_egid_ = 0;
    std::vector<gid_t> saved_groups_;
};

}  // namespace mailroom::core
