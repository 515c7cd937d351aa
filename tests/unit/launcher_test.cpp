// delivery/launcher: every kind of target delivered as its user (SPEC 4, docs/targets.md).
// Commands are real /bin/sh scripts. As root they run as a uid of their own (no account
// needed: the Target carries the UserInfo and Credentials); as another user they run as
// the caller, and the cases that need a second uid say so and stop.
#include "delivery/launcher.hpp"
#include "delivery/mbox_writer.hpp"

#include <signal.h>
#include <sys/stat.h>
#include <unistd.h>

#include <catch2/catch.hpp>
#include <algorithm>
#include <chrono>
#include <thread>

#include "support/test_support.hpp"

using namespace mailroom::mail;
using mailroom::core::Credentials;
using mailroom::core::UserInfo;
using mailroom::test::slurp;

namespace {

const bool is_root = ::geteuid() == 0;
constexpr uid_t test_uid = 20051;

// A run-as user with a home, and an out/ folder it may write, in a fresh temp folder.
struct Sandbox {
    mailroom::test::TempDir tmp;
    UserInfo user;
    Credentials credentials;
    std::string out;

    Sandbox() {
        REQUIRE(::chmod(tmp.path.c_str(), 0755) == 0);
        out = tmp.path + "/out";
        REQUIRE(::mkdir(out.c_str(), 0777) == 0);
        REQUIRE(::chmod(out.c_str(), 0777) == 0);
        user.name = "mrcmd";
        user.uid = is_root ? test_uid : ::getuid();
        user.gid = is_root ? test_uid : ::getgid();
        user.home = tmp.path + "/home";
        user.shell = "/bin/sh";
        REQUIRE(::mkdir(user.home.c_str(), 0755) == 0);
        if (is_root) REQUIRE(::chown(user.home.c_str(), user.uid, user.gid) == 0);
        credentials = Credentials{user.uid, user.gid, {user.gid}};
    }

    Target command(const std::string& text, const std::string& address = "bob+ext@test.example") const {
        return Target::command(address, text, user, credentials, "aliases:7");
    }
    Target file(const std::string& path) const {
        return Target::file("bob@test.example", path, user, credentials, "~bob/.forward:1");
    }
};

DeliveryContext context_for_tests() {
    DeliveryContext context;
    context.sender = "alice@remote.example";
    context.original_recipient = "list@test.example";
    context.hostname = "test.example";
    context.arrival = 1700000000;
    context.command_timeout = std::chrono::seconds(20);
    return context;
}

Message message_of(const std::string& text) {
    auto message = Message::from_string(text, {});
    REQUIRE(message);
    return std::move(*message);
}

const std::string plain = "Subject: hello\n\nbody line\n";

// True once pid is gone or a zombie.
bool gone_or_dead(pid_t pid) {
    for (int i = 0; i < 200; ++i) {
        std::string stat = slurp("/proc/" + std::to_string(pid) + "/stat");
        if (stat.empty()) return true;
        auto close = stat.rfind(')');
        if (close != std::string::npos && close + 2 < stat.size() && stat[close + 2] == 'Z') return true;
        std::this_thread::sleep_for(std::chrono::milliseconds(10));
    }
    return false;
}

}  // namespace

TEST_CASE("|command runs /bin/sh -c command as that user, in its home, message on stdin, with the documented environment",
          "[launcher]") {
    Sandbox box;
    const std::string& o = box.out;
    auto target = box.command("id -u >" + o + "/uid; id -g >" + o + "/gid; env >" + o + "/env; cat >" + o + "/stdin");
    auto message = message_of("Return-Path: <forged@evil.example>\nSubject: hello\n\nbody line\n");
    auto outcome = deliver(target, message, context_for_tests());
    CHECK(outcome.status.is_ok());
    CHECK(outcome.status.code() == "2.0.0");
    CHECK_THAT(outcome.status.text(), Catch::StartsWith("delivered to command: id -u"));

    CHECK(slurp(o + "/uid") == std::to_string(box.user.uid) + "\n");
    CHECK(slurp(o + "/gid") == std::to_string(box.user.gid) + "\n");
    auto env = mailroom::test::lines_of(slurp(o + "/env"));
    std::sort(env.begin(), env.end());
    std::vector<std::string> expected = {
        "DOMAIN=test.example",
        "EXTENSION=ext",
        "HOME=" + box.user.home,
        "LOCAL=bob+ext",
        "ORIGINAL_RECIPIENT=list@test.example",
        "PATH=/usr/bin:/bin",
        "PWD=" + box.user.home,  // the shell's own, showing where it runs
        "RECIPIENT=bob+ext@test.example",
        "SENDER=alice@remote.example",
        "SHELL=/bin/sh",
        "USER=mrcmd",
    };
    CHECK(env == expected);
    CHECK(slurp(o + "/stdin") ==
          "Return-Path: <alice@remote.example>\nDelivered-To: bob+ext@test.example\nSubject: hello\n\nbody line\n");
}

