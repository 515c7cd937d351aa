// SmtpDoor: one SMTP session's door into the queue (the listener of `mta -d`,
// `mta -bs`, `sendmail -bs`). MAIL opens a FrontDoor (its temporary file in the
// spool's tmp/); RCPT checks a local recipient against the aliases and the user
// database (550 5.1.1 at RCPT, SPEC 4) and takes a remote one as the session's
// gatekeeper already let it through; the text streams into the entry; the commit
// makes it durable (fsync of file and folder) before the 250, then wakes the
// daemon. The two syncs go through the loop's DiskSync: other sessions go on
// meanwhile, and commits ending together share one fsync of queue/. Log lines as Postfix's smtpd: "ID: client=name[addr]" once a transaction
// has a recipient, with sasl_username when the client authenticated.
// Must never: answer 250 before FrontDoor::commit returned, or take an address for
// a command or a file (it stays an address: SPEC 5).
#pragma once

#include <memory>
#include <optional>
#include <string>

#include "core/log.hpp"
#include "core/users.hpp"
#include "delivery/alias_db.hpp"
#include "delivery/routing.hpp"
#include "net/disk_sync.hpp"
#include "net/session_server.hpp"
#include "queue/front_door.hpp"
#include "queue/spool.hpp"

namespace mailroom::mta {

struct SmtpDoorSettings {
    mail::RoutingSettings routing;
    std::string aliases_path;  // the aliases source; its database is PATH.cdb
    mail::FrontDoorSettings front;

    static SmtpDoorSettings from_config(const core::Config& config);
};

class SmtpDoor final : public net::CommittingDoor {
public:
    SmtpDoor(const mail::Spool& spool, const SmtpDoorSettings& settings, const core::UserDb& users,
             net::DiskSync& disk, const core::Logger& log, smtp::ClientInfo client)
        : spool_(spool), settings_(settings), users_(users), disk_(disk), log_(log), client_(std::move(client)) {}

    mail::Status open(const smtp::Transaction& transaction) override;
    mail::Status add_recipient(const smtp::Transaction& transaction, const smtp::RcptTo& rcpt) override;
    core::Result<std::string> begin_data(const smtp::Transaction& transaction) override;
    core::Result<void> write(std::string_view text) override;
    void abort() override { front_.reset(); }
    std::optional<mail::Status> flush_domain(std::string_view domain) override;
    boost::asio::awaitable<std::vector<mail::Status>> commit(const smtp::Transaction& transaction) override;

private:
    mail::Status local_recipient(const mail::Route& route);
    boost::asio::awaitable<core::Result<mail::Committed>> commit_durably();

    const mail::Spool& spool_;
    const SmtpDoorSettings& settings_;
    const core::UserDb& users_;
    net::DiskSync& disk_;
    const core::Logger& log_;
    smtp::ClientInfo client_;
    std::optional<mail::FrontDoor> front_;
    std::optional<core::Result<mail::AliasDb>> aliases_;  // opened at the transaction's first local RCPT
    bool client_logged_ = false;
};

// Makes an SmtpDoor for each new session and checks passwords through `checker`
// (the root side's PAM service; none: AUTH is never offered).
class SmtpHandler final : public net::SessionHandler {
public:
    using PasswordChecker = std::function<boost::asio::awaitable<smtp::AuthVerdict>(
        const smtp::ClientInfo&, const std::string&, std::string&)>;
    SmtpHandler(const mail::Spool& spool, const SmtpDoorSettings& settings, const core::UserDb& users,
                net::DiskSync& disk, const core::Logger& log, PasswordChecker checker = {})
        : spool_(spool), settings_(settings), users_(users), disk_(disk), log_(log), checker_(std::move(checker)) {}

    std::unique_ptr<net::CommittingDoor> open_door(const smtp::ClientInfo& client) override {
        return std::make_unique<SmtpDoor>(spool_, settings_, users_, disk_, log_, client);
    }
    boost::asio::awaitable<smtp::AuthVerdict> check_password(const smtp::ClientInfo& client, const std::string& user,
                                                             std::string& password) override;

private:
    const mail::Spool& spool_;
    const SmtpDoorSettings& settings_;
    const core::UserDb& users_;
    net::DiskSync& disk_;
    const core::Logger& log_;
    PasswordChecker checker_;
};

}  // namespace mailroom::mta
