// SmtpPolicy: the listener's Gatekeeper (smtp/session.hpp), SPEC 7's rules as each
// command arrives:
//   connect    client rules of smtpd_access_file; mynetworks or a client OK may relay
//   HELO/EHLO  helo rules
//   MAIL       an authenticated user sends only as their own addresses (below), then
//              sender rules
//   RCPT       recipient rules, then relay control: a recipient outside mydestination
//              only from a relay client or after AUTH, else 554 5.7.1 Relay access denied
// REJECT answers 554 5.7.1 and DEFER 450 4.7.1 (at connect: 421 4.7.1, the greeting
// cannot be a 450), with the rule's TEXT or Postfix's words. OK for a client lets it
// relay; OK elsewhere only ends that kind's rules (docs/smtpd.md "Access control").
// "Own addresses" of user U: U, or U+anything with recipient_delimiter, at no domain
// or a domain of mydestination, case-insensitive; the null sender is allowed (it names
// nobody). Each refusal is logged as Postfix's smtpd logs it, the line pflogsumm
// counts: "NOQUEUE: reject: RCPT from name[addr]: 554 5.7.1 <x>: Relay access denied;
// from=<a> to=<x> proto=ESMTP helo=<h>".
#pragma once

#include <memory>
#include <optional>

#include "core/log.hpp"
#include "delivery/routing.hpp"
#include "smtp/access_table.hpp"
#include "smtp/client_networks.hpp"
#include "smtp/session.hpp"

namespace mailroom::smtp {

class SmtpPolicy final : public Gatekeeper {
public:
    SmtpPolicy(NetworkList mynetworks, AccessTable access, mail::RoutingSettings routing, const core::Logger* log);

    ClientVerdict connect(const ClientInfo& client) const override;
    std::optional<Refusal> helo(const SessionFacts& facts, std::string_view helo) const override;
    std::optional<Refusal> sender(const SessionFacts& facts, const MailFrom& mail) const override;
    std::optional<Refusal> recipient(const SessionFacts& facts, const Transaction& transaction,
                                     const RcptTo& rcpt) const override;

    // Whether `address` (a path without brackets) is one of `user`'s own.
    bool owns(std::string_view user, std::string_view address) const;

private:
    std::optional<Refusal> decided(const std::optional<AccessDecision>& decision, std::string_view what,
                                   std::string_view default_text) const;
    void log_reject(const SessionFacts& facts, std::string_view stage, const Refusal& refusal, std::string_view from,
                    std::string_view to) const;

    NetworkList mynetworks_;
    AccessTable access_;
    mail::RoutingSettings routing_;
    const core::Logger* log_;
};

}  // namespace mailroom::smtp
