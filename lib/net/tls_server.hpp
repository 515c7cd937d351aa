// The listener's side of TLS (STARTTLS, smtps): one OpenSSL context made from
// smtpd_tls_cert_file and smtpd_tls_key_file before the privilege drop (the key is
// usually readable by root only), shared by every session of the process.
// TLS 1.2 and later only; SSL_MODE_RELEASE_BUFFERS so that an idle TLS session
// does not hold OpenSSL's 34 KB of record buffers (500 sessions are a goal).
// Must never: start without both files, or with a key that does not match the certificate.
#pragma once

#include <memory>
#include <string>

#include <boost/asio/ssl/context.hpp>

#include "core/result.hpp"
#include "smtp/session.hpp"

namespace mailroom::net {

core::Result<std::shared_ptr<boost::asio::ssl::context>> make_server_tls_context(const std::string& cert_file,
                                                                                  const std::string& key_file);

// What Received: and the log say of an established connection.
smtp::TlsFacts tls_facts_of(const SSL* ssl);

}  // namespace mailroom::net
