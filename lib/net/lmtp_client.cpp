#include "net/lmtp_client.hpp"

#include <netdb.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <algorithm>
#include <cstring>
#include <optional>

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/experimental/awaitable_operators.hpp>
#include <boost/asio/generic/stream_protocol.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/asio/write.hpp>
#include <fmt/format.h>

#include "net/listen_address.hpp"
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

struct Reply {
    int code = 0;
    std::string text;  // the last line's text, enhanced code included
    std::vector<std::string> lines;
};

// A reply as a Status: its enhanced code when it has one (RFC 2034), else the
// class's generic one; the text says who said it, in reply to what.
Status status_of(const Reply& reply, const std::string& relay, std::string_view command) {
    std::string text = fmt::format("host {} said: {} {} (in reply to {})", relay, reply.code,
                                   smtp::reply_text(reply.text, 300), command);
    const int cls = reply.code / 100;
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

// One connection and what the server offered on it.
struct LmtpClient::Connection {
    asio::io_context io;
    Protocol::socket socket{io};
    asio::steady_timer timer{io};
    std::string input;  // read but not yet taken
    bool pipelining = false, dsn = false, smtputf8 = false, size = false;
    bool broken = false;
};

namespace {

// The Connection's dialogue, as coroutines; any failure throws nothing: it marks
// the connection broken and the caller defers what was not answered.
class Dialogue {
public:
    Dialogue(Protocol::socket& socket, asio::steady_timer& timer, std::string& input, std::chrono::seconds timeout)
        : socket_(socket), timer_(timer), input_(input), timeout_(timeout) {}

    asio::awaitable<bool> send(std::string_view text) {
        timer_.expires_after(timeout_);
        auto done = co_await (asio::async_write(socket_, asio::buffer(text.data(), text.size()), tuple_awaitable) ||
                              timer_.async_wait(tuple_awaitable));
        if (done.index() != 0 || std::get<0>(std::get<0>(done))) {
            failure_ = done.index() != 0 ? "timeout" : "write error";
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
            while ((end = input_.find("\r\n")) == std::string::npos) {
                if (input_.size() > max_reply_line) co_return malformed("reply line too long");
                char chunk[4096];
                timer_.expires_after(timeout_);
                auto got = co_await (socket_.async_read_some(asio::buffer(chunk), tuple_awaitable) ||
                                     timer_.async_wait(tuple_awaitable));
                if (got.index() != 0) {
                    failure_ = "timeout";
                    co_return std::nullopt;
                }
                auto [ec, n] = std::get<0>(got);
                if (ec || n == 0) {
                    failure_ = "lost connection";
                    co_return std::nullopt;
                }
                input_.append(chunk, n);
            }
            std::string line = input_.substr(0, end);
            input_.erase(0, end + 2);
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

    const std::string& failure() const { return failure_; }

private:
    std::optional<Reply> malformed(std::string what) {
        failure_ = std::move(what);
        return std::nullopt;
    }

    Protocol::socket& socket_;
    asio::steady_timer& timer_;
    std::string& input_;
    std::chrono::seconds timeout_;
    std::string failure_;
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
    for (char c : text) {
        if (static_cast<unsigned char>(c) >= 0x80) return true;
    }
    return false;
}

}  // namespace

LmtpClient::LmtpClient(LmtpDestination destination, std::string helo_name, std::chrono::seconds timeout)
    : destination_(std::move(destination)), helo_name_(std::move(helo_name)), timeout_(timeout), owner_(::getpid()) {}

LmtpClient::~LmtpClient() {
    // A forked copy leaves its parent's connection alone: closing our copy of the
    // descriptor is all it may do.
    if (connection_ && owner_ != ::getpid()) {
        boost::system::error_code ignored;
        connection_->socket.close(ignored);
    }
}

mail::TransportResult LmtpClient::deliver(const mail::Message& message, const mail::Envelope& envelope,
                                          const std::vector<mail::TransportRecipient>& recipients) {
    mail::TransportResult result;
    result.relay = destination_.text();
    const std::string relay = destination_.text();
    if (owner_ != ::getpid()) {
        connection_.reset();
        owner_ = ::getpid();
    }
    std::vector<std::optional<Status>> outcome(recipients.size());
    auto defer_rest = [&](std::string code, std::string text) {
        for (auto& o : outcome) {
            if (!o) o = Status::temp(code, text);
        }
    };

    for (int attempt = 0; attempt < 2 && !outcome.empty() && !outcome[0]; ++attempt) {
        const bool fresh = !connection_;
        if (fresh) connection_ = std::make_unique<Connection>();
        Connection& c = *connection_;
        std::string connect_failure;
        auto run = [&]() -> asio::awaitable<void> {
            Dialogue talk(c.socket, c.timer, c.input, timeout_);
            if (fresh) {
                // Connect (the address numeric or a name: getaddrinfo, as the runner may block).
                boost::system::error_code ec;
                if (destination_.kind == LmtpDestination::Kind::unix_socket) {
                    sockaddr_un sun{};
                    sun.sun_family = AF_UNIX;
                    std::memcpy(sun.sun_path, destination_.path.c_str(), destination_.path.size() + 1);
                    c.socket.open(Protocol(AF_UNIX, SOCK_STREAM), ec);
                    if (!ec) c.socket.connect(Protocol::endpoint(&sun, sizeof sun), ec);
                } else {
                    addrinfo hints{};
                    hints.ai_socktype = SOCK_STREAM;
                    addrinfo* found = nullptr;
                    int r = ::getaddrinfo(destination_.host.c_str(), std::to_string(destination_.port).c_str(), &hints, &found);
                    if (r != 0) {
                        connect_failure = fmt::format("cannot find {}: {}", destination_.host, ::gai_strerror(r));
                        co_return;
                    }
                    ec = asio::error::host_not_found;
                    for (addrinfo* a = found; a; a = a->ai_next) {
                        boost::system::error_code open_ec;
                        c.socket.close(open_ec);
                        c.socket.open(Protocol(a->ai_family, SOCK_STREAM), ec);
                        if (!ec) c.socket.connect(Protocol::endpoint(a->ai_addr, a->ai_addrlen), ec);
                        if (!ec) break;
                    }
                    ::freeaddrinfo(found);
                }
                if (ec) {
                    connect_failure = fmt::format("connect to {}: {}", relay, ec.message());
                    co_return;
                }
                auto greeting = co_await talk.reply();
                if (!greeting || greeting->code != 220) {
                    connect_failure = greeting ? fmt::format("host {} refused to talk: {} {}", relay, greeting->code,
                                                             smtp::reply_text(greeting->text, 200))
                                               : fmt::format("host {} greeting: {}", relay, talk.failure());
                    co_return;
                }
                if (!co_await talk.send("LHLO " + helo_name_ + "\r\n")) co_return;
                auto hello = co_await talk.reply();
                if (!hello || hello->code != 250) {
                    connect_failure = fmt::format("host {} refused LHLO", relay);
                    co_return;
                }
                for (size_t i = 1; i < hello->lines.size(); ++i) {
                    std::string word = hello->lines[i].substr(0, hello->lines[i].find(' '));
                    for (auto& ch : word) ch = static_cast<char>(std::toupper(static_cast<unsigned char>(ch)));
                    if (word == "PIPELINING") c.pipelining = true;
                    if (word == "DSN") c.dsn = true;
                    if (word == "SMTPUTF8") c.smtputf8 = true;
                    if (word == "SIZE") c.size = true;
                }
            } else {
                // A kept connection may have been closed by the server meanwhile.
                if (!co_await talk.send("RSET\r\n")) co_return;
                auto reset = co_await talk.reply();
                if (!reset || reset->code != 250) co_return;
            }

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
                if (!co_await talk.send(all)) co_return;
            }
            for (size_t i = 0; i < commands.size(); ++i) {
                // Without pipelining, DATA goes only when a recipient was accepted.
                if (!c.pipelining && i + 1 == commands.size() &&
                    std::none_of(replies.begin() + 1, replies.end(), [](const Reply& r) { return r.code / 100 == 2; }))
                    break;
                if (!c.pipelining && !co_await talk.send(commands[i])) co_return;
                auto reply = co_await talk.reply();
                if (!reply) co_return;
                replies.push_back(std::move(*reply));
                // Without pipelining a refused MAIL ends the transaction here.
                if (!c.pipelining && i == 0 && replies[0].code != 250) break;
            }
            if (replies[0].code != 250) {
                for (auto& o : outcome) o = status_of(replies[0], relay, "MAIL FROM command");
                if (replies.size() == commands.size() && replies.back().code == 354) c.broken = true;
                co_return;
            }
            std::vector<size_t> accepted;
            for (size_t i = 0; i < recipients.size() && i + 1 < replies.size(); ++i) {
                if (replies[i + 1].code / 100 == 2) accepted.push_back(i);
                else outcome[i] = status_of(replies[i + 1], relay, "RCPT TO command");
            }
            if (replies.size() < commands.size()) co_return;  // no DATA sent (not pipelining, nothing accepted)
            const Reply& data = replies.back();
            if (data.code != 354) {
                for (size_t i : accepted) outcome[i] = status_of(data, relay, "DATA command");
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
                if (!co_await talk.send(stuffer.feed(std::string_view(chunk.data(), *n)))) co_return;
            }
            if (!co_await talk.send(stuffer.finish())) co_return;
            for (size_t i : accepted) {
                auto reply = co_await talk.reply();
                if (!reply) co_return;
                outcome[i] = status_of(*reply, relay, "end of DATA command");
            }
        };
        std::exception_ptr failed;
        asio::co_spawn(c.io, run(), [&](std::exception_ptr e) { failed = e; });
        c.io.restart();
        c.io.run();
        bool complete = true;
        for (const auto& o : outcome) complete = complete && o.has_value();
        if (!connect_failure.empty()) {
            connection_.reset();
            defer_rest("4.4.1", connect_failure);
            break;
        }
        if (complete && !c.broken && !failed) break;
        // A kept connection that failed before anything was decided is tried once anew.
        bool nothing_decided = true;
        for (const auto& o : outcome) nothing_decided = nothing_decided && !o.has_value();
        std::string why = failed ? "internal error" : "lost connection";
        connection_.reset();
        if (complete) break;
        if (!(nothing_decided && !fresh)) {
            defer_rest("4.4.2", fmt::format("host {}: {} during the LMTP dialogue", relay, why));
            break;
        }
    }
    defer_rest("4.4.2", fmt::format("host {}: no outcome", relay));
    for (auto& o : outcome) result.statuses.push_back(std::move(*o));
    return result;
}

}  // namespace mailroom::net
