// RemoteTransport: where the runner's remote leaves go (SPEC 7 "Remote delivery"):
// SMTP to the relayhost or to the domain's MX hosts. Implemented by lib/net's SMTP
// transport (net/smtp_transport.hpp) and wired in by the programs that run the
// queue (net/transports.hpp); the queue never includes lib/net. A runner without
// one defers remote leaves 4.3.5 "remote delivery not configured".
//
// The runner groups the remote recipients of one message by destination() — their
// domain, or one group for all when a relayhost takes every remote recipient — and
// hands each group, at most recipient_limit() at a time, to deliver(): one call is
// one transaction (or, when a host fails, one per host tried). Each recipient gets
// a Status in order: 2xx delivered, 4xx/timeout/no connection deferred, 5xx
// bounced, its text the server's reply "host H[addr] said: 550 5.1.1 ... (in reply
// to RCPT TO command)", from which the notice takes Remote-MTA and Diagnostic-Code.
#pragma once

#include <cstddef>
#include <string>
#include <string_view>
#include <vector>

#include "queue/mailbox_transport.hpp"

namespace mailroom::mail {

class RemoteTransport {
public:
    virtual ~RemoteTransport() = default;
    // The key recipients are grouped by: the lower-cased domain, or one key for all.
    virtual std::string destination(std::string_view domain) const = 0;
    // Recipients per transaction (Postfix's smtp_destination_recipient_limit, 50).
    virtual size_t recipient_limit() const { return 50; }
    // The message to `recipients`, all of one destination (`domain` is the first
    // one's). TransportResult::relays, when filled, names each recipient's relay.
    virtual TransportResult deliver(const Message& message, const Envelope& envelope, std::string_view domain,
                                    const std::vector<TransportRecipient>& recipients) = 0;
};

}  // namespace mailroom::mail
