// The password channel end to end: mta/password_service.hpp (the root side, run in
// a forked process or driven here) and net/password_client.hpp (the sessions
// process's asker, in this process's event loop). The checks are a fake Checker,
// so no PAM is needed: a password is right when it is "right-" + the user, and a
// user named "slowN" takes N tenths of a second to check.
#include "net/password_client.hpp"

#include <poll.h>
#include <signal.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/posix/stream_descriptor.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <catch2/catch.hpp>
#include <chrono>
#include <optional>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

#include "mta/password_service.hpp"
#include "smtp/password_request.hpp"
#include "support/test_support.hpp"

#pragma GCC diagnostic ignored "-Wmismatched-new-delete"

namespace asio = boost::asio;
using mailroom::core::Logger;
using mailroom::core::PasswordCheck;
using mailroom::core::PasswordVerdict;
using mailroom::core::UniqueFd;
using mailroom::mta::PasswordService;
using mailroom::net::PasswordClient;
using mailroom::test::TempDir;
using namespace std::chrono_literals;
using namespace std::string_literals;

namespace {

constexpr auto tuple_awaitable = asio::as_tuple(asio::use_awaitable);

PasswordCheck fake_check(const std::string& user, std::string_view password) {
    if (user.rfind("slow", 0) == 0) std::this_thread::sleep_for(std::stoi(user.substr(4)) * 100ms);
    if (user == "broken") return {PasswordVerdict::unavailable, "back end down"};
    if (user == "throws") throw std::runtime_error("a PAM module that throws");
    return {password == "right-" + user ? PasswordVerdict::accepted : PasswordVerdict::refused, {}};
}

struct Channel {
    UniqueFd root, sessions;
    Channel() {
        int ends[2];
        REQUIRE(::socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, ends) == 0);
        root.reset(ends[0]);
        sessions.reset(ends[1]);
    }
};

// The root side's loop, as mta/smtpd.cpp runs it, in a forked process: requests
// from the channel to the service, reaped children to the service. Ends once the
// channel has closed and the last check is done; logs to `log_path`. The sessions'
// end is closed in it, so that the channel ends when the client closes it.
pid_t serve_in_child(Channel& channel, const std::string& log_path, size_t max_checks) {
    pid_t pid = ::fork();
    REQUIRE(pid >= 0);
    if (pid > 0) {
        channel.root.reset();
        return pid;
    }
    channel.sessions.reset();
    sigset_t mask;
    sigemptyset(&mask);
    sigaddset(&mask, SIGCHLD);
    ::sigprocmask(SIG_BLOCK, &mask, nullptr);
    UniqueFd signals(::signalfd(-1, &mask, SFD_NONBLOCK | SFD_CLOEXEC));
    auto log = Logger::open("smtpd", log_path);
    if (!log || !signals) ::_exit(2);
    {
        PasswordService service(fake_check, max_checks, *log);
        std::vector<char> packet(8 * 1024);
        int fd = channel.root.get();
        while (fd >= 0 || service.running() > 0) {
            struct pollfd fds[2] = {{signals.get(), POLLIN, 0}, {fd, POLLIN, 0}};
            if (::poll(fds, fd >= 0 ? 2 : 1, 5000) <= 0) ::_exit(3);
            if (fds[0].revents & POLLIN) {
                struct signalfd_siginfo info {};
                while (::read(signals.get(), &info, sizeof info) == static_cast<ssize_t>(sizeof info)) {
                }
                int status = 0;
                for (pid_t child; (child = ::waitpid(-1, &status, WNOHANG)) > 0;) service.reaped(child, status);
            }
            if (fd >= 0 && (fds[1].revents & (POLLIN | POLLHUP))) {
                ssize_t got = ::recv(fd, packet.data(), packet.size(), MSG_TRUNC | MSG_DONTWAIT);
                if (got == 0) fd = -1;
                else if (got > 0 && static_cast<size_t>(got) <= packet.size())
                    service.on_request(fd, std::string_view(packet.data(), static_cast<size_t>(got)));
                ::explicit_bzero(packet.data(), packet.size());
            }
        }
    }
    ::_exit(0);
}

