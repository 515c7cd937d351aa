// The expander's real sources: the compiled aliases database, the accounts of NSS,
// .forward files (forward_file.hpp) and :include: files; and the facts run_as needs
// about those files at delivery. One object per runner: the database is opened on
// first use and kept, so a queue run maps it once.
//
// :include: files (docs/aliases.md): judged like .forward files by the FileProbe,
// then: a regular file, not writable by its group or by others, in a folder others
// may not write, at most 1 MB, no NUL. One named in a .forward is read with that
// user's rights (so nobody can have root read a file for them); one named in the
// aliases file with the runner's.
// A missing aliases database is "no aliases" (postmaster still resolves to root),
// and the runner logs it once; one that cannot be read defers.
#pragma once

#include <sys/types.h>

#include <memory>
#include <optional>
#include <string>

#include "core/users.hpp"
#include "delivery/alias_db.hpp"
#include "delivery/expander.hpp"
#include "delivery/forward_path.hpp"
#include "delivery/run_as.hpp"

namespace mailroom::mail {

// Reads an :include: file as above (as: whose rights; null: this process's).
IncludedFile read_include_file(const std::string& path, const core::UserInfo* as, size_t max_size = 1024 * 1024);

class SystemExpansionSources final : public ExpansionSources, public RunAsFacts {
public:
    SystemExpansionSources(std::string aliases_path, std::shared_ptr<const core::UserDb> users,
                           ForwardPathSettings forward);

    core::Result<std::optional<AliasFound>> alias(std::string_view name) const override;
    core::Result<std::optional<core::UserInfo>> user(std::string_view name) const override;
    ForwardResult forward(const core::UserInfo& user, std::string_view extension) const override;
    IncludedFile include(const std::string& path, const core::UserInfo* as) const override;

    core::Result<uid_t> aliases_owner() const override;
    core::Result<uid_t> include_owner(const std::string& path) const override;

private:
    // The database, opened on first use; nullopt inside: there is none.
    core::Result<const AliasDb*> database() const;

    std::string aliases_path_;
    std::shared_ptr<const core::UserDb> users_;
    ForwardPathSettings forward_;
    mutable bool opened_ = false;
    mutable std::optional<AliasDb> db_;
};

// Everything expansion and run_as need, from the configuration: for the runner,
// `mailctl trace` and `sendmail -bv` alike.
struct ExpansionEnvironment {
    ExpansionSettings settings;
    RunAsSettings run_as;
    std::shared_ptr<const SystemExpansionSources> sources;  // also the RunAsFacts

    static ExpansionEnvironment from_config(const core::Config& config, std::shared_ptr<const core::UserDb> users);
};

}  // namespace mailroom::mail
