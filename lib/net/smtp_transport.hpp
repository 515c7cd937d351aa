// SmtpTransport: the runner's RemoteTransport (queue/remote_transport.hpp): remote
// recipients delivered by SMTP to the relayhost or to the domain's MX hosts
// (SPEC 7 "Remote delivery", docs/remote-delivery.md "The SMTP dialogue").
//
// deliver() asks plan_route (remote_route.hpp) where the destination's mail goes,
// then tries the hops in order and each hop's addresses in order with MailClient
// (mail_client.hpp, its SMTP dialect): at most 5 addresses and 2 sessions that got
// as far as a greeting (Postfix's smtp_mx_address_limit and smtp_mx_session_limit).
// A refused connection, a timeout, a 4xx greeting or any 4xx reply leaves the
// recipient for the next address; at the last one it is deferred. 2xx and 5xx are
// final wherever they come. STARTTLS and AUTH are MailClient's; a TLS handshake
// that fails at `may` is followed by one more connection to the same address in
// plaintext (as Postfix).
//
// One connection per destination is kept open for the next message to it (RSET
// first, opened anew when that fails), so a process holds at most one connection
// to a destination; the daemon's delivery_workers bounds the processes. A forked
// process never uses its parent's connections. No threads; DNS through the
// Resolver given (SystemResolver reads smtp_dns_servers).
#pragma once

#include <sys/types.h>

#include <chrono>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "net/dns.hpp"
#include "net/mail_client.hpp"
#include "net/remote_route.hpp"
#include "net/sasl_passwords.hpp"
#include "queue/remote_transport.hpp"

namespace mailroom::net {

struct SmtpSettings {
    std::string helo_name;  // myhostname
    std::chrono::seconds timeout{300};
    std::optional<Relayhost> relayhost;
    TlsLevel tls_level = TlsLevel::may;
    std::shared_ptr<TlsClientContext> tls;  // made when tls_level is not none
    std::optional<SaslPasswords> passwords;  // smtp_sasl_password_file
    std::vector<std::string> my_addresses;   // this host's, for the route's self rule
    size_t address_limit = 5;
    size_t session_limit = 2;
    size_t recipient_limit = 50;
};

class SmtpTransport final : public mail::RemoteTransport {
public:
    SmtpTransport(SmtpSettings settings, std::unique_ptr<Resolver> resolver);
    ~SmtpTransport() override;
    SmtpTransport(const SmtpTransport&) = delete;
    SmtpTransport& operator=(const SmtpTransport&) = delete;

    std::string destination(std::string_view domain) const override;
    size_t recipient_limit() const override { return settings_.recipient_limit; }
    mail::TransportResult deliver(const mail::Message& message, const mail::Envelope& envelope, std::string_view domain,
                                  const std::vector<mail::TransportRecipient>& recipients) override;

private:
    // A connection kept for the next message to its destination.
    struct Kept {
        std::string destination;
        std::string relay;  // for relay=: "host[addr]:port"
        std::unique_ptr<MailClient> client;
    };
    static constexpr size_t max_kept = 32;

    ClientSettings client_settings(const RemoteHop& hop, const std::string& address, const SocketAddress& socket) const;

    SmtpSettings settings_;
    std::unique_ptr<Resolver> resolver_;
    pid_t owner_;
    std::vector<Kept> kept_;  // least recently used first
};

}  // namespace mailroom::net
