#include "queue/front_door.hpp"

#include <sys/time.h>

#include <algorithm>
#include <cerrno>

#include "mail/address.hpp"

namespace mailroom::mail {

namespace {

std::string qualify(const Address& address, std::string_view default_domain) {
    if (!address.has_domain() && !address.is_null() && !default_domain.empty()) {
        return address.str() + "@" + std::string(default_domain);
    }
    return address.str();
}

// NOTIFY as RFC 3461 allows it: none, NEVER alone, or a set of SUCCESS, FAILURE, DELAY.
bool valid_notify(unsigned notify) {
    constexpr unsigned any = RecipientDsn::notify_success | RecipientDsn::notify_failure | RecipientDsn::notify_delay;
    return notify == 0 || notify == RecipientDsn::notify_never || (notify & ~any) == 0;
}

core::Unexpected closed_error(std::string_view id) {
    return core::unexpected_errno("queue entry " + std::string(id) + " already committed", EINVAL);
}

}  // namespace

std::string qualified_address(std::string_view given, std::string_view default_domain) {
    auto address = Address::parse(given, ParseMode::bare);
    if (!address) return std::string(given);
    return qualify(*address, default_domain);
}

core::Result<FrontDoor> FrontDoor::open(const Spool& spool, FrontDoorSettings settings) {
    auto writer = QueueWriter::begin(spool);
    if (!writer) return core::unexpected(writer.error());
    uint64_t arrival = settings.arrival_micros;
    if (arrival == 0) {
        struct timeval now {};
        ::gettimeofday(&now, nullptr);
        arrival = static_cast<uint64_t>(now.tv_sec) * 1'000'000 + static_cast<uint64_t>(now.tv_usec);
    }
    FrontDoor door(std::move(*writer), std::move(settings));
    door.envelope_.arrival_micros = arrival;
    door.envelope_.submitter_uid = door.settings_.submitter_uid;
    return door;
}

Status FrontDoor::set_sender(std::string_view address, DsnReturn ret, std::string envid) {
    auto sender = Address::parse(address, ParseMode::bare,
                                 ParseFlags{.allow_null = true, .allow_utf8 = settings_.allow_utf8});
    if (!sender) return bad_address_status(sender.error(), AddressRole::sender);
    if (!envid.empty() && !is_valid_envid(envid)) {
        return Status::perm("5.5.4", "bad ENVID parameter (xtext of at most 100 octets)");
    }
    envelope_.sender = qualify(*sender, settings_.default_domain);
    envelope_.ret = ret;
    envelope_.envid = std::move(envid);
    return Status::ok("sender ok", "2.1.0");
}

Status FrontDoor::add_recipient(std::string_view address, RecipientDsn dsn) {
    auto recipient = Address::parse(address, ParseMode::bare, ParseFlags{.allow_utf8 = settings_.allow_utf8});
    if (!recipient) return bad_address_status(recipient.error(), AddressRole::recipient);
    if (recipient->is_null()) {
        return bad_address_status(core::input_error("the null path is not a recipient"), AddressRole::recipient);
    }
    if (!dsn.orcpt.empty() && !is_valid_orcpt(dsn.orcpt)) {
        return Status::perm("5.5.4", "bad ORCPT parameter (addr-type;xtext of at most 500 octets)");
    }
    if (!valid_notify(dsn.notify)) return Status::perm("5.5.4", "bad NOTIFY parameter");
    std::string canonical = qualify(*recipient, settings_.default_domain);
    auto& list = envelope_.recipients;
    if (std::find(list.begin(), list.end(), canonical) != list.end()) return Status::ok("recipient ok", "2.1.5");
    if (settings_.max_recipients != 0 && list.size() >= settings_.max_recipients) {
        return Status::temp("4.5.3", "too many recipients");
    }
    list.push_back(std::move(canonical));
    envelope_.recipient_dsn.push_back(std::move(dsn));
    return Status::ok("recipient ok", "2.1.5");
}

void FrontDoor::set_client(ClientFacts client) {
    envelope_.client_name = std::move(client.name);
    envelope_.client_address = std::move(client.address);
    envelope_.helo = std::move(client.helo);
    envelope_.protocol = std::move(client.protocol);
    envelope_.auth = std::move(client.auth);
    envelope_.tls_protocol = std::move(client.tls_protocol);
    envelope_.tls_cipher = std::move(client.tls_cipher);
}

core::Result<void> FrontDoor::write(std::string_view bytes) {
    if (committed_) return closed_error(id());
    if (error_) return core::unexpected(*error_);
    if (settings_.size_limit != 0 && bytes.size() > settings_.size_limit - writer_.size()) {
        error_ = core::errno_error("message larger than message_size_limit (" + std::to_string(settings_.size_limit) +
                                       " bytes)",
                                   EMSGSIZE);
        return core::unexpected(*error_);
    }
    auto written = writer_.write(bytes);
    if (!written) error_ = written.error();
    return written;
}

core::Result<void> FrontDoor::check_commit() {
    if (committed_) return closed_error(id());
    if (error_) return core::unexpected(*error_);
    if (envelope_.recipients.empty()) return core::unexpected_errno("no recipient addresses found", EDESTADDRREQ);
    // Drop DSN facts that say nothing: an envelope without any writes no DSN fields.
    bool any_dsn = std::any_of(envelope_.recipient_dsn.begin(), envelope_.recipient_dsn.end(),
                               [](const RecipientDsn& dsn) { return !dsn.empty(); });
    if (!any_dsn) envelope_.recipient_dsn.clear();
    return {};
}

core::Result<void> FrontDoor::failed_step(core::Result<void> step) {
    // The temporary file's state is unknown now: never try again with it.
    if (!step) error_ = step.error();
    return step;
}

core::Result<Committed> FrontDoor::commit() {
    if (auto checked = check_commit(); !checked) return core::unexpected(checked.error());
    if (auto r = failed_step(writer_.commit(envelope_)); !r) return core::unexpected(r.error());
    committed_ = true;
    return Committed{writer_.id(), writer_.size(), envelope_.recipients.size()};
}

core::Result<int> FrontDoor::stage_commit() {
    if (auto checked = check_commit(); !checked) return core::unexpected(checked.error());
    if (auto r = failed_step(writer_.stage(envelope_)); !r) return core::unexpected(r.error());
    return writer_.data_fd();
}

core::Result<int> FrontDoor::publish(core::Result<void> data_synced) {
    if (committed_) return closed_error(id());
    if (error_) return core::unexpected(*error_);
    if (auto r = failed_step(writer_.publish(std::move(data_synced))); !r) return core::unexpected(r.error());
    return writer_.folder_fd();
}

core::Result<Committed> FrontDoor::settle(core::Result<void> folder_synced) {
    if (committed_) return closed_error(id());
    if (error_) return core::unexpected(*error_);
    if (auto r = failed_step(writer_.settle(std::move(folder_synced))); !r) return core::unexpected(r.error());
    committed_ = true;
    return Committed{writer_.id(), writer_.size(), envelope_.recipients.size()};
}

Status FrontDoor::status_of(const core::Error& error) {
    switch (error.errno_value()) {
        case EMSGSIZE: return Status::perm("5.3.4", "message too big: " + error.message());
        case EDESTADDRREQ: return Status::perm("5.5.1", "no valid recipients");
        case 0: return Status::perm("5.6.0", error.message());
        default: return Status::from_error(error);
    }
}

}  // namespace mailroom::mail
