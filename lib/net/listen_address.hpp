// Where a server listens: "unix:PATH", "inet:HOST:PORT", or the SPEC's short forms
// "HOST:PORT" and "[IPV6]:PORT" (lmtpd_listen, -l, smtpd_listen). Bound here, before
// the process gives up root, so that a port below 1024 or a socket in a root-owned
// folder can be used; served later by the unprivileged session process.
// A unix socket is made mode 0666 (any local user may hand over mail, as with
// sendmail; Dovecot's and Postfix's LMTP sockets are the same); a stale socket file
// is replaced, anything else at the path is refused.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "core/result.hpp"
#include "core/unique_fd.hpp"

namespace mailroom::net {

struct ListenAddress {
    enum class Kind { unix_socket, inet };
    Kind kind = Kind::inet;
    std::string path;  // unix
    std::string host;  // inet: an IPv4 or IPv6 address, or "localhost"
    uint16_t port = 0;
    std::string text;  // as given, for log lines
};

core::Result<ListenAddress> parse_listen_address(std::string_view text);

// A TCP port, 1 to 65535, decimal digits only (listen addresses, LMTP destinations).
std::optional<uint16_t> parse_port(std::string_view text);

struct BoundListener {
    ListenAddress address;
    core::UniqueFd socket;  // listening, non-blocking, close-on-exec
};

core::Result<BoundListener> bind_listener(const ListenAddress& address, int backlog = 256);

}  // namespace mailroom::net
