// lmtpd's process model (docs/security.md "lmtpd"): two processes and the agents.
//
//   root side   binds the listeners, then only answers "a connection to the agent
//               of user NAME" (delivery/agent_handoff.hpp, mailbox form): it looks
//               NAME up itself, derives the rights and the one mailbox the agent may
//               write, and starts agents (delivery/delivery_agent.hpp). It reads no
//               byte from the network.
//   sessions    forked from it, switched for good to default_privs (never the spool
//               owner: it needs no spool, and must not be able to queue), runs every LMTP
//               session in one Asio loop (net/session_server.hpp) and sends each
//               mailbox write to its user's agent (net/agent_writer.hpp).
//   agents      one per user, switched for good to that user, pinned to its mailbox.
//
// SIGTERM or SIGINT to the root side: the sessions process stops accepting,
// finishes the transactions in progress, and both end. Not started as root, the
// same shape runs as the caller, who can then deliver only to themselves.
#pragma once

#include <string>
#include <vector>

#include "core/config.hpp"
#include "core/log.hpp"
#include "net/listen_address.hpp"

namespace mailroom::lmtp {

struct LmtpdOptions {
    std::vector<std::string> listen;  // -l; empty: lmtpd_listen
    bool inetd = false;               // -i: one session on stdin/stdout
};

// Returns the exit code.
int run_lmtpd(const core::Config& config, const LmtpdOptions& options, const core::Logger& log);

}  // namespace mailroom::lmtp