int exit_code_of(pid_t pid) {
    int status = 0;
    REQUIRE(::waitpid(pid, &status, 0) == pid);
    REQUIRE(WIFEXITED(status));
    return WEXITSTATUS(status);
}

// One session's question and what became of it.
struct Asked {
    std::optional<PasswordVerdict> verdict;
    double seconds = 0;
    int order = 0;
};

asio::awaitable<void> ask(PasswordClient& client, std::string user, std::string password, Asked& out, int& finished,
                          std::chrono::steady_clock::time_point start) {
    out.verdict = co_await client.check(std::move(user), std::move(password));
    out.seconds = mailroom::test::seconds_since(start);
    out.order = ++finished;
}

// Runs the loop until it has nothing left to do; false when that takes past `limit`
// (a check or the reader that never ends would hang the loop).
bool run_until_done(asio::io_context& io, std::chrono::seconds limit) {
    io.run_for(limit);
    return io.stopped();
}

// One packet from `fd`, waiting up to 5 s.
std::string next_packet(int fd) {
    struct pollfd ready {fd, POLLIN, 0};
    REQUIRE(::poll(&ready, 1, 5000) == 1);
    char buffer[4096];
    ssize_t n = ::recv(fd, buffer, sizeof buffer, 0);
    REQUIRE(n >= 0);
    return std::string(buffer, static_cast<size_t>(n));
}

bool nothing_to_read(int fd, int ms) {
    struct pollfd ready {fd, POLLIN, 0};
    return ::poll(&ready, 1, ms) == 0;
}

}  // namespace

TEST_CASE("two sessions asking at once each get the answer to their own question", "[password_service]") {
    TempDir dir;
    const std::string log_path = dir.path + "/log";
    Channel channel;
    pid_t root = serve_in_child(channel, log_path, 4);
    asio::io_context io;
    {
        PasswordClient client(io.get_executor(), std::move(channel.sessions), 10s);
        Asked slow, fast, wrong;
        int finished = 0;
        auto start = std::chrono::steady_clock::now();
        // The first asked is answered last: answers go by id, not by order.
        asio::co_spawn(io, ask(client, "slow5", "right-slow5", slow, finished, start), asio::detached);
        asio::co_spawn(io, ask(client, "alice", "right-alice", fast, finished, start), asio::detached);
        asio::co_spawn(io, ask(client, "bob", "right-alice", wrong, finished, start), asio::detached);
        REQUIRE(run_until_done(io, 10s));
        CHECK(slow.verdict == PasswordVerdict::accepted);
        CHECK(fast.verdict == PasswordVerdict::accepted);
        CHECK(wrong.verdict == PasswordVerdict::refused);
        CHECK(slow.order == 3);
        CHECK(slow.seconds >= 0.45);
        CHECK(fast.seconds < 0.45);
        CHECK(client.waiting() == 0);
    }
    CHECK(exit_code_of(root) == 0);
    std::string log = mailroom::test::slurp(log_path);
    CHECK(log.find("smtpd auth: user=alice verdict=ok") != std::string::npos);
    CHECK(log.find("smtpd auth: user=slow5 verdict=ok") != std::string::npos);
    CHECK(log.find("smtpd auth: user=bob verdict=no") != std::string::npos);
    CHECK(log.find("right-") == std::string::npos);
}

TEST_CASE("the password service checks at most N at once and the rest in the order they came", "[password_service]") {
    TempDir dir;
    const std::string log_path = dir.path + "/log";
    auto log = Logger::open("smtpd", log_path);
    REQUIRE(log);
    Channel channel;
    PasswordService service(fake_check, 1, *log);
    service.on_request(channel.root.get(), mailroom::smtp::encode_password_request(1, "slow2", "right-slow2"));
    service.on_request(channel.root.get(), mailroom::smtp::encode_password_request(2, "carol", "wrong"));
    service.on_request(channel.root.get(), mailroom::smtp::encode_password_request(3, "dave", "right-dave"));
    CHECK(service.running() == 1);
    CHECK(service.queued() == 2);
    std::vector<std::string> answers;
    while (answers.size() < 3) {
        answers.push_back(next_packet(channel.sessions.get()));
        int status = 0;
        pid_t pid = ::waitpid(-1, &status, 0);
        REQUIRE(service.reaped(pid, status));
        CHECK(service.running() <= 1);
    }
    CHECK(answers[0] == mailroom::smtp::encode_password_answer(1, PasswordVerdict::accepted));
    CHECK(answers[1] == mailroom::smtp::encode_password_answer(2, PasswordVerdict::refused));
    CHECK(answers[2] == mailroom::smtp::encode_password_answer(3, PasswordVerdict::accepted));
    CHECK(service.running() == 0);
    CHECK(service.queued() == 0);
    auto lines = mailroom::test::lines_of(mailroom::test::slurp(log_path));
    REQUIRE(lines.size() == 3);
    CHECK(lines[0].find("smtpd auth: user=slow2 verdict=ok") != std::string::npos);
    CHECK(lines[1].find("smtpd auth: user=carol verdict=no") != std::string::npos);
    CHECK(lines[2].find("smtpd auth: user=dave verdict=ok") != std::string::npos);
}

