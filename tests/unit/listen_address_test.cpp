// lib/net/listen_address.hpp: the forms a listen address is written in, the ones
// refused, and what bind_listener leaves in the file system and the kernel.
#include "net/listen_address.hpp"

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <algorithm>
#include <cstring>

#include "support/test_support.hpp"

using mailroom::net::bind_listener;
using mailroom::net::ListenAddress;
using mailroom::net::parse_listen_address;
using mailroom::test::TempDir;

namespace {

// Whether a blocking client connects to the unix socket at path right now.
bool connects_unix(const std::string& path) {
    int fd = ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    REQUIRE(fd >= 0);
    sockaddr_un sun{};
    sun.sun_family = AF_UNIX;
    REQUIRE(path.size() < sizeof sun.sun_path);
    std::memcpy(sun.sun_path, path.c_str(), path.size() + 1);
    bool ok = ::connect(fd, reinterpret_cast<sockaddr*>(&sun), sizeof sun) == 0;
    ::close(fd);
    return ok;
}

bool connects_tcp4(uint16_t port) {
    int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    REQUIRE(fd >= 0);
    sockaddr_in sin{};
    sin.sin_family = AF_INET;
    sin.sin_port = htons(port);
    sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    bool ok = ::connect(fd, reinterpret_cast<sockaddr*>(&sin), sizeof sin) == 0;
    ::close(fd);
    return ok;
}

// A TCP port on 127.0.0.1 that nobody listens on just now (the kernel's choice).
uint16_t free_tcp_port() {
    int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    REQUIRE(fd >= 0);
    sockaddr_in sin{};
    sin.sin_family = AF_INET;
    sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    REQUIRE(::bind(fd, reinterpret_cast<sockaddr*>(&sin), sizeof sin) == 0);
    socklen_t length = sizeof sin;
    REQUIRE(::getsockname(fd, reinterpret_cast<sockaddr*>(&sin), &length) == 0);
    ::close(fd);
    return ntohs(sin.sin_port);
}

// A socket file at path that nobody listens on any more: what a crashed server leaves.
void leave_stale_socket(const std::string& path) {
    int fd = ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    REQUIRE(fd >= 0);
    sockaddr_un sun{};
    sun.sun_family = AF_UNIX;
    std::memcpy(sun.sun_path, path.c_str(), path.size() + 1);
    REQUIRE(::bind(fd, reinterpret_cast<sockaddr*>(&sun), sizeof sun) == 0);
    ::close(fd);
    struct stat st {};
    REQUIRE(::lstat(path.c_str(), &st) == 0);
    REQUIRE(S_ISSOCK(st.st_mode));
    REQUIRE_FALSE(connects_unix(path));
}

ListenAddress parsed(const std::string& text) {
    auto address = parse_listen_address(text);
    INFO(text << ": " << (address ? "" : address.error().message()));
    REQUIRE(address);
    return *address;
}

}  // namespace

TEST_CASE("unix:PATH with an absolute path is a unix socket at that path", "[listen_address]") {
    auto address = parsed("unix:/run/mailroom/lmtp");
    CHECK(address.kind == ListenAddress::Kind::unix_socket);
    CHECK(address.path == "/run/mailroom/lmtp");
    CHECK(address.text == "unix:/run/mailroom/lmtp");
}

TEST_CASE("inet:HOST:PORT and the short form HOST:PORT name an IPv4 address and port", "[listen_address]") {
    auto long_form = parsed("inet:192.0.2.7:24");
    CHECK(long_form.kind == ListenAddress::Kind::inet);
    CHECK(long_form.host == "192.0.2.7");
    CHECK(long_form.port == 24);
    CHECK(long_form.text == "inet:192.0.2.7:24");

    auto short_form = parsed("0.0.0.0:2525");
    CHECK(short_form.kind == ListenAddress::Kind::inet);
    CHECK(short_form.host == "0.0.0.0");
    CHECK(short_form.port == 2525);
    CHECK(short_form.text == "0.0.0.0:2525");

    CHECK(parsed("127.0.0.1:65535").port == 65535);
    CHECK(parsed("127.0.0.1:1").port == 1);
}

TEST_CASE("[IPV6]:PORT names an IPv6 address without its brackets", "[listen_address]") {
    auto loopback = parsed("[::1]:24");
    CHECK(loopback.kind == ListenAddress::Kind::inet);
    CHECK(loopback.host == "::1");
    CHECK(loopback.port == 24);

    auto long_form = parsed("inet:[2001:db8::25]:2424");
    CHECK(long_form.host == "2001:db8::25");
    CHECK(long_form.port == 2424);
}

TEST_CASE("localhost is read as 127.0.0.1", "[listen_address]") {
    CHECK(parsed("localhost:24").host == "127.0.0.1");
    CHECK(parsed("inet:localhost:24").host == "127.0.0.1");
    CHECK(parsed("localhost:24").text == "localhost:24");
}

