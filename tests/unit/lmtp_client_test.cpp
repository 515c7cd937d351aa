// lib/net/lmtp_client.hpp: local_transport's destinations, and the client against
// a scripted fake LMTP server in a child process on a unix socket, which records
// every byte it is sent.
#include "net/lmtp_client.hpp"

#include <signal.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstring>
#include <string>
#include <vector>

#include "mail/message.hpp"
#include "support/test_support.hpp"

using namespace mailroom;
using mailroom::net::LmtpClient;
using mailroom::net::LmtpDestination;
using mailroom::test::TempDir;

namespace {

// What the fake server answers. Replies are written without their CRLF.
struct Script {
    std::string greeting = "220 fake.example LMTP ready";
    std::vector<std::string> extensions;  // LHLO lines after the first: "PIPELINING", "DSN", "SIZE 10240000"
    std::string mail = "250 2.1.0 Ok";
    std::vector<std::string> rcpt;   // per RCPT of a transaction, in order; past the end: 250 2.1.5 Ok
    std::string data = "354 Start mail input; end with <CRLF>.<CRLF>";
    std::vector<std::string> finals;  // per accepted recipient after the data; past the end: 250 2.0.0 Ok
    size_t finals_then_close = SIZE_MAX;   // after the data: only this many replies, then close
    unsigned stall_after_data = 0;         // seconds of silence before the replies after the data
    bool close_after_transaction = false;  // drop the connection once a transaction is answered
    size_t connections = 1;                // served one after another, then the server exits
};

// The server's side of one connection; false when the client went away.
class FakeConnection {
public:
    FakeConnection(int fd, int log, const Script& script) : fd_(fd), log_(log), script_(script) {}

    void serve() {
        send(script_.greeting);
        bool in_mail = false;
        size_t rcpt_index = 0, accepted = 0;
        for (std::string line; next_line(line);) {
            std::string verb = line.substr(0, 4);
            for (auto& c : verb) c = static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
            if (verb == "LHLO") {
                if (script_.extensions.empty()) {
                    send("250 fake.example");
                } else {
                    send("250-fake.example");
                    for (size_t i = 0; i < script_.extensions.size(); ++i)
                        send((i + 1 == script_.extensions.size() ? "250 " : "250-") + script_.extensions[i]);
                }
            } else if (verb == "MAIL") {
                send(script_.mail);
                in_mail = script_.mail[0] == '2';
                rcpt_index = accepted = 0;
            } else if (verb == "RCPT") {
                if (!in_mail) {
                    send("503 5.5.1 Error: need MAIL command");
                    continue;
                }
                std::string reply = rcpt_index < script_.rcpt.size() ? script_.rcpt[rcpt_index] : "250 2.1.5 Ok";
                ++rcpt_index;
                if (reply[0] == '2') ++accepted;
                send(reply);
            } else if (verb == "DATA") {
                if (!in_mail || accepted == 0) {
                    send("503 5.5.1 Error: no valid recipients");
                    continue;
                }
                send(script_.data);
                if (script_.data[0] != '3') continue;
                for (std::string text; text != ".";) {
                    if (!next_line(text)) return;
                }
                if (script_.stall_after_data) ::sleep(script_.stall_after_data);
                for (size_t i = 0; i < accepted; ++i) {
                    if (i == script_.finals_then_close) return;
                    send(i < script_.finals.size() ? script_.finals[i] : "250 2.0.0 Ok");
                }
                in_mail = false;
                if (script_.close_after_transaction) return;
            } else if (verb == "RSET") {
                in_mail = false;
                send("250 2.0.0 Ok");
            } else if (verb == "NOOP") {
                send("250 2.0.0 Ok");
            } else if (verb == "QUIT") {
                send("221 2.0.0 Bye");
                return;
            } else {
                send("500 5.5.2 Error: command not recognized");
            }
        }
    }

private:
    void send(std::string reply) {
        reply += "\r\n";
        (void)!::send(fd_, reply.data(), reply.size(), MSG_NOSIGNAL);
    }
    bool next_line(std::string& line) {
        size_t end;
        while ((end = input_.find("\r\n")) == std::string::npos) {
            char buf[8192];
            ssize_t n = ::recv(fd_, buf, sizeof buf, 0);
            if (n <= 0) return false;
            (void)!::write(log_, buf, static_cast<size_t>(n));
            input_.append(buf, static_cast<size_t>(n));
        }
        line = input_.substr(0, end);
        input_.erase(0, end + 2);
        return true;
    }

