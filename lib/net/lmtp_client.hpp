// LmtpClient: the runner's MailboxTransport for local_transport = lmtp:unix:PATH or
// lmtp:inet:HOST:PORT (SPEC 2): mailbox leaves handed to an LMTP server (Dovecot,
// Cyrus, another lmtpd) instead of being written here.
//
// One deliver() is one transaction: LHLO once per connection, then MAIL, a RCPT per
// recipient and DATA — pipelined when the server offers PIPELINING — the message
// dot-stuffed with CRLF line ends, and one reply per accepted recipient (RFC 2033).
// Each recipient's Status is the server's reply: 2xx delivered, 4xx deferred, 5xx
// bounced, its text "host H said: 550 5.1.1 ... (in reply to RCPT TO command)" for
// the DSN's Diagnostic-Code. The connection is kept for the next message (checked
// with RSET first) and dropped after an error. A failed connect, a timeout or a
// dialogue cut short defers every recipient not yet answered (4.4.1, 4.4.2).
// DSN parameters (NOTIFY, ORCPT, RET, ENVID) go along when the server offers DSN.
// The dialogue itself is MailClient's (mail_client.hpp), in its LMTP dialect.
// Asio in the calling thread, no threads of its own; a copy of a client in a
// forked process starts afresh (never uses its parent's connection).
#pragma once

#include <sys/types.h>

#include <chrono>
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>

#include "core/result.hpp"
#include "net/mail_client.hpp"
#include "queue/mailbox_transport.hpp"

namespace mailroom::net {

struct LmtpDestination {
    enum class Kind { unix_socket, inet };
    Kind kind = Kind::unix_socket;
    std::string path;  // unix
    std::string host;  // inet
    uint16_t port = 0;

    // "lmtp:unix:PATH" or "lmtp:inet:HOST:PORT" (local_transport's forms).
    static core::Result<LmtpDestination> parse(std::string_view transport);
    // For relay= in the log: the path, or host[:port].
    std::string text() const;
};

class LmtpClient final : public mail::MailboxTransport {
public:
    LmtpClient(LmtpDestination destination, std::string helo_name, std::chrono::seconds timeout);
    ~LmtpClient() override;

    mail::TransportResult deliver(const mail::Message& message, const mail::Envelope& envelope,
                                  const std::vector<mail::TransportRecipient>& recipients) override;

    LmtpClient(const LmtpClient&) = delete;
    LmtpClient& operator=(const LmtpClient&) = delete;

private:
    LmtpDestination destination_;
    std::string helo_name_;
    std::chrono::seconds timeout_;
    pid_t owner_;
    std::unique_ptr<MailClient> client_;
};

}  // namespace mailroom::net
