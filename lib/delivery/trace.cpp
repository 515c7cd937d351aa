#include "delivery/trace.hpp"

#include <fmt/format.h>

#include "core/json_text.hpp"
#include "core/log.hpp"

namespace mailroom::mail {

namespace {

std::string shown(std::string_view text) { return core::escape_line(text, 1024); }

int worst(int a, int b) {
    // A temporary failure wins, as it does for mda: the caller retries and loses nothing.
    if (a == 75 || b == 75) return 75;
    return a != 0 ? a : b;
}

// One leaf, resolved as delivery resolves it: its line and its JSON facts.
struct Resolved {
    std::string line;
    std::string json;
    int exit_code = 0;
};

Resolved resolve(const Leaf& leaf, const TraceContext& context) {
    Resolved out;
    std::string facts = fmt::format("\"kind\": \"{}\", \"address\": {}, \"target\": {}, \"provenance\": {}, \"owner\": {}",
                                    leaf_kind_name(leaf.kind), core::json_quote(leaf.address),
                                    core::json_quote(leaf.target), core::json_quote(leaf.provenance.token()),
                                    leaf.owner.empty() ? "null" : core::json_quote(leaf.owner));
    auto status_json = [](const Status& status) {
        return fmt::format("\"status\": {{\"code\": \"{}\", \"text\": {}}}", status.code(), core::json_quote(status.text()));
    };
    if (leaf.kind == LeafKind::error) {
        Status status = leaf.error_status();
        out.line = fmt::format("-> {}: {} ({})", status.is_temporary() ? "deferred" : "bounced", shown(status.text()),
                               status.code());
        out.json = fmt::format("{{{}, {}}}", facts, status_json(status));
        out.exit_code = status.to_sysexit();
        return out;
    }
    if (leaf.kind == LeafKind::remote) {
        // The route the runner's SMTP transport takes; no DNS lookup here (trace
        // tells where mail goes by the configuration, docs/remote-delivery.md).
        std::string domain = leaf.address.substr(leaf.address.rfind('@') + 1);
        std::string via = context.relayhost.empty() ? "the MX hosts of " + domain + " (its A/AAAA when it has none)"
                                                    : "the relayhost " + context.relayhost;
        out.line = "-> remote: SMTP to " + shown(via);
        out.json = fmt::format("{{{}, \"remote\": {{\"relayhost\": {}, \"domain\": {}}}}}", facts,
                               context.relayhost.empty() ? "null" : core::json_quote(context.relayhost),
                               core::json_quote(domain));
        return out;
    }
    RunAs as = run_as(leaf, context.users, context.facts, context.run_as);
    if (!as.user) {
        out.line = fmt::format("-> {}: {} ({})", as.refused.is_temporary() ? "deferred" : "bounced",
                               shown(as.refused.text()), as.refused.code());
        out.json = fmt::format("{{{}, {}}}", facts, status_json(as.refused));
        out.exit_code = as.refused.to_sysexit();
        return out;
    }
    const core::UserInfo& user = *as.user;
    // "~bob/.forward:1" for a .forward under its user's home.
    std::string named_at = leaf.provenance.shown(leaf.provenance.user == user.name ? user.home : "");
    std::string who = fmt::format("{} (uid {})", shown(user.name), user.uid);
    std::string user_json = fmt::format("\"user\": {{\"name\": {}, \"uid\": {}}}", core::json_quote(user.name), user.uid);
    switch (leaf.kind) {
        case LeafKind::mailbox: {
            MailboxLocation mailbox = mailbox_location(context.local, user);
            const char* format = mailbox.format == MailboxFormat::maildir ? "maildir" : "mbox";
            out.line = fmt::format("-> mailbox {} ({}), written as {}", shown(mailbox.path), format, who);
            out.json = fmt::format("{{{}, \"mailbox\": {{\"path\": {}, \"format\": \"{}\"}}, {}}}", facts,
                                   core::json_quote(mailbox.path), format, user_json);
            break;
        }
        case LeafKind::file:
            out.line = fmt::format("-> file {} (mbox), written as {}, named at {}", shown(leaf.target), who, named_at);
            out.json = fmt::format("{{{}, {}}}", facts, user_json);
            break;
        case LeafKind::command:
            out.line = fmt::format("-> command |{}, run as {}, named at {}", shown(leaf.target), who, named_at);
            out.json = fmt::format("{{{}, {}}}", facts, user_json);
            break;
        case LeafKind::remote:
        case LeafKind::error: break;
    }
    return out;
}

void render(const TraceStep& step, const Expansion& expansion, const TraceContext& context, size_t depth,
            Trace& trace, std::string& json) {
    std::string indent(depth * 2, ' ');
    if (step.leaf) {
        // A deferred expansion keeps its steps but records no leaf.
        if (*step.leaf >= expansion.leaves.size()) return;
        Resolved resolved = resolve(expansion.leaves[*step.leaf], context);
        trace.lines.push_back(indent + resolved.line);
        json += fmt::format("{{\"leaf\": {}}}", resolved.json);
        trace.exit_code = worst(trace.exit_code, resolved.exit_code);
        return;
    }
    if (depth > 0) trace.lines.push_back(indent + step.text);
    json += fmt::format("{{\"step\": {}, \"steps\": [", core::json_quote(step.text));
    for (size_t i = 0; i < step.children.size(); ++i) {
        if (i > 0) json += ", ";
        render(step.children[i], expansion, context, depth + 1, trace, json);
    }
    json += "]}";
}

}  // namespace

Trace trace_address(std::string_view address, const TraceContext& context) {
    Trace trace;
    trace.lines.push_back(shown(address));
    Expansion expansion = expand_recipient(address, context.expansion, context.sources, context.rights);
    std::string steps;
    render(expansion.tree, expansion, context, 0, trace, steps);
    if (expansion.temporary) {
        trace.lines.push_back(fmt::format("  -> deferred: {} ({})", shown(expansion.temporary->text()),
                                          expansion.temporary->code()));
        trace.exit_code = 75;
    }
    trace.json = fmt::format("{{\"address\": {}, \"tree\": {}, \"deferred\": {}}}", core::json_quote(address), steps,
                             expansion.temporary ? core::json_quote(expansion.temporary->code() + " " +
                                                                    expansion.temporary->text())
                                                 : "null");
    return trace;
}

}  // namespace mailroom::mail
