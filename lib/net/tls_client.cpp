#include "net/tls_client.hpp"

#include <arpa/inet.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>

#include <fmt/format.h>

namespace mailroom::net {

namespace {

bool is_address_literal(const std::string& name) {
    unsigned char buffer[16];
    return ::inet_pton(AF_INET, name.c_str(), buffer) == 1 || ::inet_pton(AF_INET6, name.c_str(), buffer) == 1;
}

}  // namespace

TlsClientContext::TlsClientContext() : context_(boost::asio::ssl::context::tls_client) {}

core::Result<std::shared_ptr<TlsClientContext>> TlsClientContext::make(const std::string& ca_file) {
    std::shared_ptr<TlsClientContext> made(new TlsClientContext());
    SSL_CTX* ctx = made->context_.native_handle();
    if (SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION) != 1)
        return core::unexpected_input("TLS: cannot require TLS 1.2 or later");
    SSL_CTX_set_options(ctx, SSL_OP_NO_COMPRESSION | SSL_OP_NO_RENEGOTIATION);
    if (ca_file.empty()) {
        if (SSL_CTX_set_default_verify_paths(ctx) != 1)
            return core::unexpected_input("TLS: cannot load the system's trust store");
    } else if (SSL_CTX_load_verify_locations(ctx, ca_file.c_str(), nullptr) != 1) {
        return core::unexpected_input(fmt::format("smtp_tls_ca_file: cannot load {}", ca_file));
    }
    SSL_CTX_set_verify(ctx, SSL_VERIFY_NONE, nullptr);
    return made;
}

core::Result<void> TlsClientContext::prepare(SSL* ssl, const std::string& peer_name, bool verify) const {
    const bool literal = is_address_literal(peer_name);
    // SNI carries host names only (RFC 6066 3).
    if (!literal && !peer_name.empty() && SSL_set_tlsext_host_name(ssl, peer_name.c_str()) != 1)
        return core::unexpected_input("TLS: cannot set the server name");
    if (!verify) {
        SSL_set_verify(ssl, SSL_VERIFY_NONE, nullptr);
        return {};
    }
    X509_VERIFY_PARAM* param = SSL_get0_param(ssl);
    if (literal) {
        if (X509_VERIFY_PARAM_set1_ip_asc(param, peer_name.c_str()) != 1)
            return core::unexpected_input("TLS: cannot verify against " + peer_name);
    } else {
        X509_VERIFY_PARAM_set_hostflags(param, X509_CHECK_FLAG_NO_PARTIAL_WILDCARDS);
        if (SSL_set1_host(ssl, peer_name.c_str()) != 1)
            return core::unexpected_input("TLS: cannot verify against " + peer_name);
    }
    // A chain or name that does not verify fails the handshake itself.
    SSL_set_verify(ssl, SSL_VERIFY_PEER, nullptr);
    return {};
}

std::string TlsClientContext::failure_reason(const SSL* ssl, const std::string& handshake_error) {
    long verified = SSL_get_verify_result(ssl);
    if (verified != X509_V_OK)
        return fmt::format("server certificate not trusted: {}", X509_verify_cert_error_string(verified));
    return handshake_error;
}

}  // namespace mailroom::net