TEST_CASE("a command exiting 75 (EX_TEMPFAIL) or 71 (EX_OSERR) is deferred", "[launcher]") {
    Sandbox box;
    auto message = message_of(plain);
    for (int code : {75, 71}) {
        auto outcome = deliver(box.command("echo busy; exit " + std::to_string(code)), message, context_for_tests());
        CHECK(outcome.status.is_temporary());
        CHECK(outcome.status.code() == "4.3.0");
        CHECK_THAT(outcome.status.text(), Catch::EndsWith("exited with status " + std::to_string(code) + ": busy"));
    }
}

TEST_CASE("a command exiting 1 is bounced carrying its output, whole for the bounce and on one line for the log",
          "[launcher]") {
    Sandbox box;
    auto outcome = deliver(box.command("echo 'no such list'; echo second line >&2; exit 1"), message_of(plain),
                           context_for_tests());
    CHECK(outcome.status.is_permanent());
    CHECK(outcome.status.code() == "5.3.0");
    CHECK_THAT(outcome.status.text(), Catch::EndsWith("exited with status 1: no such list second line"));
    CHECK(outcome.output == "no such list\nsecond line\n");
}

TEST_CASE("output beginning with an enhanced status code decides instead of the exit code", "[launcher]") {
    Sandbox box;
    auto message = message_of(plain);
    auto later = deliver(box.command("echo '4.2.1 try later'; exit 1"), message, context_for_tests());
    CHECK(later.status.is_temporary());
    CHECK(later.status.code() == "4.2.1");
    CHECK(later.status.text() == "try later");

    auto nope = deliver(box.command("echo '5.1.2 nope'; exit 0"), message, context_for_tests());
    CHECK(nope.status.is_permanent());
    CHECK(nope.status.code() == "5.1.2");
    CHECK(nope.status.text() == "nope");
    CHECK(nope.output == "5.1.2 nope\n");

    auto fine = deliver(box.command("echo '2.1.5 filed'; exit 1"), message, context_for_tests());
    CHECK(fine.status.is_ok());
    CHECK(fine.status.code() == "2.1.5");
}

TEST_CASE("a command killed by a signal is bounced", "[launcher]") {
    Sandbox box;
    auto outcome = deliver(box.command("kill -SEGV $$"), message_of(plain), context_for_tests());
    CHECK(outcome.status.is_permanent());
    CHECK_THAT(outcome.status.text(), Catch::Contains("killed by signal " + std::to_string(SIGSEGV)));
}

TEST_CASE("a command still running at command_timeout is killed with its process group and bounced 5.3.0",
          "[launcher]") {
    Sandbox box;
    auto context = context_for_tests();
    context.command_timeout = std::chrono::seconds(1);
    auto started = std::chrono::steady_clock::now();
    auto outcome = deliver(box.command("sleep 30 & echo $! >" + box.out + "/pid; echo started; sleep 30"),
                           message_of(plain), context);
    CHECK(mailroom::test::seconds_since(started) < 10);
    CHECK(outcome.status.is_permanent());
    CHECK(outcome.status.code() == "5.3.0");
    CHECK(outcome.status.text() == "command timed out after 1 s: started");
    std::string pid = slurp(box.out + "/pid");
    REQUIRE_FALSE(pid.empty());
    CHECK(gone_or_dead(std::stoi(pid)));
}

