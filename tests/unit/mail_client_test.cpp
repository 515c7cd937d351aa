// lib/net/mail_client.hpp in its SMTP dialect (the LMTP one: lmtp_client_test.cpp),
// against a scripted fake SMTP server in a child process on a unix socket that
// records every byte it is sent (after STARTTLS: the decrypted bytes, after a
// "#TLS" mark). Its certificate is made by openssl(1) in the test's folder.
#include "net/mail_client.hpp"

#include <openssl/err.h>
#include <openssl/ssl.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdlib>
#include <cstring>
#include <string>
#include <vector>

#include "mail/message.hpp"
#include "net/tls_client.hpp"
#include "support/test_support.hpp"

using namespace mailroom;
using mailroom::net::ClientSettings;
using mailroom::net::Dialect;
using mailroom::net::MailClient;
using mailroom::net::OpenOutcome;
using mailroom::net::SocketAddress;
using mailroom::net::TlsClientContext;
using mailroom::net::TlsLevel;
using mailroom::test::TempDir;

namespace {

// What the fake server answers. Replies are written without their CRLF.
struct Script {
    std::string greeting = "220 fake.example ESMTP";
    std::string ehlo_refusal;              // when set: the reply to EHLO (then HELO is answered 250)
    std::vector<std::string> extensions;   // EHLO lines after the first: "PIPELINING", "STARTTLS", "AUTH PLAIN LOGIN"
    std::vector<std::string> tls_extensions;  // after STARTTLS; empty: the same as before
    std::string starttls = "220 2.0.0 Ready to start TLS";
    bool tls_garbage = false;              // after the 220: no handshake, a plaintext line, then close
    std::string auth = "235 2.7.0 Authentication successful";
    std::string mail = "250 2.1.0 Ok";
    std::vector<std::string> rcpt;         // per RCPT of a transaction; past the end: 250 2.1.5 Ok
    std::string data = "354 End data with <CR><LF>.<CR><LF>";
    std::string final_reply = "250 2.0.0 Ok: queued as 4XyZ";
    bool close_after_data = false;         // the text read, no reply: the connection dropped
    size_t connections = 1;
};

std::string cert_dir;  // where cert.pem and key.pem are

class FakeConnection {
public:
    FakeConnection(int fd, int log, const Script& script) : fd_(fd), log_(log), script_(script) {}
    ~FakeConnection() {
        if (ssl_) SSL_free(ssl_);
        if (ctx_) SSL_CTX_free(ctx_);
    }

