// Local delivery: one Message into one local user's mailbox, the way mda, lmtpd and
// the queue runner call it. A thin front over the launcher (delivery/launcher.hpp):
// it builds the user's mailbox Target and the DeliveryContext from the settings, so
// the callers keep one line each.
//
// The launcher checks for a mail loop (Delivered-To for the same recipient: 5.4.6),
// switches to the user's credentials (a forked child when the caller must keep root,
// or the process itself when it is the last thing it does) and runs the mbox or
// Maildir writer. Never runs a writer as another user than the mailbox owner.
#pragma once

#include <optional>
#include <string>

#include "core/config.hpp"
#include "core/users.hpp"
#include "delivery/launcher.hpp"
#include "delivery/mailbox_location.hpp"
#include "delivery/mailbox_writer.hpp"
#include "mail/message.hpp"
#include "mail/status.hpp"

namespace mailroom::mail {

struct LocalDelivery {
    core::UserInfo user;
    std::string recipient;  // user@domain for Delivered-To and loop detection
    std::string sender;     // "" = null sender
    MailboxLocation mailbox;
    std::time_t arrival = 0;
};

// The envelope sender of a message handed over for local delivery: `given` (mda -f),
// else the message's From_ line, else `fallback` (the caller's login name). "" and
// "<>" are the null sender; anything else must parse as an address (else an error).
core::Result<std::string> envelope_sender(const std::optional<std::string>& given, const Message& message,
                                          std::string_view fallback);

Status deliver_local(const Message& message, const LocalDelivery& delivery,
                     const LocalDeliverySettings& settings, Isolation isolation);

}  // namespace mailroom::mail
