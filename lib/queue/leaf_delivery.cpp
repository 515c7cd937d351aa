#include "queue/leaf_delivery.hpp"

#include "core/privilege.hpp"
#include "delivery/launcher.hpp"
#include "delivery/run_as.hpp"

namespace mailroom::mail {

BegunAttempt begin_leaf(const RunnerContext& context, const Message& message, const Envelope& envelope,
                        const Leaf& leaf, const std::string& original_recipient) {
    switch (leaf.kind) {
        case LeafKind::error: {
            // The local delivery agent's decision (unknown user, error:, a loop), as
            // Postfix's local logs it; an address that never parsed reached no agent.
            Status status = leaf.error_status();
            return Attempt{Attempt::Kind::tried, status, status.code() == "5.1.3" ? "none" : "local", ""};
        }
        case LeafKind::remote:
            return Attempt{Attempt::Kind::tried, Status::temp("4.3.5", "remote delivery not configured"), "none", ""};
        case LeafKind::mailbox:
        case LeafKind::file:
        case LeafKind::command: break;
    }
    RunAs as = run_as(leaf, *context.users, *context.facts, context.run_as);
    if (!as.user) return Attempt{Attempt::Kind::tried, as.refused, "local", ""};
    const core::UserInfo& user = *as.user;
    if (!context.rights.may_deliver_as(user.uid)) {
        return Attempt{Attempt::Kind::skipped,
                Status::temp("4.3.0", "delivery to " + leaf.target + " as " + user.name + " needs a runner started as root"),
                "local", ""};
    }
    const auto& local = context.settings.local;
    std::string provenance = leaf.provenance.token();
    Target target;
    if (leaf.kind == LeafKind::mailbox) {
        target = Target::mailbox(leaf.address, user, mailbox_location(local, user), provenance);
    } else {
        // Only a root runner switches users; one that is not keeps its own ids.
        core::Credentials credentials{user.uid, user.gid, {}};
        if (context.rights.switches_users()) {
            auto found = core::credentials_for(user);
            if (!found) return Attempt{Attempt::Kind::tried, Status::from_error(found.error()), "local", ""};
            credentials = std::move(*found);
        }
        target = leaf.kind == LeafKind::file
                     ? Target::file(leaf.address, leaf.target, user, std::move(credentials), provenance)
                     : Target::command(leaf.address, leaf.target, user, std::move(credentials), provenance);
    }
    DeliveryContext delivery = DeliveryContext::from_settings(local);
    delivery.sender = envelope.sender;
    delivery.original_recipient = original_recipient;
    delivery.arrival = envelope.arrival();
    delivery.agents = context.agents.get();
    return BegunAttempt{std::nullopt, begin_delivery(target, message, delivery)};
}

Attempt finish_leaf(BegunAttempt&& begun) {
    if (begun.done) return std::move(*begun.done);
    DeliveryOutcome outcome = finish_delivery(std::move(begun.delivery));
    return {Attempt::Kind::tried, std::move(outcome.status), "local", std::move(outcome.output)};
}

Attempt deliver_leaf(const RunnerContext& context, const Message& message, const Envelope& envelope, const Leaf& leaf,
                     const std::string& original_recipient) {
    return finish_leaf(begin_leaf(context, message, envelope, leaf, original_recipient));
}

}  // namespace mailroom::mail
