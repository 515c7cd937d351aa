#include "delivery/mailbox_location.hpp"

namespace mailroom::mail {

namespace {

bool ends_with_slash(const std::string& s) { return !s.empty() && s.back() == '/'; }

std::vector<LockKind> lock_order(const std::vector<std::string>& names) {
    std::vector<LockKind> order;
    for (const auto& name : names) order.push_back(name == "dotlock" ? LockKind::dotlock : LockKind::fcntl);
    return order;
}

}  // namespace

LocalDeliverySettings LocalDeliverySettings::from_config(const core::Config& config) {
    LocalDeliverySettings settings;
    settings.format = config.str("mailbox_format") == "maildir" ? MailboxFormat::maildir : MailboxFormat::mbox;
    settings.mail_spool_dir = config.str("mail_spool_dir");
    settings.home_mailbox = config.str("home_mailbox");
    settings.locks.order = lock_order(config.list("mailbox_lock"));
    settings.locks.timeout = std::chrono::duration_cast<std::chrono::milliseconds>(config.duration("lock_timeout"));
    settings.hostname = config.str("myhostname");
    settings.command_timeout = std::chrono::duration_cast<std::chrono::seconds>(config.duration("command_timeout"));
    settings.recipient_delimiter = config.str("recipient_delimiter");
    return settings;
}

MailboxLocation mailbox_location(const LocalDeliverySettings& settings, const core::UserInfo& user,
                                 std::optional<MailboxFormat> format_override,
                                 const std::optional<std::string>& path_override) {
    MailboxLocation location;
    if (!settings.home_mailbox.empty()) {
        location.path = user.home + "/" + settings.home_mailbox;
        location.format = ends_with_slash(settings.home_mailbox) ? MailboxFormat::maildir : MailboxFormat::mbox;
    } else {
        location.path = settings.mail_spool_dir + "/" + user.name;
        location.format = settings.format;
    }
    if (format_override) location.format = *format_override;
    if (path_override) {
        location.path = *path_override;
        if (!format_override && ends_with_slash(*path_override)) location.format = MailboxFormat::maildir;
    }
    while (location.path.size() > 1 && ends_with_slash(location.path)) location.path.pop_back();
    return location;
}

}  // namespace mailroom::mail
