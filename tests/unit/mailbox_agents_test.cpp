// lmtpd's agents (docs/security.md "lmtpd"): the mailbox form of an agent request,
// which names a user and a lane and nothing else, and an agent pinned to one
// mailbox, which refuses a job for any other file (delivery/agent_handoff.hpp,
// delivery/delivery_agent.hpp).
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <catch2/catch.hpp>
#include <cstring>
#include <string>

#include "delivery/agent_handoff.hpp"
#include "delivery/delivery_agents.hpp"
#include "delivery/write_job.hpp"
#include "core/descriptors.hpp"
#include "support/test_support.hpp"

using namespace mailroom::mail;
using mailroom::core::Credentials;
using mailroom::core::UniqueFd;

namespace {

constexpr uid_t pinned_uid = 20171;

// Connections from a registry the test owns, as lmtpd's root side would give them.
class RegistrySource final : public AgentSource {
public:
    explicit RegistrySource(AgentRegistry& registry) : registry_(registry) {}
    AgentOffer connect(const AgentIdentity& as) override { return registry_.connect(as); }

private:
    AgentRegistry& registry_;
};

WriteJob maildir_job(const std::string& path) {
    WriteJob job;
    job.format = MailboxFormat::maildir;
    job.info.path = path;
    job.info.uid = job.info.gid = pinned_uid;
    job.info.hostname = "test.example";
    job.info.recipient = "u@test.example";
    return job;
}

}  // namespace

TEST_CASE("A mailbox request names a user and a lane, anything else is refused", "[agents]") {
    auto back = decode_mailbox_request(encode_mailbox_request({"bob", 3}));
    REQUIRE(back);
    CHECK(back->user == "bob");
    CHECK(back->lane == 3);
    // Not an agent request of the credentials form: a daemon cannot mistake one for the other.
    CHECK_FALSE(is_agent_request(encode_mailbox_request({"bob", 0})));

    const std::string zero(1, '\0');
    for (std::string bad : {std::string("mailbox1") + zero + "bob" + zero,                       // no lane
                            std::string("mailbox1") + zero + "bob" + zero + "16" + zero,         // lane too high
                            std::string("mailbox1") + zero + "bob" + zero + "-1" + zero,
                            std::string("mailbox1") + zero + "../etc" + zero + "0" + zero,       // not a name
                            std::string("mailbox1") + zero + "" + zero + "0" + zero,
                            std::string("mailbox1") + zero + "a\nb" + zero + "0" + zero,
                            std::string("mailbox2") + zero + "bob" + zero + "0" + zero,
                            std::string("mailbox1") + zero + "bob" + zero + "0" + zero + "1000" + zero,  // uid smuggled in
                            std::string("mailbox1") + zero + "bob" + zero + "0"}) {               // unterminated
        INFO(bad);
        CHECK_FALSE(decode_mailbox_request(bad));
    }
}

TEST_CASE("A pinned agent writes its mailbox and refuses a job for any other file", "[agents][root]") {
    if (::geteuid() != 0) {
        WARN("skipped: agents switch to other users only as root");
        return;
    }
    mailroom::test::TempDir tmp;
    REQUIRE(::chmod(tmp.path.c_str(), 0777) == 0);
    MessageOptions options;
    options.tmp_dir = tmp.path;
    options.memory_limit = 0;
    auto message = Message::from_string("Subject: pinned\n\nbody\n", options);
    REQUIRE(message);

    AgentRegistry registry;
    DeliveryAgents pool;
    pool.use_source(std::make_unique<RegistrySource>(registry));
    AgentIdentity as{Credentials{pinned_uid, pinned_uid, {pinned_uid}}, {}, "u"};
    as.only = MailboxLocation{tmp.path + "/box/", MailboxFormat::maildir};
    auto deadline = DeliveryAgents::Clock::now() + std::chrono::seconds(20);

    CHECK(pool.write(maildir_job(tmp.path + "/box/"), *message, as, deadline, std::chrono::seconds(20)).is_ok());
    Status elsewhere = pool.write(maildir_job(tmp.path + "/other/"), *message, as, deadline, std::chrono::seconds(20));
    CHECK(elsewhere.is_permanent());
    CHECK(elsewhere.code() == "5.7.1");
    WriteJob as_mbox = maildir_job(tmp.path + "/box/");
    as_mbox.format = MailboxFormat::mbox;
    CHECK(pool.write(as_mbox, *message, as, deadline, std::chrono::seconds(20)).code() == "5.7.1");

    CHECK(mailroom::test::names_in(tmp.path + "/box/new").size() == 1);
    struct stat st {};
    CHECK(::stat((tmp.path + "/other").c_str(), &st) != 0);
    // One agent did all of it: the refusals did not cost it its life.
    CHECK(registry.pids().size() == 1);
}