TEST_CASE("A unix socket path that is relative, empty or 108 octets or longer is refused", "[listen_address]") {
    CHECK_FALSE(parse_listen_address("unix:run/lmtp"));
    CHECK_FALSE(parse_listen_address("unix:./lmtp"));
    CHECK_FALSE(parse_listen_address("unix:"));
    const std::string longest = "/" + std::string(106, 'x');  // 107 octets: fits sun_path with its NUL
    CHECK(parse_listen_address("unix:" + longest));
    CHECK_FALSE(parse_listen_address("unix:" + longest + "x"));
    CHECK_FALSE(parse_listen_address("unix:/" + std::string(300, 'x')));
}

TEST_CASE("A port of 0, above 65535, empty or not all digits is refused", "[listen_address]") {
    for (const char* text : {"127.0.0.1:0", "127.0.0.1:65536", "127.0.0.1:99999999999", "127.0.0.1:smtp",
                             "127.0.0.1:24x", "127.0.0.1:-24", "127.0.0.1:+24", "127.0.0.1: 24", "127.0.0.1:",
                             "[::1]:0", "[::1]:65536", "[::1]:lmtp", "[::1]:"}) {
        INFO(text);
        CHECK_FALSE(parse_listen_address(text));
    }
}

TEST_CASE("A host that is a name rather than a numeric address is refused (localhost aside)", "[listen_address]") {
    for (const char* text : {"mail.example.com:25", "inet:mail.example.com:25", "example:24", "[mail.example.com]:24",
                             "256.1.1.1:24", "[::g]:24"}) {
        INFO(text);
        CHECK_FALSE(parse_listen_address(text));
    }
}

TEST_CASE("An address without a port is refused", "[listen_address]") {
    for (const char* text : {"127.0.0.1", "inet:127.0.0.1", "localhost", "[::1]", "[::1]24", "[::1", ""}) {
        INFO(text);
        CHECK_FALSE(parse_listen_address(text));
    }
}

TEST_CASE("A unix listener's socket appears only once it listens: a client connects as soon as bind_listener returns",
          "[listen_address]") {
    TempDir tmp;
    const std::string path = tmp.path + "/lmtp";
    auto bound = bind_listener(parsed("unix:" + path));
    INFO((bound ? "" : bound.error().message()));
    REQUIRE(bound);
    CHECK(bound->address.path == path);
    CHECK(connects_unix(path));
    // Nothing but the socket itself is left in the folder (no name it was built under).
    CHECK(mailroom::test::names_in(tmp.path) == std::vector<std::string>{"lmtp"});
}

TEST_CASE("A unix listener's socket is mode 0666, so that any local user may hand over mail", "[listen_address]") {
    TempDir tmp;
    const std::string path = tmp.path + "/lmtp";
    const mode_t old_umask = ::umask(077);
    auto bound = bind_listener(parsed("unix:" + path));
    ::umask(old_umask);
    REQUIRE(bound);
    struct stat st {};
    REQUIRE(::lstat(path.c_str(), &st) == 0);
    CHECK(S_ISSOCK(st.st_mode));
    CHECK((st.st_mode & 07777) == 0666);
}

TEST_CASE("A listener's socket is non-blocking and close-on-exec", "[listen_address]") {
    TempDir tmp;
    auto bound = bind_listener(parsed("unix:" + tmp.path + "/lmtp"));
    REQUIRE(bound);
    const int fd = bound->socket.get();
    CHECK((::fcntl(fd, F_GETFL) & O_NONBLOCK) != 0);
    CHECK((::fcntl(fd, F_GETFD) & FD_CLOEXEC) != 0);
    int listening = 0;
    socklen_t length = sizeof listening;
    REQUIRE(::getsockopt(fd, SOL_SOCKET, SO_ACCEPTCONN, &listening, &length) == 0);
    CHECK(listening == 1);
}

TEST_CASE("A stale socket file left at the path is replaced by the new listener", "[listen_address]") {
    TempDir tmp;
    const std::string path = tmp.path + "/lmtp";
    leave_stale_socket(path);
    auto bound = bind_listener(parsed("unix:" + path));
    INFO((bound ? "" : bound.error().message()));
    REQUIRE(bound);
    CHECK(connects_unix(path));
    CHECK(mailroom::test::names_in(tmp.path) == std::vector<std::string>{"lmtp"});
}

