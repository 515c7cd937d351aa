#include "delivery/run_as.hpp"

#include <fmt/format.h>

namespace mailroom::mail {

namespace {

RunAs refused(Status status) { return RunAs{std::nullopt, std::move(status)}; }

RunAs account_named(const std::string& name, const core::UserDb& users, std::string_view why) {
    auto found = users.find(name);
    if (!found) return refused(Status::temp("4.3.0", "user lookup failed: " + found.error().message()));
    if (!*found) return refused(Status::perm("5.1.1", fmt::format("unknown user: \"{}\" ({})", name, why)));
    return RunAs{**found, Status::ok()};
}

RunAs account_of_uid(uid_t uid, const core::UserDb& users, const RunAsSettings& settings, std::string_view owner_of) {
    if (uid == 0) return account_named(settings.default_privs, users, "default_privs");
    auto found = users.find_uid(uid);
    if (!found) return refused(Status::temp("4.3.0", "user lookup failed: " + found.error().message()));
    if (!*found) return refused(Status::perm("5.7.1", fmt::format("{} belongs to uid {}, which has no account", owner_of, uid)));
    return RunAs{**found, Status::ok()};
}

}  // namespace

RunAs run_as(const Leaf& leaf, const core::UserDb& users, const RunAsFacts& facts, const RunAsSettings& settings) {
    RunAs found;
    switch (leaf.kind) {
        case LeafKind::mailbox: return account_named(leaf.target, users, "mailbox");
        case LeafKind::remote:
        case LeafKind::error: return refused(Status::perm("5.3.5", "a leaf of this kind runs as nobody"));
        case LeafKind::file:
        case LeafKind::command: break;
    }
    const Provenance& from = leaf.provenance;
    switch (from.kind) {
        case Provenance::Kind::recipient:
            // Only aliases, :include: and .forward name files and commands.
            return refused(Status::perm("5.7.1", "a file or command that no aliases, :include: or .forward file named"));
        case Provenance::Kind::forward:
            found = account_named(from.user, users, ".forward owner");
            // Root's .forward: on behalf of root, so as default_privs (as Postfix does).
            if (found.user && found.user->uid == 0) found = account_named(settings.default_privs, users, "default_privs");
            break;
        case Provenance::Kind::aliases: {
            auto owner = facts.aliases_owner();
            if (!owner) {
                if (owner.error().code) {
                    return refused(Status::temp("4.3.0", "cannot examine the aliases database: " + owner.error().message()));
                }
                return refused(Status::perm("5.7.1", "the aliases database " + owner.error().message()));
            }
            found = account_of_uid(*owner, users, settings, "the aliases database");
            break;
        }
        case Provenance::Kind::include: {
            auto owner = facts.include_owner(from.path);
            if (!owner) {
                if (owner.error().code) {
                    return refused(Status::temp("4.3.0", ":include:" + from.path + ": " + owner.error().message()));
                }
                return refused(Status::perm("5.7.1", ":include:" + from.path + " " + owner.error().message()));
            }
            found = account_of_uid(*owner, users, settings, ":include:" + from.path);
            break;
        }
    }
    if (found.user && found.user->uid == 0) {
        return refused(Status::perm("5.7.1", fmt::format("{} {} would run as root: refused", leaf_kind_name(leaf.kind),
                                                         leaf.target)));
    }
    return found;
}

}  // namespace mailroom::mail
