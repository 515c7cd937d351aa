// MailboxTransport: where the runner's mailbox leaves go when local_transport names
// an LMTP server (SPEC 2: lmtp:unix:PATH, lmtp:inet:HOST:PORT) rather than the local
// writers: a Dovecot or Cyrus back end, or another host's lmtpd. Implemented by
// lib/net's LMTP client and wired in by mta (the queue never includes lib/net).
//
// One call is one transaction: the message from the envelope's sender to several
// recipients, a Status for each in order — the server's own reply, 4xx deferred and
// 5xx bounced by the runner with the reply in the DSN. A failure to connect or a
// dialogue cut short defers every recipient it carried. A transport keeps its
// connection for the next message.
#pragma once

#include <string>
#include <vector>

#include "mail/message.hpp"
#include "mail/status.hpp"
#include "queue/queue_entry.hpp"

namespace mailroom::mail {

struct TransportRecipient {
    std::string address;  // user@domain, the leaf's address
    RecipientDsn dsn;     // NOTIFY and ORCPT of the envelope recipient it came from
};

struct TransportResult {
    std::vector<Status> statuses;  // one per recipient
    std::string relay;             // for the log's relay= ("host[addr]:port", "/path/to/socket")
    std::vector<std::string> relays;  // when not empty: each recipient's own relay= (remote delivery)
};

class MailboxTransport {
public:
    virtual ~MailboxTransport() = default;
    virtual TransportResult deliver(const Message& message, const Envelope& envelope,
                                    const std::vector<TransportRecipient>& recipients) = 0;
};

}  // namespace mailroom::mail
