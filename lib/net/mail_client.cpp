#include "net/mail_client.hpp"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/un.h>

#include <algorithm>
#include <cstring>
#include <tuple>
#include <variant>

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/experimental/awaitable_operators.hpp>
#include <boost/asio/generic/stream_protocol.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ssl/stream.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/asio/write.hpp>
#include <fmt/format.h>

#include "net/tls_client.hpp"
#include "queue/queue_entry.hpp"
#include "smtp/reply.hpp"

// g++ 12 warns wrongly about the coroutine frames' own operator delete
// in awaitable<optional<T>> (a false positive: Asio allocates and frees them).
#pragma GCC diagnostic ignored "-Wmismatched-new-delete"

namespace mailroom::net {

namespace asio = boost::asio;
using namespace boost::asio::experimental::awaitable_operators;
using mail::Status;
using Protocol = asio::generic::stream_protocol;

namespace {

constexpr auto tuple_awaitable = asio::as_tuple(asio::use_awaitable);
constexpr size_t max_reply_line = 4096;
constexpr size_t max_reply_lines = 1000;
// As Postfix's smtp_connect_timeout: a host that drops SYNs costs this, not the kernel's minutes.
constexpr std::chrono::seconds connect_timeout{30};

struct Reply {
    int code = 0;
    std::string text;  // the last line's text, enhanced code included
    std::vector<std::string> lines;

    ReplyLines brief() const { return ReplyLines{code, text}; }
};

// The message as it goes after DATA: CRLF line ends, a dot doubled at a line's start,
// a last line without LF ended, then ".".
class DotStuffer {
public:
    std::string feed(std::string_view text) {
        std::string out;
        out.reserve(text.size() + text.size() / 32 + 8);
        for (char c : text) {
            if (at_line_start_ && c == '.') out.push_back('.');
            if (c == '\n') out.push_back('\r');
            out.push_back(c);
            at_line_start_ = c == '\n';
        }
        return out;
    }
    std::string finish() const { return at_line_start_ ? ".\r\n" : "\r\n.\r\n"; }

private:
    bool at_line_start_ = true;
};

bool needs_utf8(std::string_view text) {
    return std::any_of(text.begin(), text.end(), [](char c) { return static_cast<unsigned char>(c) >= 0x80; });
}

std::string base64(std::string_view in) {
    static constexpr char digits[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    std::string out;
    for (size_t i = 0; i < in.size(); i += 3) {
        uint32_t n = static_cast<uint32_t>(static_cast<unsigned char>(in[i])) << 16;
        if (i + 1 < in.size()) n |= static_cast<uint32_t>(static_cast<unsigned char>(in[i + 1])) << 8;
        if (i + 2 < in.size()) n |= static_cast<uint32_t>(static_cast<unsigned char>(in[i + 2]));
        out += digits[(n >> 18) & 63];
        out += digits[(n >> 12) & 63];
        out += i + 1 < in.size() ? digits[(n >> 6) & 63] : '=';
        out += i + 2 < in.size() ? digits[n & 63] : '=';
    }
    return out;
}

std::string upper(std::string word) {
    for (auto& ch : word) ch = static_cast<char>(std::toupper(static_cast<unsigned char>(ch)));
    return word;
}

}  // namespace

mail::Status status_of_reply(const ReplyLines& reply, const std::string& relay, std::string_view command) {
    const int cls = reply.code / 100;
    // A success is logged as the reply alone ("250 2.0.0 Ok: queued as 4XyZ"), a
    // refusal with who said it in reply to what: both as Postfix's smtp and lmtp.
    std::string text = cls == 2 ? fmt::format("{} {}", reply.code, smtp::reply_text(reply.text, 300))
                                : fmt::format("host {} said: {} {} (in reply to {})", relay, reply.code,
                                              smtp::reply_text(reply.text, 300), command);
    std::string code = cls == 2 ? "2.0.0" : cls == 4 ? "4.0.0" : "5.0.0";
    if (reply.text.size() >= 5 && reply.text[0] - '0' == cls && reply.text[1] == '.') {
        size_t end = reply.text.find(' ');
        std::string given = reply.text.substr(0, end);
        if (given.find_first_not_of("0123456789.") == std::string::npos && given.size() <= 11) code = given;
    }
    if (cls == 2) return Status::ok(text, code);
    if (cls == 4) return Status::temp(code, text);
    return Status::perm(code, text);
}

SocketAddress SocketAddress::unix_path(const std::string& path) {
    SocketAddress address;
    sockaddr_un sun{};
    sun.sun_family = AF_UNIX;
    std::memcpy(sun.sun_path, path.c_str(), std::min(path.size() + 1, sizeof sun.sun_path));
    sun.sun_path[sizeof sun.sun_path - 1] = '\0';
    std::memcpy(&address.storage, &sun, sizeof sun);
    address.length = sizeof sun;
    return address;
}

std::optional<SocketAddress> SocketAddress::numeric(const std::string& text, uint16_t port) {
    SocketAddress address;
    sockaddr_in in4{};
    if (::inet_pton(AF_INET, text.c_str(), &in4.sin_addr) == 1) {
        in4.sin_family = AF_INET;
        in4.sin_port = htons(port);
        std::memcpy(&address.storage, &in4, sizeof in4);
        address.length = sizeof in4;
        return address;
    }
    sockaddr_in6 in6{};
    if (::inet_pton(AF_INET6, text.c_str(), &in6.sin6_addr) == 1) {
        in6.sin6_family = AF_INET6;
        in6.sin6_port = htons(port);
        std::memcpy(&address.storage, &in6, sizeof in6);
        address.length = sizeof in6;
        return address;
    }
    return std::nullopt;
}

bool SocketAddress::is_loopback() const {
    if (family() == AF_UNIX) return true;
    if (family() == AF_INET) {
        sockaddr_in in4;
        std::memcpy(&in4, &storage, sizeof in4);
        return (ntohl(in4.sin_addr.s_addr) >> 24) == 127;
    }
    if (family() == AF_INET6) {
        sockaddr_in6 in6;
        std::memcpy(&in6, &storage, sizeof in6);
        return IN6_IS_ADDR_LOOPBACK(&in6.sin6_addr) != 0;
    }
    return false;
}

// One connection and what the server offered on it. Every read and write waits at
// most `timeout`; a failure of either sets `failure` and makes the connection broken.
struct MailClient::Connection {
    explicit Connection(std::chrono::seconds t) : timeout(t) {}