TEST_CASE("the password service answers nothing to a malformed request and logs it", "[password_service]") {
    std::vector<std::string> lines;
    Logger log = Logger::capture("smtpd", &lines);
    Channel channel;
    PasswordService service(fake_check, 4, log);
    service.on_request(channel.root.get(), "password1\0" "1\0alice\0"s);
    service.on_request(channel.root.get(), "password1\0" "x\0alice\0right-alice"s);
    CHECK(service.running() == 0);
    CHECK(nothing_to_read(channel.sessions.get(), 100));
    REQUIRE(lines.size() == 2);
    CHECK(lines[0].find("warning: smtpd auth: malformed password request") == 0);
    CHECK(lines[1].find("right-alice") == std::string::npos);
}

TEST_CASE("the password service logs the user escaped, tmp with its reason, and never a password", "[password_service]") {
    TempDir dir;
    const std::string log_path = dir.path + "/log";
    auto log = Logger::open("smtpd", log_path);
    REQUIRE(log);
    Channel channel;
    PasswordService service(fake_check, 4, *log);
    service.on_request(channel.root.get(), mailroom::smtp::encode_password_request(1, "bob verdict=ok\nX", "pw"));
    service.on_request(channel.root.get(), mailroom::smtp::encode_password_request(2, "broken", "right-broken"));
    service.on_request(channel.root.get(), mailroom::smtp::encode_password_request(3, "50%20\\", "pw"));
    for (int i = 0; i < 3; ++i) {
        (void)next_packet(channel.sessions.get());
        int status = 0;
        REQUIRE(service.reaped(::waitpid(-1, &status, 0), status));
    }
    std::string text = mailroom::test::slurp(log_path);
    // Escaped once: the newline and backslash by the Logger, the space and % here.
    CHECK(text.find("smtpd auth: user=bob%20verdict=ok\\nX verdict=no") != std::string::npos);
    CHECK(text.find("smtpd auth: user=50%2520\\\\ verdict=no") != std::string::npos);
    CHECK(text.find("smtpd auth: user=broken verdict=tmp why=back end down") != std::string::npos);
    CHECK(text.find("right-broken") == std::string::npos);
    CHECK(mailroom::test::lines_of(text).size() == 3);
}

TEST_CASE("a check that throws is answered tmp, and its child never returns into the service", "[password_service]") {
    std::vector<std::string> lines;
    Logger log = Logger::capture("smtpd", &lines);
    Channel channel;
    PasswordService service(fake_check, 4, log);
    service.on_request(channel.root.get(), mailroom::smtp::encode_password_request(5, "throws", "pw"));
    CHECK(next_packet(channel.sessions.get()) == mailroom::smtp::encode_password_answer(5, PasswordVerdict::unavailable));
    int status = 0;
    pid_t pid = ::waitpid(-1, &status, 0);
    CHECK(WIFEXITED(status));
    CHECK(WEXITSTATUS(status) == 0);
    CHECK(service.reaped(pid, status));
    CHECK(lines.empty());  // the child logged into its own copy of the capture
}

