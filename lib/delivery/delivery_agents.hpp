// DeliveryAgents: long-lived writer processes, one per set of credentials, that
// write mailbox and file targets for the process owning the pool (a queue worker,
// `mta -q`). Why: a fork per delivery costs 1-2 ms of CPU even for a small process
// on a virtual machine (page-table copy, copy-on-write faults, TLB shootdowns), more
// than the write itself; an agent pays it once per user, not once per delivery
// (docs/delivery-model.md).
//
// An agent is a core::Subprocess switched for good to its credentials (groups, gid,
// uid; PR_SET_PDEATHSIG), exactly as a per-delivery child is, so docs/security.md's
// promise holds: it acts for one user all its life and is only ever asked to write
// for that user. Over a SOCK_SEQPACKET pair it gets one request per write (a
// WriteJob and a read-only descriptor of the stored message, delivery/write_job.hpp)
// and answers one "X.Y.Z text" line.
//
// Lifetime is the owner's decision alone, so that no request can be lost in an agent
// that is exiting on its own: an agent is started at the first write for its
// credentials and ended (killed and reaped) when it has been idle longer than
// `idle`, when the pool is full and it is the least recently used, when it
// misbehaves (a reply nobody asked for, a reply that is not a status line, a
// timeout) and with the pool. A request whose send fails (the agent died while idle)
// is sent once more to a fresh agent; a request sent is answered, or its agent has
// died and the write is deferred (4.3.0), like a killed delivery child's.
//
// A pool belongs to the process that filled it: used in a forked child it forgets
// the parent's agents (closing its copies of their sockets) without touching them.
// Must never: send an agent a request for other credentials than its own, trust a
// reply beyond one bounded status line, or wait past the deadline.
#pragma once

#include <sys/types.h>

#include <chrono>
#include <cstddef>
#include <list>
#include <map>
#include <string>
#include <vector>

#include "core/privilege.hpp"
#include "delivery/write_job.hpp"
#include "mail/message.hpp"
#include "mail/status.hpp"

namespace mailroom::mail {

struct DeliveryAgentLimits {
    // Live agents at most: 128 covers the users of most lists and hosts, at a few
    // hundred KB of private memory each.
    size_t max_agents = 128;
    // An agent not used for this long is ended at the next write.
    std::chrono::seconds idle{30};
};

class DeliveryAgents {
public:
    using Clock = std::chrono::steady_clock;
    using Limits = DeliveryAgentLimits;
    // Whom an agent acts for.
    struct Identity {
        core::Credentials credentials;
        core::PrivilegeSwitch::RootTarget root = core::PrivilegeSwitch::RootTarget::refuse;
        std::string name;  // for texts only: "cannot deliver as NAME"
    };

    DeliveryAgents();
    explicit DeliveryAgents(Limits limits);

    // Writes `job` of a stored message (content_fd() >= 0) through the agent for
    // `as`'s credentials. The agent is killed at `deadline` (4.3.0, "timed out after
    // `timeout` s"). A message held in memory cannot be sent: 4.3.0, callers check
    // can_send() first.
    Status write(const WriteJob& job, const Message& message, const Identity& as, Clock::time_point deadline,
                 std::chrono::seconds timeout);

    static bool can_send(const Message& message) { return message.content_fd() >= 0; }

    // The same in two steps, so that several users' agents write at once: send()
    // hands the write to its agent (first waiting for that agent's earlier write, if
    // any) and returns at once; wait() returns its Status. Every ticket must be
    // waited for once.
    using Ticket = uint64_t;
    Ticket send(const WriteJob& job, const Message& message, const Identity& as, Clock::time_point deadline,
                std::chrono::seconds timeout);
    Status wait(Ticket ticket);

    // The live agents' process ids, the most recently used last (for tests).
    std::vector<pid_t> pids() const;

    DeliveryAgents(const DeliveryAgents&) = delete;
    DeliveryAgents& operator=(const DeliveryAgents&) = delete;
    ~DeliveryAgents();

private:
    struct Agent;
    using Agents = std::list<Agent>;

    void forget_if_inherited();
    void retire_idle(Clock::time_point now);
    Agents::iterator find_or_start(const Identity& as, Status& failure);
    // Waits for the reply to the agent's request in flight, into finished_; an agent
    // that died, timed out or misbehaved is ended (the iterator is then invalid).
    void collect(Agents::iterator agent);

    Limits limits_;
    pid_t owner_ = 0;
    Agents agents_;  // least recently used first
    std::map<Ticket, Status> finished_;  // answered, not yet waited for
    Ticket next_ticket_ = 1;
};

}  // namespace mailroom::mail
