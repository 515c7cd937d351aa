#include "net/session_server.hpp"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <string.h>
#include <unistd.h>

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/basic_socket_acceptor.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/experimental/awaitable_operators.hpp>
#include <boost/asio/generic/stream_protocol.hpp>
#include <boost/asio/posix/stream_descriptor.hpp>
#include <boost/asio/ssl/stream.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/asio/write.hpp>
#include <fmt/format.h>

#include "net/tls_server.hpp"

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

}  // namespace

struct SessionServer::Acceptor {
    Acceptor(asio::io_context& io, BoundListener bound, int family, ListenerRole role)
        : role(role), address(std::move(bound.address)), socket(io, Protocol(family, SOCK_STREAM), bound.socket.release()) {}
    ListenerRole role;
    ListenAddress address;
    asio::basic_socket_acceptor<Protocol> socket;
};

// What stop() needs of a running session: its clock, to end an idle wait at once.
struct SessionServer::Live {
    explicit Live(asio::io_context& io) : timer(io) {}
    asio::steady_timer timer;
    const smtp::Session* session = nullptr;
};

// One connection's dialogue, whichever stream it is on at the moment (STARTTLS
// moves it from the socket to the TLS stream over it).
struct SessionServer::Conversation {
    smtp::ClientInfo client;
    std::shared_ptr<Live> live;
    smtp::SessionSettings settings;
    std::unique_ptr<CommittingDoor> door;
    std::unique_ptr<smtp::Session> session;
    std::string replies;
    std::string pending;
    std::vector<char> tls_buffer;  // a TLS session reads into its own (the shared one needs a readiness wait)
};

asio::awaitable<smtp::AuthVerdict> SessionHandler::check_password(const smtp::ClientInfo&, const std::string&,
                                                                 std::string& password) {
    ::explicit_bzero(password.data(), password.size());
    co_return smtp::AuthVerdict::unavailable;
}

SessionServer::SessionServer(asio::io_context& io, ServerSettings settings, SessionHandler& handler,
                             const core::Logger& log, const core::Clock& clock)
    : io_(io), settings_(std::move(settings)), handler_(handler), log_(log), clock_(clock), read_buffer_(read_size) {}

SessionServer::~SessionServer() = default;

void SessionServer::listen(BoundListener listener, ListenerRole role) {
    sockaddr_storage local{};
    socklen_t length = sizeof local;
    ::getsockname(listener.socket.get(), reinterpret_cast<sockaddr*>(&local), &length);
    auto acceptor = std::make_shared<Acceptor>(io_, std::move(listener), local.ss_family, role);
    acceptors_.push_back(acceptor);
    asio::co_spawn(io_, accept_loop(acceptor), asio::detached);
}