TEST_CASE("a check past its time limit is ended, answered nothing, and logged tmp", "[password_service]") {
    TempDir dir;
    const std::string log_path = dir.path + "/log";
    auto log = Logger::open("smtpd", log_path);
    REQUIRE(log);
    Channel channel;
    PasswordService service(fake_check, 4, *log, 1s);
    service.on_request(channel.root.get(), mailroom::smtp::encode_password_request(1, "slow30", "right-slow30"));
    int status = 0;
    pid_t pid = ::waitpid(-1, &status, 0);
    CHECK(WIFSIGNALED(status));
    CHECK(WTERMSIG(status) == SIGALRM);
    REQUIRE(service.reaped(pid, status));
    CHECK(nothing_to_read(channel.sessions.get(), 0));
    CHECK(mailroom::test::slurp(log_path).find("smtpd auth: user=slow30 verdict=tmp why=the check was ended by signal") !=
          std::string::npos);
    CHECK_FALSE(service.reaped(mailroom::test::dead_pid()));
}

TEST_CASE("past the waiting limit a request is answered tmp at once", "[password_service]") {
    std::vector<std::string> lines;
    Logger log = Logger::capture("smtpd", &lines);
    Channel channel;
    PasswordService service(fake_check, 1, log);
    for (uint64_t id = 1; id <= PasswordService::max_waiting + 2; ++id)
        service.on_request(channel.root.get(), mailroom::smtp::encode_password_request(id, "slow3", "x"));
    CHECK(service.running() == 1);
    CHECK(service.queued() == PasswordService::max_waiting);
    CHECK(next_packet(channel.sessions.get()) ==
          mailroom::smtp::encode_password_answer(PasswordService::max_waiting + 2, PasswordVerdict::unavailable));
    REQUIRE(lines.size() == 1);
    CHECK(lines[0].find("verdict=tmp why=too many checks waiting") != std::string::npos);
    int status = 0;
    pid_t pid = ::waitpid(-1, &status, 0);
    CHECK(pid > 0);
}

TEST_CASE("a closed channel makes a check unavailable", "[password_service]") {
    asio::io_context io;
    SECTION("closed before the check") {
        Channel channel;
        channel.root.reset();
        PasswordClient client(io.get_executor(), std::move(channel.sessions), 10s);
        Asked asked;
        int finished = 0;
        asio::co_spawn(io, ask(client, "alice", "right-alice", asked, finished, std::chrono::steady_clock::now()),
                       asio::detached);
        REQUIRE(run_until_done(io, 5s));
        CHECK(asked.verdict == PasswordVerdict::unavailable);
    }
    SECTION("closed while the check waits") {
        Channel channel;
        PasswordClient client(io.get_executor(), std::move(channel.sessions), 10s);
        Asked first, second;
        int finished = 0;
        auto start = std::chrono::steady_clock::now();
        asio::co_spawn(io, ask(client, "alice", "right-alice", first, finished, start), asio::detached);
        asio::co_spawn(io, ask(client, "bob", "right-bob", second, finished, start), asio::detached);
        io.run_for(100ms);
        CHECK(client.waiting() == 2);
        // The root side goes without answering: having read the questions (the client
        // reads the end of the channel) or not (a reset).
        SECTION("questions read") {
            CHECK(next_packet(channel.root.get()).find("alice") != std::string::npos);
            CHECK(next_packet(channel.root.get()).find("bob") != std::string::npos);
        }
        SECTION("questions unread") {}
        channel.root.reset();
        io.restart();
        REQUIRE(run_until_done(io, 5s));
        CHECK(first.verdict == PasswordVerdict::unavailable);
        CHECK(second.verdict == PasswordVerdict::unavailable);
        CHECK(first.seconds < 2);
        // And every later check, at once.
        Asked later;
        io.restart();
        asio::co_spawn(io, ask(client, "alice", "right-alice", later, finished, start), asio::detached);
        REQUIRE(run_until_done(io, 5s));
        CHECK(later.verdict == PasswordVerdict::unavailable);
    }
}

// A scripted root side, in this loop: reads requests, answers as told.
asio::awaitable<void> answer_as_told(asio::posix::stream_descriptor& peer, std::vector<std::string>& requests,
                                     std::vector<std::string> answers, size_t after_requests) {
    char buffer[4096];
    while (requests.size() < after_requests) {
        auto [ec] = co_await peer.async_wait(asio::posix::descriptor_base::wait_read, tuple_awaitable);
        if (ec) co_return;
        ssize_t n = ::recv(peer.native_handle(), buffer, sizeof buffer, MSG_DONTWAIT);
        if (n > 0) requests.emplace_back(buffer, static_cast<size_t>(n));
    }
    for (const auto& answer : answers) ::send(peer.native_handle(), answer.data(), answer.size(), MSG_NOSIGNAL);
}

