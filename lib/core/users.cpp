#include "core/users.hpp"

#include <grp.h>
#include <pwd.h>
#include <unistd.h>

#include <algorithm>
#include <cctype>
#include <cerrno>

namespace mailroom::core {
namespace {

// getpw*_r wants a caller buffer whose needed size only ERANGE reveals; a huge
// group of NSS data past this cap is treated as a lookup failure.
constexpr size_t initial_buffer = 1024;
constexpr size_t max_buffer = 1 << 20;

UserInfo to_info(const passwd& pw) {
    return UserInfo{pw.pw_name ? pw.pw_name : "",
                    pw.pw_uid,
                    pw.pw_gid,
                    pw.pw_dir ? pw.pw_dir : "",
                    pw.pw_shell ? pw.pw_shell : "",
                    pw.pw_gecos ? pw.pw_gecos : ""};
}

// Runs one reentrant lookup with a growing buffer. "Returned 0 and no entry" means
// not found, and so do ENOENT and ESRCH, which getpwnam_r(3) lists for "the name
// was not found" (nss_wrapper and some modules answer so). Every other error
// number (EIO, EAGAIN, EMFILE: a directory server that cannot be reached) defers.
template <typename Lookup>
Result<std::optional<UserInfo>> lookup(Lookup&& call, const std::string& what) {
    std::vector<char> buffer(initial_buffer);
    for (;;) {
        passwd pw{};
        passwd* found = nullptr;
        int err = call(&pw, buffer.data(), buffer.size(), &found);
        if (err == EINTR) continue;
        if (err == ERANGE && buffer.size() < max_buffer) {
            buffer.resize(buffer.size() * 2);
            continue;
        }
        if (err == ENOENT || err == ESRCH) return std::optional<UserInfo>{};
        if (err != 0) return unexpected_errno("look up user " + what, err);
        if (found == nullptr) return std::optional<UserInfo>{};
        return std::optional<UserInfo>{to_info(pw)};
    }
}

}  // namespace

bool is_plausible_user_name(std::string_view name) {
    if (name.empty() || name.size() > 256) return false;
    if (name.front() == '-' || name.front() == '.') return false;
    return std::none_of(name.begin(), name.end(), [](char c) {
        auto u = static_cast<unsigned char>(c);
        return c == '/' || u <= 0x20 || u == 0x7f;
    });
}

Result<std::optional<UserInfo>> NssUserDb::find(std::string_view name) const {
    if (!is_plausible_user_name(name)) return std::optional<UserInfo>{};
    std::string key(name);
    return lookup(
        [&key](passwd* pw, char* buf, size_t size, passwd** found) {
            return ::getpwnam_r(key.c_str(), pw, buf, size, found);
        },
        key);
}

Result<std::optional<UserInfo>> NssUserDb::find_uid(uid_t uid) const {
    return lookup(
        [uid](passwd* pw, char* buf, size_t size, passwd** found) {
            return ::getpwuid_r(uid, pw, buf, size, found);
        },
        "uid " + std::to_string(uid));
}

Result<std::vector<gid_t>> supplementary_groups(const UserInfo& user) {
    // getgrouplist says how many it needs when the array is short; NGROUPS_MAX on
    // Linux is 65536, so a longer answer is a broken source, not a user.
    constexpr int max_groups = 65536;
    std::vector<gid_t> groups(32);
    for (;;) {
        int count = static_cast<int>(groups.size());
        if (::getgrouplist(user.name.c_str(), user.gid, groups.data(), &count) >= 0) {
            groups.resize(static_cast<size_t>(count));
            break;
        }
        if (count <= static_cast<int>(groups.size())) count = static_cast<int>(groups.size()) * 2;
        if (count > max_groups) return unexpected_errno("list groups of " + user.name, E2BIG);
        groups.resize(static_cast<size_t>(count));
    }
    // The primary group first, once, as login(1) leaves it.
    groups.erase(std::remove(groups.begin(), groups.end(), user.gid), groups.end());
    groups.insert(groups.begin(), user.gid);
    return groups;
}

std::string gecos_full_name(std::string_view gecos, std::string_view login) {
    std::string_view first = gecos.substr(0, gecos.find(','));
    std::string name;
    for (char c : first) {
        if (c != '&') {
            name += c;
            continue;
        }
        std::string cap(login);
        if (!cap.empty()) cap[0] = static_cast<char>(std::toupper(static_cast<unsigned char>(cap[0])));
        name += cap;
    }
    return name;
}

}  // namespace mailroom::core
