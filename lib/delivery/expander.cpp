#include "delivery/expander.hpp"

#include <fmt/format.h>

#include <algorithm>
#include <set>

#include "core/log.hpp"

namespace mailroom::mail {

namespace {

bool listed(const std::vector<std::string>& allowed, std::string_view where) {
    return std::find(allowed.begin(), allowed.end(), where) != allowed.end();
}

// The allow_mail_to_* word for where a target was named.
std::string_view allow_word(Provenance::Kind kind) {
    switch (kind) {
        case Provenance::Kind::aliases: return "alias";
        case Provenance::Kind::forward: return "forward";
        case Provenance::Kind::include: return "include";
        case Provenance::Kind::recipient: break;
    }
    return "recipient";
}

// What the walk carries down one branch.
struct Branch {
    size_t depth = 0;
    std::vector<std::string> chain;  // local names (aliases, users) and :include: paths on the way
    std::string owner;               // bounces of this branch go there ("" = the sender)
    std::optional<core::UserInfo> forward_user;  // inside a .forward: whose
};

class Walker {
public:
    Walker(const ExpansionSettings& settings, const ExpansionSources& sources, const DeliveryRights& rights,
           Expansion& out)
        : settings_(settings), sources_(sources), rights_(rights), out_(out) {}

    void address(std::string_view text, const Provenance& from, const Branch& branch, TraceStep& step);

private:
    void target(const ParsedTarget& target, const Provenance& from, const Branch& branch, TraceStep& step,
                const std::string& via);
    void alias(const std::string& key, const AliasFound& found, const Route& route, const Branch& branch,
               TraceStep& step);
    void user(const core::UserInfo& user, const Route& route, const Provenance& from, const Branch& branch,
              TraceStep& step);
    void forward_lines(const ForwardResult& forward, const core::UserInfo& user, const Route& route,
                       const Provenance& from, const Branch& branch, TraceStep& step);
    void include(const std::string& path, const Provenance& from, const Branch& branch, TraceStep& step,
                 const std::string& via);
    void mailbox(const core::UserInfo& user, const std::string& address, const Provenance& from, const Branch& branch,
                 TraceStep& step);
    void leaf(Leaf leaf, std::string text, TraceStep& step);
    void error(const std::string& address, const Status& status, const Provenance& from, const Branch& branch,
               TraceStep& step);
    void defer(Status status, bool needs_more_rights = false) {
        if (!out_.temporary) {
            out_.temporary = std::move(status);
            out_.needs_more_rights = needs_more_rights;
        }
    }
    bool stopped() const { return out_.temporary.has_value(); }
    // A user from NSS; postmaster falls back to root, so no system needs that account.
    std::optional<core::UserInfo> find_user(const std::string& name, TraceStep& step);

