// TlsClientContext: the SMTP client's side of TLS (STARTTLS towards a relayhost or
// an MX host, smtp_tls_security_level), one OpenSSL context per process built from
// smtp_tls_ca_file or, when that is empty, the system's trust store.
//
// TLS 1.2 and later only. prepare() readies one connection's SSL object: SNI set to
// the peer's name (not for an address literal, RFC 6066 3), and at `encrypt` the
// certificate is verified — chain against the CA file or the store, and the name
// against the hop's host name, or against its address when the relayhost was given
// as an address literal. At `may` nothing is verified (as Postfix's "may": an
// untrusted certificate still beats plaintext).
// Must never: let a connection at `encrypt` go on after a failed verification
// (the handshake itself fails), or accept SSLv3/TLS 1.0/1.1.
#pragma once

#include <memory>
#include <string>

#include <boost/asio/ssl/context.hpp>

#include "core/result.hpp"

namespace mailroom::net {

class TlsClientContext {
public:
    // ca_file empty: the system store (OpenSSL's default paths).
    static core::Result<std::shared_ptr<TlsClientContext>> make(const std::string& ca_file);

    boost::asio::ssl::context& context() { return context_; }

    // Before the handshake: SNI, and (verify) the name or address the certificate
    // must carry. peer_name: a host name, or an IPv4/IPv6 address literal's address.
    core::Result<void> prepare(SSL* ssl, const std::string& peer_name, bool verify) const;

    // After a failed handshake: why, in words (the verification's reason when it was that).
    static std::string failure_reason(const SSL* ssl, const std::string& handshake_error);

private:
    TlsClientContext();
    boost::asio::ssl::context context_;
};

}  // namespace mailroom::net
