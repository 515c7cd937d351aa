#include "net/tls_server.hpp"

#include <openssl/err.h>
#include <openssl/ssl.h>

namespace mailroom::net {

namespace {

std::string openssl_error() {
    unsigned long code = ::ERR_get_error();
    if (code == 0) return "unknown OpenSSL error";
    char text[256];
    ::ERR_error_string_n(code, text, sizeof text);
    ::ERR_clear_error();
    return text;
}

}  // namespace

core::Result<std::shared_ptr<boost::asio::ssl::context>> make_server_tls_context(const std::string& cert_file,
                                                                                  const std::string& key_file) {
    namespace ssl = boost::asio::ssl;
    if (cert_file.empty() || key_file.empty())
        return core::unexpected_input("TLS needs both smtpd_tls_cert_file and smtpd_tls_key_file");
    auto context = std::make_shared<ssl::context>(ssl::context::tls_server);
    SSL_CTX* native = context->native_handle();
    ::SSL_CTX_set_min_proto_version(native, TLS1_2_VERSION);
    ::SSL_CTX_set_options(native, SSL_OP_NO_COMPRESSION | SSL_OP_NO_RENEGOTIATION | SSL_OP_CIPHER_SERVER_PREFERENCE);
    ::SSL_CTX_set_mode(native, SSL_MODE_RELEASE_BUFFERS);
    // Session tickets would let a client resume without a full handshake; one
    // process, one key for its lifetime: fine, and cheaper for busy clients.
    if (::SSL_CTX_use_certificate_chain_file(native, cert_file.c_str()) != 1)
        return core::unexpected_input("cannot load the certificate " + cert_file + " (" + openssl_error() + ")");
    if (::SSL_CTX_use_PrivateKey_file(native, key_file.c_str(), SSL_FILETYPE_PEM) != 1)
        return core::unexpected_input("cannot load the private key " + key_file + " (" + openssl_error() + ")");
    if (::SSL_CTX_check_private_key(native) != 1)
        return core::unexpected_input("the private key " + key_file + " does not match the certificate " + cert_file);
    return context;
}

smtp::TlsFacts tls_facts_of(const SSL* ssl) {
    smtp::TlsFacts facts;
    if (!ssl) return facts;
    facts.protocol = ::SSL_get_version(ssl);
    const SSL_CIPHER* cipher = ::SSL_get_current_cipher(ssl);
    if (cipher) {
        facts.cipher = ::SSL_CIPHER_get_name(cipher);
        int algorithm_bits = 0;
        facts.bits = ::SSL_CIPHER_get_bits(cipher, &algorithm_bits);
    }
    return facts;
}

}  // namespace mailroom::net
