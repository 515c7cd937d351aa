#include "core/privilege.hpp"

#include <grp.h>
#include <sys/wait.h>
#include <unistd.h>

#include <catch2/catch.hpp>
#include <functional>
#include <vector>

using namespace mailroom::core;
using Mode = PrivilegeSwitch::Mode;
using RootTarget = PrivilegeSwitch::RootTarget;

namespace {

// Numeric ids that need no account: the machine's users are never touched.
constexpr uid_t test_uid = 54321;
constexpr gid_t test_gid = 54322;
constexpr gid_t extra_gid = 54323;

// Runs body in a forked child (a switch there cannot leak into the test runner)
// and returns its exit code; Catch macros are not used in the child.
int in_child(const std::function<int()>& body) {
    pid_t pid = ::fork();
    if (pid < 0) return -1;
    if (pid == 0) ::_exit(body());
    int status = 0;
    if (::waitpid(pid, &status, 0) != pid) return -1;
    return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
}

bool running_as_root() {
    if (::geteuid() == 0) return true;
    WARN("not running as root: real privilege switches skipped");
    return false;
}

std::vector<gid_t> groups_now() {
    std::vector<gid_t> groups(static_cast<size_t>(::getgroups(0, nullptr)));
    groups.resize(static_cast<size_t>(::getgroups(static_cast<int>(groups.size()), groups.data())));
    return groups;
}

}  // namespace

TEST_CASE("a switch to uid 0 is refused unless explicitly allowed", "[privilege]") {
    const uid_t euid_before = ::geteuid();
    for (Mode mode : {Mode::permanent, Mode::revocable}) {
        auto r = PrivilegeSwitch::become(Credentials{0, 0, {}}, mode);
        REQUIRE_FALSE(r);
        CHECK(r.error().errno_value() == EPERM);
        CHECK(::geteuid() == euid_before);  // the refusal comes before any change
    }
}

TEST_CASE("a permanent switch sets every uid, gid and group and root cannot be regained", "[privilege][root]") {
    if (!running_as_root()) return;
    int code = in_child([] {
        auto sw = PrivilegeSwitch::become(Credentials{test_uid, test_gid, {test_gid, extra_gid}},
                                          Mode::permanent);
        if (!sw) return 10;
        uid_t r, e, s;
        gid_t rg, eg, sg;
        if (::getresuid(&r, &e, &s) != 0 || r != test_uid || e != test_uid || s != test_uid) return 11;
        if (::getresgid(&rg, &eg, &sg) != 0 || rg != test_gid || eg != test_gid || sg != test_gid) return 12;
        if (groups_now() != std::vector<gid_t>{test_gid, extra_gid}) return 13;
        if (::setuid(0) == 0 || ::seteuid(0) == 0) return 14;
        if (sw->pending_restore()) return 15;
        return 0;
    });
    CHECK(code == 0);
}

TEST_CASE("a permanent switch accepts a group list in any order (the kernel sorts it)", "[privilege][root]") {
    if (!running_as_root()) return;
    // As getgrouplist gives it: the primary gid first, even when it is the largest.
    int code = in_child([] {
        auto sw = PrivilegeSwitch::become(Credentials{test_uid, extra_gid, {extra_gid, test_gid}},
                                          Mode::permanent);
        return sw ? 0 : 10;
    });
    CHECK(code == 0);
}

TEST_CASE("a revocable switch changes the effective ids and its end restores them", "[privilege][root]") {
    if (!running_as_root()) return;
    int code = in_child([] {
        const auto groups_before = groups_now();
        const gid_t egid_before = ::getegid();
        {
            auto sw = PrivilegeSwitch::become(Credentials{test_uid, test_gid, {extra_gid}}, Mode::revocable);
            if (!sw) return 20;
            if (!sw->pending_restore()) return 21;
            if (::geteuid() != test_uid || ::getegid() != test_gid) return 22;
            if (::getuid() != 0) return 23;  // the real uid keeps the way back
            if (groups_now() != std::vector<gid_t>{extra_gid}) return 24;
        }
        if (::geteuid() != 0 || ::getegid() != egid_before) return 25;
        if (groups_now() != groups_before) return 26;
        return 0;
    });
    CHECK(code == 0);
}

