#include "smtp_door.hpp"

#include <string.h>
#include <unistd.h>

#include <fmt/format.h>

#include "delivery/alias_db.hpp"

namespace mailroom::mta {

SmtpDoorSettings SmtpDoorSettings::from_config(const core::Config& config) {
    SmtpDoorSettings settings;
    settings.routing = mail::RoutingSettings::from_config(config);
    settings.aliases_path = config.str("aliases");
    settings.front.default_domain = config.str("myhostname");
    settings.front.max_recipients = static_cast<size_t>(config.number("max_recipients"));
    // The session's decoder holds the text to message_size_limit (and SIZE says so);
    // the queue's own limit is a backstop that must leave room for the Received:
    // header the session prepends.
    if (uint64_t limit = config.size("message_size_limit")) settings.front.size_limit = limit + 64 * 1024;
    settings.front.submitter_uid = ::getuid();
    return settings;
}

mail::Status SmtpDoor::open(const smtp::Transaction& transaction) {
    front_.reset();
    aliases_.reset();
    client_logged_ = false;
    mail::FrontDoorSettings front = settings_.front;
    front.allow_utf8 = transaction.mail.smtputf8;
    auto door = mail::FrontDoor::open(spool_, front);
    if (!door) {
        log_.warning("cannot begin a queue entry: " + door.error().message());
        return mail::Status::temp("4.3.0", "Error: queue file write error");
    }
    front_.emplace(std::move(*door));
    auto sender = front_->set_sender(transaction.mail.sender.str(), transaction.mail.ret, transaction.mail.envid);
    if (!sender.is_ok()) front_.reset();
    return sender.is_ok() ? mail::Status::ok("Ok", "2.1.0") : sender;
}

// A local recipient exists when the aliases name it (with its extension or
// without) or an account does; postmaster always does (RFC 5321 4.5.1).
// The database is opened once a transaction (not per RCPT); a newaliases run is
// seen by the next transaction.
mail::Status SmtpDoor::local_recipient(const mail::Route& route) {
    if (route.user == "postmaster") return mail::Status::ok("Ok", "2.1.5");
    if (!aliases_) aliases_ = mail::AliasDb::open(settings_.aliases_path + ".cdb", settings_.aliases_path);
    auto& db = *aliases_;
    if (db) {
        std::vector<std::string> names{route.user};
        if (!route.extension.empty())
            names.insert(names.begin(), route.user + settings_.routing.recipient_delimiter +
                                            mail::lowercase_ascii(route.extension));
        for (const auto& name : names) {
            auto found = db->lookup(name);
            if (!found) return mail::Status::temp("4.3.0", "Error: cannot read the aliases database");
            if (*found) return mail::Status::ok("Ok", "2.1.5");
        }
    } else if (db.error().errno_value() != ENOENT) {
        log_.warning("cannot open the aliases database: " + db.error().message());
        return mail::Status::temp("4.3.0", "Error: cannot read the aliases database");
    }
    auto user = users_.find(route.user);
    if (!user) return mail::Status::temp("4.3.0", "Error: cannot look up user " + route.user);
    if (!*user) {
        return mail::Status::perm("5.1.1", fmt::format("<{}>: Recipient address rejected: User unknown in local recipient table",
                                                       route.address));
    }
    return mail::Status::ok("Ok", "2.1.5");
}

mail::Status SmtpDoor::add_recipient(const smtp::Transaction& transaction, const smtp::RcptTo& rcpt) {
    if (!front_) return mail::Status::temp("4.3.0", "Error: no transaction");
    auto route = mail::route_address(rcpt.recipient.str(), settings_.routing);
    if (route.kind == mail::Route::Kind::invalid) return route.invalid;
    if (route.kind == mail::Route::Kind::local) {
        auto known = local_recipient(route);
        if (!known.is_ok()) {
            log_.info(fmt::format("NOQUEUE: reject: RCPT from {}: {} {} {}; from=<{}> to=<{}> proto={} helo=<{}>",
                                  client_.logged(), known.to_reply_code(), known.code(), known.text(),
                                  transaction.mail.sender.str(), rcpt.recipient.str(), transaction.protocol,
                                  transaction.helo));
            return known;
        }
    }
    auto added = front_->add_recipient(rcpt.recipient.str(), rcpt.dsn);
    if (added.is_ok() && !client_logged_) {
        client_logged_ = true;
        std::string line = fmt::format("{}: client={}", front_->id(), client_.logged());
        if (!transaction.auth_user.empty()) line += ", sasl_username=" + transaction.auth_user;
        log_.info(line);
    }
    return added;
}

core::Result<std::string> SmtpDoor::begin_data(const smtp::Transaction& transaction) {
    if (!front_) return core::unexpected_errno("no transaction", EINVAL);
    mail::ClientFacts facts;
    // A pipe (`-bs`) has no address, and the entry's client line needs one.
    if (!client_.address.empty()) {
        facts.name = client_.name;
        facts.address = client_.address;
    }
    // The entry keeps a HELO name as one word of at most 255 octets (queue_entry.cpp);
    // a client may send anything: kept as Received: shows it.
    facts.helo = transaction.helo.substr(0, 255);
    for (char& c : facts.helo) {
        auto byte = static_cast<unsigned char>(c);
        if (byte <= 0x20 || byte == 0x7f) c = '?';
    }
    facts.protocol = transaction.protocol;
    facts.auth = transaction.auth_user;
    facts.tls_protocol = transaction.tls.protocol;
    facts.tls_cipher = transaction.tls.cipher;
    front_->set_client(std::move(facts));
    return front_->id();
}

core::Result<void> SmtpDoor::write(std::string_view text) {
    if (!front_) return core::unexpected_errno("no transaction", EINVAL);
    return front_->write(text);
}

std::optional<mail::Status> SmtpDoor::flush_domain(std::string_view domain) {
    if (!spool_.notify_daemon("etrn " + mail::lowercase_ascii(domain))) {
        return mail::Status::temp("4.3.0", "Error: the queue runner is not running");
    }
    log_.info(fmt::format("ETRN {} from {}", domain, client_.logged()));
    return mail::Status::ok("Queuing started", "2.0.0");
}

boost::asio::awaitable<core::Result<mail::Committed>> SmtpDoor::commit_durably() {
    // FrontDoor::commit()'s steps, its two syncs awaited instead of blocking the loop.
    auto data = front_->stage_commit();
    if (!data) co_return core::unexpected(data.error());
    // The content on disk before its name appears in queue/ (docs/spool.md).
    auto folder = front_->publish(co_await disk_.sync_data(*data, spool_.tmp_dir() + "/" + front_->id()));
    if (!folder) co_return core::unexpected(folder.error());
    // The rename on disk before the 250.
    co_return front_->settle(co_await disk_.sync_folder(*folder, spool_.folder_path(mail::QueueFolder::queue)));
}

boost::asio::awaitable<std::vector<mail::Status>> SmtpDoor::commit(const smtp::Transaction&) {
    if (!front_) co_return std::vector<mail::Status>{mail::Status::temp("4.3.0", "Error: no transaction")};
    auto committed = co_await commit_durably();
    std::string id = front_->id();
    front_.reset();
    if (!committed) {
        auto status = mail::FrontDoor::status_of(committed.error());
        if (status.is_temporary()) log_.warning(fmt::format("{}: cannot queue: {}", id, committed.error().message()));
        co_return std::vector<mail::Status>{status};
    }
    spool_.wake_daemon(id);
    co_return std::vector<mail::Status>{mail::Status::ok("Ok: queued as " + id, "2.0.0")};
}

boost::asio::awaitable<smtp::AuthVerdict> SmtpHandler::check_password(const smtp::ClientInfo& client,
                                                                     const std::string& user, std::string& password) {
    if (!checker_) {
        ::explicit_bzero(password.data(), password.size());
        co_return smtp::AuthVerdict::unavailable;
    }
    co_return co_await checker_(client, user, password);
}

}  // namespace mailroom::mta