TEST_CASE("The root side starts the agent its resolver decides, one per lane, and answers a refusal", "[agents][root]") {
    if (::geteuid() != 0) {
        WARN("skipped: agents switch to other users only as root");
        return;
    }
    int ends[2];
    REQUIRE(::socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, ends) == 0);
    UniqueFd root_end(ends[0]), session_end(ends[1]);
    AgentRegistry registry;
    std::vector<std::string> asked;
    MailboxResolver resolve = [&](const std::string& user) -> std::variant<AgentIdentity, Status> {
        asked.push_back(user);
        if (user != "u") return Status::perm("5.1.1", "no such user " + user);
        AgentIdentity as{Credentials{pinned_uid, pinned_uid, {pinned_uid}}, {}, "u"};
        as.only = MailboxLocation{"/nonexistent/box/", MailboxFormat::maildir};
        return as;
    };

    pid_t child = ::fork();
    REQUIRE(child >= 0);
    if (child == 0) {
        root_end.reset();
        ChannelAgentSource source(session_end.get(), std::chrono::seconds(20), ChannelAgentSource::Request::mailbox);
        // The session side may claim any credentials: only the name reaches the root side.
        AgentIdentity claim{Credentials{0, 0, {0}}, mailroom::core::PrivilegeSwitch::RootTarget::allow, "u"};
        AgentOffer first = source.connect(claim);
        AgentOffer again = source.connect(claim);
        claim.lane = 1;
        AgentOffer other_lane = source.connect(claim);
        claim.name = "nobody-here";
        AgentOffer refused = source.connect(claim);
        bool ok = first.failure.is_ok() && again.failure.is_ok() && other_lane.failure.is_ok() &&
                  first.connection.pid == again.connection.pid && other_lane.connection.pid != first.connection.pid &&
                  refused.failure.code() == "5.1.1";
        ::_exit(ok ? 0 : 1);
    }
    session_end.reset();
    for (int answered = 0; answered < 4; ++answered) {
        char packet[4096];
        auto n = ::recv(root_end.get(), packet, sizeof packet, 0);
        REQUIRE(n > 0);
        answer_mailbox_request(root_end.get(), std::string_view(packet, static_cast<size_t>(n)), registry, resolve);
    }
    int status = 0;
    REQUIRE(::waitpid(child, &status, 0) == child);
    CHECK(WIFEXITED(status));
    CHECK(WEXITSTATUS(status) == 0);
    CHECK(asked == std::vector<std::string>{"u", "u", "u", "nobody-here"});
    CHECK(registry.pids().size() == 2);  // lanes 0 and 1, both pinned, neither root
}

TEST_CASE("An agent answers the writes sent on several connections at once, each on its own connection",
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
    auto message = Message::from_string("Subject: at once\n\nbody\n", options);
    REQUIRE(message);

    AgentRegistry registry;
    AgentIdentity as{Credentials{pinned_uid, pinned_uid, {pinned_uid}}, {}, "u"};
    // Five Maildir writes (two Maildirs), one mbox write, one malformed request, all
    // waiting before the agent reads any: the Maildir ones are made durable together.
    std::vector<WriteJob> jobs;
    for (int i = 0; i < 3; ++i) jobs.push_back(maildir_job(tmp.path + "/one/"));
    for (int i = 0; i < 2; ++i) jobs.push_back(maildir_job(tmp.path + "/two/"));
    WriteJob mbox = maildir_job(tmp.path + "/mbox");
    mbox.format = MailboxFormat::mbox;
    jobs.push_back(mbox);
    std::vector<AgentConnection> connections;
    for (size_t i = 0; i <= jobs.size(); ++i) {
        AgentOffer offer = registry.connect(as);
        REQUIRE(offer.failure.is_ok());
        connections.push_back(std::move(offer.connection));
    }
    REQUIRE(registry.pids().size() == 1);
    const int message_fd = message->content_fd();
    for (size_t i = 0; i < jobs.size(); ++i) {
        std::string packet = encode_write_request({jobs[i], message->content_offset(), message->size()});
        REQUIRE(mailroom::core::send_with_fds(connections[i].socket.get(), packet, {&message_fd, 1}));
    }
    REQUIRE(mailroom::core::send_with_fds(connections.back().socket.get(), "garbage", {&message_fd, 1}));
    std::vector<std::string> replies;
    for (auto& connection : connections) {
        // Bounded: a reply sent on the wrong connection fails the test instead of hanging it.
        struct timeval wait {20, 0};
        REQUIRE(::setsockopt(connection.socket.get(), SOL_SOCKET, SO_RCVTIMEO, &wait, sizeof wait) == 0);
        char line[512];
        ssize_t n = ::recv(connection.socket.get(), line, sizeof line, 0);
        REQUIRE(n > 0);
        replies.emplace_back(line, static_cast<size_t>(n));
    }
    for (size_t i = 0; i < jobs.size(); ++i) {
        INFO(replies[i]);
        CHECK(replies[i].rfind("2.0.0 ", 0) == 0);
    }
    CHECK(replies.back().rfind("4.3.0 ", 0) == 0);
    CHECK(mailroom::test::names_in(tmp.path + "/one/new").size() == 3);
    CHECK(mailroom::test::names_in(tmp.path + "/two/new").size() == 2);
    CHECK(mailroom::test::names_in(tmp.path + "/one/tmp").empty());
    CHECK(mailroom::test::slurp(tmp.path + "/mbox").find("Subject: at once") != std::string::npos);
}
