// QueueDaemon: the delivery side of `mta -d`. A single-threaded loop (poll) that
// reads queue IDs from the spool's trigger FIFO (a new submission starts at
// once), scans queue/ every queue_run_delay for entries whose due time (mtime)
// has come, and hands each entry to a worker, at most `workers` at a time. Workers
// are forked root processes that run one entry after another (the ID goes over a
// SOCK_SEQPACKET pair, "done" comes back), each for at most 100 entries or 60 s
// idle. Mailbox and file writes go to delivery agents that the daemon starts and
// owns, one per user, shared by every worker (delivery/agent_handoff.hpp: a worker
// asks for a connection over its channel); every other delivery is a child of the
// worker, as the recipient. The daemon reaps the agents with its workers and ends
// them when it stops.
//
// Invariants: the loop never forks while it holds anything but its own fds; an
// entry is handed to one worker at a time (the in-flight set, and the entry's
// lock across processes); memory does not grow with the queue (the scan streams
// the folder, the wake-up backlog is bounded and falls back to a scan).
// On SIGTERM/SIGINT it stops dispatching, lets workers finish for a grace period,
// then kills the rest, each worker with its process group (the delivery processes
// it forked): their recorded state stays, the unrecorded attempt is retried.
// Must never: deliver in the loop process itself, or block on one slow delivery.
#pragma once

#include <chrono>
#include <functional>

#include "queue/queue_runner.hpp"

namespace mailroom::mta {

struct DaemonSettings {
    std::chrono::seconds queue_run_delay{300};
    unsigned workers = 8;
    std::chrono::seconds shutdown_grace{10};
    // The SMTP listener (mta/smtpd.hpp), run in a child the daemon forks, started
    // again a second after it dies, sent SIGTERM when the daemon stops and SIGHUP
    // when it gets one; its exit code. None: no listener.
    std::function<int()> run_listener;
};

// Runs until SIGTERM or SIGINT; returns the exit code.
int run_queue_daemon(const mail::RunnerContext& context, const DaemonSettings& settings);

}  // namespace mailroom::mta