    asio::io_context io;
    Protocol::socket socket{io};
    // After STARTTLS every read and write goes through it (declared after the socket
    // it refers to, so destroyed before it).
    std::unique_ptr<asio::ssl::stream<Protocol::socket&>> tls;
    asio::steady_timer timer{io};
    std::chrono::seconds timeout;
    std::string input;  // read but not yet taken
    bool pipelining = false, dsn = false, smtputf8 = false, size = false, starttls = false;
    bool auth = false, auth_plain = false, auth_login = false;
    bool used = false;    // carried a transaction: the next one begins with RSET
    bool broken = false;  // must not carry another transaction
    std::string failure;

    // Runs a dialogue step to its end in this thread.
    template <class Body>
    void run(Body& body) {
        std::exception_ptr failed;
        asio::co_spawn(io, body(), [&](std::exception_ptr e) { failed = e; });
        io.restart();
        io.run();
        if (failed) {
            broken = true;
            if (failure.empty()) failure = "internal error";
        }
    }

    asio::awaitable<bool> connect(const SocketAddress& address) {
        boost::system::error_code ec;
        // (generic::stream_protocol's second argument is the protocol number: 0, the
        // family's own stream protocol; SOCK_STREAM there would ask AF_INET for ICMP.)
        socket.open(Protocol(address.family(), 0), ec);
        if (ec) {
            failure = ec.message();
            co_return false;
        }
        timer.expires_after(std::min(timeout, connect_timeout));
        auto done = co_await (socket.async_connect(Protocol::endpoint(&address.storage, address.length), tuple_awaitable) ||
                              timer.async_wait(tuple_awaitable));
        if (done.index() != 0) {
            failure = "Connection timed out";
            co_return false;
        }
        if (auto [connect_ec] = std::get<0>(done); connect_ec) {
            failure = connect_ec.message();
            co_return false;
        }
        co_return true;
    }

