// SessionServer: runs smtp::Session dialogues over sockets (lmtpd's listeners) or
// over standard input and output (`lmtpd -i`), in one thread with Asio coroutines.
//
// Each connection gets a Session and a door from the handler. Bytes read (at most
// 64 KiB at a time, into one buffer all sessions share: the loop has one thread)
// are fed to the session; its replies are written when it wants
// more input, so a pipelining client gets a batch of replies at once. When the data
// has ended the door commits (it may take its time: other sessions go on) and the
// session answers. Every read and write has the idle timeout (smtpd_timeout): then
// 421 and the connection closes. Past `max_sessions` a new connection is answered
// 421 and closed at once. stop() (SIGTERM) closes the listeners; a session between
// transactions is answered 421 and closed, one in a transaction finishes it first.
// EOF and cancellation are normal ends, never errors.
// Must never: hold more than one read buffer and one line per session, or let one
// session's wait stall another.
#pragma once

#include <chrono>
#include <functional>
#include <cstddef>
#include <list>
#include <memory>
#include <vector>

#include <boost/asio/awaitable.hpp>
#include <boost/asio/generic/stream_protocol.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/posix/stream_descriptor.hpp>
#include <boost/asio/ssl/context.hpp>

#include "core/clock.hpp"
#include "core/log.hpp"
#include "net/listen_address.hpp"
#include "smtp/session.hpp"

namespace mailroom::net {

// A door that can commit: what the server's sessions hand their transactions to.
class CommittingDoor : public smtp::Door {
public:
    // SMTP: one Status; LMTP: one per accepted recipient, in order.
    virtual boost::asio::awaitable<std::vector<mail::Status>> commit(const smtp::Transaction& transaction) = 0;
};

class SessionHandler {
public:
    virtual ~SessionHandler() = default;
    virtual std::unique_ptr<CommittingDoor> open_door(const smtp::ClientInfo& client) = 0;
    // AUTH: is this the user's password? Only asked when the session settings offer
    // AUTH. The password is the handler's to wipe.
    virtual boost::asio::awaitable<smtp::AuthVerdict> check_password(const smtp::ClientInfo& client, const std::string& user,
                                                                     std::string& password);
};

struct ServerSettings {
    smtp::SessionSettings session;
    std::chrono::seconds timeout{300};  // smtpd_timeout
    size_t max_sessions = 1000;
    // STARTTLS and implicit-TLS listeners; none: neither is possible.
    std::shared_ptr<boost::asio::ssl::context> tls;
    // A failed AUTH is answered this long times the session's failures later, so a
    // guesser gets a few tries a minute; other sessions are not held up.
    std::chrono::milliseconds auth_failure_delay{1000};
};

// What kind of port a listener is: the same dialogue with its own settings.
struct ListenerRole {
    bool implicit_tls = false;  // smtps: the handshake comes before the greeting
    bool submission = false;    // AUTH required before MAIL
};

class SessionServer {
public:
    SessionServer(boost::asio::io_context& io, ServerSettings settings, SessionHandler& handler,
                  const core::Logger& log, const core::Clock& clock);
    ~SessionServer();

    // Accepts connections on `listener` until stop().
    void listen(BoundListener listener, ListenerRole role = {});
    // One session on descriptors 0 and 1 (inetd style); the server stops after it.
    void serve_stdio();
    void stop();
    // New sessions get these access rules (SIGHUP); running ones keep theirs.
    void replace_gatekeeper(std::shared_ptr<const smtp::Gatekeeper> gatekeeper) {
        settings_.session.gatekeeper = std::move(gatekeeper);
    }
    // Called once, when the server has stopped and its last session has ended.
    void on_drained(std::function<void()> drained) { drained_ = std::move(drained); }
    size_t sessions() const { return live_.size(); }
    bool stopped() const { return stopping_; }

    SessionServer(const SessionServer&) = delete;
    SessionServer& operator=(const SessionServer&) = delete;

private:
    struct Live;
    struct Acceptor;
    struct Conversation;
    enum class Ending { closed, starttls };
    boost::asio::awaitable<void> accept_loop(std::shared_ptr<Acceptor> acceptor);
    boost::asio::awaitable<void> run_socket(std::shared_ptr<boost::asio::generic::stream_protocol::socket> socket,
                                            smtp::ClientInfo client, std::shared_ptr<Live> live, ListenerRole role);
    boost::asio::awaitable<void> run_stdio(std::shared_ptr<boost::asio::posix::stream_descriptor> in,
                                           std::shared_ptr<boost::asio::posix::stream_descriptor> out,
                                           smtp::ClientInfo client, std::shared_ptr<Live> live);
    template <class In, class Out>
    boost::asio::awaitable<Ending> converse(In& in, Out& out, Conversation& talk);
    template <class Stream>
    boost::asio::awaitable<bool> handshake(Stream& tls, Conversation& talk);
    template <class Out>
    boost::asio::awaitable<bool> flush(Out& out, Conversation& talk);
    smtp::SessionSettings settings_for(ListenerRole role) const;
    void begin(Conversation& talk);
    void end(Conversation& talk);

    boost::asio::io_context& io_;
    ServerSettings settings_;
    SessionHandler& handler_;
    const core::Logger& log_;
    const core::Clock& clock_;
    bool stopping_ = false;
    std::list<std::shared_ptr<Acceptor>> acceptors_;
    std::list<std::shared_ptr<Live>> live_;
    std::vector<char> read_buffer_;
    std::function<void()> drained_;
    void drained_if_done();  // shared: a session reads only once it is woken
};

}  // namespace mailroom::net
