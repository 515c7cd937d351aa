#include "core/privilege.hpp"

#include <grp.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <string>

namespace mailroom::core {
namespace {

std::string ids(const Credentials& c) {
    return "uid " + std::to_string(c.uid) + " gid " + std::to_string(c.gid);
}

Result<std::vector<gid_t>> current_groups() {
    int count = ::getgroups(0, nullptr);
    if (count < 0) return unexpected_errno("getgroups");
    std::vector<gid_t> groups(static_cast<size_t>(count));
    count = ::getgroups(count, groups.data());
    if (count < 0) return unexpected_errno("getgroups");
    groups.resize(static_cast<size_t>(count));
    return groups;
}

bool all_equal(uid_t a, uid_t b, uid_t c, uid_t want) { return a == want && b == want && c == want; }

// Not root: a process may "become" only itself. A permanent drop still makes the
// real and saved uid equal to it (allowed: it is one of them already), so a
// set-uid program cannot switch back to its invoker.
Result<PrivilegeSwitch> unprivileged(const Credentials& target, PrivilegeSwitch::Mode mode,
                                     PrivilegeSwitch result) {
    if (target.uid != ::geteuid())
        return unexpected_errno("switch to " + ids(target) + ": not running as root", EPERM);
    if (mode == PrivilegeSwitch::Mode::revocable) return result;
    uid_t r = 0, e = 0, s = 0;
    if (::getresuid(&r, &e, &s) != 0) return unexpected_errno("getresuid");
    if (all_equal(r, e, s, target.uid)) return result;
    if (::setresuid(target.uid, target.uid, target.uid) != 0)
        return unexpected_errno("setresuid " + std::to_string(target.uid));
    if (::getresuid(&r, &e, &s) != 0) return unexpected_errno("getresuid");
    if (!all_equal(r, e, s, target.uid))
        return unexpected_errno("verify switch to " + ids(target), EPERM);
    return result;
}

// Root, forever: groups, gid, uid, then check that every id took and root is gone.
Result<void> drop_permanently(const Credentials& target) {
    if (::setgroups(target.groups.size(), target.groups.data()) != 0)
        return unexpected_errno("setgroups for " + ids(target));
    if (::setresgid(target.gid, target.gid, target.gid) != 0)
        return unexpected_errno("setresgid " + std::to_string(target.gid));
    if (::setresuid(target.uid, target.uid, target.uid) != 0)
        return unexpected_errno("setresuid " + std::to_string(target.uid));

    // Trust nothing: a kernel or libc that ignored one call must not go unnoticed.
    uid_t ru = 0, eu = 0, su = 0;
    gid_t rg = 0, eg = 0, sg = 0;
    if (::getresuid(&ru, &eu, &su) != 0 || ::getresgid(&rg, &eg, &sg) != 0)
        return unexpected_errno("verify switch to " + ids(target));
    if (!all_equal(ru, eu, su, target.uid) || !all_equal(rg, eg, sg, target.gid))
        return unexpected_errno("verify switch to " + ids(target) + ": ids did not change", EPERM);
    auto groups = current_groups();
    if (!groups) return unexpected(groups.error());
    // Linux keeps the group list sorted: compare as sets, not in the order given
    // (getgrouplist puts the primary gid first, whatever its number).
    std::vector<gid_t> wanted = target.groups;
    std::sort(wanted.begin(), wanted.end());
    std::sort(groups->begin(), groups->end());
    if (*groups != wanted)
        return unexpected_errno("verify switch to " + ids(target) + ": groups did not change", EPERM);
    if (target.uid != 0 && ::setuid(0) == 0)
        return unexpected_errno("verify switch to " + ids(target) + ": root could be regained", EPERM);
    return {};
}

}  // namespace

Result<Credentials> credentials_for(const UserInfo& user) {
    auto groups = supplementary_groups(user);
    if (!groups) return unexpected(groups.error());
    return Credentials{user.uid, user.gid, std::move(*groups)};
}

Result<PrivilegeSwitch> PrivilegeSwitch::become(const Credentials& target, Mode mode, RootTarget root) {
    if (target.uid == 0 && root == RootTarget::refuse)
        return unexpected_errno("refusing to deliver as root (uid 0)", EPERM);
    PrivilegeSwitch result;
    if (::geteuid() != 0) return unprivileged(target, mode, std::move(result));

    if (mode == Mode::permanent) {
        if (auto r = drop_permanently(target); !r) return unexpected(r.error());
        return result;
    }

    auto saved_groups = current_groups();
    if (!saved_groups) return unexpected(saved_groups.error());
    result.saved_euid_ = ::geteuid();
    result.saved_egid_ = ::getegid();
    result.saved_groups_ = std::move(*saved_groups);
    // From here on a failure is undone by ~PrivilegeSwitch through restore().
    result.pending_restore_ = true;
    if (::setgroups(target.groups.size(), target.groups.data()) != 0)
        return unexpected_errno("setgroups for " + ids(target));
    if (::setegid(target.gid) != 0) return unexpected_errno("setegid " + std::to_string(target.gid));
    if (::seteuid(target.uid) != 0) return unexpected_errno("seteuid " + std::to_string(target.uid));
    if (::geteuid() != target.uid || ::getegid() != target.gid)
        return unexpected_errno("verify switch to " + ids(target), EPERM);
    return result;
}

PrivilegeSwitch::PrivilegeSwitch(PrivilegeSwitch&& other) noexcept
    : pending_restore_(std::exchange(other.pending_restore_, false)),
      saved_euid_(other.saved_euid_),
      saved_egid_(other.saved_egid_),
      saved_groups_(std::move(other.saved_groups_)) {}

PrivilegeSwitch::~PrivilegeSwitch() {
    if (!pending_restore_) return;
    if (auto r = restore(); !r) {
        // Going on would run the caller's next step with an identity it does not expect.
        std::fprintf(stderr, "fatal: cannot restore privileges: %s\n", r.error().message().c_str());
        std::abort();
    }
}

Result<void> PrivilegeSwitch::restore() {
    if (!pending_restore_) return {};
    // The reverse order: regain the saved euid first, which is what allows the rest.
    if (::seteuid(saved_euid_) != 0) return unexpected_errno("seteuid " + std::to_string(saved_euid_));
    if (::setegid(saved_egid_) != 0) return unexpected_errno("setegid " + std::to_string(saved_egid_));
    if (::setgroups(saved_groups_.size(), saved_groups_.data()) != 0)
        return unexpected_errno("setgroups (restore)");
    pending_restore_ = false;
    return {};
}

}  // namespace mailroom::core
