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
#include "delivery/delivery_agents.hpp"
#include "delivery/write_job.hpp"
#include "mail/address.hpp"

namespace mailroom::mail {

namespace {

using core::PrivilegeSwitch;
using Clock = std::chrono::steady_clock;

Status switch_failure(const std::string& user, const core::Error& error) {
    if (error.errno_value() == EPERM)
        return Status::perm("5.7.1", "cannot deliver as " + user + ": " + error.message());
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

// What the writer does for a mailbox or file target, as `as`.
WriteJob write_job(const Target& target, const DeliveryContext& context, const core::Credentials& as) {
    WriteJob job;
    job.info = delivery_info(target, context, as);
    if (const auto* file = std::get_if<FileTarget>(&target.what)) {
        job.info.path = file->path;
        return job;
    }
    const auto& location = std::get<MailboxTarget>(target.what).location;
    // The mailbox belongs to its user, whatever groups the delivery runs with.
    job.info.uid = target.user.uid;
    job.info.gid = target.user.gid;
    job.info.path = location.path;
    job.format = location.format;
    return job;
}

Status write_in_child(const WriteJob& job, const Message& message, const DeliveryContext& context,
                      const core::Credentials& as, PrivilegeSwitch::RootTarget root, const std::string& user) {
    core::SubprocessOptions options;
    options.credentials = as;
    options.root = root;
    if (message.content_fd() >= 0) options.keep_fds.push_back(message.content_fd());
    auto child = core::Subprocess::start(
        [&] {
            Status status = run_write_job(job, message);
            (void)core::write_all(STDOUT_FILENO, writer_report_line(status), "delivery report");
            return status.to_sysexit();
        },
        options);
    if (!child) return switch_failure(user, child.error());
    auto result = child->run({}, Clock::now() + context.command_timeout);
    if (!result) return Status::from_error(result.error());
    if (auto reported = status_from_output(result->output)) return *reported;
    return writer_death(*result, context.command_timeout);
}

Status write_in_process(const WriteJob& job, const Message& message, const core::Credentials& as,
                        PrivilegeSwitch::RootTarget root, const std::string& user) {
    auto switched = PrivilegeSwitch::become(as, PrivilegeSwitch::Mode::permanent, root);
    if (!switched) return switch_failure(user, switched.error());
    return run_write_job(job, message);
}

BegunDelivery begin_write(const Target& target, const Message& message, const DeliveryContext& context,
                          const core::Credentials& as, PrivilegeSwitch::RootTarget root) {
    WriteJob job = write_job(target, context, as);
    // Without root there is no one else to become: the writer runs here, as today's
    // non-root mda and runner do, without the cost of a fork.
    if (context.isolation == Isolation::in_process || ::geteuid() != 0)
        return BegunDelivery::finished({write_in_process(job, message, as, root, target.user.name), ""});
    if (context.agents && DeliveryAgents::can_send(message)) {
        auto ticket = context.agents->send(job, message, {as, root, target.user.name},
                                           Clock::now() + context.command_timeout, context.command_timeout);
        return BegunDelivery{std::nullopt, context.agents, ticket};
    }
    return BegunDelivery::finished({write_in_child(job, message, context, as, root, target.user.name), ""});
}

DeliveryOutcome run_command(const Target& target, const Message& message, const DeliveryContext& context) {
    const std::string& command = std::get<CommandTarget>(target.what).command;
    core::SubprocessOptions options;
    options.credentials = *target.credentials;
    options.working_directory = target.user.home.empty() ? "/" : target.user.home;
    options.environment = command_environment(target, context);
    auto child = core::Subprocess::exec({"/bin/sh", "-c", command}, options);
    if (!child) return {switch_failure(target.user.name, child.error()), ""};

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

BegunDelivery begin_delivery(const Target& target, const Message& message, const DeliveryContext& context) {
    using Begun = BegunDelivery;
    if (target.kind() == Target::Kind::remote) return Begun::finished({Status::temp("4.3.5", "remote delivery not configured"), ""});
    if (message.has_delivered_to(target.address))
        return Begun::finished({Status::perm("5.4.6", "mail forwarding loop for " + target.address), ""});

    switch (target.kind()) {
        case Target::Kind::mailbox: {
            const auto& location = std::get<MailboxTarget>(target.what).location;
            auto as = target.credentials ? core::Result<core::Credentials>(*target.credentials)
                                         : mailbox_credentials(target.user, location);
            if (!as) return Begun::finished({Status::from_error(as.error()), ""});
            // Root's own mailbox is written as root (docs/security.md).
            return begin_write(target, message, context, *as, PrivilegeSwitch::RootTarget::allow);
        }
        case Target::Kind::file: {
            if (auto refused = refuse_runner(target, "write a file")) return Begun::finished({*refused, ""});
            // A relative name would land wherever the delivering process happens to be.
            const std::string& path = std::get<FileTarget>(target.what).path;
            if (path.empty() || path[0] != '/')
                return Begun::finished({Status::perm("5.3.5", fmt::format("file target \"{}\" is not an absolute path ({})",
                                                                          path, target.provenance)),
                                        ""});
            return begin_write(target, message, context, *target.credentials, PrivilegeSwitch::RootTarget::refuse);
        }
        case Target::Kind::command:
            if (auto refused = refuse_runner(target, "run a command")) return Begun::finished({*refused, ""});
            return Begun::finished(run_command(target, message, context));
        case Target::Kind::remote: break;
    }
    return Begun::finished({Status::temp("4.3.5", "remote delivery not configured"), ""});
}

DeliveryOutcome finish_delivery(BegunDelivery&& begun) {
    if (begun.done) return std::move(*begun.done);
    return {begun.agents->wait(begun.ticket), ""};
}

DeliveryOutcome deliver(const Target& target, const Message& message, const DeliveryContext& context) {
    return finish_delivery(begin_delivery(target, message, context));
}

}  // namespace mailroom::mail
