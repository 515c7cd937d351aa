// Agent handoff: how an `mta -d` worker gets connections to the daemon's delivery
// agents (delivery/delivery_agent.hpp), so that each user's agent is started once
// per daemon rather than once per worker (docs/delivery-model.md).
//
// Over the worker's channel (SOCK_SEQPACKET, the one that carries queue IDs) the
// worker sends one request, "agent1" then the uid, gid, root rule, name and groups,
// NUL-separated, and waits; the daemon answers "ok PID" with the connection's
// socket and a pidfd of the agent attached, or a status line ("5.7.1 cannot
// deliver as bob: ...") with nothing attached. Both sides are root processes of one
// image; the request is still checked field by field, as every input is.
// Must never: block the worker past `reply_wait` on a daemon that does not answer,
// take a late answer to an earlier request for the answer to this one (after a
// request left unanswered the source is broken: it refuses every later one, and
// the worker ends), or leave a descriptor received with a malformed answer open.
#pragma once

#include <chrono>
#include <functional>
#include <variant>
#include <string>
#include <string_view>

#include "core/result.hpp"
#include "delivery/delivery_agent.hpp"

namespace mailroom::mail {

std::string encode_agent_request(const AgentIdentity& as);
core::Result<AgentIdentity> decode_agent_request(std::string_view packet);
bool is_agent_request(std::string_view packet);

// The daemon's side: answers a request read from `channel` with a connection
// from `source` (its registry), or with the reason there is none.
void answer_agent_request(int channel, std::string_view packet, AgentSource& source);

// lmtpd's form (docs/security.md "lmtpd"): its session process, which faces the
// network and has no rights to give, names a user and nothing else, "mailbox1" NUL
// name; the root side looks the user up and decides the credentials and the one
// mailbox the agent may write (AgentIdentity::only). The lane picks one of the
// user's agents (AgentIdentity::lane), below max_mailbox_lanes.
constexpr unsigned max_mailbox_lanes = 16;
struct MailboxRequest {
    std::string user;
    unsigned lane = 0;
};
std::string encode_mailbox_request(const MailboxRequest& request);
core::Result<MailboxRequest> decode_mailbox_request(std::string_view packet);
// A user name → the identity of the agent for that user's mailbox, or why not.
using MailboxResolver = std::function<std::variant<AgentIdentity, Status>(const std::string& user)>;
void answer_mailbox_request(int channel, std::string_view packet, AgentSource& source, const MailboxResolver& resolve);

// The worker's side: connections asked of the daemon over `channel` (not owned),
// by credentials (an `mta -d` worker) or by user name alone (lmtpd).
class ChannelAgentSource final : public AgentSource {
public:
    enum class Request { credentials, mailbox };
    explicit ChannelAgentSource(int channel, std::chrono::milliseconds reply_wait = std::chrono::seconds(60),
                                Request request = Request::credentials)
        : channel_(channel), reply_wait_(reply_wait), request_(request) {}
    AgentOffer connect(const AgentIdentity& as) override;
    // A request went unanswered: what comes next on the channel cannot be trusted.
    bool broken() const { return broken_; }

private:
    int channel_;
    std::chrono::milliseconds reply_wait_;
    Request request_;
    bool broken_ = false;
};

}  // namespace mailroom::mail
