// LmtpDoor: one lmtpd session's door. The DeliveryDoor decides recipients and holds
// the text; at the end of the data every recipient's mailbox write goes to its
// user's delivery agent through the AgentWriter, all at once, and each recipient
// gets its own outcome (RFC 2033: one reply per recipient). A log line per
// recipient, in the layout of mda's and the runner's (`relay=local`).
#pragma once

#include <memory>

#include "core/log.hpp"
#include "net/agent_writer.hpp"
#include "net/session_server.hpp"
#include "smtp/delivery_door.hpp"

namespace mailroom::lmtp {

class LmtpDoor final : public net::CommittingDoor {
public:
    LmtpDoor(const smtp::DeliveryDoorSettings& settings, const core::UserDb& users, const core::Clock& clock,
             net::AgentWriter& writer, const core::Logger& log, smtp::ClientInfo client)
        : door_(settings, users, clock), writer_(writer), log_(log), clock_(clock), client_(std::move(client)) {}

    mail::Status open(const smtp::Transaction& t) override;
    mail::Status add_recipient(const smtp::Transaction& t, const smtp::RcptTo& r) override { return door_.add_recipient(t, r); }
    core::Result<std::string> begin_data(const smtp::Transaction& t) override { return door_.begin_data(t); }
    core::Result<void> write(std::string_view text) override { return door_.write(text); }
    void abort() override { door_.abort(); }
    boost::asio::awaitable<std::vector<mail::Status>> commit(const smtp::Transaction& transaction) override;

private:
    smtp::DeliveryDoor door_;
    net::AgentWriter& writer_;
    const core::Logger& log_;
    const core::Clock& clock_;
    smtp::ClientInfo client_;
    uint64_t opened_micros_ = 0;
};

// Makes an LmtpDoor for each new session.
class LmtpHandler final : public net::SessionHandler {
public:
    LmtpHandler(const smtp::DeliveryDoorSettings& settings, const core::UserDb& users, const core::Clock& clock,
                net::AgentWriter& writer, const core::Logger& log)
        : settings_(settings), users_(users), clock_(clock), writer_(writer), log_(log) {}
    std::unique_ptr<net::CommittingDoor> open_door(const smtp::ClientInfo& client) override {
        return std::make_unique<LmtpDoor>(settings_, users_, clock_, writer_, log_, client);
    }

private:
    const smtp::DeliveryDoorSettings& settings_;
    const core::UserDb& users_;
    const core::Clock& clock_;
    net::AgentWriter& writer_;
    const core::Logger& log_;
};

}  // namespace mailroom::lmtp
