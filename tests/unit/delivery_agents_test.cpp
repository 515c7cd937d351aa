// DeliveryAgents: one long-lived writer per set of credentials, reused, replaced when
// it dies, killed at the deadline, never shared between users.
#include "delivery/delivery_agents.hpp"

#include <signal.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <catch2/catch.hpp>
#include <fstream>
#include <string>

#include "support/test_support.hpp"

using namespace mailroom::mail;
using mailroom::core::Credentials;

namespace {

constexpr uid_t first_uid = 20061;

// The uid /proc says a process runs with (real, effective, saved, fs).
std::string uid_line(pid_t pid) {
    std::ifstream status("/proc/" + std::to_string(pid) + "/status");
    std::string line;
    while (std::getline(status, line))
        if (line.rfind("Uid:", 0) == 0) return line;
    return "";
}

struct AgentSandbox {
    mailroom::test::TempDir tmp;
    std::string box;
    Message message;

    static Message stored(const std::string& folder) {
        MessageOptions options;
        options.tmp_dir = folder;
        options.memory_limit = 0;  // spilled to a file: what a queue entry gives
        auto message = Message::from_string("Subject: agents\n\nbody\n", options);
        REQUIRE(message);
        return std::move(*message);
    }

    AgentSandbox() : message(stored(tmp.path)) {
        REQUIRE(::chmod(tmp.path.c_str(), 0777) == 0);
        box = tmp.path + "/boxes";
        REQUIRE(::mkdir(box.c_str(), 0777) == 0);
        REQUIRE(::chmod(box.c_str(), 0777) == 0);
    }

    WriteJob maildir_for(uid_t uid) const {
        WriteJob job;
        job.format = MailboxFormat::maildir;
        job.info.path = box + "/u" + std::to_string(uid) + "/";
        job.info.sender = "alice@example.org";
        job.info.recipient = "u" + std::to_string(uid) + "@example.org";
        job.info.uid = uid;
        job.info.gid = uid;
        job.info.hostname = "test.example";
        return job;
    }

    static DeliveryAgents::Identity as(uid_t uid) { return {Credentials{uid, uid, {uid}}, {}, "u" + std::to_string(uid)}; }
};

auto soon(int seconds = 20) { return DeliveryAgents::Clock::now() + std::chrono::seconds(seconds); }

}  // namespace

TEST_CASE("A delivery agent serves every write of its user, and only of its user", "[agents][root]") {
    if (::geteuid() != 0) {
        WARN("skipped: agents switch to other users only as root");
        return;
    }
    AgentSandbox sandbox;
    DeliveryAgents agents;
    for (int i = 0; i < 3; ++i) {
        Status status = agents.write(sandbox.maildir_for(first_uid), sandbox.message, AgentSandbox::as(first_uid),
                                     soon(), std::chrono::seconds(20));
        REQUIRE(status.is_ok());
    }
    REQUIRE(agents.pids().size() == 1);  // three writes, one process
    pid_t first = agents.pids()[0];
    CHECK(uid_line(first).find(std::to_string(first_uid)) != std::string::npos);
    CHECK(uid_line(first).find("\t0") == std::string::npos);  // no id of root left

    Status other = agents.write(sandbox.maildir_for(first_uid + 1), sandbox.message, AgentSandbox::as(first_uid + 1),
                                soon(), std::chrono::seconds(20));
    REQUIRE(other.is_ok());
    REQUIRE(agents.pids().size() == 2);
    CHECK(agents.pids()[0] == first);
    CHECK(uid_line(agents.pids()[1]).find(std::to_string(first_uid + 1)) != std::string::npos);

    // The files belong to their users: each was written by its own agent.
    struct stat st {};
    auto count = mailroom::test::names_in(sandbox.box + "/u" + std::to_string(first_uid) + "/new");
    CHECK(count.size() == 3);
    REQUIRE(::stat((sandbox.box + "/u" + std::to_string(first_uid + 1) + "/new/" +
                    mailroom::test::names_in(sandbox.box + "/u" + std::to_string(first_uid + 1) + "/new")[0])
                       .c_str(),
                   &st) == 0);
    CHECK(st.st_uid == first_uid + 1);
}

