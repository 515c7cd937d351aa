// The daemon's delivery agents: the registry that owns them, the request a worker
// sends over its channel and the answer it gets (delivery/agent_handoff.hpp).
#include "delivery/agent_handoff.hpp"

#include <signal.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <catch2/catch.hpp>
#include <cstring>
#include <fstream>
#include <string>

#include "core/descriptors.hpp"
#include "delivery/delivery_agents.hpp"
#include "support/test_support.hpp"

using namespace mailroom::mail;
using mailroom::core::Credentials;
using mailroom::core::UniqueFd;

namespace {

constexpr uid_t first_uid = 20161;

struct Channel {
    UniqueFd daemon, worker;
    Channel() {
        int ends[2];
        REQUIRE(::socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, ends) == 0);
        daemon.reset(ends[0]);
        worker.reset(ends[1]);
    }
};

AgentIdentity as(uid_t uid) { return {Credentials{uid, uid, {uid, 100}}, {}, "u" + std::to_string(uid)}; }

// The state letter of a process in /proc (R, S, Z...), or 0 once it is gone.
char state_of(pid_t pid) {
    std::ifstream stat("/proc/" + std::to_string(pid) + "/stat");
    std::string text((std::istreambuf_iterator<char>(stat)), std::istreambuf_iterator<char>());
    auto close = text.rfind(')');
    return close == std::string::npos || close + 2 >= text.size() ? 0 : text[close + 2];
}

bool ends_within(pid_t pid, int ms) {
    for (int i = 0; i < ms / 10; ++i) {
        char state = state_of(pid);
        if (state == 0 || state == 'Z') return true;
        ::usleep(10'000);
    }
    return false;
}

}  // namespace

TEST_CASE("An agent request decodes to what was encoded, a malformed one is refused", "[agents]") {
    AgentIdentity bob{Credentials{1001, 1002, {1002, 8, 50}}, mailroom::core::PrivilegeSwitch::RootTarget::allow, "bob"};
    std::string packet = encode_agent_request(bob);
    CHECK(is_agent_request(packet));
    auto back = decode_agent_request(packet);
    REQUIRE(back);
    CHECK(same_credentials(*back, bob));
    CHECK(back->name == "bob");
    CHECK(back->root == mailroom::core::PrivilegeSwitch::RootTarget::allow);

    CHECK_FALSE(is_agent_request("done"));
    CHECK_FALSE(is_agent_request("agent1"));
    const std::string zero(1, '\0');
    for (std::string bad : {std::string("agent2") + zero + "1" + zero + "1" + zero + "refuse-root" + zero + "x" + zero,
                            std::string("agent1") + zero + "1" + zero + "1" + zero + "refuse-root" + zero,
                            std::string("agent1") + zero + "-1" + zero + "1" + zero + "refuse-root" + zero + "x" + zero,
                            std::string("agent1") + zero + "1" + zero + "1" + zero + "root" + zero + "x" + zero,
                            std::string("agent1") + zero + "1" + zero + "1" + zero + "refuse-root" + zero + "x" + zero +
                                "7x" + zero,
                            std::string("agent1") + zero + "1" + zero + "1" + zero + "refuse-root" + zero + "x"}) {
        INFO(bad);
        CHECK_FALSE(decode_agent_request(bad));
    }
}