TEST_CASE("restore() reports success and the destructor then does nothing more", "[privilege][root]") {
    if (!running_as_root()) return;
    int code = in_child([] {
        auto sw = PrivilegeSwitch::become(Credentials{test_uid, test_gid, {}}, Mode::revocable);
        if (!sw) return 30;
        if (!sw->restore()) return 31;
        if (::geteuid() != 0 || sw->pending_restore()) return 32;
        if (!sw->restore()) return 33;
        // A moved-from switch owes nothing; the new owner restores (already done).
        PrivilegeSwitch moved = std::move(*sw);
        if (moved.pending_restore()) return 34;
        return 0;
    });
    CHECK(code == 0);
}

TEST_CASE("uid 0 may be the target when the caller allows it", "[privilege][root]") {
    if (!running_as_root()) return;
    int code = in_child([] {
        auto sw = PrivilegeSwitch::become(Credentials{0, 0, {0}}, Mode::revocable, RootTarget::allow);
        if (!sw) return 40;
        return ::geteuid() == 0 ? 0 : 41;
    });
    CHECK(code == 0);
}

TEST_CASE("not root: becoming oneself is a no-op and another uid is EPERM", "[privilege][root]") {
    if (!running_as_root()) return;  // the child needs root once, to become a plain user
    int code = in_child([] {
        if (!PrivilegeSwitch::become(Credentials{test_uid, test_gid, {}}, Mode::permanent)) return 50;
        auto same = PrivilegeSwitch::become(Credentials{test_uid, test_gid, {}}, Mode::revocable);
        if (!same || same->pending_restore()) return 51;
        auto same_forever = PrivilegeSwitch::become(Credentials{test_uid, test_gid, {}}, Mode::permanent);
        if (!same_forever) return 52;
        auto other = PrivilegeSwitch::become(Credentials{test_uid + 1, test_gid, {}}, Mode::revocable);
        if (other || other.error().errno_value() != EPERM) return 53;
        return ::geteuid() == test_uid ? 0 : 54;
    });
    CHECK(code == 0);
}

TEST_CASE("not root with a saved root uid: a permanent switch to oneself drops it", "[privilege][root]") {
    if (!running_as_root()) return;
    int code = in_child([] {
        // A set-uid-root-like state: real and saved uid 0, effective a user.
        if (::setegid(test_gid) != 0 || ::seteuid(test_uid) != 0) return 60;
        auto sw = PrivilegeSwitch::become(Credentials{test_uid, test_gid, {}}, Mode::permanent);
        if (!sw) return 61;
        uid_t r, e, s;
        if (::getresuid(&r, &e, &s) != 0 || r != test_uid || e != test_uid || s != test_uid) return 62;
        return ::seteuid(0) == 0 ? 63 : 0;
    });
    CHECK(code == 0);
}

TEST_CASE("credentials_for takes the uid, primary gid and group list of an account", "[privilege]") {
    UserInfo root{"root", 0, 0, "/root", "/bin/sh", ""};
    auto creds = credentials_for(root);
    REQUIRE(creds);
    CHECK(creds->uid == 0);
    CHECK(creds->gid == 0);
    REQUIRE_FALSE(creds->groups.empty());
    CHECK(creds->groups.front() == 0);
}

TEST_CASE("a revocable switch that fails halfway leaves the identity as it was", "[privilege][root]") {
    if (!running_as_root()) return;
    int code = in_child([] {
        const auto groups_before = groups_now();
        // More groups than the kernel's NGROUPS_MAX (65536): setgroups fails with EINVAL.
        Credentials too_many{test_uid, test_gid, std::vector<gid_t>(70000, extra_gid)};
        auto sw = PrivilegeSwitch::become(too_many, Mode::revocable);
        if (sw) return 70;
        if (sw.error().errno_value() != EINVAL) return 71;
        if (::geteuid() != 0 || groups_now() != groups_before) return 72;
        auto forever = PrivilegeSwitch::become(too_many, Mode::permanent);
        if (forever) return 73;
        return ::geteuid() == 0 ? 0 : 74;  // failed before any id changed
    });
    CHECK(code == 0);
}
