#include "net/lmtp_client.hpp"

#include <netdb.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <cstring>
#include <optional>

#include <fmt/format.h>

#include "net/listen_address.hpp"

namespace mailroom::net {

using mail::Status;

namespace {

// The destination's socket addresses: the path, or the host's (a name through
// getaddrinfo: the runner may block).
core::Result<std::vector<SocketAddress>> addresses_of(const LmtpDestination& destination) {
    if (destination.kind == LmtpDestination::Kind::unix_socket) return std::vector{SocketAddress::unix_path(destination.path)};
    addrinfo hints{};
    hints.ai_socktype = SOCK_STREAM;
    addrinfo* found = nullptr;
    int r = ::getaddrinfo(destination.host.c_str(), std::to_string(destination.port).c_str(), &hints, &found);
    if (r != 0) return core::unexpected_input(fmt::format("cannot find {}: {}", destination.host, ::gai_strerror(r)));
    std::vector<SocketAddress> addresses;
    for (addrinfo* a = found; a; a = a->ai_next) {
        SocketAddress address;
        std::memcpy(&address.storage, a->ai_addr, std::min<size_t>(a->ai_addrlen, sizeof address.storage));
        address.length = a->ai_addrlen;
        addresses.push_back(address);
    }
    ::freeaddrinfo(found);
    return addresses;
}

}  // namespace

core::Result<LmtpDestination> LmtpDestination::parse(std::string_view transport) {
    LmtpDestination destination;
    if (transport.starts_with("lmtp:unix:")) {
        destination.kind = Kind::unix_socket;
        destination.path = std::string(transport.substr(10));
        if (destination.path.empty() || destination.path.size() >= sizeof(sockaddr_un{}.sun_path))
            return core::unexpected_input("local_transport: bad unix socket path");
        return destination;
    }
    if (!transport.starts_with("lmtp:inet:")) return core::unexpected_input("local_transport is not an LMTP destination");
    std::string_view rest = transport.substr(10);
    size_t colon = rest.rfind(':');
    if (colon == std::string_view::npos || colon == 0) return core::unexpected_input("local_transport: want lmtp:inet:HOST:PORT");
    destination.kind = Kind::inet;
    std::string_view host = rest.substr(0, colon);
    if (host.size() > 2 && host.front() == '[' && host.back() == ']') host = host.substr(1, host.size() - 2);
    destination.host = std::string(host);
    auto port = parse_port(rest.substr(colon + 1));
    if (!port) return core::unexpected_input("local_transport: bad port");
    destination.port = *port;
    return destination;
}

std::string LmtpDestination::text() const {
    return kind == Kind::unix_socket ? path : fmt::format("{}:{}", host, port);
}

LmtpClient::LmtpClient(LmtpDestination destination, std::string helo_name, std::chrono::seconds timeout)
    : destination_(std::move(destination)), helo_name_(std::move(helo_name)), timeout_(timeout), owner_(::getpid()) {}

LmtpClient::~LmtpClient() {
    // A forked copy leaves its parent's connection alone.
    if (client_ && owner_ != ::getpid()) client_->forget();
}

mail::TransportResult LmtpClient::deliver(const mail::Message& message, const mail::Envelope& envelope,
                                          const std::vector<mail::TransportRecipient>& recipients) {
    mail::TransportResult result;
    const std::string relay = destination_.text();
    result.relay = relay;
    if (owner_ != ::getpid()) {
        if (client_) client_->forget();
        client_.reset();
        owner_ = ::getpid();
    }
    std::vector<std::optional<Status>> outcome(recipients.size());
    auto defer_rest = [&](std::string code, std::string text) {
        for (auto& o : outcome) {
            if (!o) o = Status::temp(code, text);
        }
    };

    for (int attempt = 0; attempt < 2 && !outcome.empty() && !outcome[0]; ++attempt) {
        if (!client_ || !client_->is_open()) {
            client_ = std::make_unique<MailClient>(
                ClientSettings{Dialect::lmtp, helo_name_, timeout_, relay});
            auto addresses = addresses_of(destination_);
            if (!addresses) {
                client_.reset();
                defer_rest("4.4.1", addresses.error().context);
                break;
            }
            OpenOutcome opened = client_->open(*addresses);
            if (opened.kind != OpenOutcome::Kind::open) {
                client_.reset();
                defer_rest("4.4.1", opened.status ? opened.status->text() : "no connection");
                break;
            }
        }
        TransactionOutcome sent = client_->transact(message, envelope, recipients);
        for (size_t i = 0; i < outcome.size(); ++i) {
            if (sent.statuses[i]) outcome[i] = std::move(sent.statuses[i]);
        }
        // A kept connection that failed its RSET is opened anew, once: nothing was sent on it.
        if (sent.reset_failed) {
            client_.reset();
            continue;
        }
        if (!client_->is_open()) client_.reset();
        if (!sent.lost.empty()) defer_rest("4.4.2", fmt::format("host {}: {} during the LMTP dialogue", relay, sent.lost));
        break;
    }
    defer_rest("4.4.2", fmt::format("host {}: no outcome", relay));
    for (auto& o : outcome) result.statuses.push_back(std::move(*o));
    return result;
}

}  // namespace mailroom::net
