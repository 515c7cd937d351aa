#include "net/session_server.hpp"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/basic_socket_acceptor.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/experimental/awaitable_operators.hpp>
#include <boost/asio/generic/stream_protocol.hpp>
#include <boost/asio/posix/stream_descriptor.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/asio/write.hpp>
#include <fmt/format.h>

namespace mailroom::net {

namespace asio = boost::asio;
using namespace boost::asio::experimental::awaitable_operators;
using Protocol = asio::generic::stream_protocol;

namespace {

constexpr size_t read_size = 64 * 1024;
constexpr auto tuple_awaitable = asio::as_tuple(asio::use_awaitable);

// The peer of an accepted socket, as Received: and the log name it. No DNS: the
// name is "localhost" for loopback and unix sockets, else "unknown" (Postfix's word
// for a client without a verified name).
smtp::ClientInfo client_of(int fd) {
    smtp::ClientInfo client;
    sockaddr_storage peer{};
    socklen_t length = sizeof peer;
    if (::getpeername(fd, reinterpret_cast<sockaddr*>(&peer), &length) != 0) return client;
    char text[INET6_ADDRSTRLEN] = "";
    if (peer.ss_family == AF_INET) {
        auto* v4 = reinterpret_cast<sockaddr_in*>(&peer);
        ::inet_ntop(AF_INET, &v4->sin_addr, text, sizeof text);
        client.name = (ntohl(v4->sin_addr.s_addr) >> 24) == 127 ? "localhost" : "unknown";
    } else if (peer.ss_family == AF_INET6) {
        auto* v6 = reinterpret_cast<sockaddr_in6*>(&peer);
        ::inet_ntop(AF_INET6, &v6->sin6_addr, text, sizeof text);
        client.name = IN6_IS_ADDR_LOOPBACK(&v6->sin6_addr) ? "localhost" : "unknown";
    }
    client.address = text;
    return client;
}

std::string peer_text(const smtp::ClientInfo& client) {
    return client.address.empty() ? client.name : fmt::format("{}[{}]", client.name, client.address);
}

}  // namespace

struct SessionServer::Acceptor {
    Acceptor(asio::io_context& io, BoundListener bound, int family)
        : address(std::move(bound.address)), socket(io, Protocol(family, SOCK_STREAM), bound.socket.release()) {}
    ListenAddress address;
    asio::basic_socket_acceptor<Protocol> socket;
};

// What stop() needs of a running session: its clock, to end an idle wait at once.
struct SessionServer::Live {
    explicit Live(asio::io_context& io) : timer(io) {}
    asio::steady_timer timer;
    const smtp::Session* session = nullptr;
};

SessionServer::SessionServer(asio::io_context& io, ServerSettings settings, SessionHandler& handler,
                             const core::Logger& log, const core::Clock& clock)
    : io_(io), settings_(std::move(settings)), handler_(handler), log_(log), clock_(clock), read_buffer_(read_size) {}

SessionServer::~SessionServer() = default;

void SessionServer::listen(BoundListener listener) {
    sockaddr_storage local{};
    socklen_t length = sizeof local;
    ::getsockname(listener.socket.get(), reinterpret_cast<sockaddr*>(&local), &length);
    auto acceptor = std::make_shared<Acceptor>(io_, std::move(listener), local.ss_family);
    acceptors_.push_back(acceptor);
    asio::co_spawn(io_, accept_loop(acceptor), asio::detached);
}

asio::awaitable<void> SessionServer::accept_loop(std::shared_ptr<Acceptor> acceptor) {
    while (!stopping_) {
        auto [ec, socket] = co_await acceptor->socket.async_accept(tuple_awaitable);
        if (ec == asio::error::operation_aborted || stopping_) break;
        if (ec) {
            // EMFILE and the like: wait a little rather than spin.
            log_.warning(fmt::format("accept on {}: {}", acceptor->address.text, ec.message()));
            asio::steady_timer pause(io_, std::chrono::milliseconds(100));
            co_await pause.async_wait(tuple_awaitable);
            continue;
        }
        auto client = client_of(socket.native_handle());
        if (live_.size() >= settings_.max_sessions) {
            log_.warning(fmt::format("too many sessions ({}), refused {}", live_.size(), peer_text(client)));
            static const char busy[] = "421 4.3.2 Too many sessions, try again later\r\n";
            ::send(socket.native_handle(), busy, sizeof busy - 1, MSG_DONTWAIT | MSG_NOSIGNAL);
            continue;
        }
        auto live = std::make_shared<Live>(io_);
        live_.push_back(live);
        asio::co_spawn(io_, run_socket(std::make_shared<Protocol::socket>(std::move(socket)), client, live),
                       asio::detached);
    }
}

void SessionServer::serve_stdio() {
    auto in = std::make_shared<asio::posix::stream_descriptor>(io_, ::dup(STDIN_FILENO));
    auto out = std::make_shared<asio::posix::stream_descriptor>(io_, ::dup(STDOUT_FILENO));
    auto live = std::make_shared<Live>(io_);
    live_.push_back(live);
    smtp::ClientInfo client = client_of(STDIN_FILENO);
    asio::co_spawn(io_, run_stdio(in, out, client, live), asio::detached);
}

// The coroutines own what their session uses: their parameters live in their frames.
asio::awaitable<void> SessionServer::run_socket(std::shared_ptr<Protocol::socket> socket, smtp::ClientInfo client,
                                                std::shared_ptr<Live> live) {
    co_await run(*socket, *socket, std::move(client), std::move(live));
}

asio::awaitable<void> SessionServer::run_stdio(std::shared_ptr<asio::posix::stream_descriptor> in,
                                               std::shared_ptr<asio::posix::stream_descriptor> out,
                                               smtp::ClientInfo client, std::shared_ptr<Live> live) {
    co_await run(*in, *out, std::move(client), std::move(live));
    stop();
}

void SessionServer::stop() {
    if (stopping_) return;
    stopping_ = true;
    for (auto& acceptor : acceptors_) {
        boost::system::error_code ignored;
        acceptor->socket.close(ignored);
    }
    acceptors_.clear();
    // A session between transactions ends now; one in a transaction sees stopping_
    // when it is done.
    for (auto& live : live_) {
        if (live->session && live->session->idle()) live->timer.cancel();
    }
    drained_if_done();
}

void SessionServer::drained_if_done() {
    if (!stopping_ || !live_.empty() || !drained_) return;
    auto drained = std::move(drained_);
    drained_ = nullptr;
    drained();
}

template <class In, class Out>
asio::awaitable<void> SessionServer::run(In& in, Out& out, smtp::ClientInfo client, std::shared_ptr<Live> live) {
    log_.info("connect from " + peer_text(client));
    auto door = handler_.open_door(client);
    smtp::Session session(settings_.session, client, *door, clock_);
    live->session = &session;
    std::string replies = session.greeting();
    std::string pending;

    // Writes what the session said; false when the client is gone or too slow.
    auto flush = [&]() -> asio::awaitable<bool> {
        if (replies.empty()) co_return true;
        live->timer.expires_after(settings_.timeout);
        auto done = co_await (asio::async_write(out, asio::buffer(replies), tuple_awaitable) ||
                              live->timer.async_wait(tuple_awaitable));
        if (replies.capacity() > 4096) std::string().swap(replies);
        replies.clear();
        co_return done.index() == 0 && !std::get<0>(std::get<0>(done));
    };

    bool open = co_await flush();
    while (open) {
        if (stopping_ && session.idle() && pending.empty()) {
            session.shutting_down(replies);
            co_await flush();
            break;
        }
        live->timer.expires_after(settings_.timeout);
        // Wait for bytes without a buffer of its own, then read them into the
        // server's one: an idle session holds no read buffer (1000 of them would
        // hold 64 MB).
        auto got = co_await (in.async_wait(In::wait_read, tuple_awaitable) || live->timer.async_wait(tuple_awaitable));
        if (got.index() == 1) {
            // The timer: the idle timeout, or stop() ending an idle session.
            if (stopping_ && session.idle()) {
                session.shutting_down(replies);
            } else {
                session.timed_out(replies);
                log_.info("timeout after " + std::string(session.idle() ? "END-OF-MESSAGE" : "DATA") + " from " +
                          peer_text(client));
            }
            co_await flush();
            break;
        }
        boost::system::error_code ec = std::get<0>(std::get<0>(got));
        size_t n = ec ? 0 : in.read_some(asio::buffer(read_buffer_), ec);
        if (ec == asio::error::would_block || ec == asio::error::try_again) continue;
        if (ec || n == 0) break;  // EOF or reset: the client is gone
        pending.append(read_buffer_.data(), n);
        std::string_view view(pending);
        bool close = false;
        for (;;) {
            auto progress = session.feed(view, replies);
            view.remove_prefix(progress.consumed);
            if (progress.next == smtp::Session::Next::close) {
                close = true;
                break;
            }
            if (progress.next == smtp::Session::Next::read) break;
            // The data has ended: replies so far go out first, then the commit.
            auto outcomes = co_await door->commit(session.transaction());
            session.committed(outcomes, replies);
        }
        pending.erase(0, pending.size() - view.size());
        // What a burst made room for is given back: idle sessions stay small.
        if (pending.empty()) std::string().swap(pending);
        open = co_await flush() && !close;
    }
    door->abort();
    live->session = nullptr;
    live_.remove(live);
    log_.info("disconnect from " + peer_text(client));
    drained_if_done();
}

}  // namespace mailroom::net