    asio::awaitable<bool> send(std::string_view text) {
        timer.expires_after(timeout);
        // (Two statements, not ?: with co_await in it: g++ 12 miscompiles that.)
        std::variant<std::tuple<boost::system::error_code, size_t>, std::tuple<boost::system::error_code>> done;
        if (tls)
            done = co_await (asio::async_write(*tls, asio::buffer(text.data(), text.size()), tuple_awaitable) ||
                             timer.async_wait(tuple_awaitable));
        else
            done = co_await (asio::async_write(socket, asio::buffer(text.data(), text.size()), tuple_awaitable) ||
                             timer.async_wait(tuple_awaitable));
        if (done.index() != 0 || std::get<0>(std::get<0>(done))) {
            failure = done.index() != 0 ? "timeout" : "write error";
            broken = true;
            co_return false;
        }
        co_return true;
    }

    // One reply (every line of a multi-line one); nothing when the server is gone,
    // too slow, or speaks no SMTP.
    asio::awaitable<std::optional<Reply>> reply() {
        Reply reply;
        for (;;) {
            size_t end;
            while ((end = input.find("\r\n")) == std::string::npos) {
                if (input.size() > max_reply_line) co_return malformed("reply line too long");
                char chunk[4096];
                timer.expires_after(timeout);
                std::variant<std::tuple<boost::system::error_code, size_t>, std::tuple<boost::system::error_code>> got;
                if (tls)
                    got = co_await (tls->async_read_some(asio::buffer(chunk), tuple_awaitable) ||
                                    timer.async_wait(tuple_awaitable));
                else
                    got = co_await (socket.async_read_some(asio::buffer(chunk), tuple_awaitable) ||
                                    timer.async_wait(tuple_awaitable));
                if (got.index() != 0) co_return malformed("timeout");
                auto [ec, n] = std::get<0>(got);
                if (ec || n == 0) co_return malformed("lost connection");
                input.append(chunk, n);
            }
            std::string line = input.substr(0, end);
            input.erase(0, end + 2);
            if (line.size() < 3 || line[0] < '2' || line[0] > '5' || !std::isdigit(static_cast<unsigned char>(line[1])) ||
                !std::isdigit(static_cast<unsigned char>(line[2])) || (line.size() > 3 && line[3] != ' ' && line[3] != '-'))
                co_return malformed("malformed reply");
            int code = std::stoi(line.substr(0, 3));
            if (reply.code != 0 && code != reply.code) co_return malformed("reply codes differ within a reply");
            reply.code = code;
            reply.text = line.size() > 4 ? line.substr(4) : "";
            reply.lines.push_back(reply.text);
            if (reply.lines.size() > max_reply_lines) co_return malformed("reply too long");
            if (line.size() == 3 || line[3] == ' ') co_return reply;
        }
    }

    std::optional<Reply> malformed(std::string what) {
        failure = std::move(what);
        broken = true;
        return std::nullopt;
    }

    void take_extensions(const Reply& hello) {
        pipelining = dsn = smtputf8 = size = starttls = auth = auth_plain = auth_login = false;
        for (size_t i = 1; i < hello.lines.size(); ++i) {
            std::string line = upper(hello.lines[i]);
            std::string word = line.substr(0, line.find_first_of(" ="));
            if (word == "PIPELINING") pipelining = true;
            if (word == "DSN") dsn = true;
            if (word == "SMTPUTF8") smtputf8 = true;
            if (word == "SIZE") size = true;
            if (word == "STARTTLS") starttls = true;
            if (word == "AUTH") {
                // "AUTH PLAIN LOGIN", or the old "AUTH=PLAIN LOGIN".
                auth = true;
                std::string mechanisms = " " + line.substr(word.size() + 1) + " ";
                for (auto& ch : mechanisms) ch = ch == '\t' ? ' ' : ch;
                auth_plain = auth_plain || mechanisms.find(" PLAIN ") != std::string::npos;
                auth_login = auth_login || mechanisms.find(" LOGIN ") != std::string::npos;
            }
        }
    }