TEST_CASE("A regular file at a unix listener's path is refused and left untouched", "[listen_address]") {
    TempDir tmp;
    const std::string path = tmp.write("lmtp", "not a socket\n");
    struct stat before {};
    REQUIRE(::lstat(path.c_str(), &before) == 0);
    auto bound = bind_listener(parsed("unix:" + path));
    CHECK_FALSE(bound);
    struct stat after {};
    REQUIRE(::lstat(path.c_str(), &after) == 0);
    CHECK(S_ISREG(after.st_mode));
    CHECK(after.st_ino == before.st_ino);
    CHECK(mailroom::test::slurp(path) == "not a socket\n");
    CHECK(mailroom::test::names_in(tmp.path) == std::vector<std::string>{"lmtp"});
}

TEST_CASE("A folder or a symbolic link at a unix listener's path is refused and left untouched", "[listen_address]") {
    TempDir tmp;
    const std::string folder = tmp.path + "/folder";
    REQUIRE(::mkdir(folder.c_str(), 0755) == 0);
    CHECK_FALSE(bind_listener(parsed("unix:" + folder)));
    struct stat st {};
    REQUIRE(::lstat(folder.c_str(), &st) == 0);
    CHECK(S_ISDIR(st.st_mode));

    // A link to a stale socket is still a link: replacing it would follow an attacker's name.
    const std::string target = tmp.path + "/target";
    leave_stale_socket(target);
    const std::string link = tmp.path + "/link";
    REQUIRE(::symlink(target.c_str(), link.c_str()) == 0);
    CHECK_FALSE(bind_listener(parsed("unix:" + link)));
    REQUIRE(::lstat(link.c_str(), &st) == 0);
    CHECK(S_ISLNK(st.st_mode));
}

TEST_CASE("Any unix socket path the parser accepts can be bound", "[listen_address]") {
    TempDir tmp;
    // 107 octets, the longest sun_path holds; the parser accepts it.
    std::string path = tmp.path + "/";
    path += std::string(107 - path.size(), 's');
    REQUIRE(path.size() == 107);
    auto bound = bind_listener(parsed("unix:" + path));
    INFO((bound ? "" : bound.error().message()));
    CHECK(bound);
    if (bound) CHECK(connects_unix(path));
}

TEST_CASE("A TCP listener on 127.0.0.1 accepts connections on its port once bound", "[listen_address]") {
    const uint16_t port = free_tcp_port();
    auto bound = bind_listener(parsed("127.0.0.1:" + std::to_string(port)));
    INFO((bound ? "" : bound.error().message()));
    REQUIRE(bound);
    sockaddr_in sin{};
    socklen_t length = sizeof sin;
    REQUIRE(::getsockname(bound->socket.get(), reinterpret_cast<sockaddr*>(&sin), &length) == 0);
    CHECK(sin.sin_family == AF_INET);
    CHECK(ntohs(sin.sin_port) == port);
    CHECK(ntohl(sin.sin_addr.s_addr) == INADDR_LOOPBACK);
    CHECK(connects_tcp4(port));
    CHECK((::fcntl(bound->socket.get(), F_GETFL) & O_NONBLOCK) != 0);
    CHECK((::fcntl(bound->socket.get(), F_GETFD) & FD_CLOEXEC) != 0);
}

TEST_CASE("A TCP port another socket already listens on is refused", "[listen_address]") {
    const uint16_t port = free_tcp_port();
    auto first = bind_listener(parsed("127.0.0.1:" + std::to_string(port)));
    REQUIRE(first);
    auto second = bind_listener(parsed("inet:127.0.0.1:" + std::to_string(port)));
    CHECK_FALSE(second);
}

TEST_CASE("A TCP listener on [::1] binds IPv6 only", "[listen_address]") {
    int probe = ::socket(AF_INET6, SOCK_STREAM | SOCK_CLOEXEC, 0);
    sockaddr_in6 any{};
    any.sin6_family = AF_INET6;
    any.sin6_addr = in6addr_loopback;
    const bool have_v6 = probe >= 0 && ::bind(probe, reinterpret_cast<sockaddr*>(&any), sizeof any) == 0;
    if (probe >= 0) ::close(probe);
    if (!have_v6) {
        WARN("skipped: no IPv6 loopback here");
        return;
    }
    const uint16_t port = free_tcp_port();
    auto bound = bind_listener(parsed("[::1]:" + std::to_string(port)));
    INFO((bound ? "" : bound.error().message()));
    REQUIRE(bound);
    sockaddr_in6 sin6{};
    socklen_t length = sizeof sin6;
    REQUIRE(::getsockname(bound->socket.get(), reinterpret_cast<sockaddr*>(&sin6), &length) == 0);
    CHECK(sin6.sin6_family == AF_INET6);
    CHECK(ntohs(sin6.sin6_port) == port);
    int v6only = 0;
    length = sizeof v6only;
    REQUIRE(::getsockopt(bound->socket.get(), IPPROTO_IPV6, IPV6_V6ONLY, &v6only, &length) == 0);
    CHECK(v6only == 1);
}
