#include "delivery/private_group.hpp"

#include <grp.h>

#include <algorithm>
#include <cerrno>

namespace mailroom::mail {
namespace {

// As core/users.cpp: the needed buffer size is only revealed by ERANGE; a group
// larger than this is a broken source, not a group.
constexpr size_t initial_buffer = 1024;
constexpr size_t max_buffer = 1 << 22;

}  // namespace

core::Result<std::optional<GroupInfo>> NssGroupDb::find_gid(gid_t gid) const {
    std::vector<char> buffer(initial_buffer);
    for (;;) {
        group gr{};
        group* found = nullptr;
        int err = ::getgrgid_r(gid, &gr, buffer.data(), buffer.size(), &found);
        if (err == EINTR) continue;
        if (err == ERANGE && buffer.size() < max_buffer) {
            buffer.resize(buffer.size() * 2);
            continue;
        }
        // getgrgid_r(3): ENOENT, ESRCH (and some modules' EBADF, EPERM) mean "not found".
        if (err == ENOENT || err == ESRCH) return std::optional<GroupInfo>{};
        if (err != 0) return core::unexpected_errno("look up group " + std::to_string(gid), err);
        if (found == nullptr) return std::optional<GroupInfo>{};
        GroupInfo info{gr.gr_name ? gr.gr_name : "", gr.gr_gid, {}};
        for (char** member = gr.gr_mem; member && *member; ++member) info.members.emplace_back(*member);
        return std::optional<GroupInfo>{std::move(info)};
    }
}

core::Result<bool> is_private_group(const core::UserInfo& user, gid_t gid, const GroupDb& groups) {
    if (gid != user.gid) return false;  // no lookup needed
    auto found = groups.find_gid(gid);
    if (!found) return core::unexpected(found.error());
    if (!*found) return false;
    const GroupInfo& group = **found;
    if (group.gid != gid || group.name != user.name) return false;
    return std::all_of(group.members.begin(), group.members.end(),
                       [&](const std::string& member) { return member == user.name; });
}

}  // namespace mailroom::mail
