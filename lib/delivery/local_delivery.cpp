#include "delivery/local_delivery.hpp"

#include <fcntl.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <csignal>

#include "core/io.hpp"
#include "core/privilege.hpp"
#include "core/unique_fd.hpp"
#include "mail/address.hpp"
#include "delivery/maildir_writer.hpp"
#include "delivery/mbox_writer.hpp"

namespace mailroom::mail {

namespace {

bool ends_with_slash(const std::string& s) { return !s.empty() && s.back() == '/'; }

std::vector<LockKind> lock_order(const std::vector<std::string>& names) {
    std::vector<LockKind> order;
    for (const auto& name : names) order.push_back(name == "dotlock" ? LockKind::dotlock : LockKind::fcntl);
    return order;
}

// The rights a delivery runs with: the user's own uid, gid and groups. An mbox in
// a group-writable mail spool folder (Debian's /var/mail is root:mail 2775) also
// gets that folder's group, as Debian's set-gid-mail delivery agents do, so that
// the user can create the mailbox and its dotlock there and nothing more.
core::Result<core::Credentials> delivery_credentials(const core::UserInfo& user, const MailboxLocation& mailbox) {
    // Without root there is nothing to switch to, and the group lookup (which may load
    // NSS modules) would be the most expensive step of the delivery.
    if (::geteuid() != 0) return core::Credentials{user.uid, user.gid, {}};
    auto found = core::credentials_for(user);
    if (!found) return found;
    core::Credentials credentials = std::move(*found);
    if (mailbox.format == MailboxFormat::mbox) {
        struct stat folder {};
        if (::stat(core::dir_of(mailbox.path).c_str(), &folder) == 0 && (folder.st_mode & S_IWGRP) &&
            !(folder.st_mode & S_IWOTH) && folder.st_gid != 0) {
            credentials.groups.push_back(folder.st_gid);
        }
    }
    return credentials;
}

Status write_mailbox(const Message& message, const LocalDelivery& delivery, const LocalDeliverySettings& settings) {
    DeliveryInfo info;
    info.sender = delivery.sender;
    info.recipient = delivery.recipient;
    info.path = delivery.mailbox.path;
    info.uid = delivery.user.uid;
    info.gid = delivery.user.gid;
    info.hostname = settings.hostname;
    info.arrival = delivery.arrival;
    info.locks = settings.locks;
    if (delivery.mailbox.format == MailboxFormat::maildir) return MaildirWriter().deliver(message, info);
    return MboxWriter().deliver(message, info);
}

Status switch_and_write(const Message& message, const LocalDelivery& delivery,
                        const LocalDeliverySettings& settings) {
    auto credentials = delivery_credentials(delivery.user, delivery.mailbox);
    if (!credentials) return Status::from_error(credentials.error());
    auto switched = core::PrivilegeSwitch::become(*credentials, core::PrivilegeSwitch::Mode::permanent,
                                                 core::PrivilegeSwitch::RootTarget::allow);
    if (!switched) {
        if (switched.error().errno_value() == EPERM) {
            return Status::perm("5.7.1", "cannot deliver as " + delivery.user.name + ": " + switched.error().message());
        }
        return Status::from_error(switched.error());
    }
    return write_mailbox(message, delivery, settings);
}

// The child reports "X.Y.Z text" on a pipe; the parent rebuilds the Status.
Status parse_child_report(const std::string& report, int wait_status) {
    if (WIFSIGNALED(wait_status)) {
        return Status::temp("4.3.0", "delivery process killed by signal " + std::to_string(WTERMSIG(wait_status)));
    }
    auto space = report.find(' ');
    if (space == std::string::npos || space < 5 || (report[0] != '2' && report[0] != '4' && report[0] != '5')) {
        return Status::temp("4.3.0", "delivery process exited " + std::to_string(WEXITSTATUS(wait_status)) +
                                         " without a report");
    }
    std::string code = report.substr(0, space);
    std::string text = report.substr(space + 1);
    while (!text.empty() && text.back() == '\n') text.pop_back();
    if (code[0] == '2') return Status::ok(text, code);
    if (code[0] == '4') return Status::temp(code, text);
    return Status::perm(code, text);
}

Status deliver_in_child(const Message& message, const LocalDelivery& delivery, const LocalDeliverySettings& settings) {
    int fds[2];
    if (::pipe2(fds, O_CLOEXEC) != 0) return Status::from_errno(errno, "pipe for the delivery process");
    core::UniqueFd read_end(fds[0]), write_end(fds[1]);
    pid_t pid = ::fork();
    if (pid < 0) return Status::from_errno(errno, "fork for the delivery process");
    if (pid == 0) {
        read_end.reset();
        Status status = switch_and_write(message, delivery, settings);
        std::string report = status.code() + " " + status.text() + "\n";
        (void)core::write_all(write_end.get(), report, "delivery report");
        ::_exit(status.to_sysexit());
    }
    write_end.reset();
    std::string report;
    char buf[1024];
    for (;;) {
        auto n = core::read_some(read_end.get(), buf, sizeof buf, "delivery report");
        if (!n || *n == 0 || report.size() > 8192) break;
        report.append(buf, *n);
    }
    int wait_status = 0;
    while (::waitpid(pid, &wait_status, 0) < 0 && errno == EINTR) {
    }
    return parse_child_report(report, wait_status);
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

core::Result<std::string> envelope_sender(const std::optional<std::string>& given, const Message& message,
                                          std::string_view fallback) {
    std::string raw;
    if (given) raw = *given;
    else if (message.from_line_sender()) raw = *message.from_line_sender();
    else return std::string(fallback);
    if (raw.empty() || raw == "<>") return std::string();
    auto address = Address::parse(raw, ParseMode::bare);
    if (!address) return core::unexpected_input("bad sender address '" + raw + "' (" + address.error().message() + ")");
    return address->str();
}

Status deliver_local(const Message& message, const LocalDelivery& delivery, const LocalDeliverySettings& settings,
                     Isolation isolation) {
    if (message.has_delivered_to(delivery.recipient)) {
        return Status::perm("5.4.6", "mail forwarding loop for " + delivery.recipient);
    }
    if (isolation == Isolation::child_process && ::geteuid() == 0) {
        return deliver_in_child(message, delivery, settings);
    }
    return switch_and_write(message, delivery, settings);
}

}  // namespace mailroom::mail
