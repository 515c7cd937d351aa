// MailClient: the client side of one SMTP or LMTP connection, shared by the runner's
// LMTP transport (lmtp_client.*) and its SMTP transport (smtp_transport.*), so that
// there is one dialogue: greeting, LHLO/EHLO, MAIL, a RCPT per recipient and DATA
// (pipelined when offered), parameters only when offered, the text dot-stuffed with
// CRLF line ends, replies parsed, RSET before each later transaction.
//
// The dialect decides what differs: LMTP says LHLO and gets one reply per accepted
// recipient after the data (RFC 2033); SMTP says EHLO (HELO after a 5xx to it) and
// gets one reply for all, and may do STARTTLS and AUTH:
//   STARTTLS  tls_level none: never; may: when offered, unverified, and a server that
//             refuses the command is spoken to in plaintext (a failed handshake is
//             open()'s tls_failed: the caller connects again without TLS, as Postfix);
//             encrypt: required (not offered: 4.7.4, nothing sent), the certificate
//             verified (tls_client.hpp), TLS 1.2 or later. EHLO again after it.
//   AUTH      with `login`, when the server offers AUTH: PLAIN, or LOGIN when only that
//             is offered; only over TLS unless `auth_in_clear` (a loopback hop), else
//             the session is refused 4.7.0 before a password is sent. A server that
//             offers no AUTH gets the mail without it (as Postfix).
//
// open() connects and greets; transact() carries one message. Neither throws or
// blocks past `timeout` per read or write. Every Status text names the server as
// "host H said: 550 5.1.1 ... (in reply to RCPT TO command)", which the runner's
// notices turn into Remote-MTA and Diagnostic-Code. Asio in the calling thread, no
// threads of its own. A client belongs to the process that opened it: after a
// fork the copy must be dropped (forget()), never used.
#pragma once

#include <sys/socket.h>

#include <chrono>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "mail/message.hpp"
#include "mail/status.hpp"
#include "queue/mailbox_transport.hpp"

namespace mailroom::net {

class TlsClientContext;

enum class Dialect { lmtp, smtp };

// Where to connect: a socket address of any family (AF_UNIX, AF_INET, AF_INET6).
struct SocketAddress {
    sockaddr_storage storage{};
    socklen_t length = 0;

    static SocketAddress unix_path(const std::string& path);
    // A numeric IPv4 or IPv6 address; nothing for anything else.
    static std::optional<SocketAddress> numeric(const std::string& address, uint16_t port);
    int family() const { return storage.ss_family; }
    bool is_loopback() const;
};

enum class TlsLevel { none, may, encrypt };

struct ClientSettings {
    Dialect dialect = Dialect::lmtp;
    std::string helo_name;
    std::chrono::seconds timeout{300};
    // The server as texts name it: "/run/dovecot/lmtp", "host:24", "mx.example[192.0.2.1]:25".
    std::string relay;
    // For "connect to X: ..." when set: the SMTP transport's "host[addr]:port".
    std::string connect_relay;
    // SMTP only (see above). tls_peer_name: the hop's host name, or the address of a
    // relayhost given as an address literal; also the SNI name.
    TlsLevel tls_level = TlsLevel::none;
    std::shared_ptr<TlsClientContext> tls;
    std::string tls_peer_name;
    struct Login {
        std::string user, password;
    };
    std::optional<Login> login;
    bool auth_in_clear = false;
};

// How open() ended.
struct OpenOutcome {
    enum class Kind {
        open,            // ready for transact()
        connect_failed,  // no connection: try the next address
        refused,         // greeting, hello, STARTTLS or AUTH failed: `status` says how; try the next host
        tls_failed,      // the TLS handshake failed at `may`: the same address again without TLS
    };
    Kind kind = Kind::connect_failed;
    std::optional<mail::Status> status;  // for all but open
    std::string tls;                     // open and encrypted: "TLSv1.3 with cipher X"
};

// How transact() ended: a Status per recipient, or nothing where none was decided
// (the connection was lost first; `lost` then says why).
struct TransactionOutcome {
    std::vector<std::optional<mail::Status>> statuses;
    std::string lost;            // empty when the dialogue ended normally
    bool reset_failed = false;   // a reused connection failed its RSET: nothing was sent
};

class MailClient {
public:
    explicit MailClient(ClientSettings settings);
    ~MailClient();
    MailClient(const MailClient&) = delete;
    MailClient& operator=(const MailClient&) = delete;

    // Connects to the first of `addresses` that answers, then greets.
    OpenOutcome open(const std::vector<SocketAddress>& addresses);
    bool is_open() const;
    // One transaction; a connection that carried one before is reset first.
    TransactionOutcome transact(const mail::Message& message, const mail::Envelope& envelope,
                                const std::vector<mail::TransportRecipient>& recipients);
    // QUIT (not waiting long for its reply) and close.
    void quit();
    // Closes this process's copy of the descriptor without a word (after a fork).
    void forget();

    const ClientSettings& settings() const { return settings_; }

private:
    struct Connection;
    ClientSettings settings_;
    std::unique_ptr<Connection> connection_;
};

// A reply as a Status: its enhanced code when it has one (RFC 2034), else the
// class's generic one; the text "host RELAY said: CODE TEXT (in reply to COMMAND)".
struct ReplyLines {
    int code = 0;
    std::string text;  // the last line's text, enhanced code included
};
mail::Status status_of_reply(const ReplyLines& reply, const std::string& relay, std::string_view command);

}  // namespace mailroom::net