TEST_CASE("a command that exits without reading a 10 MB message is judged by its exit code", "[launcher]") {
    Sandbox box;
    std::string big = "Subject: big\n\n";
    while (big.size() < 10u << 20) big += std::string(79, 'x') + "\n";
    auto message = message_of(big);
    auto fine = deliver(box.command("exit 0"), message, context_for_tests());
    CHECK(fine.status.is_ok());
    auto failed = deliver(box.command("echo refused; exit 1"), message, context_for_tests());
    CHECK(failed.status.is_permanent());
    CHECK(failed.output == "refused\n");
    auto read_all = deliver(box.command("wc -c >" + box.out + "/count"), message, context_for_tests());
    CHECK(read_all.status.is_ok());
    std::string headers = "Return-Path: <alice@remote.example>\nDelivered-To: bob+ext@test.example\n";
    CHECK(std::stoull(slurp(box.out + "/count")) == headers.size() + big.size());
}

TEST_CASE("a /file target appends the message in mbox format as its user", "[launcher]") {
    Sandbox box;
    std::string path = box.out + "/archive";
    auto message = message_of("Subject: one\n\nFrom here\n");
    CHECK(deliver(box.file(path), message, context_for_tests()).status.is_ok());
    CHECK(deliver(box.file(path), message, context_for_tests()).status.is_ok());
    std::string mbox = slurp(path);
    std::string one = mbox_from_line("alice@remote.example", 1700000000) +
                      "Return-Path: <alice@remote.example>\nDelivered-To: bob@test.example\nSubject: one\n\n>From here\n\n";
    CHECK(mbox == one + one);
    struct stat st {};
    REQUIRE(::stat(path.c_str(), &st) == 0);
    CHECK(st.st_uid == box.user.uid);
    CHECK((st.st_mode & 07777) == 0600);
}

TEST_CASE("a /file target names an absolute path, else it is refused and nothing is written", "[launcher]") {
    Sandbox box;
    auto outcome = deliver(box.file("out/relative"), message_of(plain), context_for_tests());
    CHECK(outcome.status.code() == "5.3.5");
    CHECK_THAT(outcome.status.text(), Catch::Contains("not an absolute path (~bob/.forward:1)"));
    CHECK(::access("out/relative", F_OK) != 0);
}

TEST_CASE("a /file target refuses a symlink and leaves its target untouched", "[launcher]") {
    Sandbox box;
    std::string victim = box.tmp.write("victim", "precious\n");
    std::string link = box.out + "/archive";
    REQUIRE(::symlink(victim.c_str(), link.c_str()) == 0);
    auto outcome = deliver(box.file(link), message_of(plain), context_for_tests());
    CHECK(outcome.status.is_temporary());
    CHECK_THAT(outcome.status.text(), Catch::Contains("symbolic link"));
    CHECK(slurp(victim) == "precious\n");
}

TEST_CASE("a /file target refuses a file owned by another user", "[launcher][root]") {
    if (!is_root) {
        WARN("skipped: a file of another uid needs root to make");
        return;
    }
    Sandbox box;
    std::string path = box.tmp.write("out/theirs", "theirs\n");
    REQUIRE(::chmod(path.c_str(), 0666) == 0);  // writable, yet not the run-as user's
    auto outcome = deliver(box.file(path), message_of(plain), context_for_tests());
    CHECK(outcome.status.is_temporary());
    CHECK_THAT(outcome.status.text(), Catch::Contains("is owned by uid 0, not " + std::to_string(test_uid)));
    CHECK(slurp(path) == "theirs\n");
}

TEST_CASE("uid 0 never runs a file or command target: 5.7.1 before anything starts", "[launcher]") {
    Sandbox box;
    UserInfo root{"root", 0, 0, "/root", "/bin/sh", ""};
    std::string marker = box.out + "/ran";
    auto command = Target::command("x@test.example", "touch " + marker, root, Credentials{0, 0, {}}, "aliases:3");
    auto outcome = deliver(command, message_of(plain), context_for_tests());
    CHECK(outcome.status.code() == "5.7.1");
    CHECK_THAT(outcome.status.text(), Catch::Contains("refusing to run a command as root (aliases:3)"));
    auto file = Target::file("x@test.example", marker, root, Credentials{0, 0, {}}, "aliases:4");
    CHECK(deliver(file, message_of(plain), context_for_tests()).status.code() == "5.7.1");
    // Credentials of root under another name are refused too.
    auto disguised = Target::command("x@test.example", "touch " + marker, box.user, Credentials{0, 0, {}}, "aliases:5");
    CHECK(deliver(disguised, message_of(plain), context_for_tests()).status.code() == "5.7.1");
    CHECK(slurp(marker).empty());
    CHECK(::access(marker.c_str(), F_OK) != 0);
}

