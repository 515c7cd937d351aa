// DeliveryDoor: where lmtpd's transactions go (SPEC 1 "lmtpd", RFC 2033). A
// recipient is a local user (user@domain with domain in mydestination, or a bare
// user; user+ext with recipient_delimiter), checked at RCPT: unknown 550 5.1.1, a
// failed lookup 451 4.3.0 for that recipient alone. No alias or .forward expansion:
// LMTP delivers to mailboxes, as mda does. The text is held once (HeldMessage);
// after the data, plan() gives each recipient's mailbox write, ready for that
// user's delivery agent, or its outcome when no write is to be made (a mail loop).
// Must never: look at anything but the user database and the configuration before
// the data has ended, or plan a write for a recipient it did not accept.
#pragma once

#include <optional>
#include <string>
#include <vector>

#include "core/clock.hpp"
#include "core/config.hpp"
#include "core/users.hpp"
#include "delivery/delivery_agent.hpp"
#include "delivery/mailbox_location.hpp"
#include "delivery/routing.hpp"
#include "delivery/write_job.hpp"
#include "queue/queue_id.hpp"
#include "smtp/held_message.hpp"
#include "smtp/session.hpp"

namespace mailroom::smtp {

struct DeliveryDoorSettings {
    mail::RoutingSettings routing;
    mail::LocalDeliverySettings local;
    std::string tmp_dir = "/tmp";  // where a large message spills (HeldMessage)

    static DeliveryDoorSettings from_config(const core::Config& config);
};

// One recipient's mailbox write. `as` names the user (and its uid and gid); the
// side that starts agents derives the rights and the mailbox again itself.
struct PlannedWrite {
    size_t recipient = 0;  // index among the accepted recipients
    mail::AgentIdentity as;
    mail::WriteJob job;
};

struct PlannedDelivery {
    int content_fd = -1;  // the held text, valid until the door's next transaction
    uint64_t size = 0;
    // Per accepted recipient: its outcome when it was decided without a write.
    std::vector<std::optional<mail::Status>> outcomes;
    std::vector<PlannedWrite> writes;
};

class DeliveryDoor final : public Door {
public:
    DeliveryDoor(const DeliveryDoorSettings& settings, const core::UserDb& users, const core::Clock& clock);

    mail::Status open(const Transaction& transaction) override;
    mail::Status add_recipient(const Transaction& transaction, const RcptTo& rcpt) override;
    core::Result<std::string> begin_data(const Transaction& transaction) override;
    core::Result<void> write(std::string_view text) override;
    void abort() override;

    // After the session's Next::commit.
    core::Result<PlannedDelivery> plan(const Transaction& transaction);
    // Names the transaction in log lines (the Received: id), "" before the data.
    const std::string& id() const { return id_; }

private:
    struct Accepted {
        mail::Route route;
        core::UserInfo user;
    };

    const DeliveryDoorSettings& settings_;
    const core::UserDb& users_;
    const core::Clock& clock_;
    mail::QueueIdGenerator ids_;
    std::vector<Accepted> accepted_;
    std::optional<HeldMessage> held_;
    std::string id_;
};

}  // namespace mailroom::smtp