TEST_CASE("An agent that died while idle is replaced, one killed during a write defers it", "[agents][root]") {
    if (::geteuid() != 0) {
        WARN("skipped: agents switch to other users only as root");
        return;
    }
    AgentSandbox sandbox;
    DeliveryAgents agents;
    auto job = sandbox.maildir_for(first_uid);
    REQUIRE(agents.write(job, sandbox.message, AgentSandbox::as(first_uid), soon(), std::chrono::seconds(20)).is_ok());
    pid_t first = agents.pids().at(0);
    REQUIRE(::kill(first, SIGKILL) == 0);
    ::usleep(100'000);
    REQUIRE(agents.write(job, sandbox.message, AgentSandbox::as(first_uid), soon(), std::chrono::seconds(20)).is_ok());
    REQUIRE(agents.pids().size() == 1);
    CHECK(agents.pids()[0] != first);

    // A write that cannot finish (an mbox whose lock another process holds) is
    // killed at the deadline and deferred, and its agent is gone.
    WriteJob mbox;
    mbox.info = job.info;
    mbox.info.path = sandbox.box + "/held.mbox";
    mbox.info.locks.order = {LockKind::dotlock};
    mbox.info.locks.timeout = std::chrono::milliseconds(60'000);
    {
        std::ofstream(sandbox.box + "/held.mbox.lock") << "1\n";
    }
    REQUIRE(::chown((sandbox.box + "/held.mbox.lock").c_str(), first_uid, first_uid) == 0);
    Status held = agents.write(mbox, sandbox.message, AgentSandbox::as(first_uid),
                               DeliveryAgents::Clock::now() + std::chrono::milliseconds(500), std::chrono::seconds(1));
    CHECK(held.is_temporary());
    CHECK(held.text().find("timed out") != std::string::npos);
    CHECK(agents.pids().empty());
}

TEST_CASE("Agents beyond the limit: the least recently used is ended, a forked copy forgets its parent's",
          "[agents][root]") {
    if (::geteuid() != 0) {
        WARN("skipped: agents switch to other users only as root");
        return;
    }
    AgentSandbox sandbox;
    DeliveryAgents agents(DeliveryAgentLimits{2, std::chrono::seconds(30)});
    for (uid_t uid = first_uid; uid < first_uid + 3; ++uid) {
        REQUIRE(agents.write(sandbox.maildir_for(uid), sandbox.message, AgentSandbox::as(uid), soon(),
                             std::chrono::seconds(20))
                    .is_ok());
    }
    auto pids = agents.pids();
    REQUIRE(pids.size() == 2);
    CHECK(uid_line(pids[0]).find(std::to_string(first_uid + 1)) != std::string::npos);

    // In a fork, the pool starts its own agent and leaves the parent's alone.
    pid_t child = ::fork();
    if (child == 0) {
        Status status = agents.write(sandbox.maildir_for(first_uid + 2), sandbox.message,
                                     AgentSandbox::as(first_uid + 2), soon(), std::chrono::seconds(20));
        bool own = agents.pids().size() == 1 && agents.pids()[0] != pids[1];
        ::_exit(status.is_ok() && own ? 0 : 1);
    }
    int wstatus = 0;
    REQUIRE(::waitpid(child, &wstatus, 0) == child);
    CHECK((WIFEXITED(wstatus) && WEXITSTATUS(wstatus) == 0));
    CHECK(::kill(pids[1], 0) == 0);  // the parent's agent lives on
    REQUIRE(agents.write(sandbox.maildir_for(first_uid + 2), sandbox.message, AgentSandbox::as(first_uid + 2), soon(),
                         std::chrono::seconds(20))
                .is_ok());
    CHECK(agents.pids() == std::vector<pid_t>{pids[0], pids[1]});
}

TEST_CASE("A write request decodes to what was encoded, and a malformed one is refused", "[agents]") {
    WriteRequest request;
    request.job.format = MailboxFormat::maildir;
    request.job.info.path = "/var/mail/bob/";
    request.job.info.sender = "";
    request.job.info.recipient = "bob@example.org";
    request.job.info.uid = 1001;
    request.job.info.gid = 100;
    request.job.info.arrival = 1700000000;
    request.job.info.locks.order = {LockKind::dotlock, LockKind::fcntl};
    request.offset = 46;
    request.size = 4201;
    auto decoded = decode_write_request(encode_write_request(request));
    REQUIRE(decoded);
    CHECK(decoded->job.info.path == "/var/mail/bob/");
    CHECK(decoded->job.info.sender.empty());
    CHECK(decoded->job.info.uid == 1001);
    CHECK(decoded->job.info.locks.order == request.job.info.locks.order);
    CHECK(decoded->offset == 46);
    CHECK(decoded->size == 4201);
    std::string packet = encode_write_request(request);
    CHECK(!decode_write_request(packet.substr(0, packet.size() - 1)));
    CHECK(!decode_write_request(std::string("write9") + packet.substr(6)));
    std::string relative = packet;
    relative.replace(relative.find("/var"), 1, "v");
    CHECK(!decode_write_request(relative));
    CHECK(!decode_write_request(""));
}