TEST_CASE("A worker's source reads the daemon's answer and refuses a malformed one", "[agents]") {
    SECTION("a connection, with the agent's pid and descriptors") {
        Channel channel;
        Channel agent_side;  // stands for the connection handed over
        const int fds[1] = {agent_side.worker.get()};
        REQUIRE(mailroom::core::send_with_fds(channel.daemon.get(), "ok 4242", fds));
        AgentOffer offer = ChannelAgentSource(channel.worker.get()).connect(as(first_uid));
        REQUIRE(offer.failure.is_ok());
        CHECK(offer.connection.pid == 4242);
        // The request went to the daemon, and the socket received is the one sent.
        char request[512];
        auto n = ::recv(channel.daemon.get(), request, sizeof request, 0);
        REQUIRE(n > 0);
        CHECK(decode_agent_request(std::string_view(request, static_cast<size_t>(n))));
        REQUIRE(::send(offer.connection.socket.get(), "x", 1, 0) == 1);
        CHECK(::recv(agent_side.daemon.get(), request, sizeof request, MSG_DONTWAIT) == 1);
    }
    SECTION("the reason there is none") {
        Channel channel;
        REQUIRE(mailroom::core::send_with_fds(channel.daemon.get(), "5.7.1 cannot deliver as u1: refused\n", {}));
        AgentOffer offer = ChannelAgentSource(channel.worker.get()).connect(as(first_uid));
        CHECK(offer.failure.is_permanent());
        CHECK(offer.failure.code() == "5.7.1");
    }
    SECTION("malformed, missing or late answers defer the write") {
        for (std::string answer : {"ok 12", "ok x", "2.0.0 fine\n", "garbage", ""}) {
            INFO(answer);
            Channel channel;
            if (answer == "garbage") {
                Channel other;
                const int fds[1] = {other.worker.get()};
                REQUIRE(mailroom::core::send_with_fds(channel.daemon.get(), "5.7.1 no\n", fds));  // a status with a descriptor
            } else if (!answer.empty()) {
                REQUIRE(mailroom::core::send_with_fds(channel.daemon.get(), answer, {}));
            } else {
                channel.daemon.reset();  // the daemon has gone
            }
            AgentOffer offer = ChannelAgentSource(channel.worker.get()).connect(as(first_uid));
            CHECK(offer.failure.is_temporary());
            CHECK(offer.failure.code() == "4.3.0");
        }
        // A late answer is never taken for the answer to the next request.
        Channel silent;
        ChannelAgentSource source(silent.worker.get(), std::chrono::milliseconds(50));
        AgentOffer late = source.connect(as(first_uid));
        CHECK(late.failure.is_temporary());
        CHECK(late.failure.text().find("no answer") != std::string::npos);
        CHECK(source.broken());
        Channel agent_side;
        const int fds[1] = {agent_side.worker.get()};
        REQUIRE(mailroom::core::send_with_fds(silent.daemon.get(), "ok 4242", fds));
        AgentOffer next = source.connect(as(first_uid + 1));
        CHECK(next.failure.is_temporary());
        CHECK(next.failure.text().find("unanswered") != std::string::npos);
    }
}

TEST_CASE("Workers asking over their channels share the registry's agent, a refused user gets its reason",
          "[agents][root]") {
    if (::geteuid() != 0) {
        WARN("skipped: agents switch to other users only as root");
        return;
    }
    mailroom::test::TempDir tmp;
    REQUIRE(::chmod(tmp.path.c_str(), 0777) == 0);
    MessageOptions options;
    options.tmp_dir = tmp.path;
    options.memory_limit = 0;
    auto message = Message::from_string("Subject: shared\n\nbody\n", options);
    REQUIRE(message);
    WriteJob job;
    job.format = MailboxFormat::maildir;
    job.info.path = tmp.path + "/box/";
    job.info.uid = job.info.gid = first_uid;
    job.info.hostname = "test.example";

    AgentRegistry registry;
    std::vector<pid_t> seen;
    for (int worker = 0; worker < 2; ++worker) {
        Channel channel;
        // The worker: two writes through a pool fed by the channel, then the agent's pid.
        pid_t child = ::fork();
        REQUIRE(child >= 0);
        if (child == 0) {
            channel.daemon.reset();
            DeliveryAgents pool;
            pool.use_source(std::make_unique<ChannelAgentSource>(channel.worker.get()));
            auto deadline = DeliveryAgents::Clock::now() + std::chrono::seconds(20);
            bool ok = pool.write(job, *message, as(first_uid), deadline, std::chrono::seconds(20)).is_ok() &&
                      pool.write(job, *message, as(first_uid), deadline, std::chrono::seconds(20)).is_ok();
            Status root = pool.write(job, *message, {Credentials{0, 0, {0}}, {}, "root"}, deadline,
                                     std::chrono::seconds(20));
            ok = ok && root.is_permanent() && root.code() == "5.7.1" && pool.pids().size() == 1;
            pid_t agent = ok ? pool.pids()[0] : 0;
            (void)::send(channel.worker.get(), &agent, sizeof agent, 0);
            ::_exit(ok ? 0 : 1);
        }
        channel.worker.reset();
        // The daemon: answers its requests until it tells the agent's pid.
        for (;;) {
            char packet[4096];
            auto n = ::recv(channel.daemon.get(), packet, sizeof packet, 0);
            REQUIRE(n > 0);
            std::string_view text(packet, static_cast<size_t>(n));
            if (!is_agent_request(text)) {
                REQUIRE(n == sizeof(pid_t));
                pid_t agent;
                std::memcpy(&agent, packet, sizeof agent);
                seen.push_back(agent);
                break;
            }
            answer_agent_request(channel.daemon.get(), text, registry);
        }
        int status = 0;
        REQUIRE(::waitpid(child, &status, 0) == child);
        CHECK(WIFEXITED(status));
        CHECK(WEXITSTATUS(status) == 0);
    }
    REQUIRE(seen.size() == 2);
    CHECK(seen[0] == seen[1]);  // one agent for both workers
    CHECK(registry.pids() == std::vector<pid_t>{seen[0]});
    CHECK(mailroom::test::names_in(tmp.path + "/box/new").size() == 4);
}