    int fd_;
    int log_;
    const Script& script_;
    std::string input_;
};

// A fake LMTP server in a child process, listening at dir/lmtp from construction on
// and writing what it is sent to dir/received ("#CONNECT\r\n" at each connection).
// It exits once script.connections connections have been served to their end.
class FakeLmtpServer {
public:
    FakeLmtpServer(const TempDir& dir, Script script)
        : path(dir.path + "/lmtp"), log_path_(dir.path + "/received"), script_(std::move(script)) {
        int listener = ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
        REQUIRE(listener >= 0);
        sockaddr_un sun{};
        sun.sun_family = AF_UNIX;
        std::memcpy(sun.sun_path, path.c_str(), path.size() + 1);
        REQUIRE(::bind(listener, reinterpret_cast<sockaddr*>(&sun), sizeof sun) == 0);
        REQUIRE(::listen(listener, 8) == 0);
        int log = ::open(log_path_.c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0600);
        REQUIRE(log >= 0);
        pid_ = ::fork();
        REQUIRE(pid_ >= 0);
        if (pid_ == 0) {
            ::alarm(20);  // never outlive a test that went wrong
            // Each connection served by a process of its own, so that one kept open
            // does not keep the next one waiting.
            for (size_t i = 0; i < script_.connections; ++i) {
                int fd = ::accept(listener, nullptr, nullptr);
                if (fd < 0) ::_exit(1);
                (void)!::write(log, "#CONNECT\r\n", 10);
                pid_t server = ::fork();
                if (server < 0) ::_exit(1);
                if (server == 0) {
                    FakeConnection(fd, log, script_).serve();
                    ::_exit(0);
                }
                ::close(fd);
            }
            while (::wait(nullptr) > 0) {
            }
            ::_exit(0);
        }
        ::close(listener);
        ::close(log);
    }
    ~FakeLmtpServer() { stop(); }
    FakeLmtpServer(const FakeLmtpServer&) = delete;
    FakeLmtpServer& operator=(const FakeLmtpServer&) = delete;

    // Once the client has hung up: everything the server was sent, after it has exited.
    std::string received() {
        stop();
        return mailroom::test::slurp(log_path_);
    }

