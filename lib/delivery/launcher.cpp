#include "delivery/launcher.hpp"

#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include <fmt/format.h>

#include "core/io.hpp"
#include "core/privilege.hpp"
#include "core/subprocess.hpp"
#include "delivery/command_output.hpp"
#include "delivery/maildir_writer.hpp"
#include "delivery/mbox_writer.hpp"
#include "mail/address.hpp"

namespace mailroom::mail {

namespace {

using core::PrivilegeSwitch;
using Clock = std::chrono::steady_clock;

// The rights a mailbox delivery runs with: the user's own uid, gid and groups. An mbox
// in a group-writable mail spool folder (Debian's /var/mail is root:mail 2775) also
// gets that folder's group, as Debian's set-gid-mail delivery agents do, so that the
// user can create the mailbox and its dotlock there and nothing more.
core::Result<core::Credentials> mailbox_credentials(const core::UserInfo& user, const MailboxLocation& mailbox) {
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

Status switch_failure(const Target& target, const core::Error& error) {
    if (error.errno_value() == EPERM)
        return Status::perm("5.7.1", "cannot deliver as " + target.user.name + ": " + error.message());
    return Status::from_error(error);
}

DeliveryInfo delivery_info(const Target& target, const DeliveryContext& context, const core::Credentials& as) {
    DeliveryInfo info;
    info.sender = context.sender;
    info.recipient = target.address;
    info.uid = as.uid;
    info.gid = as.gid;
    info.hostname = context.hostname;
    info.arrival = context.arrival;
    info.locks = context.locks;
    return info;
}

// The writer's work, already as the user: the mailbox or the file.
Status write_as_user(const Target& target, const Message& message, const DeliveryContext& context,
                     const core::Credentials& as) {
    DeliveryInfo info = delivery_info(target, context, as);
    if (const auto* file = std::get_if<FileTarget>(&target.what)) {
        info.path = file->path;
        return MboxWriter().deliver(message, info);
    }
    const auto& location = std::get<MailboxTarget>(target.what).location;
    // The mailbox belongs to its user, whatever groups the delivery runs with.
    info.uid = target.user.uid;
    info.gid = target.user.gid;
    info.path = location.path;
    if (location.format == MailboxFormat::maildir) return MaildirWriter().deliver(message, info);
    return MboxWriter().deliver(message, info);
}

// The writer child reports "X.Y.Z text" on its output; anything else is its death.
Status writer_report(const core::SubprocessResult& result, std::chrono::seconds timeout) {
    if (result.timed_out)
        return Status::temp("4.3.0", fmt::format("delivery process timed out after {} s", timeout.count()));
    if (result.signal != 0)
        return Status::temp("4.3.0", "delivery process killed by signal " + std::to_string(result.signal));
    if (auto reported = status_from_output(result.output)) return *reported;
    return Status::temp("4.3.0", "delivery process exited " + std::to_string(result.exit_code) + " without a report");
}

Status write_in_child(const Target& target, const Message& message, const DeliveryContext& context,
                      const core::Credentials& as, PrivilegeSwitch::RootTarget root) {
    core::SubprocessOptions options;
    options.credentials = as;
    options.root = root;
    if (message.content_fd() >= 0) options.keep_fds.push_back(message.content_fd());
    auto child = core::Subprocess::start(
        [&] {
            Status status = write_as_user(target, message, context, as);
            std::string report = status.code() + " " + status.text() + "\n";
            (void)core::write_all(STDOUT_FILENO, report, "delivery report");
            return status.to_sysexit();
        },
        options);
    if (!child) return switch_failure(target, child.error());
    auto result = child->run({}, Clock::now() + context.command_timeout);
    if (!result) return Status::from_error(result.error());
    return writer_report(*result, context.command_timeout);
}

Status write_in_process(const Target& target, const Message& message, const DeliveryContext& context,
                        const core::Credentials& as, PrivilegeSwitch::RootTarget root) {
    auto switched = PrivilegeSwitch::become(as, PrivilegeSwitch::Mode::permanent, root);
    if (!switched) return switch_failure(target, switched.error());
    return write_as_user(target, message, context, as);
}

Status write(const Target& target, const Message& message, const DeliveryContext& context,
             const core::Credentials& as, PrivilegeSwitch::RootTarget root) {
    // Without root there is no one else to become: the writer runs here, as today's
    // non-root mda and runner do, without the cost of a fork.
    if (context.isolation == Isolation::child_process && ::geteuid() == 0)
        return write_in_child(target, message, context, as, root);
    return write_in_process(target, message, context, as, root);
}

DeliveryOutcome run_command(const Target& target, const Message& message, const DeliveryContext& context) {
    const std::string& command = std::get<CommandTarget>(target.what).command;
    core::SubprocessOptions options;
    options.credentials = *target.credentials;
    options.working_directory = target.user.home.empty() ? "/" : target.user.home;
    options.environment = command_environment(target, context);
    auto child = core::Subprocess::exec({"/bin/sh", "-c", command}, options);
    if (!child) return {switch_failure(target, child.error()), ""};

    DeliveryInfo info = delivery_info(target, context, *target.credentials);
    const std::string headers = delivery_headers(info);
    size_t headers_given = 0;
    auto reader = message.reader(OwnedFields::return_path);  // SPEC 4: the real Return-Path only
    core::Subprocess::Input input = [&](char* buf, size_t size) -> core::Result<size_t> {
        if (headers_given < headers.size()) {
            size_t n = std::min(size, headers.size() - headers_given);
            std::memcpy(buf, headers.data() + headers_given, n);
            headers_given += n;
            return n;
        }
        return reader.read(buf, size);
    };
    auto result = child->run(input, Clock::now() + context.command_timeout);
    if (!result) return {Status::from_error(result.error()), ""};
    return {command_status(*result, command, context.command_timeout), std::move(result->output)};
}

// Files and commands are named by aliases and .forward: never root's.
std::optional<Status> refuse_runner(const Target& target, std::string_view what) {
    if (!target.credentials)
        return Status::temp("4.3.0", fmt::format("no user to {} as ({})", what, target.provenance));
    if (target.credentials->uid == 0 || target.user.uid == 0)
        return Status::perm("5.7.1", fmt::format("refusing to {} as root ({})", what, target.provenance));
    return std::nullopt;
}

}  // namespace

DeliveryContext DeliveryContext::from_settings(const LocalDeliverySettings& settings) {
    DeliveryContext context;
    context.hostname = settings.hostname;
    context.locks = settings.locks;
    context.command_timeout = settings.command_timeout;
    context.recipient_delimiter = settings.recipient_delimiter;
    return context;
}

std::vector<std::string> command_environment(const Target& target, const DeliveryContext& context) {
    const std::string& address = target.address;
    auto at = address.rfind('@');
    std::string local = address.substr(0, at);
    std::string domain = at == std::string::npos ? std::string() : address.substr(at + 1);
    auto parts = split_extension(local, context.recipient_delimiter);
    return {
        "SENDER=" + context.sender,
        "RECIPIENT=" + address,
        "ORIGINAL_RECIPIENT=" + (context.original_recipient.empty() ? address : context.original_recipient),
        "USER=" + target.user.name,
        "HOME=" + target.user.home,
        "LOCAL=" + local,
        "EXTENSION=" + parts.extension,
        "DOMAIN=" + domain,
        "SHELL=" + (target.user.shell.empty() ? std::string("/bin/sh") : target.user.shell),
        "PATH=/usr/bin:/bin",
    };
}

DeliveryOutcome deliver(const Target& target, const Message& message, const DeliveryContext& context) {
    if (target.kind() == Target::Kind::remote) return {Status::temp("4.3.5", "remote delivery not configured"), ""};
    if (message.has_delivered_to(target.address))
        return {Status::perm("5.4.6", "mail forwarding loop for " + target.address), ""};

    switch (target.kind()) {
        case Target::Kind::mailbox: {
            const auto& location = std::get<MailboxTarget>(target.what).location;
            auto as = target.credentials ? core::Result<core::Credentials>(*target.credentials)
                                         : mailbox_credentials(target.user, location);
            if (!as) return {Status::from_error(as.error()), ""};
            // Root's own mailbox is written as root (docs/security.md).
            return {write(target, message, context, *as, PrivilegeSwitch::RootTarget::allow), ""};
        }
        case Target::Kind::file: {
            if (auto refused = refuse_runner(target, "write a file")) return {*refused, ""};
            // A relative name would land wherever the delivering process happens to be.
            const std::string& path = std::get<FileTarget>(target.what).path;
            if (path.empty() || path[0] != '/')
                return {Status::perm("5.3.5", fmt::format("file target \"{}\" is not an absolute path ({})", path,
                                                          target.provenance)),
                        ""};
            return {write(target, message, context, *target.credentials, PrivilegeSwitch::RootTarget::refuse), ""};
        }
        case Target::Kind::command:
            if (auto refused = refuse_runner(target, "run a command")) return {*refused, ""};
            return run_command(target, message, context);
        case Target::Kind::remote: break;
    }
    return {Status::temp("4.3.5", "remote delivery not configured"), ""};
}

}  // namespace mailroom::mail
