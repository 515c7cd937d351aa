// Where a local user's mail goes (SPEC 4): home_mailbox when set, else the user's file
// (mbox) or folder (Maildir) in mail_spool_dir, with mda's -m and -o overrides; and the
// delivery settings read from mailroom.conf that every mailbox delivery needs.
// Pure: nothing here touches the file system.
#pragma once

#include <chrono>
#include <optional>
#include <string>

#include "core/config.hpp"
#include "core/users.hpp"
#include "delivery/mailbox_writer.hpp"

namespace mailroom::mail {

enum class MailboxFormat { mbox, maildir };

struct LocalDeliverySettings {
    MailboxFormat format = MailboxFormat::mbox;
    std::string mail_spool_dir = "/var/mail";
    std::string home_mailbox;  // relative to the home; trailing '/' = Maildir
    LockSettings locks;
    std::string hostname;
    // How long a delivery child may run (command_timeout): then its group is killed.
    std::chrono::seconds command_timeout{3600};
    std::string recipient_delimiter = "+";

    static LocalDeliverySettings from_config(const core::Config& config);
};

struct MailboxLocation {
    std::string path;
    MailboxFormat format = MailboxFormat::mbox;
};

// Where USER's mail goes; format_override / path_override are mda's -m and -o.
MailboxLocation mailbox_location(const LocalDeliverySettings& settings, const core::UserInfo& user,
                                 std::optional<MailboxFormat> format_override = {},
                                 const std::optional<std::string>& path_override = {});

}  // namespace mailroom::mail
