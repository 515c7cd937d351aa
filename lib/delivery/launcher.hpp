// The launcher: delivers one Message to one Target as the target's user. The one
// place where a delivery crosses to another uid (ARCHITECTURE "Processes and
// privileges"): a core::Subprocess that switches to the user for good (groups, gid,
// uid, verified) in its own process group, with a fresh environment and only the
// descriptors it needs, killed with its group at command_timeout.
//
// mailbox: the mbox or Maildir writer as the user, in the user's long-lived delivery
//   agent when the context has a pool and the message is stored (the runner,
//   delivery/delivery_agents.hpp), else in a forked child (no exec: our own code)
//   that reports its Status on its output. An mbox in a group-writable mail folder also gets the folder's group.
// file:    MboxWriter (every mailbox rule: no symlink, one link, owned by the run-as
//   user, locks, truncated back on failure) as the run-as user, the same way.
// command: /bin/sh -c COMMAND as the run-as user in its home, the message on stdin
//   after Return-Path and Delivered-To (the message's own Return-Path left out), the
//   environment exactly SENDER RECIPIENT ORIGINAL_RECIPIENT USER HOME LOCAL EXTENSION
//   DOMAIN SHELL PATH; judged by command_status (delivery/command_output.hpp).
// remote:  not delivered here: 4.3.5, for the runner to defer.
//
// Before any of it: a Delivered-To for the target's address is a loop (5.4.6), and
// a file or command never runs as uid 0 (5.7.1, nothing forked). Root's own mailbox
// is still written as root (docs/security.md). Outcomes are Statuses, never thrown.
// docs/targets.md has the whole picture.
#pragma once

#include <chrono>
#include <ctime>
#include <optional>
#include <string>

#include "delivery/mailbox_location.hpp"
#include "delivery/delivery_agents.hpp"
#include "delivery/mailbox_writer.hpp"
#include "delivery/target.hpp"
#include "mail/message.hpp"
#include "mail/status.hpp"

namespace mailroom::mail {

enum class Isolation {
    // Mailbox and file targets only: switch the whole process to the user for good,
    // without a fork. Its last act: mda with one USER.
    in_process,
    // A forked child switches and delivers; the caller keeps its rights.
    child_process,
};

// What a delivery needs besides the target and the message.
struct DeliveryContext {
    std::string sender;              // envelope sender; "" = <>
    std::string original_recipient;  // ORIGINAL_RECIPIENT; "" = the target's address
    std::string hostname;            // Maildir file names
    std::time_t arrival = 0;         // the mbox From_ line
    LockSettings locks;
    // How long a child may run: a command is then killed and bounced (5.3.0), a
    // mailbox writer killed and deferred.
    std::chrono::seconds command_timeout{3600};
    std::string recipient_delimiter = "+";  // LOCAL's split into EXTENSION
    Isolation isolation = Isolation::child_process;
    // child_process, root, a stored message: mailbox and file writes go to these
    // long-lived per-user agents instead of a child each (the runner's); else a child
    // per write (mda).
    DeliveryAgents* agents = nullptr;

    // Everything but sender, original_recipient and arrival from the settings.
    static DeliveryContext from_settings(const LocalDeliverySettings& settings);
};

struct DeliveryOutcome {
    // The text is one line: for the log and the queue.
    Status status;
    // A command's output as written, at most its first 4 KB: for the bounce.
    std::string output;
};

DeliveryOutcome deliver(const Target& target, const Message& message, const DeliveryContext& context);

// deliver() in two steps, so that the runner has several users' mailboxes written at
// once: begin_delivery makes every check and either finishes the delivery (a refusal,
// a command, a child's write) or hands the write to its user's agent and returns at
// once; finish_delivery waits for that. Every begun delivery must be finished once.
struct BegunDelivery {
    std::optional<DeliveryOutcome> done;
    DeliveryAgents* agents = nullptr;
    DeliveryAgents::Ticket ticket = 0;

    static BegunDelivery finished(DeliveryOutcome outcome) { return {std::move(outcome), nullptr, 0}; }
};
BegunDelivery begin_delivery(const Target& target, const Message& message, const DeliveryContext& context);
DeliveryOutcome finish_delivery(BegunDelivery&& begun);

// The rights a mailbox is written with: the user's uid, gid and groups, and for an
// mbox in a group-writable mail folder (Debian's /var/mail) that folder's group.
// Without root, just the user's ids (there is nothing to switch).
core::Result<core::Credentials> mailbox_credentials(const core::UserInfo& user, const MailboxLocation& mailbox);

// The environment a command target runs with, "NAME=value" each (exposed for tests
// and traces).
std::vector<std::string> command_environment(const Target& target, const DeliveryContext& context);

}  // namespace mailroom::mail