TEST_CASE("A retired agent ends with its last connection, not before, reaped() forgets it", "[agents][root]") {
    if (::geteuid() != 0) {
        WARN("skipped: agents switch to other users only as root");
        return;
    }
    AgentRegistry registry({1, std::chrono::seconds(30)});
    AgentOffer first = registry.connect(as(first_uid));
    REQUIRE(first.failure.is_ok());
    AgentOffer second = registry.connect(as(first_uid));  // the same agent, a second connection
    REQUIRE(second.failure.is_ok());
    CHECK(second.connection.pid == first.connection.pid);
    AgentOffer other = registry.connect(as(first_uid + 1));  // full: the first is retired
    REQUIRE(other.failure.is_ok());
    CHECK(registry.pids() == std::vector<pid_t>{other.connection.pid});

    const pid_t retired = first.connection.pid;
    CHECK_FALSE(ends_within(retired, 200));  // two connections still open
    first.connection.socket.reset();
    CHECK_FALSE(ends_within(retired, 200));  // one still open
    second.connection.socket.reset();
    CHECK(ends_within(retired, 5000));
    registry.retire_idle(AgentRegistry::Clock::now());  // reaps the retired
    CHECK(state_of(retired) == 0);

    // An agent the owner's waitpid(-1) reaped is forgotten, never killed again.
    const pid_t live = other.connection.pid;
    mailroom::core::kill_by_pidfd(other.connection.process.get());
    int status = 0;
    REQUIRE(::waitpid(live, &status, 0) == live);
    CHECK(registry.reaped(live));
    CHECK_FALSE(registry.reaped(live));
    CHECK(registry.pids().empty());
}

TEST_CASE("A registry ended in a forked copy of its owner leaves the owner's agents alone", "[agents][root]") {
    if (::geteuid() != 0) {
        WARN("skipped: agents switch to other users only as root");
        return;
    }
    auto registry = std::make_unique<AgentRegistry>();
    AgentOffer offer = registry->connect(as(first_uid));
    REQUIRE(offer.failure.is_ok());
    pid_t child = ::fork();
    REQUIRE(child >= 0);
    if (child == 0) {
        registry.reset();  // a fork of the owner ending its copy
        ::_exit(0);
    }
    int status = 0;
    REQUIRE(::waitpid(child, &status, 0) == child);
    CHECK_FALSE(ends_within(offer.connection.pid, 300));
    CHECK(registry->pids() == std::vector<pid_t>{offer.connection.pid});
    registry.reset();  // the owner's end: the agent goes with it
    CHECK(ends_within(offer.connection.pid, 5000));
}