    const ExpansionSettings& settings_;
    const ExpansionSources& sources_;
    const DeliveryRights& rights_;
    Expansion& out_;
    std::set<std::string> seen_;
    bool capped_ = false;
};

std::string chain_text(const std::vector<std::string>& chain, const std::string& last) {
    std::string text;
    for (const auto& name : chain) text += name + " -> ";
    return text + last;
}

void Walker::address(std::string_view text, const Provenance& from, const Branch& branch, TraceStep& step) {
    if (stopped()) return;
    Route route = route_address(text, settings_.routing);
    if (route.kind == Route::Kind::invalid) return error(std::string(text), route.invalid, from, branch, step);
    if (route.kind == Route::Kind::remote) {
        TraceStep& remote = step.children.emplace_back(
            TraceStep{"remote address " + core::escape_line(route.address, 1024) + ": domain not in mydestination", {}, {}});
        return leaf(Leaf{LeafKind::remote, route.address, route.address, from, branch.owner},
                    "remote " + route.address, remote);
    }
    std::string full = route.extension.empty() ? route.user
                                               : route.user + settings_.routing.recipient_delimiter +
                                                     lowercase_ascii(route.extension);
    // The name being expanded right now, named again: its owner's own mailbox.
    if (!branch.chain.empty() && (branch.chain.back() == route.user || branch.chain.back() == full)) {
        TraceStep& self = step.children.emplace_back(TraceStep{route.address + ": names itself: the mailbox", {}, {}});
        if (auto account = find_user(route.user, self)) mailbox(*account, route.address, from, branch, self);
        else if (!stopped()) error(route.address, Status::perm("5.1.1", "unknown user: \"" + route.user + "\""), from, branch, self);
        return;
    }
    for (const auto& name : {full, route.user}) {
        if (std::find(branch.chain.begin(), branch.chain.end(), name) != branch.chain.end()) {
            return error(route.address, Status::perm("5.4.6", "mail forwarding loop: " + chain_text(branch.chain, name)),
                         from, branch, step);
        }
    }
    if (branch.depth >= settings_.max_depth) {
        return error(route.address,
                     Status::perm("5.4.6", fmt::format("alias expansion deeper than {} levels: {}", settings_.max_depth,
                                                       chain_text(branch.chain, route.user))),
                     from, branch, step);
    }
    for (const auto& key : full == route.user ? std::vector<std::string>{full} : std::vector<std::string>{full, route.user}) {
        auto found = sources_.alias(key);
        if (!found) return defer(Status::temp("4.3.0", "cannot read the aliases database: " + found.error().message()));
        if (*found) return alias(key, **found, route, branch, step);
    }
    std::string shown = "local address " + core::escape_line(route.address, 1024) + ": user " +
                        core::escape_line(route.user, 256);
    if (!route.extension.empty()) shown += ", extension " + core::escape_line(route.extension, 256);
    TraceStep& local = step.children.emplace_back(TraceStep{std::move(shown), {}, {}});
    auto account = find_user(route.user, local);
    if (stopped()) return;
    if (!account) {
        return error(route.address, Status::perm("5.1.1", "unknown user: \"" + route.user + "\""), from, branch, local);
    }
    user(*account, route, from, branch, local);
}

std::optional<core::UserInfo> Walker::find_user(const std::string& name, TraceStep& step) {
    auto found = sources_.user(name);
    if (!found) {
        defer(Status::temp("4.3.0", "user lookup failed: " + found.error().message()));
        return std::nullopt;
    }
    if (*found || name != "postmaster") return *found;
    step.children.push_back(TraceStep{"postmaster: no alias and no account: root's mailbox", {}, {}});
    auto root = sources_.user("root");
    if (!root) {
        defer(Status::temp("4.3.0", "user lookup failed: " + root.error().message()));
        return std::nullopt;
    }
    return *root;
}

void Walker::alias(const std::string& key, const AliasFound& found, const Route& route, const Branch& branch,
                   TraceStep& step) {
    Provenance here{Provenance::Kind::aliases, found.path, found.line, ""};
    Branch below = branch;
    below.depth += 1;
    below.chain.push_back(key);
    // owner-NAME takes the bounces of list NAME (and of everything below it).
    if (key.rfind("owner-", 0) != 0) {
        auto owner = sources_.alias("owner-" + key);
        if (!owner) return defer(Status::temp("4.3.0", "cannot read the aliases database: " + owner.error().message()));
        if (*owner) below.owner = "owner-" + key + "@" + settings_.routing.myhostname;
    }
    std::string text = fmt::format("alias {} ({})", key, here.shown());
    if (below.owner != branch.owner && !below.owner.empty()) text += ", bounces to " + below.owner;
    TraceStep& node = step.children.emplace_back(TraceStep{text, {}, {}});
    for (const auto& t : found.targets) {
        Provenance at{Provenance::Kind::aliases, found.path, t.at.line, ""};
        target(t, at, below, node, route.address);
        if (stopped()) return;
    }
}

void Walker::user(const core::UserInfo& account, const Route& route, const Provenance& from, const Branch& branch,
                  TraceStep& step) {
    if (!rights_.may_deliver_as(account.uid)) {
        // Another user's .forward can only be judged with that user's rights.
        return defer(Status::temp("4.3.0", "expanding " + route.address + " needs a runner started as root"), true);
    }
    ForwardResult forward = sources_.forward(account, route.extension);
    for (const auto& skipped : forward.skipped) {
        if (skipped.worth_reporting()) out_.warnings.push_back("forward_path item " + skipped.item + " skipped: " + skipped.reason);
    }
    switch (forward.kind) {
        case ForwardResult::Kind::temporary:
            return defer(Status::temp("4.3.0", forward.describe()));
        case ForwardResult::Kind::refused: {
            out_.warnings.push_back(forward.describe());
            TraceStep& node = step.children.emplace_back(TraceStep{forward.describe(), {}, {}});
            return mailbox(account, route.address, from, branch, node);
        }
        case ForwardResult::Kind::used:
            return forward_lines(forward, account, route, from, branch, step);
        case ForwardResult::Kind::none:
            break;
    }
    mailbox(account, route.address, from, branch, step);
}

void Walker::forward_lines(const ForwardResult& forward, const core::UserInfo& account, const Route& route,
                           const Provenance& from, const Branch& branch, TraceStep& step) {
    // A line that does not parse refuses the whole file: half a .forward could drop
    // the line that keeps a copy.
    std::vector<std::pair<unsigned, ParsedTargets>> parsed;
    for (const auto& line : forward.lines) {
        auto targets = parse_targets(line.text, TargetSource::forward, {line.number, 1});
        if (!targets.ok()) {
            std::string why = fmt::format("{} ignored: line {}: {}", forward.shown_path, targets.error->at.line,
                                          core::escape_line(targets.error->what, 256));
            out_.warnings.push_back(why);
            TraceStep& node = step.children.emplace_back(TraceStep{why, {}, {}});
            return mailbox(account, route.address, from, branch, node);
        }
        parsed.emplace_back(line.number, std::move(targets));
    }
    Branch below = branch;
    below.depth += 1;
    below.chain.push_back(account.name);
    below.forward_user = account;
    TraceStep& node = step.children.emplace_back(TraceStep{forward.describe(), {}, {}});
    for (const auto& [number, targets] : parsed) {
        for (const auto& t : targets.targets) {
            Provenance at{Provenance::Kind::forward, forward.path, t.at.line, account.name};
            target(t, at, below, node, route.address);
            if (stopped()) return;
        }
    }
}

void Walker::target(const ParsedTarget& t, const Provenance& from, const Branch& branch, TraceStep& step,
                    const std::string& via) {
    if (stopped()) return;
    switch (t.kind) {
        case TargetKind::address:
            return address(t.value, from, branch, step);
        case TargetKind::own_mailbox: {
            TraceStep& node = step.children.emplace_back(TraceStep{"\\" + t.value + ": the mailbox, no expansion", {}, {}});
            auto account = find_user(lowercase_ascii(t.value), node);
            if (stopped()) return;
            if (!account) {
                return error(via, Status::perm("5.1.1", "unknown user: \"" + t.value + "\""), from, branch, node);
            }
            return mailbox(*account, account->name + "@" + settings_.routing.myhostname, from, branch, node);
        }
        case TargetKind::command:
            if (!listed(settings_.commands_allowed, allow_word(from.kind))) {
                return error(via,
                             Status::perm("5.7.1", fmt::format("mail to commands is not allowed in {} (allow_mail_to_commands)",
                                                               allow_word(from.kind))),
                             from, branch, step);
            }
            return leaf(Leaf{LeafKind::command, via, t.value, from, branch.owner}, "command |" + t.value, step);
        case TargetKind::file:
            if (!listed(settings_.files_allowed, allow_word(from.kind))) {
                return error(via,
                             Status::perm("5.7.1", fmt::format("mail to files is not allowed in {} (allow_mail_to_files)",
                                                               allow_word(from.kind))),
                             from, branch, step);
            }
            return leaf(Leaf{LeafKind::file, via, t.value, from, branch.owner}, "file " + t.value, step);
        case TargetKind::include:
            return include(t.value, from, branch, step, via);
        case TargetKind::error:
            return error(via, t.status_code[0] == '4' ? Status::temp(t.status_code, t.value) : Status::perm(t.status_code, t.value),
                         from, branch, step);
    }
}

void Walker::include(const std::string& path, const Provenance& from, const Branch& branch, TraceStep& step,
                     const std::string& via) {
    std::string marker = ":include:" + path;
    if (std::find(branch.chain.begin(), branch.chain.end(), marker) != branch.chain.end()) {
        return error(via, Status::perm("5.4.6", "mail forwarding loop: " + chain_text(branch.chain, marker)), from,
                     branch, step);
    }
    if (branch.depth >= settings_.max_depth) {
        return error(via, Status::perm("5.4.6", fmt::format("alias expansion deeper than {} levels", settings_.max_depth)),
                     from, branch, step);
    }
    IncludedFile file = sources_.include(path, branch.forward_user ? &*branch.forward_user : nullptr);
    std::string shown = core::escape_line(path, 1024);
    if (file.kind == IncludedFile::Kind::temporary) {
        return defer(Status::temp("4.3.0", ":include:" + shown + " unreadable now: " + file.reason));
    }
    if (file.kind == IncludedFile::Kind::refused) {
        out_.warnings.push_back(":include:" + shown + " refused: " + file.reason);
        TraceStep& node = step.children.emplace_back(TraceStep{":include:" + shown + " refused: " + file.reason, {}, {}});
        return error(via, Status::perm("5.3.0", ":include:" + shown + " refused: " + file.reason), from, branch, node);
    }
    Branch below = branch;
    below.depth += 1;
    below.chain.push_back(marker);
    TraceStep& node = step.children.emplace_back(
        TraceStep{fmt::format(":include:{} (named at {}, owned by uid {})", shown, from.shown(), file.owner), {}, {}});
    for (const auto& line : file.lines) {
        auto targets = parse_targets(line.text, TargetSource::include, {line.number, 1});
        if (!targets.ok()) {
            return error(via,
                         Status::perm("5.3.0", fmt::format(":include:{} line {}: {}", shown, targets.error->at.line,
                                                           core::escape_line(targets.error->what, 256))),
                         from, branch, node);
        }
        for (const auto& t : targets.targets) {
            target(t, Provenance{Provenance::Kind::include, path, t.at.line, ""}, below, node, via);
            if (stopped()) return;
        }
    }
}

void Walker::mailbox(const core::UserInfo& account, const std::string& address, const Provenance& from,
                     const Branch& branch, TraceStep& step) {
    leaf(Leaf{LeafKind::mailbox, address, account.name, from, branch.owner}, "mailbox of " + account.name, step);
}

void Walker::error(const std::string& address, const Status& status, const Provenance& from, const Branch& branch,
                   TraceStep& step) {
    leaf(Leaf{LeafKind::error, address, status.code() + " " + status.text(), from, branch.owner},
         "bounced: " + status.code() + " " + status.text(), step);
}

void Walker::leaf(Leaf found, std::string text, TraceStep& step) {
    std::string key;
    switch (found.kind) {
        case LeafKind::mailbox: key = "mailbox " + found.target; break;
        case LeafKind::remote: key = "remote " + lowercase_ascii(found.target); break;
        case LeafKind::file:
        case LeafKind::command: {
            // The same command named where it runs as someone else is another delivery.
            const auto& p = found.provenance;
            std::string runs_as = p.kind == Provenance::Kind::forward ? "forward " + p.user
                                  : p.kind == Provenance::Kind::include ? "include " + p.path
                                                                         : "aliases";
            key = std::string(leaf_kind_name(found.kind)) + " " + runs_as + " " + found.target;
            break;
        }
        case LeafKind::error: break;
    }
    if (!key.empty() && !seen_.insert(key).second) {
        step.children.push_back(TraceStep{text + " (already a target: delivered once)", {}, {}});
        return;
    }
    if (out_.leaves.size() >= settings_.max_leaves) {
        if (!capped_) {
            capped_ = true;
            Status status = Status::perm("5.3.4", fmt::format("more than {} targets: the rest are dropped", settings_.max_leaves));
            out_.leaves.push_back(Leaf{LeafKind::error, found.address, status.code() + " " + status.text(), found.provenance, found.owner});
        }
        return;
    }
    out_.leaves.push_back(std::move(found));
    step.children.push_back(TraceStep{std::move(text), {}, out_.leaves.size() - 1});
}

}  // namespace

ExpansionSettings ExpansionSettings::from_config(const core::Config& config) {
    ExpansionSettings settings;
    settings.routing = RoutingSettings::from_config(config);
    settings.commands_allowed = config.list("allow_mail_to_commands");
    settings.files_allowed = config.list("allow_mail_to_files");
    return settings;
}

Expansion expand_recipient(std::string_view address, const ExpansionSettings& settings,
                           const ExpansionSources& sources, const DeliveryRights& rights) {
    Expansion out;
    out.tree.text = core::escape_line(address, 1024);
    Walker walker(settings, sources, rights, out);
    walker.address(address, Provenance{}, Branch{}, out.tree);
    if (out.temporary) out.leaves.clear();
    return out;
}

}  // namespace mailroom::mail
