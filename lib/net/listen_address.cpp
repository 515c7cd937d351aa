#include "net/listen_address.hpp"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <cerrno>
#include <charconv>
#include <cstring>

namespace mailroom::net {

std::optional<uint16_t> parse_port(std::string_view text) {
    unsigned value = 0;
    auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), value);
    if (text.empty() || ec != std::errc() || end != text.data() + text.size() || value == 0 || value > 65535)
        return std::nullopt;
    return static_cast<uint16_t>(value);
}

core::Result<ListenAddress> parse_listen_address(std::string_view text) {
    ListenAddress address;
    address.text = std::string(text);
    if (text.substr(0, 5) == "unix:") {
        address.kind = ListenAddress::Kind::unix_socket;
        address.path = std::string(text.substr(5));
        if (address.path.empty() || address.path[0] != '/' || address.path.size() >= sizeof(sockaddr_un{}.sun_path))
            return core::unexpected_input("unix listen address needs an absolute path shorter than 108 octets: '" +
                                          address.text + "'");
        return address;
    }
    std::string_view rest = text.substr(0, 5) == "inet:" ? text.substr(5) : text;
    std::string_view host, port;
    if (!rest.empty() && rest[0] == '[') {
        size_t close = rest.find(']');
        if (close == std::string_view::npos || close + 1 >= rest.size() || rest[close + 1] != ':')
            return core::unexpected_input("bad listen address '" + address.text + "' (want [IPV6]:PORT)");
        host = rest.substr(1, close - 1);
        port = rest.substr(close + 2);
    } else {
        size_t colon = rest.rfind(':');
        if (colon == std::string_view::npos)
            return core::unexpected_input("bad listen address '" + address.text + "' (want unix:PATH or HOST:PORT)");
        host = rest.substr(0, colon);
        port = rest.substr(colon + 1);
    }
    auto number = parse_port(port);
    if (!number) return core::unexpected_input("bad port in listen address '" + address.text + "'");
    address.port = *number;
    address.host = host.empty() || host == "localhost" ? "127.0.0.1" : std::string(host);
    in6_addr v6;
    in_addr v4;
    if (::inet_pton(AF_INET, address.host.c_str(), &v4) != 1 && ::inet_pton(AF_INET6, address.host.c_str(), &v6) != 1)
        return core::unexpected_input("listen address '" + address.text + "' needs a numeric IP address");
    return address;
}

core::Result<BoundListener> bind_listener(const ListenAddress& address, int backlog) {
    BoundListener bound{address, {}};
    if (address.kind == ListenAddress::Kind::unix_socket) {
        int fd = ::socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
        if (fd < 0) return core::unexpected_errno("socket for " + address.text);
        bound.socket = core::UniqueFd(fd);
        // Bound under a private name and renamed into place once it listens: a client
        // that sees the path can connect (no "connection refused" window at start).
        // A path too long for the private name is bound in place instead.
        sockaddr_un sun{};
        sun.sun_family = AF_UNIX;
        std::string building = address.path + ".new" + std::to_string(::getpid());
        if (building.size() >= sizeof sun.sun_path) building = address.path;
        std::memcpy(sun.sun_path, building.c_str(), building.size() + 1);
        // Only a socket left by an earlier run is replaced, never another kind of file.
        struct stat old {};
        if (::lstat(address.path.c_str(), &old) == 0 && !S_ISSOCK(old.st_mode))
            return core::unexpected_errno(address.path + " exists and is not a socket", EEXIST);
        ::unlink(building.c_str());
        if (::bind(fd, reinterpret_cast<sockaddr*>(&sun), sizeof sun) != 0)
            return core::unexpected_errno("bind " + building);
        if (::chmod(building.c_str(), 0666) != 0 || ::listen(fd, backlog) != 0 ||
            (building != address.path && ::rename(building.c_str(), address.path.c_str()) != 0)) {
            int err = errno;
            ::unlink(building.c_str());
            return core::unexpected_errno("listen on " + address.path, err);
        }
        return bound;
    } else {
        sockaddr_storage storage{};
        socklen_t length;
        int family;
        if (auto* v4 = reinterpret_cast<sockaddr_in*>(&storage);
            ::inet_pton(AF_INET, address.host.c_str(), &v4->sin_addr) == 1) {
            v4->sin_family = family = AF_INET;
            v4->sin_port = htons(address.port);
            length = sizeof *v4;
        } else {
            auto* v6 = reinterpret_cast<sockaddr_in6*>(&storage);
            if (::inet_pton(AF_INET6, address.host.c_str(), &v6->sin6_addr) != 1)
                return core::unexpected_errno("listen address " + address.text, EINVAL);
            v6->sin6_family = family = AF_INET6;
            v6->sin6_port = htons(address.port);
            length = sizeof *v6;
        }
        int fd = ::socket(family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
        if (fd < 0) return core::unexpected_errno("socket for " + address.text);
        bound.socket = core::UniqueFd(fd);
        int one = 1;
        ::setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
        if (family == AF_INET6) ::setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &one, sizeof one);
        if (::bind(fd, reinterpret_cast<sockaddr*>(&storage), length) != 0)
            return core::unexpected_errno("bind " + address.text);
    }
    if (::listen(bound.socket.get(), backlog) != 0) return core::unexpected_errno("listen on " + address.text);
    return bound;
}

}  // namespace mailroom::net
