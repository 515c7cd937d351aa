// Who a leaf runs as, recomputed from its provenance every time it is delivered
// or traced, never read from the spool (SPEC 5, docs/aliases.md):
//   mailbox                     the account it names
//   file or command from
//     a .forward                the user whose .forward it is (default_privs for root's)
//     the aliases database      its owner; default_privs when that is root
//     an :include: file         its owner; default_privs when that is root
// uid 0 never runs a file or command target: a default_privs of root is refused (5.7.1),
// as is an aliases database or :include: file that others may now write, or one that is gone.
// Must never: trust anything of the leaf but the names it carries, or throw.
#pragma once

#include <sys/types.h>

#include <string>

#include "core/result.hpp"
#include "core/users.hpp"
#include "delivery/expander.hpp"
#include "mail/status.hpp"

namespace mailroom::mail {

// The facts about files that decide rights, as they are now.
class RunAsFacts {
public:
    virtual ~RunAsFacts() = default;
    // The owner of the aliases database (errno error when it cannot be examined; an
    // input error when others may write it).
    virtual core::Result<uid_t> aliases_owner() const = 0;
    // The owner of an :include: file, examined without following a symbolic link;
    // an input error when others may write it.
    virtual core::Result<uid_t> include_owner(const std::string& path) const = 0;
};

struct RunAsSettings {
    std::string default_privs = "nobody";
};

// The account, or the Status the delivery ends with (5.x for a leaf that may not
// run, 4.x when an account or a file cannot be looked at now).
struct RunAs {
    std::optional<core::UserInfo> user;
    Status refused = Status::ok();
};

RunAs run_as(const Leaf& leaf, const core::UserDb& users, const RunAsFacts& facts, const RunAsSettings& settings);

}  // namespace mailroom::mail
