// DeliveryAgents: the writes of one process (`mta -q`, an `mta -d` worker) sent to
// delivery agents, long-lived processes each switched for good to one user
// (delivery/delivery_agent.hpp). Why: a fork per delivery costs 1-2 ms of CPU even
// for a small process on a virtual machine (page-table copy, copy-on-write faults,
// TLB shootdowns), more than the write itself; an agent pays it once per user
// (docs/delivery-model.md). In `mta -d` the agents are the daemon's, shared by its
// workers (delivery/agent_handoff.hpp), so a user's agent starts once per daemon.
//
// The pool holds one connection per set of credentials, asked of its AgentSource
// at the first write for them, and sends each write there: a WriteJob and a
// read-only descriptor of the stored message out, one status line back. It closes a
// connection that has been idle longer than `idle` or is the least recently used of
// `max_agents`; the agent lives on for other connections. A request whose send
// fails (the agent died while idle) is sent once more on a fresh connection; a
// request sent is answered, or the agent has died (4.3.0, deferred, like a killed
// delivery child) or has missed the deadline (killed through its pidfd, 4.3.0).
//
// A pool belongs to the process that filled it: used in a forked copy it forgets
// the parent's connections and agents without touching them, and starts its own.
// Must never: send a request for other credentials than the connection's, trust a
// reply beyond one bounded status line, or wait past the deadline.
#pragma once

#include <sys/types.h>

#include <chrono>
#include <cstddef>
#include <list>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "delivery/delivery_agent.hpp"
#include "delivery/write_job.hpp"
#include "mail/message.hpp"
#include "mail/status.hpp"

namespace mailroom::mail {

class DeliveryAgents {
public:
    using Clock = std::chrono::steady_clock;
    using Limits = DeliveryAgentLimits;
    using Identity = AgentIdentity;

    // Agents of this process's own (an AgentRegistry).
    DeliveryAgents();
    explicit DeliveryAgents(Limits limits);

    // From now on connections come from `source` (an `mta -d` worker: the daemon's
    // agents); the connections held so far are closed.
    void use_source(std::unique_ptr<AgentSource> source);

    // Writes `job` of a stored message (content_fd() >= 0) through the agent for
    // `as`'s credentials. The agent is killed at `deadline` (4.3.0, "timed out after
    // `timeout` s"). A message held in memory cannot be sent: 4.3.0, callers check
    // can_send() first.
    Status write(const WriteJob& job, const Message& message, const Identity& as, Clock::time_point deadline,
                 std::chrono::seconds timeout);

    static bool can_send(const Message& message) { return message.content_fd() >= 0; }

    // The same in two steps, so that several users' agents write at once: send()
    // hands the write to its agent (first waiting for this pool's earlier write to
    // that agent, if any) and returns at once; wait() returns its Status. Every
    // ticket must be waited for once.
    using Ticket = uint64_t;
    Ticket send(const WriteJob& job, const Message& message, const Identity& as, Clock::time_point deadline,
                std::chrono::seconds timeout);
    Status wait(Ticket ticket);

    // The process ids of the agents connected to, the most recently used last (for tests).
    std::vector<pid_t> pids() const;

    DeliveryAgents(const DeliveryAgents&) = delete;
    DeliveryAgents& operator=(const DeliveryAgents&) = delete;
    ~DeliveryAgents();

private:
    struct Connection;
    using Connections = std::list<Connection>;

    void forget_if_inherited();
    void retire_idle(Clock::time_point now);
    Connections::iterator find_or_connect(const Identity& as, Status& failure);
    // Waits for the reply to the request in flight on `connection`, into finished_;
    // a connection whose agent died, timed out or misbehaved is closed (the iterator
    // is then invalid), the agent killed unless it died.
    void collect(Connections::iterator connection);

    Limits limits_;
    pid_t owner_;
    std::unique_ptr<AgentSource> source_;
    Connections connections_;  // least recently used first
    std::map<Ticket, Status> finished_;  // answered, not yet waited for
    Ticket next_ticket_ = 1;
};

}  // namespace mailroom::mail