TEST_CASE("a message already delivered to the target's address is a loop (5.4.6) for every kind", "[launcher]") {
    Sandbox box;
    auto message = message_of("Delivered-To: bob+ext@test.example\nSubject: x\n\nbody\n");
    std::string marker = box.out + "/ran";
    auto command = deliver(box.command("touch " + marker), message, context_for_tests());
    CHECK(command.status.code() == "5.4.6");
    CHECK(::access(marker.c_str(), F_OK) != 0);
    auto file = Target::file("bob+ext@test.example", marker, box.user, box.credentials, "-");
    CHECK(deliver(file, message, context_for_tests()).status.code() == "5.4.6");
    auto mailbox = Target::mailbox("bob+ext@test.example", box.user, {marker, MailboxFormat::mbox});
    CHECK(deliver(mailbox, message, context_for_tests()).status.code() == "5.4.6");
    CHECK(::access(marker.c_str(), F_OK) != 0);
}

TEST_CASE("a remote target is only carried: 4.3.5 remote delivery not configured", "[launcher]") {
    auto outcome = deliver(Target::remote("carol@elsewhere.example", "aliases:9"), message_of(plain), context_for_tests());
    CHECK(outcome.status.is_temporary());
    CHECK(outcome.status.code() == "4.3.5");
    CHECK(outcome.status.text() == "remote delivery not configured");
}

TEST_CASE("a command as another uid without root is refused 5.7.1", "[launcher]") {
    if (is_root) {
        WARN("skipped: as root every uid may be switched to");
        return;
    }
    Sandbox box;
    box.credentials.uid = ::getuid() + 1;
    auto outcome = deliver(box.command("true"), message_of(plain), context_for_tests());
    CHECK(outcome.status.code() == "5.7.1");
}

TEST_CASE("a mailbox target in a child reports the writer's outcome, as the user", "[launcher]") {
    Sandbox box;
    auto context = context_for_tests();
    auto target = Target::mailbox("mrcmd@test.example", box.user, {box.out + "/mrcmd", MailboxFormat::mbox});
    auto outcome = deliver(target, message_of(plain), context);
    CHECK(outcome.status.is_ok());
    CHECK(outcome.status.text() == "delivered to mailbox");
    struct stat st {};
    REQUIRE(::stat((box.out + "/mrcmd").c_str(), &st) == 0);
    CHECK(st.st_uid == box.user.uid);
    // A refusal in the child comes back with its code and text.
    std::string other = box.tmp.write("elsewhere", "x\n");
    REQUIRE(::symlink(other.c_str(), (box.out + "/linked").c_str()) == 0);
    auto linked = Target::mailbox("mrcmd@test.example", box.user, {box.out + "/linked", MailboxFormat::mbox});
    auto refused = deliver(linked, message_of(plain), context);
    CHECK(refused.status.code() == "4.2.0");
    CHECK_THAT(refused.status.text(), Catch::Contains("is a symbolic link"));
}

TEST_CASE("a mailbox writer child reads a message spilled to a file", "[launcher]") {
    Sandbox box;
    MessageOptions options;
    options.memory_limit = 16;  // spilled: the child keeps the spill file's descriptor
    auto message = Message::from_string("Subject: spilled\n\n" + std::string(1000, 'y') + "\n", options);
    REQUIRE(message);
    REQUIRE(message->content_fd() >= 0);
    auto target = Target::mailbox("mrcmd@test.example", box.user, {box.out + "/mrcmd", MailboxFormat::mbox});
    CHECK(deliver(target, *message, context_for_tests()).status.is_ok());
    CHECK_THAT(slurp(box.out + "/mrcmd"), Catch::Contains(std::string(1000, 'y')));
}