    void serve() {
        send(script_.greeting);
        bool in_mail = false, pipelining = false;
        size_t rcpt_index = 0, accepted = 0;
        std::vector<std::string> extensions = script_.extensions;
        for (std::string line; next_line(line);) {
            // A client that sends a second command before the reply to the first,
            // when PIPELINING was not offered, is noted.
            if (!pipelining && !input_.empty()) note("#PIPELINED WITHOUT PIPELINING\r\n");
            std::string verb = line.substr(0, line.find(' '));
            for (auto& c : verb) c = static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
            if (verb == "EHLO") {
                if (!script_.ehlo_refusal.empty()) {
                    send(script_.ehlo_refusal);
                    continue;
                }
                pipelining = false;
                send(extensions.empty() ? "250 fake.example" : "250-fake.example");
                for (size_t i = 0; i < extensions.size(); ++i) {
                    send((i + 1 == extensions.size() ? "250 " : "250-") + extensions[i]);
                    if (extensions[i] == "PIPELINING") pipelining = true;
                }
            } else if (verb == "HELO") {
                send("250 fake.example");
            } else if (verb == "STARTTLS") {
                send(script_.starttls);
                if (script_.starttls[0] != '2') continue;
                if (script_.tls_garbage) {
                    send("this is not TLS");
                    return;
                }
                if (!start_tls()) return;
                note("#TLS\r\n");
                if (!script_.tls_extensions.empty()) extensions = script_.tls_extensions;
            } else if (verb == "AUTH") {
                std::string mechanism = line.size() > 5 ? line.substr(5, 5) : "";
                if (mechanism == "LOGIN") {
                    std::string user, password;
                    send("334 VXNlcm5hbWU6");
                    if (!next_line(user)) return;
                    send("334 UGFzc3dvcmQ6");
                    if (!next_line(password)) return;
                }
                send(script_.auth);
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
                    send("554 5.5.1 Error: no valid recipients");
                    continue;
                }
                send(script_.data);
                if (script_.data[0] != '3') continue;
                for (std::string text; text != ".";) {
                    if (!next_line(text)) return;
                }
                if (script_.close_after_data) return;
                send(script_.final_reply);
                in_mail = false;
            } else if (verb == "RSET") {
                in_mail = false;
                send("250 2.0.0 Ok");
            } else if (verb == "QUIT") {
                send("221 2.0.0 Bye");
                return;
            } else {
                send("502 5.5.2 Error: command not recognized");
            }
        }
    }

private:
    bool start_tls() {
        ctx_ = SSL_CTX_new(TLS_server_method());
        if (!ctx_ || SSL_CTX_use_certificate_chain_file(ctx_, (cert_dir + "/cert.pem").c_str()) != 1 ||
            SSL_CTX_use_PrivateKey_file(ctx_, (cert_dir + "/key.pem").c_str(), SSL_FILETYPE_PEM) != 1)
            return false;
        ssl_ = SSL_new(ctx_);
        SSL_set_fd(ssl_, fd_);
        if (SSL_accept(ssl_) != 1) {
            note("#HANDSHAKE FAILED\r\n");
            return false;
        }
        return true;
    }
    void note(std::string_view text) { (void)!::write(log_, text.data(), text.size()); }
    void send(std::string reply) {
        reply += "\r\n";
        if (ssl_) SSL_write(ssl_, reply.data(), static_cast<int>(reply.size()));
        else (void)!::send(fd_, reply.data(), reply.size(), MSG_NOSIGNAL);
    }
    bool next_line(std::string& line) {
        size_t end;
        while ((end = input_.find("\r\n")) == std::string::npos) {
            char buf[8192];
            ssize_t n = ssl_ ? SSL_read(ssl_, buf, sizeof buf) : ::recv(fd_, buf, sizeof buf, 0);
            if (n <= 0) return false;
            note(std::string_view(buf, static_cast<size_t>(n)));
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
    SSL_CTX* ctx_ = nullptr;
    SSL* ssl_ = nullptr;
};

// A fake SMTP server in a child process at dir/smtp, writing what it is sent to
// dir/received ("#CONNECT\r\n" at each connection).
class FakeSmtpServer {
public:
    FakeSmtpServer(const TempDir& dir, Script script)
        : path(dir.path + "/smtp"), log_path_(dir.path + "/received"), script_(std::move(script)) {
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
            ::alarm(20);
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
    ~FakeSmtpServer() { stop(); }
    FakeSmtpServer(const FakeSmtpServer&) = delete;
    FakeSmtpServer& operator=(const FakeSmtpServer&) = delete;

    std::string received() {
        stop();
        return mailroom::test::slurp(log_path_);
    }
    SocketAddress address() const { return SocketAddress::unix_path(path); }

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

// A self-signed certificate for fake.example (and only that name), made once.
const std::string& certificate_folder() {
    static TempDir dir;
    static bool made = false;
    if (!made) {
        std::string command = "openssl req -x509 -newkey rsa:2048 -nodes -days 2 -subj /CN=fake.example"
                              " -addext subjectAltName=DNS:fake.example -keyout " +
                              dir.path + "/key.pem -out " + dir.path + "/cert.pem >/dev/null 2>&1";
        REQUIRE(std::system(command.c_str()) == 0);
        made = true;
        cert_dir = dir.path;
    }
    return dir.path;
}

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

ClientSettings smtp_settings(TlsLevel level = TlsLevel::none) {
    ClientSettings settings;
    settings.dialect = Dialect::smtp;
    settings.helo_name = "mx.example";
    settings.timeout = std::chrono::seconds(5);
    settings.relay = "fake.example[127.0.0.1]";
    settings.tls_level = level;
    if (level != TlsLevel::none) {
        auto tls = TlsClientContext::make("");
        REQUIRE(tls);
        settings.tls = *tls;
        settings.tls_peer_name = "fake.example";
    }
    return settings;
}

size_t count_of(const std::string& text, const std::string& what) {
    size_t n = 0;
    for (size_t at = text.find(what); at != std::string::npos; at = text.find(what, at + what.size())) ++n;
    return n;
}

const std::string simple_text = "Subject: hi\n\nHello.\n";

}  // namespace

TEST_CASE("An SMTP transaction is EHLO, MAIL, a RCPT per recipient and DATA, and the one reply after the data is "
          "every accepted recipient's",
          "[mail_client]") {
    TempDir tmp;
    Script script;
    script.extensions = {"PIPELINING", "SIZE 10240000", "ENHANCEDSTATUSCODES"};
    FakeSmtpServer server(tmp, script);
    auto message = message_of(simple_text);
    {
        MailClient client(smtp_settings());
        auto opened = client.open({server.address()});
        REQUIRE(opened.kind == OpenOutcome::Kind::open);
        auto sent = client.transact(message, envelope_from("alice@here.example"),
                                    recipients({"bob@far.example", "carol@far.example"}));
        REQUIRE(sent.statuses.size() == 2);
        for (const auto& status : sent.statuses) {
            REQUIRE(status);
            CHECK(status->is_ok());
            CHECK(status->text() == "250 2.0.0 Ok: queued as 4XyZ");
        }
        CHECK(sent.lost.empty());
        client.quit();
    }
    std::string received = server.received();
    CHECK(received == "#CONNECT\r\n"
                      "EHLO mx.example\r\n"
                      "MAIL FROM:<alice@here.example> SIZE=" + std::to_string(message.size()) + "\r\n"
                      "RCPT TO:<bob@far.example>\r\n"
                      "RCPT TO:<carol@far.example>\r\n"
                      "DATA\r\n"
                      "Subject: hi\r\n\r\nHello.\r\n.\r\n"
                      "QUIT\r\n");
}

TEST_CASE("A server that refuses EHLO with a 5xx is greeted with HELO, and no extension is used then",
          "[mail_client]") {
    TempDir tmp;
    Script script;
    script.ehlo_refusal = "502 5.5.2 Error: command not recognized";
    FakeSmtpServer server(tmp, script);
    {
        MailClient client(smtp_settings());
        REQUIRE(client.open({server.address()}).kind == OpenOutcome::Kind::open);
        auto sent = client.transact(message_of(simple_text), envelope_from("alice@here.example"),
                                    recipients({"bob@far.example"}));
        REQUIRE(sent.statuses[0]);
        CHECK(sent.statuses[0]->is_ok());
    }
    std::string received = server.received();
    CHECK(received.find("EHLO mx.example\r\nHELO mx.example\r\nMAIL FROM:<alice@here.example>\r\n") !=
          std::string::npos);
    CHECK(received.find("#PIPELINED") == std::string::npos);
}

TEST_CASE("Without PIPELINING each command waits for its reply, with PIPELINING MAIL, RCPTs and DATA go at once",
          "[mail_client]") {
    for (bool pipelining : {false, true}) {
        INFO("pipelining " << pipelining);
        TempDir tmp;
        Script script;
        if (pipelining) script.extensions = {"PIPELINING"};
        FakeSmtpServer server(tmp, script);
        {
            MailClient client(smtp_settings());
            REQUIRE(client.open({server.address()}).kind == OpenOutcome::Kind::open);
            auto sent = client.transact(message_of(simple_text), envelope_from("alice@here.example"),
                                        recipients({"bob@far.example", "carol@far.example"}));
            REQUIRE(sent.statuses[1]);
            CHECK(sent.statuses[1]->is_ok());
        }
        std::string received = server.received();
        CHECK(received.find("#PIPELINED WITHOUT PIPELINING") == std::string::npos);
        // The fake notes pipelining only when it was not offered; with it, the
        // commands arrived in one piece.
        if (pipelining)
            CHECK(received.find("MAIL FROM:<alice@here.example>\r\nRCPT TO:<bob@far.example>\r\nRCPT "
                                "TO:<carol@far.example>\r\nDATA\r\n") != std::string::npos);
    }
}

TEST_CASE("Each RCPT's 4xx or 5xx is that recipient's alone, and the reply after the data is the others'",
          "[mail_client]") {
    TempDir tmp;
    Script script;
    script.extensions = {"PIPELINING", "ENHANCEDSTATUSCODES"};
    script.rcpt = {"250 2.1.5 Ok", "550 5.1.1 <dave@far.example>: Recipient address rejected: User unknown",
                   "450 4.2.1 <erin@far.example>: try later", "250 2.1.5 Ok"};
    FakeSmtpServer server(tmp, script);
    MailClient client(smtp_settings());
    REQUIRE(client.open({server.address()}).kind == OpenOutcome::Kind::open);
    auto sent = client.transact(message_of(simple_text), envelope_from("alice@here.example"),
                                recipients({"bob@far.example", "dave@far.example", "erin@far.example", "frank@far.example"}));
    REQUIRE(sent.statuses.size() == 4);
    for (const auto& status : sent.statuses) REQUIRE(status);
    CHECK(sent.statuses[0]->is_ok());
    CHECK(sent.statuses[1]->is_permanent());
    CHECK(sent.statuses[1]->code() == "5.1.1");
    CHECK(sent.statuses[1]->text() == "host fake.example[127.0.0.1] said: 550 5.1.1 <dave@far.example>: Recipient "
                                      "address rejected: User unknown (in reply to RCPT TO command)");
    CHECK(sent.statuses[2]->is_temporary());
    CHECK(sent.statuses[2]->code() == "4.2.1");
    CHECK(sent.statuses[3]->is_ok());
}

TEST_CASE("A 5xx after the data bounces every accepted recipient with that reply", "[mail_client]") {
    TempDir tmp;
    Script script;
    script.extensions = {"PIPELINING"};
    script.rcpt = {"250 2.1.5 Ok", "450 4.2.1 later"};
    script.final_reply = "554 5.7.1 Message rejected as spam";
    FakeSmtpServer server(tmp, script);
    MailClient client(smtp_settings());
    REQUIRE(client.open({server.address()}).kind == OpenOutcome::Kind::open);
    auto sent = client.transact(message_of(simple_text), envelope_from("alice@here.example"),
                                recipients({"bob@far.example", "carol@far.example", "dave@far.example"}));
    REQUIRE(sent.statuses.size() == 3);
    CHECK(sent.statuses[0]->is_permanent());
    CHECK(sent.statuses[0]->code() == "5.7.1");
    CHECK(sent.statuses[0]->text().ends_with("554 5.7.1 Message rejected as spam (in reply to end of DATA command)"));
    CHECK(sent.statuses[1]->is_temporary());
    CHECK(sent.statuses[2]->is_permanent());
    CHECK(sent.statuses[2]->code() == "5.7.1");
}

TEST_CASE("A connection reused for the next message is reset first, greeted only once", "[mail_client]") {
    TempDir tmp;
    Script script;
    script.extensions = {"PIPELINING"};
    FakeSmtpServer server(tmp, script);
    {
        MailClient client(smtp_settings());
        REQUIRE(client.open({server.address()}).kind == OpenOutcome::Kind::open);
        auto first = client.transact(message_of("Subject: one\n\n1\n"), envelope_from("alice@here.example"),
                                     recipients({"bob@far.example"}));
        CHECK(first.statuses[0]->is_ok());
        REQUIRE(client.is_open());
        auto second = client.transact(message_of("Subject: two\n\n2\n"), envelope_from("carol@here.example"),
                                      recipients({"bob@far.example"}));
        CHECK(second.statuses[0]->is_ok());
    }
    std::string received = server.received();
    CHECK(count_of(received, "#CONNECT") == 1);
    CHECK(count_of(received, "EHLO") == 1);
    CHECK(received.find("1\r\n.\r\nRSET\r\nMAIL FROM:<carol@here.example>\r\n") != std::string::npos);
}

TEST_CASE("A connection dropped after the data leaves every recipient without an outcome and says it was lost",
          "[mail_client]") {
    TempDir tmp;
    Script script;
    script.close_after_data = true;
    FakeSmtpServer server(tmp, script);
    MailClient client(smtp_settings());
    REQUIRE(client.open({server.address()}).kind == OpenOutcome::Kind::open);
    auto sent = client.transact(message_of(simple_text), envelope_from("alice@here.example"),
                                recipients({"bob@far.example", "carol@far.example"}));
    REQUIRE(sent.statuses.size() == 2);
    CHECK_FALSE(sent.statuses[0]);
    CHECK_FALSE(sent.statuses[1]);
    CHECK(sent.lost == "lost connection");
    CHECK_FALSE(client.is_open());
}

TEST_CASE("A 4xx greeting refuses the session with a temporary status naming the host", "[mail_client]") {
    for (std::string greeting : {"421 4.3.2 Service not available", "554 5.3.2 No SMTP service here"}) {
        INFO(greeting);
        TempDir tmp;
        Script script;
        script.greeting = greeting;
        FakeSmtpServer server(tmp, script);
        MailClient client(smtp_settings());
        auto opened = client.open({server.address()});
        CHECK(opened.kind == OpenOutcome::Kind::refused);
        REQUIRE(opened.status);
        CHECK(opened.status->is_temporary());
        CHECK(opened.status->code() == "4.3.2");
        CHECK(opened.status->text().starts_with("host fake.example[127.0.0.1] refused to talk to me: "));
        CHECK(server.received().find("EHLO") == std::string::npos);
    }
}

TEST_CASE("Nothing listening is a failed connection, to be tried at the next address", "[mail_client]") {
    TempDir tmp;
    MailClient client(smtp_settings());
    auto opened = client.open({SocketAddress::unix_path(tmp.path + "/nobody")});
    CHECK(opened.kind == OpenOutcome::Kind::connect_failed);
    REQUIRE(opened.status);
    CHECK(opened.status->code() == "4.4.1");
    CHECK(opened.status->text().starts_with("connect to fake.example[127.0.0.1]: "));
}

TEST_CASE("At tls level none STARTTLS is never sent, even when offered", "[mail_client]") {
    TempDir tmp;
    Script script;
    script.extensions = {"STARTTLS"};
    FakeSmtpServer server(tmp, script);
    {
        // Even with a TLS context at hand: the level decides.
        ClientSettings settings = smtp_settings(TlsLevel::none);
        auto tls = TlsClientContext::make("");
        REQUIRE(tls);
        settings.tls = *tls;
        MailClient client(settings);
        auto opened = client.open({server.address()});
        REQUIRE(opened.kind == OpenOutcome::Kind::open);
        CHECK(opened.tls.empty());
    }
    CHECK(server.received().find("STARTTLS") == std::string::npos);
}

TEST_CASE("At tls level may STARTTLS goes when offered, then EHLO again and the mail over TLS", "[mail_client]") {
    certificate_folder();
    TempDir tmp;
    Script script;
    script.extensions = {"PIPELINING", "STARTTLS"};
    script.tls_extensions = {"PIPELINING", "SIZE 1000000"};
    FakeSmtpServer server(tmp, script);
    auto message = message_of(simple_text);
    {
        MailClient client(smtp_settings(TlsLevel::may));
        auto opened = client.open({server.address()});
        REQUIRE(opened.kind == OpenOutcome::Kind::open);
        CHECK(opened.tls.starts_with("TLSv1."));
        auto sent = client.transact(message, envelope_from("alice@here.example"), recipients({"bob@far.example"}));
        CHECK(sent.statuses[0]->is_ok());
    }
    std::string received = server.received();
    CHECK(received.starts_with("#CONNECT\r\nEHLO mx.example\r\nSTARTTLS\r\n#TLS\r\nEHLO mx.example\r\nMAIL FROM:"
                               "<alice@here.example> SIZE=" + std::to_string(message.size()) + "\r\n"));
}

TEST_CASE("At tls level may a server without STARTTLS gets the mail in plaintext", "[mail_client]") {
    TempDir tmp;
    FakeSmtpServer server(tmp, Script{});
    {
        MailClient client(smtp_settings(TlsLevel::may));
        REQUIRE(client.open({server.address()}).kind == OpenOutcome::Kind::open);
        CHECK(client.transact(message_of(simple_text), envelope_from("a@here.example"), recipients({"b@far.example"}))
                  .statuses[0]
                  ->is_ok());
    }
    CHECK(server.received().find("STARTTLS") == std::string::npos);
}

TEST_CASE("At tls level may a failed handshake is reported as such, for the caller to connect again in plaintext",
          "[mail_client]") {
    TempDir tmp;
    Script script;
    script.extensions = {"STARTTLS"};
    script.tls_garbage = true;
    FakeSmtpServer server(tmp, script);
    MailClient client(smtp_settings(TlsLevel::may));
    auto opened = client.open({server.address()});
    CHECK(opened.kind == OpenOutcome::Kind::tls_failed);
    REQUIRE(opened.status);
    CHECK(opened.status->is_temporary());
    CHECK_FALSE(client.is_open());
}

TEST_CASE("At tls level encrypt a server without STARTTLS is refused 4.7.4 and nothing is sent after EHLO but QUIT",
          "[mail_client]") {
    TempDir tmp;
    FakeSmtpServer server(tmp, Script{});
    {
        MailClient client(smtp_settings(TlsLevel::encrypt));
        auto opened = client.open({server.address()});
        CHECK(opened.kind == OpenOutcome::Kind::refused);
        REQUIRE(opened.status);
        CHECK(opened.status->is_temporary());
        CHECK(opened.status->code() == "4.7.4");
        CHECK(opened.status->text() == "TLS is required, but was not offered by host fake.example[127.0.0.1]");
    }
    CHECK(server.received() == "#CONNECT\r\nEHLO mx.example\r\nQUIT\r\n");
}

TEST_CASE("At tls level encrypt an untrusted certificate is refused, a trusted one with the right name is used",
          "[mail_client]") {
    const std::string& certs = certificate_folder();
    struct Case {
        std::string ca_file;  // "" = the system store, which does not know the fake's certificate
        std::string peer_name;
        bool open;
    };
    for (const auto& c : std::vector<Case>{{"", "fake.example", false},
                                           {certs + "/cert.pem", "fake.example", true},
                                           {certs + "/cert.pem", "other.example", false}}) {
        INFO(c.ca_file << " " << c.peer_name);
        TempDir tmp;
        Script script;
        script.extensions = {"STARTTLS"};
        FakeSmtpServer server(tmp, script);
        ClientSettings settings = smtp_settings(TlsLevel::encrypt);
        auto tls = TlsClientContext::make(c.ca_file);
        REQUIRE(tls);
        settings.tls = *tls;
        settings.tls_peer_name = c.peer_name;
        MailClient client(settings);
        auto opened = client.open({server.address()});
        if (c.open) {
            CHECK(opened.kind == OpenOutcome::Kind::open);
            continue;
        }
        CHECK(opened.kind == OpenOutcome::Kind::refused);
        REQUIRE(opened.status);
        CHECK(opened.status->code() == "4.7.5");
        CHECK(opened.status->text().find("certificate") != std::string::npos);
        client.quit();
        CHECK(server.received().find("MAIL") == std::string::npos);
    }
}

TEST_CASE("AUTH PLAIN sends the credentials in one line, over TLS", "[mail_client]") {
    certificate_folder();
    TempDir tmp;
    Script script;
    script.extensions = {"STARTTLS", "AUTH LOGIN PLAIN"};
    FakeSmtpServer server(tmp, script);
    {
        ClientSettings settings = smtp_settings(TlsLevel::may);
        settings.login = ClientSettings::Login{"user", "pass"};
        MailClient client(settings);
        REQUIRE(client.open({server.address()}).kind == OpenOutcome::Kind::open);
    }
    std::string received = server.received();
    const size_t tls = received.find("#TLS");
    REQUIRE(tls != std::string::npos);
    // base64("\0user\0pass")
    const size_t auth = received.find("AUTH PLAIN AHVzZXIAcGFzcw==\r\n");
    REQUIRE(auth != std::string::npos);
    CHECK(auth > tls);
    CHECK(count_of(received, "AUTH") == 1);
}

TEST_CASE("AUTH LOGIN is used when it is the only mechanism offered: user and password each in base64",
          "[mail_client]") {
    certificate_folder();
    TempDir tmp;
    Script script;
    script.extensions = {"STARTTLS", "AUTH=LOGIN"};
    FakeSmtpServer server(tmp, script);
    {
        ClientSettings settings = smtp_settings(TlsLevel::may);
        settings.login = ClientSettings::Login{"user", "pass"};
        MailClient client(settings);
        REQUIRE(client.open({server.address()}).kind == OpenOutcome::Kind::open);
    }
    std::string received = server.received();
    CHECK(received.find("#TLS\r\nEHLO mx.example\r\nAUTH LOGIN\r\ndXNlcg==\r\ncGFzcw==\r\n") != std::string::npos);
}

TEST_CASE("No password goes without TLS: AUTH offered in plaintext refuses the session 4.7.0 unless the hop is "
          "loopback",
          "[mail_client]") {
    for (bool in_clear : {false, true}) {
        INFO("auth_in_clear " << in_clear);
        TempDir tmp;
        Script script;
        script.extensions = {"AUTH PLAIN"};
        FakeSmtpServer server(tmp, script);
        {
            ClientSettings settings = smtp_settings(TlsLevel::may);
            settings.login = ClientSettings::Login{"user", "pass"};
            settings.auth_in_clear = in_clear;
            MailClient client(settings);
            auto opened = client.open({server.address()});
            if (in_clear) {
                CHECK(opened.kind == OpenOutcome::Kind::open);
            } else {
                CHECK(opened.kind == OpenOutcome::Kind::refused);
                REQUIRE(opened.status);
                CHECK(opened.status->code() == "4.7.0");
            }
        }
        std::string received = server.received();
        CHECK((received.find("AUTH PLAIN AHVzZXIAcGFzcw==") != std::string::npos) == in_clear);
    }
}

TEST_CASE("A refused AUTH refuses the session with a temporary status quoting the server", "[mail_client]") {
    TempDir tmp;
    Script script;
    script.extensions = {"AUTH PLAIN"};
    script.auth = "535 5.7.8 Error: authentication failed";
    FakeSmtpServer server(tmp, script);
    ClientSettings settings = smtp_settings();
    settings.login = ClientSettings::Login{"user", "wrong"};
    settings.auth_in_clear = true;
    MailClient client(settings);
    auto opened = client.open({server.address()});
    CHECK(opened.kind == OpenOutcome::Kind::refused);
    REQUIRE(opened.status);
    CHECK(opened.status->is_temporary());
    CHECK(opened.status->text() ==
          "SASL authentication failed; server fake.example[127.0.0.1] said: 535 5.7.8 Error: authentication failed");
}
