#include "smtp/delivery_door.hpp"

#include <fcntl.h>
#include <unistd.h>

#include <cstdlib>

#include "mail/message.hpp"

namespace mailroom::smtp {

DeliveryDoorSettings DeliveryDoorSettings::from_config(const core::Config& config) {
    DeliveryDoorSettings settings;
    settings.routing = mail::RoutingSettings::from_config(config);
    settings.local = mail::LocalDeliverySettings::from_config(config);
    // TMPDIR when this process may write there (lmtpd's sessions run unprivileged).
    if (const char* tmp = std::getenv("TMPDIR"); tmp && *tmp == '/' && ::access(tmp, W_OK | X_OK) == 0)
        settings.tmp_dir = tmp;
    return settings;
}

DeliveryDoor::DeliveryDoor(const DeliveryDoorSettings& settings, const core::UserDb& users, const core::Clock& clock)
    : settings_(settings), users_(users), clock_(clock) {}

mail::Status DeliveryDoor::open(const Transaction&) {
    abort();
    return mail::Status::ok("Ok", "2.1.0");
}

mail::Status DeliveryDoor::add_recipient(const Transaction&, const RcptTo& rcpt) {
    auto route = mail::route_address(rcpt.recipient.str(), settings_.routing);
    if (route.kind == mail::Route::Kind::invalid) return route.invalid;
    if (route.kind == mail::Route::Kind::remote)
        return mail::Status::perm("5.1.2", rcpt.recipient.path() + ": domain is not delivered here");
    auto user = users_.find(route.user);
    if (!user) return mail::Status::temp("4.3.0", "cannot look up user " + route.user + ": " + user.error().message());
    if (!*user) return mail::Status::perm("5.1.1", rcpt.recipient.path() + ": no such user here");
    accepted_.push_back({std::move(route), std::move(**user)});
    return mail::Status::ok("Ok", "2.1.5");
}

core::Result<std::string> DeliveryDoor::begin_data(const Transaction&) {
    auto held = HeldMessage::create(settings_.tmp_dir);
    if (!held) return core::unexpected(held.error());
    held_.emplace(std::move(*held));
    id_ = ids_.next(clock_.now_micros(), ::getpid());
    return id_;
}

core::Result<void> DeliveryDoor::write(std::string_view text) {
    if (!held_) return core::unexpected_errno("write a message before its data began", EINVAL);
    return held_->write(text);
}

void DeliveryDoor::abort() {
    accepted_.clear();
    held_.reset();
    id_.clear();
}

core::Result<PlannedDelivery> DeliveryDoor::plan(const Transaction& transaction) {
    if (!held_) return core::unexpected_errno("deliver a message that was never received", EINVAL);
    PlannedDelivery plan;
    plan.content_fd = held_->fd();
    plan.size = held_->size();
    plan.outcomes.resize(accepted_.size());
    int copy = ::fcntl(held_->fd(), F_DUPFD_CLOEXEC, 3);
    if (copy < 0) return core::unexpected_errno("duplicate a message descriptor");
    // Read back only for its Delivered-To fields, the mail-loop check.
    auto message = mail::Message::from_stored(core::UniqueFd(copy), 0, held_->size());
    if (!message) return core::unexpected(message.error());
    const std::time_t now = clock_.now();
    for (size_t i = 0; i < accepted_.size(); ++i) {
        const auto& [route, user] = accepted_[i];
        if (message->has_delivered_to(route.address)) {
            plan.outcomes[i] = mail::Status::perm("5.4.6", "mail forwarding loop for " + route.address);
            continue;
        }
        PlannedWrite write;
        write.recipient = i;
        write.as.name = user.name;
        write.as.credentials = core::Credentials{user.uid, user.gid, {}};
        auto location = mail::mailbox_location(settings_.local, user);
        write.as.only = location;
        write.job.format = location.format;
        auto& info = write.job.info;
        info.sender = transaction.mail.sender.str();
        info.recipient = route.address;
        info.path = location.path;
        info.uid = user.uid;
        info.gid = user.gid;
        info.hostname = settings_.local.hostname;
        info.arrival = now;
        info.locks = settings_.local.locks;
        plan.writes.push_back(std::move(write));
    }
    return plan;
}

}  // namespace mailroom::smtp
