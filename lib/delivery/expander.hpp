// Expander: one recipient address -> the final targets (leaves) its mail goes to,
// through aliases, :include: files and .forward files (SPEC 5, docs/aliases.md),
// and the tree of steps that led there, which `mailctl trace` prints. The queue
// runner records the leaves in the entry once, before delivering any; trace calls
// the same function and delivers nothing.
//
// Rules: an alias is looked up as `user+ext`, then `user`; an alias that names
// itself means the user's own mailbox; an address met again further down the same
// chain is a loop (5.4.6, naming the chain); the depth is capped (max_depth); a
// target reached twice is kept once (the first); `\user` is the mailbox with no
// further expansion; `owner-NAME` (when it exists) receives the bounces of list
// NAME; commands and files are allowed only where allow_mail_to_commands /
// allow_mail_to_files say; an address from outside is always an address.
// A leaf never carries the user it runs as: that is recomputed from its provenance
// at delivery (resolve_leaf), so nothing in the spool can choose it.
// Invariants: any lookup that fails for now (the aliases database, NSS, a .forward
// on a sick disk) makes the whole expansion temporary: nothing is recorded and the
// recipient is tried again later, never half-expanded.
// Must never: open a file itself (the ExpansionSources do), run anything, or throw.
#pragma once

#include <sys/types.h>

#include <cstddef>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "core/users.hpp"
#include "delivery/delivery_rights.hpp"
#include "delivery/forward_file.hpp"
#include "delivery/forward_path.hpp"
#include "delivery/leaf.hpp"
#include "delivery/routing.hpp"
#include "delivery/target_syntax.hpp"
#include "mail/status.hpp"

namespace mailroom::mail {

// A step of the expansion, for `mailctl trace`: a line of text, the steps below
// it, and at the bottom the leaf it ended in.
struct TraceStep {
    std::string text;
    std::vector<TraceStep> children;
    std::optional<size_t> leaf;  // index into Expansion::leaves
};

struct Expansion {
    std::vector<Leaf> leaves;
    TraceStep tree;
    std::optional<Status> temporary;  // set: nothing may be recorded, retry later
    // What the log must say although the expansion went on: a .forward or an
    // :include: file ignored, and why (SPEC 5), a forward_path item skipped.
    std::vector<std::string> warnings;
    // With temporary: this runner may not read what the expansion needs (another
    // user's .forward); a runner started as root will. Not counted as an attempt.
    bool needs_more_rights = false;
};

// What an alias lookup found.
struct AliasFound {
    std::string path;  // the aliases text file, for provenance
    unsigned line = 0;
    std::vector<ParsedTarget> targets;
};

// An :include: file read for the expander.
struct IncludedFile {
    enum class Kind { used, refused, temporary };
    Kind kind = Kind::refused;
    std::string path;
    uid_t owner = 0;
    std::vector<ForwardLine> lines;  // used: lines that hold targets
    std::string reason;              // refused, temporary
};

// Where the expander reads from; the real one is over the aliases database, NSS
// and the file system (expansion_sources.hpp), tests give a fake.
class ExpansionSources {
public:
    virtual ~ExpansionSources() = default;
    // nullopt: no such alias; an error: cannot be known now (defer).
    virtual core::Result<std::optional<AliasFound>> alias(std::string_view name) const = 0;
    virtual core::Result<std::optional<core::UserInfo>> user(std::string_view name) const = 0;
    virtual ForwardResult forward(const core::UserInfo& user, std::string_view extension) const = 0;
    // as: read with this user's rights (an :include: named in a .forward), else the runner's.
    virtual IncludedFile include(const std::string& path, const core::UserInfo* as) const = 0;
};

struct ExpansionSettings {
    RoutingSettings routing;
    std::vector<std::string> commands_allowed = {"alias", "forward"};  // of alias, forward, include
    std::vector<std::string> files_allowed = {"alias", "forward"};
    size_t max_depth = 10;
    size_t max_leaves = 10000;

    static ExpansionSettings from_config(const core::Config& config);
};

// Expands one recipient address (from the envelope: always an address).
Expansion expand_recipient(std::string_view address, const ExpansionSettings& settings,
                           const ExpansionSources& sources, const DeliveryRights& rights);

}  // namespace mailroom::mail