smtp::SessionSettings SessionServer::settings_for(ListenerRole role) const {
    smtp::SessionSettings session = settings_.session;
    session.auth_required = session.auth_required || role.submission;
    // STARTTLS is offered where TLS is not on from the start.
    session.tls_offered = settings_.tls != nullptr && !role.implicit_tls;
    return session;
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
            log_.warning(fmt::format("too many sessions ({}), refused {}", live_.size(), client.logged()));
            static const char busy[] = "421 4.3.2 Too many sessions, try again later\r\n";
            ::send(socket.native_handle(), busy, sizeof busy - 1, MSG_DONTWAIT | MSG_NOSIGNAL);
            continue;
        }
        auto live = std::make_shared<Live>(io_);
        live_.push_back(live);
        asio::co_spawn(io_,
                       run_socket(std::make_shared<Protocol::socket>(std::move(socket)), client, live, acceptor->role),
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

void SessionServer::begin(Conversation& talk) {
    log_.info("connect from " + talk.client.logged());
    talk.door = handler_.open_door(talk.client);
    talk.session = std::make_unique<smtp::Session>(talk.settings, talk.client, *talk.door, clock_);
    talk.live->session = talk.session.get();
}

void SessionServer::end(Conversation& talk) {
    talk.door->abort();
    talk.live->session = nullptr;
    live_.remove(talk.live);
    log_.info("disconnect from " + talk.client.logged());
    drained_if_done();
}

// The coroutines own what their session uses: their parameters live in their frames.
asio::awaitable<void> SessionServer::run_socket(std::shared_ptr<Protocol::socket> socket, smtp::ClientInfo client,
                                                std::shared_ptr<Live> live, ListenerRole role) {
    Conversation talk{std::move(client), std::move(live), settings_for(role), nullptr, nullptr, {}, {}, {}};
    begin(talk);
    if (role.implicit_tls && settings_.tls) {
        asio::ssl::stream<Protocol::socket&> tls(*socket, *settings_.tls);
        if (co_await handshake(tls, talk)) {
            talk.replies = talk.session->greeting();
            if (co_await flush(tls, talk) && !talk.session->closed()) co_await converse(tls, tls, talk);
        }
    } else {
        talk.replies = talk.session->greeting();
        Ending ending = Ending::closed;
        if (co_await flush(*socket, talk) && !talk.session->closed()) ending = co_await converse(*socket, *socket, talk);
        if (ending == Ending::starttls && settings_.tls) {
            asio::ssl::stream<Protocol::socket&> tls(*socket, *settings_.tls);
            if (co_await handshake(tls, talk)) co_await converse(tls, tls, talk);
        }
    }
    end(talk);
}

asio::awaitable<void> SessionServer::run_stdio(std::shared_ptr<asio::posix::stream_descriptor> in,
                                               std::shared_ptr<asio::posix::stream_descriptor> out,
                                               smtp::ClientInfo client, std::shared_ptr<Live> live) {
    smtp::SessionSettings session = settings_.session;
    session.tls_offered = false;
    Conversation talk{std::move(client), std::move(live), std::move(session), nullptr, nullptr, {}, {}, {}};
    begin(talk);
    talk.replies = talk.session->greeting();
    if (co_await flush(*out, talk) && !talk.session->closed()) co_await converse(*in, *out, talk);
    end(talk);
    stop();
}

template <class Stream>
asio::awaitable<bool> SessionServer::handshake(Stream& tls, Conversation& talk) {
    talk.live->timer.expires_after(settings_.timeout);
    auto done = co_await (tls.async_handshake(asio::ssl::stream_base::server, tuple_awaitable) ||
                          talk.live->timer.async_wait(tuple_awaitable));
    if (done.index() == 1) {
        log_.info("timeout during TLS handshake from " + talk.client.logged());
        co_return false;
    }
    if (auto ec = std::get<0>(std::get<0>(done))) {
        log_.info(fmt::format("SSL_accept error from {}: {}", talk.client.logged(), ec.message()));
        co_return false;
    }
    auto facts = tls_facts_of(tls.native_handle());
    log_.info(fmt::format("Anonymous TLS connection established from {}: {} with cipher {} ({}/{} bits)",
                          talk.client.logged(), facts.protocol, facts.cipher, facts.bits, facts.bits));
    talk.session->tls_started(std::move(facts));
    talk.tls_buffer.resize(16 * 1024);
    co_return true;
}

// Writes what the session said; false when the client is gone or too slow.
template <class Out>
asio::awaitable<bool> SessionServer::flush(Out& out, Conversation& talk) {
    if (talk.replies.empty()) co_return true;
    talk.live->timer.expires_after(settings_.timeout);
    auto done = co_await (asio::async_write(out, asio::buffer(talk.replies), tuple_awaitable) ||
                          talk.live->timer.async_wait(tuple_awaitable));
    if (talk.replies.capacity() > 4096) std::string().swap(talk.replies);
    talk.replies.clear();
    co_return done.index() == 0 && !std::get<0>(std::get<0>(done));
}

template <class In, class Out>
asio::awaitable<SessionServer::Ending> SessionServer::converse(In& in, Out& out, Conversation& talk) {
    constexpr bool is_tls = !std::is_same_v<In, asio::posix::stream_descriptor> && !std::is_same_v<In, Protocol::socket>;
    smtp::Session& session = *talk.session;
    std::string& pending = talk.pending;
    Live& live = *talk.live;
    for (;;) {
        if (stopping_ && session.idle() && pending.empty()) {
            session.shutting_down(talk.replies);
            co_await flush(out, talk);
            co_return Ending::closed;
        }
        live.timer.expires_after(settings_.timeout);
        boost::system::error_code ec;
        size_t n = 0;
        bool timed_out = false;
        if constexpr (is_tls) {
            // OpenSSL may hold decrypted bytes the socket no longer shows: read
            // through the stream, into the session's own buffer.
            auto got = co_await (in.async_read_some(asio::buffer(talk.tls_buffer), tuple_awaitable) ||
                                 live.timer.async_wait(tuple_awaitable));
            timed_out = got.index() == 1;
            if (!timed_out) std::tie(ec, n) = std::get<0>(got);
            if (!ec && n > 0) pending.append(talk.tls_buffer.data(), n);
        } else {
            // Wait for bytes without a buffer of its own, then read them into the
            // server's one: an idle session holds no read buffer (1000 of them would
            // hold 64 MB).
            auto got = co_await (in.async_wait(In::wait_read, tuple_awaitable) || live.timer.async_wait(tuple_awaitable));
            timed_out = got.index() == 1;
            if (!timed_out) {
                ec = std::get<0>(std::get<0>(got));
                n = ec ? 0 : in.read_some(asio::buffer(read_buffer_), ec);
                if (ec == asio::error::would_block || ec == asio::error::try_again) continue;
                if (!ec && n > 0) pending.append(read_buffer_.data(), n);
            }
        }
        if (timed_out) {
            // The timer: the idle timeout, or stop() ending an idle session.
            if (stopping_ && session.idle()) {
                session.shutting_down(talk.replies);
            } else {
                session.timed_out(talk.replies);
                log_.info("timeout after " + session.last_command() + " from " + talk.client.logged());
            }
            co_await flush(out, talk);
            co_return Ending::closed;
        }
        if (ec || n == 0) co_return Ending::closed;  // EOF or reset: the client is gone
        std::string_view view(pending);
        bool close = false;
        bool starttls = false;
        for (;;) {
            auto progress = session.feed(view, talk.replies);
            view.remove_prefix(progress.consumed);
            if (progress.next == smtp::Session::Next::close) {
                close = true;
                break;
            }
            if (progress.next == smtp::Session::Next::read) break;
            if (progress.next == smtp::Session::Next::starttls) {
                // The session refused STARTTLS when more followed it; anything
                // here now is not the client's to say in the clear.
                starttls = view.empty();
                close = !starttls;
                break;
            }
            if (progress.next == smtp::Session::Next::authenticate) {
                auto [user, password] = session.take_credentials();
                auto verdict = co_await handler_.check_password(talk.client, user, password);
                ::explicit_bzero(password.data(), password.size());
                if (verdict == smtp::AuthVerdict::refused) {
                    log_.warning(fmt::format("{}: SASL authentication failed", talk.client.logged()));
                    asio::steady_timer slow(io_, settings_.auth_failure_delay * (session.auth_failures() + 1));
                    co_await slow.async_wait(tuple_awaitable);
                }
                session.authenticated(verdict, talk.replies, user);
                continue;
            }
            // The data has ended: replies so far go out first, then the commit.
            auto outcomes = co_await talk.door->commit(session.transaction());
            session.committed(outcomes, talk.replies);
        }
        pending.erase(0, pending.size() - view.size());
        // What a burst made room for is given back: idle sessions stay small.
        if (pending.empty()) std::string().swap(pending);
        bool open = co_await flush(out, talk) && !close;
        if (!open) co_return Ending::closed;
        if (starttls) co_return Ending::starttls;
    }
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

}  // namespace mailroom::net
