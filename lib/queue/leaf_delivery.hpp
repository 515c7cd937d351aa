// Leaf delivery: one attempt at one leaf of a queued message, the step between the
// runner's bookkeeping and the launcher. The leaf's user is recomputed here from
// its provenance (run_as), never read from the spool; then the Target is built and
// handed to the launcher, which crosses to that user.
//   mailbox, file, command  run_as -> Target -> launcher (relay=local)
//   remote                  deferred 4.3.5 "remote delivery not configured" (relay=none):
//                           the runner hands remote leaves to its RemoteTransport when
//                           one is attached (queue_runner.cpp), so they come here only
//                           when the program attached none
//   error                   the status it names (relay=none)
// A leaf whose user this runner may not act as is skipped (no attempt counted):
// a runner started as root delivers it.
// Must never: run a target as another user than run_as names, or throw.
#pragma once

#include <optional>
#include <string>

#include "delivery/launcher.hpp"
#include "delivery/leaf.hpp"
#include "mail/message.hpp"
#include "mail/status.hpp"
#include "queue/queue_entry.hpp"
#include "queue/runner_context.hpp"

namespace mailroom::mail {

struct Attempt {
    enum class Kind { tried, skipped };
    Kind kind = Kind::tried;
    Status status = Status::ok();
    std::string relay = "local";
    std::string output;  // a command's first 4 KB, for the bounce
};

// original_recipient: the envelope recipient the leaf came from (ORIGINAL_RECIPIENT).
Attempt deliver_leaf(const RunnerContext& context, const Message& message, const Envelope& envelope, const Leaf& leaf,
                     const std::string& original_recipient);

// The same in two steps (delivery/launcher.hpp's begin_delivery): the runner begins
// several leaves, so that their users' agents write at once, then finishes each.
struct BegunAttempt {
    std::optional<Attempt> done;
    BegunDelivery delivery;

    BegunAttempt(Attempt attempt) : done(std::move(attempt)) {}  // NOLINT: the early answers
    BegunAttempt(std::nullopt_t, BegunDelivery begun) : delivery(std::move(begun)) {}
};
BegunAttempt begin_leaf(const RunnerContext& context, const Message& message, const Envelope& envelope,
                        const Leaf& leaf, const std::string& original_recipient);
Attempt finish_leaf(BegunAttempt&& begun);

}  // namespace mailroom::mail
