// Local delivery: one Message into one local user's mailbox. This is the single
// place where a mailbox delivery crosses to the user's uid, shared by mda and,
// later, the queue runner and lmtpd.
//
// It decides the mailbox (home_mailbox, mail_spool_dir, -m / -o overrides), checks
// for a mail loop (Delivered-To for the same recipient: 5.4.6), switches to the
// user's credentials (a forked child when the caller must keep root, or the
// process itself when it is the last thing it does) and runs the mbox or Maildir
// writer. Never runs a writer as another user than the mailbox owner.
#pragma once

#include <optional>
#include <string>

#include "core/config.hpp"
#include "core/users.hpp"
#include "delivery/mailbox_writer.hpp"
#include "mail/message.hpp"
#include "mail/status.hpp"

namespace mailroom::mail {

enum class MailboxFormat { mbox, maildir };

struct LocalDeliverySettings {
    MailboxFormat format = MailboxFormat::mbox;
    std::string mail_spool_dir = "/var/mail";
    std::string home_mailbox;  // relative to the home; trailing '/' = Maildir
    LockSettings locks;
    std::string hostname;

    static LocalDeliverySettings from_config(const core::Config& config);
};

struct MailboxLocation {
    std::string path;
    MailboxFormat format;
};

// Where USER's mail goes; format_override / path_override are mda's -m and -o.
MailboxLocation mailbox_location(const LocalDeliverySettings& settings, const core::UserInfo& user,
                                 std::optional<MailboxFormat> format_override = {},
                                 const std::optional<std::string>& path_override = {});

struct LocalDelivery {
    core::UserInfo user;
    std::string recipient;  // user@domain for Delivered-To and loop detection
    std::string sender;     // "" = null sender
    MailboxLocation mailbox;
    std::time_t arrival = 0;
};

enum class Isolation {
    // Switch the whole process to the user for good: its last act (mda with one user).
    in_process,
    // Fork a child that switches and delivers; the caller keeps its rights.
    child_process,
};

// The envelope sender of a message handed over for local delivery: `given` (mda -f),
// else the message's From_ line, else `fallback` (the caller's login name). "" and
// "<>" are the null sender; anything else must parse as an address (else an error).
core::Result<std::string> envelope_sender(const std::optional<std::string>& given, const Message& message,
                                          std::string_view fallback);

Status deliver_local(const Message& message, const LocalDelivery& delivery,
                     const LocalDeliverySettings& settings, Isolation isolation);

}  // namespace mailroom::mail
