// The runner's transports that live in lib/net, attached to a RunnerContext by each
// program that runs the queue (mta, sendmail -odi, mailctl flush), so that the
// queue library never includes lib/net (ARCHITECTURE.md, the ladder).
#pragma once

#include "core/config.hpp"
#include "core/result.hpp"
#include "queue/runner_context.hpp"

namespace mailroom::net {

// local_transport = lmtp:...: an LmtpClient for the mailbox leaves. Nothing for
// "local". An error for a value that is not a destination.
core::Result<void> attach_transports(mail::RunnerContext& context, const core::Config& config);

}  // namespace mailroom::net
