// A delivery agent: a long-lived process switched for good to one user's
// credentials (groups, gid, uid; PR_SET_PDEATHSIG), exactly as a per-delivery
// child is, that writes mailbox and file targets for that user only
// (docs/security.md "Delivery agents"). This file holds the agent and its owner,
// the AgentRegistry; the processes that ask for writes hold connections to agents
// (delivery/delivery_agents.hpp).
//
// An agent has one control socket, on which its owner hands it connections, and
// any number of connections (SOCK_SEQPACKET), on each of which it answers one
// request at a time: a WriteJob with a read-only descriptor of the stored message
// in, one "X.Y.Z text" line out (delivery/write_job.hpp). The Maildir writes waiting
// on several connections at once are made durable together, their syncs shared
// (delivery/maildir_batch.hpp); other writes are answered one by one. It exits when its control
// socket and every connection have been closed, and never before: a request sent
// is answered, or the agent has been killed (a deadline, its owner's end).
//
// The registry starts an agent at the first connection asked for its credentials,
// and retires it (closes its control socket, so it ends once its connections are
// closed) when it has handed out no connection for `idle` or when `max_agents` are
// live and it is the least recently used. It never kills a live agent except at
// its own end. Whoever reaps children with waitpid(-1) (the `mta -d` loop) must
// tell it through reaped().
// Must never: hand a connection to an agent of other credentials than asked,
// kill a pid it has not reaped itself unless it is still its unreaped child, or
// leave its control copies open in a forked copy (forget()).
#pragma once

#include <sys/types.h>

#include <chrono>
#include <cstddef>
#include <list>
#include <optional>
#include <string>
#include <vector>

#include "core/privilege.hpp"
#include "core/subprocess.hpp"
#include "core/unique_fd.hpp"
#include "delivery/mailbox_location.hpp"
#include "mail/status.hpp"

namespace mailroom::mail {

struct DeliveryAgentLimits {
    // Live agents at most: 128 covers the users of most lists and hosts, at a few
    // hundred KB of private memory each.
    size_t max_agents = 128;
    // An agent (or a connection to one) not used for this long is let go.
    std::chrono::seconds idle{30};
};

// Whom an agent acts for.
struct AgentIdentity {
    core::Credentials credentials;
    core::PrivilegeSwitch::RootTarget root = core::PrivilegeSwitch::RootTarget::refuse;
    std::string name;  // for texts only: "cannot deliver as NAME"
    // When set, the agent writes this mailbox and nothing else: a job for another
    // path or format is refused 5.7.1. lmtpd's agents are pinned so, because the
    // process that sends their jobs faces the network and holds no rights of its
    // own (docs/security.md "lmtpd").
    std::optional<MailboxLocation> only;
    // Several agents for one identity, so that one user's writes can be synced at
    // once (lmtpd: many sessions for one mailbox); lane N is the N+1th of them.
    unsigned lane = 0;
};
bool same_credentials(const AgentIdentity& a, const AgentIdentity& b);

// One connection to an agent.
struct AgentConnection {
    core::UniqueFd socket;   // requests out, replies in
    core::UniqueFd process;  // a pidfd of the agent, to kill it at a deadline (may be empty)
    pid_t pid = -1;
};

// A connection, or why there is none: 5.7.1 "cannot deliver as NAME" when the
// switch to the user was refused, 4.3.0 for a system failure.
struct AgentOffer {
    AgentConnection connection;
    Status failure = Status::ok();
};

// Where connections come from: the registry in this process, or (in an `mta -d`
// worker) the daemon's registry over the worker's channel (delivery/agent_handoff.hpp).
class AgentSource {
public:
    virtual ~AgentSource() = default;
    virtual AgentOffer connect(const AgentIdentity& as) = 0;
    // This is a forked copy of the source's owner: let go of what is the parent's
    // (close our copies of its descriptors) without touching its processes.
    virtual void forget() {}
};

class AgentRegistry final : public AgentSource {
public:
    using Clock = std::chrono::steady_clock;

    explicit AgentRegistry(DeliveryAgentLimits limits = {});

    AgentOffer connect(const AgentIdentity& as) override;
    void forget() override;

    // Retires the agents that have handed out no connection for `idle`.
    void retire_idle(Clock::time_point now);
    // The owner's waitpid(-1) has reaped `pid`: true when it was one of ours (forgotten).
    bool reaped(pid_t pid);
    // Live agents (not retired), the most recently used last; for tests.
    std::vector<pid_t> pids() const;

    AgentRegistry(const AgentRegistry&) = delete;
    AgentRegistry& operator=(const AgentRegistry&) = delete;
    // Ends every agent (killed and reaped): the owner's connections are gone with it.
    // In a forked copy of the owner it leaves them alone.
    ~AgentRegistry() override;

private:
    struct Agent {
        AgentIdentity identity;
        core::Subprocess process;
        core::UniqueFd control;
        Clock::time_point last_connected;
    };
    using Agents = std::list<Agent>;

    Agents::iterator start(const AgentIdentity& as, AgentOffer& offer);
    // A connection to `agent` into offer (or offer.failure); false when the agent is dead.
    bool hand_out(Agent& agent, AgentOffer& offer);
    void retire(Agents::iterator agent);
    void forget_if_inherited();

    DeliveryAgentLimits limits_;
    pid_t owner_;
    Agents live_;                          // least recently used first
    std::list<core::Subprocess> retired_;  // control closed: each ends with its last connection
};

}  // namespace mailroom::mail