    // The TLS handshake on the connected socket; `why` says why it failed.
    asio::awaitable<bool> handshake(TlsClientContext& context, const std::string& peer, bool verify, std::string& why) {
        tls = std::make_unique<asio::ssl::stream<Protocol::socket&>>(socket, context.context());
        if (auto prepared = context.prepare(tls->native_handle(), peer, verify); !prepared) {
            why = prepared.error().context;
            co_return false;
        }
        timer.expires_after(timeout);
        auto done = co_await (tls->async_handshake(asio::ssl::stream_base::client, tuple_awaitable) ||
                              timer.async_wait(tuple_awaitable));
        if (done.index() != 0) {
            why = "timeout";
            co_return false;
        }
        if (auto [ec] = std::get<0>(done); ec) {
            why = TlsClientContext::failure_reason(tls->native_handle(), ec.message());
            co_return false;
        }
        co_return true;
    }

    std::string tls_facts() const {
        if (!tls) return "";
        const SSL* ssl = const_cast<asio::ssl::stream<Protocol::socket&>&>(*tls).native_handle();
        return fmt::format("{} with cipher {}", SSL_get_version(ssl), SSL_CIPHER_get_name(SSL_get_current_cipher(ssl)));
    }
};

MailClient::MailClient(ClientSettings settings) : settings_(std::move(settings)) {}

MailClient::~MailClient() = default;

bool MailClient::is_open() const { return connection_ && !connection_->broken; }

void MailClient::forget() {
    if (!connection_) return;
    // The descriptors (the socket's, the reactor's) are shared with the parent: the
    // reactor is made anew in this process first, so that closing our copy of the
    // socket does not take it out of the parent's.
    connection_->io.notify_fork(asio::execution_context::fork_child);
    boost::system::error_code ignored;
    connection_->socket.close(ignored);
    connection_.reset();
}

void MailClient::quit() {
    if (!connection_) return;
    if (!connection_->broken) {
        Connection& c = *connection_;
        c.timeout = std::min(c.timeout, std::chrono::seconds(5));
        auto body = [&]() -> asio::awaitable<void> {
            if (co_await c.send("QUIT\r\n")) co_await c.reply();
        };
        c.run(body);
    }
    connection_.reset();
}

OpenOutcome MailClient::open(const std::vector<SocketAddress>& addresses) {
    connection_.reset();
    OpenOutcome outcome;
    const std::string& relay = settings_.relay;
    const bool lmtp = settings_.dialect == Dialect::lmtp;
    std::string connect_failure = "no address";
    for (const SocketAddress& address : addresses) {
        auto c = std::make_unique<Connection>(settings_.timeout);
        bool connected = false;
        auto body = [&]() -> asio::awaitable<void> { connected = co_await c->connect(address); };
        c->run(body);
        if (connected) {
            connection_ = std::move(c);
            break;
        }
        connect_failure = c->failure;
    }
    if (!connection_) {
        outcome.kind = OpenOutcome::Kind::connect_failed;
        outcome.status = Status::temp("4.4.1", fmt::format("connect to {}: {}",
                                                           settings_.connect_relay.empty() ? relay : settings_.connect_relay,
                                                           connect_failure));
        return outcome;
    }
    Connection& c = *connection_;
    // A refusal leaves the connection as it is: when it still works, QUIT ends it.
    auto refuse = [&](Status status) {
        outcome.kind = OpenOutcome::Kind::refused;
        outcome.status = std::move(status);
    };
    auto body = [&]() -> asio::awaitable<void> {
        auto greeting = co_await c.reply();
        if (!greeting) {
            refuse(Status::temp("4.4.1", fmt::format("host {} greeting: {}", relay, c.failure)));
            co_return;
        }
        if (greeting->code != 220) {
            if (lmtp) {
                refuse(Status::temp("4.4.1", fmt::format("host {} refused to talk: {} {}", relay, greeting->code,
                                                         smtp::reply_text(greeting->text, 200))));
            } else {
                // As Postfix (smtp_skip_5xx_greeting): a refusing server is tried later, or the next one now.
                Status said = status_of_reply(greeting->brief(), relay, "initial greeting");
                refuse(Status::temp(said.is_temporary() ? said.code() : "4" + said.code().substr(1),
                                    fmt::format("host {} refused to talk to me: {} {}", relay, greeting->code,
                                                smtp::reply_text(greeting->text, 300))));
            }
            co_return;
        }
        if (!co_await c.send((lmtp ? "LHLO " : "EHLO ") + settings_.helo_name + "\r\n")) {
            refuse(Status::temp("4.4.2", fmt::format("lost connection with host {} while sending {}", relay,
                                                     lmtp ? "LHLO" : "EHLO")));
            co_return;
        }
        auto hello = co_await c.reply();
        if (lmtp && (!hello || hello->code != 250)) {
            refuse(Status::temp("4.4.1", fmt::format("host {} refused LHLO", relay)));
            co_return;
        }
        if (!hello) {
            refuse(Status::temp("4.4.2", fmt::format("host {}: {} in reply to EHLO", relay, c.failure)));
            co_return;
        }
        if (!lmtp && hello->code / 100 == 5) {
            // An old server: HELO, and no extensions.
            if (!co_await c.send("HELO " + settings_.helo_name + "\r\n")) {
                refuse(Status::temp("4.4.2", fmt::format("lost connection with host {} while sending HELO", relay)));
                co_return;
            }
            auto helo = co_await c.reply();
            if (!helo) {
                refuse(Status::temp("4.4.2", fmt::format("host {}: {} in reply to HELO", relay, c.failure)));
                co_return;
            }
            if (helo->code != 250) {
                refuse(status_of_reply(helo->brief(), relay, "HELO command"));
                co_return;
            }
            c.take_extensions(Reply{});
        } else if (hello->code != 250) {
            refuse(status_of_reply(hello->brief(), relay, "EHLO command"));
            co_return;
        } else {
            c.take_extensions(*hello);
        }
        if (lmtp) {
            outcome.kind = OpenOutcome::Kind::open;
            co_return;
        }

        // STARTTLS per smtp_tls_security_level.
        const bool encrypt = settings_.tls_level == TlsLevel::encrypt;
        if (settings_.tls_level != TlsLevel::none) {
            if (!settings_.tls) {
                if (encrypt) {
                    refuse(Status::temp("4.7.5", fmt::format("TLS is required, but unavailable here for host {}", relay)));
                    co_return;
                }
            } else if (!c.starttls) {
                if (encrypt) {
                    refuse(Status::temp("4.7.4", fmt::format("TLS is required, but was not offered by host {}", relay)));
                    co_return;
                }
            } else {
                if (!co_await c.send("STARTTLS\r\n")) {
                    refuse(Status::temp("4.4.2", fmt::format("lost connection with host {} while sending STARTTLS", relay)));
                    co_return;
                }
                auto ready = co_await c.reply();
                if (!ready) {
                    refuse(Status::temp("4.4.2", fmt::format("host {}: {} in reply to STARTTLS", relay, c.failure)));
                    co_return;
                }
                if (ready->code != 220) {
                    if (encrypt) {
                        refuse(Status::temp("4.7.5", fmt::format("TLS is required, but host {} refused to start TLS: {} {}",
                                                                 relay, ready->code, smtp::reply_text(ready->text, 300))));
                        co_return;
                    }
                    // may: go on in plaintext on this connection.
                } else {
                    // Nothing the server sent before the handshake may count after it
                    // (a plaintext injection, CVE-2011-0411 style).
                    c.input.clear();
                    std::string why;
                    if (!co_await c.handshake(*settings_.tls, settings_.tls_peer_name, encrypt, why)) {
                        outcome.kind = encrypt ? OpenOutcome::Kind::refused : OpenOutcome::Kind::tls_failed;
                        outcome.status = Status::temp("4.7.5", fmt::format("Cannot start TLS with host {}: {}", relay, why));
                        c.broken = true;
                        co_return;
                    }
                    if (!co_await c.send("EHLO " + settings_.helo_name + "\r\n")) {
                        refuse(Status::temp("4.4.2", fmt::format("lost connection with host {} after STARTTLS", relay)));
                        co_return;
                    }
                    auto again = co_await c.reply();
                    if (!again || again->code != 250) {
                        refuse(again ? status_of_reply(again->brief(), relay, "EHLO command")
                                     : Status::temp("4.4.2", fmt::format("host {}: {} in reply to EHLO", relay, c.failure)));
                        co_return;
                    }
                    c.take_extensions(*again);
                }
            }
        }

        // AUTH with the relayhost's credentials, when offered: never a password in the clear
        // but to a loopback hop.
        if (settings_.login && c.auth) {
            auto auth_refused = [&](std::string why) {
                refuse(Status::temp("4.7.0", fmt::format("SASL authentication failed; {}", why)));
            };
            if (!c.tls && !settings_.auth_in_clear) {
                auth_refused(fmt::format("cannot authenticate to server {}: no mechanism available without TLS", relay));
                co_return;
            }
            if (!c.auth_plain && !c.auth_login) {
                auth_refused(fmt::format("cannot authenticate to server {}: no mechanism available", relay));
                co_return;
            }
            std::vector<std::string> steps;
            if (c.auth_plain) {
                steps.push_back("AUTH PLAIN " + base64(std::string(1, '\0') + settings_.login->user + '\0' +
                                                       settings_.login->password) + "\r\n");
            } else {
                steps = {"AUTH LOGIN\r\n", base64(settings_.login->user) + "\r\n",
                         base64(settings_.login->password) + "\r\n"};
            }
            for (size_t i = 0; i < steps.size(); ++i) {
                if (!co_await c.send(steps[i])) {
                    refuse(Status::temp("4.4.2", fmt::format("lost connection with host {} while sending AUTH", relay)));
                    co_return;
                }
                auto answer = co_await c.reply();
                if (!answer) {
                    refuse(Status::temp("4.4.2", fmt::format("host {}: {} in reply to AUTH", relay, c.failure)));
                    co_return;
                }
                const int expected = i + 1 < steps.size() ? 334 : 235;
                if (answer->code != expected) {
                    auth_refused(fmt::format("server {} said: {} {}", relay, answer->code,
                                             smtp::reply_text(answer->text, 300)));
                    if (i + 1 < steps.size() && answer->code == 334) c.broken = true;
                    co_return;
                }
            }
        }
        outcome.kind = OpenOutcome::Kind::open;
        outcome.tls = c.tls_facts();
    };
    c.run(body);
    if (outcome.kind != OpenOutcome::Kind::open) {
        if (!outcome.status) outcome.status = Status::temp("4.4.2", fmt::format("host {}: {}", relay, c.failure));
        if (outcome.kind == OpenOutcome::Kind::connect_failed) outcome.kind = OpenOutcome::Kind::refused;
        quit();
    }
    return outcome;
}

TransactionOutcome MailClient::transact(const mail::Message& message, const mail::Envelope& envelope,
                                        const std::vector<mail::TransportRecipient>& recipients) {
    TransactionOutcome result;
    result.statuses.resize(recipients.size());
    if (!is_open()) {
        result.lost = "not connected";
        return result;
    }
    Connection& c = *connection_;
    const std::string& relay = settings_.relay;
    const bool lmtp = settings_.dialect == Dialect::lmtp;
    auto& outcome = result.statuses;
    auto body = [&]() -> asio::awaitable<void> {
        if (c.used) {
            // A kept connection may have been closed by the server meanwhile.
            // (No co_await inside ?: here: g++ 12 miscompiles it.)
            std::optional<Reply> reply;
            if (co_await c.send("RSET\r\n")) reply = co_await c.reply();
            if (!reply || reply->code != 250) {
                result.reset_failed = true;
                c.broken = true;
                co_return;
            }
        }
        c.used = true;

        bool utf8 = needs_utf8(envelope.sender);
        for (const auto& r : recipients) utf8 = utf8 || needs_utf8(r.address);
        if (utf8 && !c.smtputf8) {
            for (auto& o : outcome)
                o = Status::perm("5.6.7", fmt::format("host {} does not offer SMTPUTF8, needed for this address", relay));
            co_return;
        }
        // Only what the server offered: Dovecot refuses SIZE (555) when it has not said SIZE.
        std::string mail = fmt::format("MAIL FROM:<{}>", envelope.sender);
        if (c.size) mail += fmt::format(" SIZE={}", message.size());
        if (utf8) mail += " SMTPUTF8";
        if (c.dsn && envelope.ret != mail::DsnReturn::unspecified)
            mail += envelope.ret == mail::DsnReturn::full ? " RET=FULL" : " RET=HDRS";
        if (c.dsn && !envelope.envid.empty()) mail += " ENVID=" + envelope.envid;
        std::vector<std::string> commands{mail + "\r\n"};
        for (const auto& r : recipients) {
            std::string rcpt = "RCPT TO:<" + r.address + ">";
            if (c.dsn && r.dsn.notify) rcpt += " NOTIFY=" + mail::format_dsn_notify(r.dsn.notify);
            if (c.dsn && !r.dsn.orcpt.empty()) rcpt += " ORCPT=" + r.dsn.orcpt;
            commands.push_back(rcpt + "\r\n");
        }
        commands.emplace_back("DATA\r\n");

        // MAIL, the RCPTs and DATA: together when pipelining, else one by one.
        std::vector<Reply> replies;
        if (c.pipelining) {
            std::string all;
            for (const auto& command : commands) all += command;
            if (!co_await c.send(all)) co_return;
        }
        for (size_t i = 0; i < commands.size(); ++i) {
            // Without pipelining, DATA goes only when a recipient was accepted.
            if (!c.pipelining && i + 1 == commands.size() &&
                std::none_of(replies.begin() + 1, replies.end(), [](const Reply& r) { return r.code / 100 == 2; }))
                break;
            if (!c.pipelining && !co_await c.send(commands[i])) co_return;
            auto reply = co_await c.reply();
            if (!reply) co_return;
            replies.push_back(std::move(*reply));
            // Without pipelining a refused MAIL ends the transaction here.
            if (!c.pipelining && i == 0 && replies[0].code != 250) break;
        }
        if (replies[0].code != 250) {
            for (auto& o : outcome) o = status_of_reply(replies[0].brief(), relay, "MAIL FROM command");
            if (replies.size() == commands.size() && replies.back().code == 354) c.broken = true;
            co_return;
        }
        std::vector<size_t> accepted;
        for (size_t i = 0; i < recipients.size() && i + 1 < replies.size(); ++i) {
            if (replies[i + 1].code / 100 == 2) accepted.push_back(i);
            else outcome[i] = status_of_reply(replies[i + 1].brief(), relay, "RCPT TO command");
        }
        if (replies.size() < commands.size()) co_return;  // no DATA sent (not pipelining, nothing accepted)
        const Reply& data = replies.back();
        if (data.code != 354) {
            for (size_t i : accepted) outcome[i] = status_of_reply(data.brief(), relay, "DATA command");
            co_return;
        }
        if (accepted.empty()) {
            // A server that says 354 with no recipient: send nothing, end the data.
            c.broken = true;
            co_return;
        }
        DotStuffer stuffer;
        auto reader = message.reader();
        std::vector<char> chunk(64 * 1024);
        for (;;) {
            auto n = reader.read(chunk.data(), chunk.size());
            if (!n) {
                // The message cannot be read: the server must not take a part of it.
                for (size_t i : accepted) outcome[i] = Status::from_error(n.error());
                c.broken = true;
                co_return;
            }
            if (*n == 0) break;
            if (!co_await c.send(stuffer.feed(std::string_view(chunk.data(), *n)))) co_return;
        }
        if (!co_await c.send(stuffer.finish())) co_return;
        if (lmtp) {
            // RFC 2033: one reply per accepted recipient, in order.
            for (size_t i : accepted) {
                auto reply = co_await c.reply();
                if (!reply) co_return;
                outcome[i] = status_of_reply(reply->brief(), relay, "end of DATA command");
            }
        } else {
            auto reply = co_await c.reply();
            if (!reply) co_return;
            for (size_t i : accepted) outcome[i] = status_of_reply(reply->brief(), relay, "end of DATA command");
        }
    };
    c.run(body);
    bool complete = std::all_of(outcome.begin(), outcome.end(), [](const auto& o) { return o.has_value(); });
    if (c.broken && !complete && !result.reset_failed) result.lost = c.failure.empty() ? "lost connection" : c.failure;
    if (c.broken) connection_.reset();
    return result;
}

}  // namespace mailroom::net