    const std::string path;

private:
    void stop() {
        if (pid_ <= 0) return;
        for (int i = 0; i < 500; ++i) {
            if (::waitpid(pid_, nullptr, WNOHANG) == pid_) {
                pid_ = -1;
                return;
            }
            ::usleep(10'000);
        }
        ::kill(pid_, SIGKILL);
        ::waitpid(pid_, nullptr, 0);
        pid_ = -1;
    }

    std::string log_path_;
    Script script_;
    pid_t pid_ = -1;
};

mail::Message message_of(std::string_view text) {
    auto message = mail::Message::from_string(text, mail::MessageOptions{});
    REQUIRE(message);
    return std::move(*message);
}

mail::Envelope envelope_from(std::string sender) {
    mail::Envelope envelope;
    envelope.sender = std::move(sender);
    return envelope;
}

std::vector<mail::TransportRecipient> recipients(std::initializer_list<const char*> addresses) {
    std::vector<mail::TransportRecipient> out;
    for (const char* a : addresses) out.push_back(mail::TransportRecipient{a, {}});
    return out;
}

LmtpDestination unix_destination(const std::string& path) {
    auto destination = LmtpDestination::parse("lmtp:unix:" + path);
    REQUIRE(destination);
    return *destination;
}

// What the client sent from its first DATA on: the stuffed text and its end.
std::string data_section(const std::string& received) {
    size_t start = received.find("DATA\r\n");
    REQUIRE(start != std::string::npos);
    start += 6;
    size_t end = received.find("\r\n.\r\n", start);
    if (received.compare(start, 3, ".\r\n") == 0) return ".\r\n";
    REQUIRE(end != std::string::npos);
    return received.substr(start, end + 5 - start);
}

size_t count_of(const std::string& text, const std::string& what) {
    size_t n = 0;
    for (size_t at = text.find(what); at != std::string::npos; at = text.find(what, at + what.size())) ++n;
    return n;
}

const std::string simple_text = "Subject: hi\n\nHello.\n";

}  // namespace

TEST_CASE("lmtp:unix:PATH and lmtp:inet:HOST:PORT are the LMTP destinations", "[lmtp_client]") {
    auto unix_socket = LmtpDestination::parse("lmtp:unix:/run/dovecot/lmtp");
    REQUIRE(unix_socket);
    CHECK(unix_socket->kind == LmtpDestination::Kind::unix_socket);
    CHECK(unix_socket->path == "/run/dovecot/lmtp");
    CHECK(unix_socket->text() == "/run/dovecot/lmtp");

    auto inet = LmtpDestination::parse("lmtp:inet:mail.example.com:24");
    REQUIRE(inet);
    CHECK(inet->kind == LmtpDestination::Kind::inet);
    CHECK(inet->host == "mail.example.com");
    CHECK(inet->port == 24);
    CHECK(inet->text() == "mail.example.com:24");

    auto numeric = LmtpDestination::parse("lmtp:inet:127.0.0.1:65535");
    REQUIRE(numeric);
    CHECK(numeric->host == "127.0.0.1");
    CHECK(numeric->port == 65535);

    auto v6 = LmtpDestination::parse("lmtp:inet:[::1]:2424");
    REQUIRE(v6);
    CHECK(v6->host == "::1");
    CHECK(v6->port == 2424);
}

TEST_CASE("A destination that is not lmtp:unix:PATH or lmtp:inet:HOST:PORT is refused", "[lmtp_client]") {
    for (const std::string text :
         {"", "lmtp", "lmtp:", "lmtp:unix:", "unix:/run/lmtp", "smtp:inet:host:25", "lmtp:/run/lmtp", "lmtp:inet:",
          "lmtp:inet:host", "lmtp:inet::24", "lmtp:inet:host:", "lmtp:inet:host:0", "lmtp:inet:host:65536",
          "lmtp:inet:host:99999999999", "lmtp:inet:host:24x", "lmtp:inet:host:-1", "LMTP:unix:/run/lmtp"}) {
        INFO("'" << text << "'");
        CHECK_FALSE(LmtpDestination::parse(text));
    }
    const std::string longest = "/" + std::string(106, 'p');
    CHECK(LmtpDestination::parse("lmtp:unix:" + longest));
    CHECK_FALSE(LmtpDestination::parse("lmtp:unix:" + longest + "p"));
}

TEST_CASE("A transaction is LHLO once, then MAIL, a RCPT per recipient and DATA, no SIZE or DSN parameters when "
          "the server offers neither",
          "[lmtp_client]") {
    TempDir tmp;
    FakeLmtpServer server(tmp, Script{});
    mail::Envelope envelope = envelope_from("alice@remote.example");
    envelope.ret = mail::DsnReturn::full;
    envelope.envid = "QQ314159";
    auto rcpts = recipients({"bob@host.example", "carol@host.example"});
    rcpts[0].dsn.notify = mail::RecipientDsn::notify_success | mail::RecipientDsn::notify_failure;
    rcpts[0].dsn.orcpt = "rfc822;bob@old.example";
    {
        LmtpClient client(unix_destination(server.path), "mx.example", std::chrono::seconds(5));
        auto result = client.deliver(message_of(simple_text), envelope, rcpts);
        CHECK(result.relay == server.path);
        REQUIRE(result.statuses.size() == 2);
        CHECK(result.statuses[0].is_ok());
        CHECK(result.statuses[1].is_ok());
    }
    std::string received = server.received();
    CHECK(received.substr(0, received.find("DATA\r\n") + 6) ==
          "#CONNECT\r\n"
          "LHLO mx.example\r\n"
          "MAIL FROM:<alice@remote.example>\r\n"
          "RCPT TO:<bob@host.example>\r\n"
          "RCPT TO:<carol@host.example>\r\n"
          "DATA\r\n");
}

TEST_CASE("MAIL carries SIZE=n, the message's size, when the server offers SIZE", "[lmtp_client]") {
    TempDir tmp;
    Script script;
    script.extensions = {"PIPELINING", "SIZE 10240000", "8BITMIME"};
    FakeLmtpServer server(tmp, script);
    auto message = message_of(simple_text);
    {
        LmtpClient client(unix_destination(server.path), "mx.example", std::chrono::seconds(5));
        auto result = client.deliver(message, envelope_from("alice@remote.example"), recipients({"bob@host.example"}));
        REQUIRE(result.statuses.size() == 1);
        CHECK(result.statuses[0].is_ok());
    }
    std::string received = server.received();
    CHECK(received.find("MAIL FROM:<alice@remote.example> SIZE=" + std::to_string(message.size()) + "\r\n") !=
          std::string::npos);
}

TEST_CASE("RET, ENVID, NOTIFY and ORCPT go along only when the server offers DSN", "[lmtp_client]") {
    TempDir tmp;
    Script script;
    script.extensions = {"PIPELINING", "DSN", "ENHANCEDSTATUSCODES"};
    FakeLmtpServer server(tmp, script);
    mail::Envelope envelope = envelope_from("alice@remote.example");
    envelope.ret = mail::DsnReturn::hdrs;
    envelope.envid = "QQ314159";
    auto rcpts = recipients({"bob@host.example", "carol@host.example"});
    rcpts[0].dsn.notify = mail::RecipientDsn::notify_success | mail::RecipientDsn::notify_failure;
    rcpts[0].dsn.orcpt = "rfc822;bob@old.example";
    rcpts[1].dsn.notify = mail::RecipientDsn::notify_never;
    {
        LmtpClient client(unix_destination(server.path), "mx.example", std::chrono::seconds(5));
        auto result = client.deliver(message_of(simple_text), envelope, rcpts);
        REQUIRE(result.statuses.size() == 2);
        CHECK(result.statuses[0].is_ok());
        CHECK(result.statuses[1].is_ok());
    }
    std::string received = server.received();
    CHECK(received.find("MAIL FROM:<alice@remote.example> RET=HDRS ENVID=QQ314159\r\n") != std::string::npos);
    CHECK(received.find("RCPT TO:<bob@host.example> NOTIFY=SUCCESS,FAILURE ORCPT=rfc822;bob@old.example\r\n") !=
          std::string::npos);
    CHECK(received.find("RCPT TO:<carol@host.example> NOTIFY=NEVER\r\n") != std::string::npos);
    CHECK(received.find("SIZE=") == std::string::npos);
}

TEST_CASE("The data goes dot-stuffed with CRLF line ends, a last line without LF ended, then a lone dot",
          "[lmtp_client]") {
    struct Case {
        std::string text;
        std::string sent;
    };
    for (const auto& c : std::vector<Case>{
             {"Subject: dots\n\n.line\n..two\nplain\n.\n", "Subject: dots\r\n\r\n..line\r\n...two\r\nplain\r\n..\r\n.\r\n"},
             {"Subject: x\n\nbody. not.at.start\n", "Subject: x\r\n\r\nbody. not.at.start\r\n.\r\n"},
             {"Subject: x\n\nno newline at the end", "Subject: x\r\n\r\nno newline at the end\r\n.\r\n"},
             {"Subject: x\n\n.", "Subject: x\r\n\r\n..\r\n.\r\n"},
             {"Subject: x\r\n\r\nalready CRLF\r\n.dot\r\n", "Subject: x\r\n\r\nalready CRLF\r\n..dot\r\n.\r\n"},
         }) {
        INFO(c.text);
        TempDir tmp;
        FakeLmtpServer server(tmp, Script{});
        {
            LmtpClient client(unix_destination(server.path), "mx.example", std::chrono::seconds(5));
            auto result = client.deliver(message_of(c.text), envelope_from("alice@remote.example"),
                                         recipients({"bob@host.example"}));
            REQUIRE(result.statuses.size() == 1);
            CHECK(result.statuses[0].is_ok());
        }
        CHECK(data_section(server.received()) == c.sent);
    }
}

TEST_CASE("Each recipient's status is the server's reply to it, with the server's enhanced code and words",
          "[lmtp_client]") {
    TempDir tmp;
    Script script;
    script.extensions = {"PIPELINING", "ENHANCEDSTATUSCODES"};
    script.rcpt = {"250 2.1.5 Ok", "250 2.1.5 Ok", "550 5.1.1 <dave@host.example>: User unknown", "250 2.1.5 Ok",
                   "250 2.1.5 Ok"};
    script.finals = {"250 2.0.0 <bob@host.example> Saved", "450 4.2.1 <carol@host.example> Mailbox busy",
                     "550 5.1.1 <erin@host.example> No such user", "452 mailbox full, no enhanced code"};
    FakeLmtpServer server(tmp, script);
    const auto rcpts = recipients(
        {"bob@host.example", "carol@host.example", "dave@host.example", "erin@host.example", "frank@host.example"});
    mail::TransportResult result;
    {
        LmtpClient client(unix_destination(server.path), "mx.example", std::chrono::seconds(5));
        result = client.deliver(message_of(simple_text), envelope_from("alice@remote.example"), rcpts);
    }
    REQUIRE(result.statuses.size() == 5);
    const auto& s = result.statuses;
    CHECK(s[0].is_ok());

    CHECK(s[1].is_temporary());
    CHECK(s[1].code() == "4.2.1");
    CHECK(s[1].text().find("host " + server.path + " said: 450 4.2.1 <carol@host.example> Mailbox busy") == 0);

    CHECK(s[2].is_permanent());
    CHECK(s[2].code() == "5.1.1");
    CHECK(s[2].text() == "host " + server.path +
                             " said: 550 5.1.1 <dave@host.example>: User unknown (in reply to RCPT TO command)");

    CHECK(s[3].is_permanent());
    CHECK(s[3].code() == "5.1.1");
    CHECK(s[3].text() == "host " + server.path +
                             " said: 550 5.1.1 <erin@host.example> No such user (in reply to end of DATA command)");

    CHECK(s[4].is_temporary());
    CHECK(s[4].code() == "4.0.0");
    CHECK(s[4].text().find("said: 452 mailbox full, no enhanced code") != std::string::npos);
}

TEST_CASE("Without PIPELINING the commands go one by one and every reply is still its recipient's", "[lmtp_client]") {
    TempDir tmp;
    Script script;
    script.rcpt = {"550 5.1.1 unknown", "250 2.1.5 Ok"};
    script.finals = {"250 2.0.0 Saved"};
    FakeLmtpServer server(tmp, script);
    mail::TransportResult result;
    {
        LmtpClient client(unix_destination(server.path), "mx.example", std::chrono::seconds(5));
        result = client.deliver(message_of(simple_text), envelope_from("alice@remote.example"),
                                recipients({"dave@host.example", "bob@host.example"}));
    }
    REQUIRE(result.statuses.size() == 2);
    CHECK(result.statuses[0].is_permanent());
    CHECK(result.statuses[0].code() == "5.1.1");
    CHECK(result.statuses[1].is_ok());
    CHECK(data_section(server.received()) == "Subject: hi\r\n\r\nHello.\r\n.\r\n");
}

TEST_CASE("Without PIPELINING no DATA is sent when every recipient was refused", "[lmtp_client]") {
    TempDir tmp;
    Script script;
    script.rcpt = {"550 5.1.1 unknown", "450 4.2.1 busy"};
    FakeLmtpServer server(tmp, script);
    mail::TransportResult result;
    {
        LmtpClient client(unix_destination(server.path), "mx.example", std::chrono::seconds(5));
        result = client.deliver(message_of(simple_text), envelope_from("alice@remote.example"),
                                recipients({"dave@host.example", "bob@host.example"}));
    }
    REQUIRE(result.statuses.size() == 2);
    CHECK(result.statuses[0].code() == "5.1.1");
    CHECK(result.statuses[1].code() == "4.2.1");
    CHECK(server.received().find("DATA") == std::string::npos);
}

TEST_CASE("A refused MAIL gives every recipient that refusal", "[lmtp_client]") {
    for (bool pipelining : {true, false}) {
        INFO("pipelining " << pipelining);
        TempDir tmp;
        Script script;
        if (pipelining) script.extensions = {"PIPELINING"};
        script.mail = "550 5.7.1 <alice@remote.example>: Sender refused";
        FakeLmtpServer server(tmp, script);
        mail::TransportResult result;
        {
            LmtpClient client(unix_destination(server.path), "mx.example", std::chrono::seconds(5));
            result = client.deliver(message_of(simple_text), envelope_from("alice@remote.example"),
                                    recipients({"bob@host.example", "carol@host.example"}));
        }
        REQUIRE(result.statuses.size() == 2);
        for (const auto& status : result.statuses) {
            CHECK(status.is_permanent());
            CHECK(status.code() == "5.7.1");
            CHECK(status.text() == "host " + server.path +
                                       " said: 550 5.7.1 <alice@remote.example>: Sender refused (in reply to MAIL "
                                       "FROM command)");
        }
        std::string received = server.received();
        CHECK(received.find("\r\n.\r\n") == std::string::npos);  // no message text went
        if (!pipelining) CHECK(received.find("RCPT") == std::string::npos);
    }
}

TEST_CASE("A temporarily refused MAIL defers every recipient with the server's code", "[lmtp_client]") {
    TempDir tmp;
    Script script;
    script.mail = "451 4.3.0 Try again later";
    FakeLmtpServer server(tmp, script);
    LmtpClient client(unix_destination(server.path), "mx.example", std::chrono::seconds(5));
    auto result = client.deliver(message_of(simple_text), envelope_from("alice@remote.example"),
                                 recipients({"bob@host.example", "carol@host.example"}));
    REQUIRE(result.statuses.size() == 2);
    for (const auto& status : result.statuses) {
        CHECK(status.is_temporary());
        CHECK(status.code() == "4.3.0");
    }
}

TEST_CASE("No server at the path defers every recipient 4.4.1, saying it could not connect", "[lmtp_client]") {
    TempDir tmp;
    LmtpClient client(unix_destination(tmp.path + "/nobody-listens"), "mx.example", std::chrono::seconds(5));
    auto result = client.deliver(message_of(simple_text), envelope_from("alice@remote.example"),
                                 recipients({"bob@host.example", "carol@host.example"}));
    CHECK(result.relay == tmp.path + "/nobody-listens");
    REQUIRE(result.statuses.size() == 2);
    for (const auto& status : result.statuses) {
        CHECK(status.is_temporary());
        CHECK(status.code() == "4.4.1");
        CHECK(status.text().find("connect to " + tmp.path + "/nobody-listens") != std::string::npos);
    }
}

TEST_CASE("A server that refuses to talk in its greeting defers every recipient 4.4.1", "[lmtp_client]") {
    TempDir tmp;
    Script script;
    script.greeting = "554 5.3.2 Not now";
    FakeLmtpServer server(tmp, script);
    LmtpClient client(unix_destination(server.path), "mx.example", std::chrono::seconds(5));
    auto result = client.deliver(message_of(simple_text), envelope_from("alice@remote.example"),
                                 recipients({"bob@host.example"}));
    REQUIRE(result.statuses.size() == 1);
    CHECK(result.statuses[0].is_temporary());
    CHECK(result.statuses[0].code() == "4.4.1");
}

TEST_CASE("A server that closes after the data before all its replies leaves the unanswered recipients deferred 4.4.2",
          "[lmtp_client]") {
    TempDir tmp;
    Script script;
    script.extensions = {"PIPELINING"};
    script.finals = {"250 2.0.0 Saved", "550 5.2.2 Over quota"};
    script.finals_then_close = 2;
    FakeLmtpServer server(tmp, script);
    mail::TransportResult result;
    {
        LmtpClient client(unix_destination(server.path), "mx.example", std::chrono::seconds(5));
        result = client.deliver(message_of(simple_text), envelope_from("alice@remote.example"),
                                recipients({"bob@host.example", "carol@host.example", "dave@host.example",
                                            "erin@host.example"}));
    }
    REQUIRE(result.statuses.size() == 4);
    CHECK(result.statuses[0].is_ok());
    CHECK(result.statuses[1].is_permanent());
    CHECK(result.statuses[1].code() == "5.2.2");
    for (size_t i : {2u, 3u}) {
        INFO(i);
        CHECK(result.statuses[i].is_temporary());
        CHECK(result.statuses[i].code() == "4.4.2");
    }
    // Delivered to the first two only once: the dialogue is not tried again.
    CHECK(count_of(server.received(), "#CONNECT") == 1);
}

TEST_CASE("A server silent past the timeout after the data leaves every recipient deferred 4.4.2", "[lmtp_client]") {
    TempDir tmp;
    Script script;
    script.stall_after_data = 2;
    FakeLmtpServer server(tmp, script);
    LmtpClient client(unix_destination(server.path), "mx.example", std::chrono::seconds(1));
    const auto start = std::chrono::steady_clock::now();
    auto result = client.deliver(message_of(simple_text), envelope_from("alice@remote.example"),
                                 recipients({"bob@host.example", "carol@host.example"}));
    CHECK(mailroom::test::seconds_since(start) < 1.9);
    REQUIRE(result.statuses.size() == 2);
    for (const auto& status : result.statuses) {
        CHECK(status.is_temporary());
        CHECK(status.code() == "4.4.2");
    }
}

TEST_CASE("A second deliver() reuses the connection: RSET then MAIL on it, LHLO only once", "[lmtp_client]") {
    TempDir tmp;
    Script script;
    script.extensions = {"PIPELINING"};
    FakeLmtpServer server(tmp, script);
    {
        LmtpClient client(unix_destination(server.path), "mx.example", std::chrono::seconds(5));
        auto first = client.deliver(message_of("Subject: one\n\n1\n"), envelope_from("alice@remote.example"),
                                    recipients({"bob@host.example"}));
        REQUIRE(first.statuses.size() == 1);
        CHECK(first.statuses[0].is_ok());
        auto second = client.deliver(message_of("Subject: two\n\n2\n"), envelope_from("carol@remote.example"),
                                     recipients({"bob@host.example"}));
        REQUIRE(second.statuses.size() == 1);
        CHECK(second.statuses[0].is_ok());
    }
    std::string received = server.received();
    CHECK(count_of(received, "#CONNECT") == 1);
    CHECK(count_of(received, "LHLO") == 1);
    CHECK(received.find("Subject: one\r\n\r\n1\r\n.\r\nRSET\r\nMAIL FROM:<carol@remote.example>\r\n") !=
          std::string::npos);
}

TEST_CASE("A kept connection the server dropped between two deliver() calls is replaced by a fresh one",
          "[lmtp_client]") {
    TempDir tmp;
    Script script;
    script.extensions = {"PIPELINING"};
    script.close_after_transaction = true;
    script.connections = 2;
    FakeLmtpServer server(tmp, script);
    {
        LmtpClient client(unix_destination(server.path), "mx.example", std::chrono::seconds(5));
        auto first = client.deliver(message_of("Subject: one\n\n1\n"), envelope_from("alice@remote.example"),
                                    recipients({"bob@host.example"}));
        REQUIRE(first.statuses.size() == 1);
        CHECK(first.statuses[0].is_ok());
        ::usleep(100'000);  // the server has closed its end by now
        auto second = client.deliver(message_of("Subject: two\n\n2\n"), envelope_from("carol@remote.example"),
                                     recipients({"bob@host.example", "dave@host.example"}));
        REQUIRE(second.statuses.size() == 2);
        CHECK(second.statuses[0].is_ok());
        CHECK(second.statuses[1].is_ok());
    }
    std::string received = server.received();
    CHECK(count_of(received, "#CONNECT") == 2);
    CHECK(count_of(received, "LHLO") == 2);
    const size_t second_connection = received.rfind("#CONNECT");
    CHECK(received.find("Subject: two\r\n\r\n2\r\n.\r\n", second_connection) != std::string::npos);
}

TEST_CASE("A copy of the client in a forked process connects afresh instead of using its parent's connection",
          "[lmtp_client]") {
    TempDir tmp;
    Script script;
    script.extensions = {"PIPELINING"};
    script.connections = 2;
    FakeLmtpServer server(tmp, script);
    {
        LmtpClient client(unix_destination(server.path), "mx.example", std::chrono::seconds(5));
        auto first = client.deliver(message_of("Subject: parent\n\n1\n"), envelope_from("alice@remote.example"),
                                    recipients({"bob@host.example"}));
        REQUIRE(first.statuses.size() == 1);
        REQUIRE(first.statuses[0].is_ok());
        pid_t child = ::fork();
        REQUIRE(child >= 0);
        if (child == 0) {
            auto message = mail::Message::from_string("Subject: child\n\n2\n", mail::MessageOptions{});
            if (!message) ::_exit(3);
            auto in_child = client.deliver(*message, envelope_from("alice@remote.example"),
                                           {mail::TransportRecipient{"bob@host.example", {}}});
            ::_exit(in_child.statuses.size() == 1 && in_child.statuses[0].is_ok() ? 0 : 1);
        }
        int status = 0;
        REQUIRE(::waitpid(child, &status, 0) == child);
        CHECK(WIFEXITED(status));
        CHECK(WEXITSTATUS(status) == 0);
    }
    std::string received = server.received();
    CHECK(count_of(received, "#CONNECT") == 2);
    CHECK(count_of(received, "LHLO") == 2);
    CHECK(count_of(received, "RSET") == 0);
}
