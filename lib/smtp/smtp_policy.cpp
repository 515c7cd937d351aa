#include "smtp/smtp_policy.hpp"

#include <fmt/format.h>

namespace mailroom::smtp {

SmtpPolicy::SmtpPolicy(NetworkList mynetworks, AccessTable access, mail::RoutingSettings routing, const core::Logger* log)
    : mynetworks_(std::move(mynetworks)), access_(std::move(access)), routing_(std::move(routing)), log_(log) {}

std::optional<Refusal> SmtpPolicy::decided(const std::optional<AccessDecision>& decision, std::string_view what,
                                           std::string_view default_text) const {
    if (!decision || decision->action == AccessAction::ok) return std::nullopt;
    std::string text = fmt::format("{}: {}", what, decision->text.empty() ? default_text : decision->text);
    if (decision->action == AccessAction::reject) return Refusal{554, mail::Status::perm("5.7.1", text)};
    return Refusal{450, mail::Status::temp("4.7.1", text)};
}

// `from`: the sender for MAIL and RCPT, the name refused for HELO.
void SmtpPolicy::log_reject(const SessionFacts& facts, std::string_view stage, const Refusal& refusal,
                            std::string_view from, std::string_view to) const {
    if (!log_) return;
    // Postfix's layout: "; from=<> to=<>" only for MAIL and RCPT, the HELO name
    // as refused for HELO, "proto=" always. The logger escapes the text once.
    std::string line = fmt::format("NOQUEUE: reject: {} from {}: {} {} {};", stage, facts.client.logged(),
                                   refusal.reply_code, refusal.status.code(), refusal.status.text());
    if (stage == "MAIL" || stage == "RCPT") {
        line += fmt::format(" from=<{}>", from);
        if (!to.empty()) line += fmt::format(" to=<{}>", to);
    }
    line += fmt::format(" proto={}", facts.protocol.empty() ? "SMTP" : facts.protocol);
    std::string_view helo = stage == "HELO" ? from : facts.helo;
    if (!helo.empty()) line += fmt::format(" helo=<{}>", helo);
    log_->info(line);
}

Gatekeeper::ClientVerdict SmtpPolicy::connect(const ClientInfo& client) const {
    ClientVerdict verdict;
    auto decision = access_.client(client.address, client.name);
    verdict.relay = mynetworks_.contains(client.address) || (decision && decision->action == AccessAction::ok);
    if (auto refusal = decided(decision, "<" + client.logged() + ">", "Client host rejected: Access denied")) {
        // The greeting is a 220 or a 554 (RFC 5321 3.1); a deferred client hears 421.
        if (refusal->reply_code == 450) refusal->reply_code = 421;
        log_reject(SessionFacts{client, {}, {}, false, {}}, "CONNECT", *refusal, {}, {});
        verdict.refusal = std::move(refusal);
    }
    return verdict;
}

std::optional<Refusal> SmtpPolicy::helo(const SessionFacts& facts, std::string_view helo) const {
    auto refusal = decided(access_.helo(helo), fmt::format("<{}>", helo), "Helo command rejected: Access denied");
    if (refusal) log_reject(facts, "HELO", *refusal, helo, {});
    return refusal;
}

bool SmtpPolicy::owns(std::string_view user, std::string_view address) const {
    auto route = mail::route_address(address, routing_);
    return route.kind == mail::Route::Kind::local && route.user == mail::lowercase_ascii(user);
}

std::optional<Refusal> SmtpPolicy::sender(const SessionFacts& facts, const MailFrom& mail) const {
    const std::string address = mail.sender.str();
    std::optional<Refusal> refusal;
    if (!facts.auth_user.empty() && !address.empty() && !owns(facts.auth_user, address)) {
        refusal = Refusal{553, mail::Status::perm("5.7.1", fmt::format("<{}>: Sender address rejected: not owned by user {}",
                                                                        address, facts.auth_user))};
    } else {
        refusal = decided(access_.sender(address), fmt::format("<{}>", address), "Sender address rejected: Access denied");
    }
    if (refusal) log_reject(facts, "MAIL", *refusal, address, {});
    return refusal;
}

std::optional<Refusal> SmtpPolicy::recipient(const SessionFacts& facts, const Transaction& transaction,
                                             const RcptTo& rcpt) const {
    const std::string address = rcpt.recipient.str();
    auto refusal = decided(access_.recipient(address), fmt::format("<{}>", address),
                           "Recipient address rejected: Access denied");
    // Fail closed: anything routing does not call local (a UTF-8 address it cannot
    // parse included) is relaying.
    if (!refusal && !facts.relay_client && facts.auth_user.empty() &&
        mail::route_address(address, routing_).kind != mail::Route::Kind::local) {
        refusal = Refusal{554, mail::Status::perm("5.7.1", fmt::format("<{}>: Relay access denied", address))};
    }
    if (refusal) log_reject(facts, "RCPT", *refusal, transaction.mail.sender.str(), address);
    return refusal;
}

}  // namespace mailroom::smtp
