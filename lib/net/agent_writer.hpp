// AgentWriter: mailbox writes sent to delivery agents (delivery/delivery_agent.hpp)
// from an event loop, without blocking it: lmtpd's session process has many
// sessions in one thread, and one session's fsync must not stall the others.
//
// Connections per agent identity are asked of the AgentSource as writes need them
// (lmtpd: the root side, over a channel): up to `lanes` of them, each to an agent
// of its own (AgentIdentity::lane), so that writes to one user's Maildir are synced
// side by side as the file system allows. Writes on one connection go one at a
// time, in the order queued (an agent answers one request at a time); writes to
// different users run at once. Each write is a WriteJob and the message's
// descriptor out, one status line back, read bounded and parsed strictly; past the
// timeout the agent is killed through its pidfd and the write deferred (4.3.0), as
// is a write whose agent died. A connection idle for `idle` is closed.
// Must never: block the loop on an agent, send a job to another identity's agent,
// or report a write delivered without the agent's 2.x.x line.
#pragma once

#include <chrono>
#include <cstdint>
#include <map>
#include <memory>
#include <string>

#include <boost/asio/any_io_executor.hpp>
#include <boost/asio/awaitable.hpp>

#include "delivery/delivery_agent.hpp"
#include "delivery/write_job.hpp"
#include "mail/status.hpp"

namespace mailroom::net {

class AgentWriter {
public:
    using Clock = std::chrono::steady_clock;

    AgentWriter(boost::asio::any_io_executor executor, mail::AgentSource& source, std::chrono::seconds timeout,
                unsigned lanes = 1, std::chrono::seconds idle = std::chrono::seconds(30));
    ~AgentWriter();

    // Writes bytes [0, size) of `content_fd` as `job` says, through the agent for `as`.
    boost::asio::awaitable<mail::Status> write(const mail::AgentIdentity& as, const mail::WriteJob& job,
                                               int content_fd, uint64_t size);
    // Closes connections idle longer than `idle` (their agents then end).
    void retire_idle(Clock::time_point now);
    size_t connections() const { return links_.size(); }

    AgentWriter(const AgentWriter&) = delete;
    AgentWriter& operator=(const AgentWriter&) = delete;

private:
    struct Link;
    std::shared_ptr<Link> link_for(const mail::AgentIdentity& as, mail::Status& failure);

    boost::asio::any_io_executor executor_;
    mail::AgentSource& source_;
    std::chrono::seconds timeout_;
    unsigned lanes_;
    std::chrono::seconds idle_;
    std::multimap<uid_t, std::shared_ptr<Link>> links_;
};

}  // namespace mailroom::net