TEST_CASE("a check unanswered within its timeout is unavailable, and a late answer is never taken for another", "[password_service]") {
    asio::io_context io;
    Channel channel;
    asio::posix::stream_descriptor peer(io, channel.root.release());
    PasswordClient client(io.get_executor(), std::move(channel.sessions), 1s);
    std::vector<std::string> requests;
    Asked first, second;
    int finished = 0;
    auto start = std::chrono::steady_clock::now();
    asio::co_spawn(io, ask(client, "alice", "right-alice", first, finished, start), asio::detached);
    // Nothing answers the first: it times out.
    asio::co_spawn(io, answer_as_told(peer, requests, {}, 1), asio::detached);
    REQUIRE(run_until_done(io, 5s));
    CHECK(first.verdict == PasswordVerdict::unavailable);
    CHECK(first.seconds >= 0.9);
    CHECK(first.seconds < 2);
    REQUIRE(requests.size() == 1);
    CHECK(requests[0] == mailroom::smtp::encode_password_request(1, "alice", "right-alice"));
    // The second check: the late "ok" to the first comes before the answer to it, and
    // a malformed packet, and an answer to nobody.
    io.restart();
    asio::co_spawn(io, ask(client, "bob", "wrong", second, finished, start), asio::detached);
    asio::co_spawn(io,
                   answer_as_told(peer, requests,
                                  {mailroom::smtp::encode_password_answer(1, PasswordVerdict::accepted), "junk",
                                   mailroom::smtp::encode_password_answer(99, PasswordVerdict::accepted),
                                   mailroom::smtp::encode_password_answer(2, PasswordVerdict::refused)},
                                  2),
                   asio::detached);
    REQUIRE(run_until_done(io, 5s));
    REQUIRE(requests.size() == 2);
    CHECK(requests[1] == mailroom::smtp::encode_password_request(2, "bob", "wrong"));
    CHECK(second.verdict == PasswordVerdict::refused);
}

TEST_CASE("a malformed answer is never taken as a verdict: its asker times out unavailable", "[password_service]") {
    asio::io_context io;
    Channel channel;
    asio::posix::stream_descriptor peer(io, channel.root.release());
    PasswordClient client(io.get_executor(), std::move(channel.sessions), 1s);
    std::vector<std::string> requests;
    Asked asked;
    int finished = 0;
    asio::co_spawn(io, ask(client, "alice", "right-alice", asked, finished, std::chrono::steady_clock::now()),
                   asio::detached);
    asio::co_spawn(io,
                   answer_as_told(peer, requests,
                                  {"password1\0" "1\0yes"s, "password1\0" "1\0ok\0"s, "password1\0" "01\0ok"s,
                                   "password1\0" "1\0ok"s + std::string(100, 'x')},
                                  1),
                   asio::detached);
    REQUIRE(run_until_done(io, 5s));
    CHECK(asked.verdict == PasswordVerdict::unavailable);
}

TEST_CASE("a user or password out of bounds is refused without asking", "[password_service]") {
    asio::io_context io;
    Channel channel;
    PasswordClient client(io.get_executor(), std::move(channel.sessions), 1s);
    Asked long_user, empty_password, nul_user;
    int finished = 0;
    auto start = std::chrono::steady_clock::now();
    asio::co_spawn(io, ask(client, std::string(256, 'u'), "pw", long_user, finished, start), asio::detached);
    asio::co_spawn(io, ask(client, "alice", "", empty_password, finished, start), asio::detached);
    asio::co_spawn(io, ask(client, "al\0ce"s, "pw", nul_user, finished, start), asio::detached);
    REQUIRE(run_until_done(io, 5s));
    CHECK(long_user.verdict == PasswordVerdict::refused);
    CHECK(empty_password.verdict == PasswordVerdict::refused);
    CHECK(nul_user.verdict == PasswordVerdict::refused);
    CHECK(nothing_to_read(channel.root.get(), 0));
}
