#include "core/log.hpp"

#include <fcntl.h>
#include <sched.h>
#include <sys/mount.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <syslog.h>
#include <unistd.h>

#include <catch2/catch.hpp>
#include <cctype>
#include <cstdio>
#include <ctime>
#include <string>
#include <vector>

#include "support/test_support.hpp"

using namespace mailroom::core;
using namespace mailroom::test;

namespace {

// A log file path in a fresh folder, removed at the end of the test.
struct ScratchLog {
    TempDir dir;
    std::string path = dir.path + "/maillog";
};

// "Nov 21 20:23:34 " (no std::regex: GCC 12's sanitizer builds warn inside it).
bool starts_with_syslog_stamp(std::string_view line) {
    if (line.size() < 16) return false;
    auto digit = [&](size_t i) { return line[i] >= '0' && line[i] <= '9'; };
    return std::isupper(static_cast<unsigned char>(line[0])) && line[3] == ' ' &&
           (line[4] == ' ' || digit(4)) && digit(5) && line[6] == ' ' && digit(7) && digit(8) &&
           line[9] == ':' && digit(10) && digit(11) && line[12] == ':' && digit(13) && digit(14) &&
           line[15] == ' ';
}

// The rest after the stamp: "HOST TAG[PID]: TEXT" with a short (dotless) host.
bool has_host_and_tag(std::string_view line, std::string_view tag_pid_text) {
    std::string_view rest = line.substr(16);
    auto space = rest.find(' ');
    if (space == 0 || space == std::string_view::npos) return false;
    if (rest.substr(0, space).find('.') != std::string_view::npos) return false;
    return rest.substr(space + 1) == tag_pid_text;
}

}  // namespace

TEST_CASE("warning and error lines carry Postfix's prefixes", "[log]") {
    std::vector<std::string> lines;
    Logger log = Logger::capture("local", &lines);
    log.info("ABC123: removed");
    log.warning("disk nearly full");
    log.error("cannot open /var/mail/bob");
    CHECK(lines == std::vector<std::string>{"ABC123: removed", "warning: disk nearly full",
                                            "error: cannot open /var/mail/bob"});
    CHECK(log.tag() == "mailroom/local");
}

TEST_CASE("a log line never holds a newline or control byte", "[log]") {
    // Escaped, not replaced: the log shows what the input held (docs/logging.md).
    CHECK(format_message(Logger::Severity::info, "a\nb\rc\td\x7f" "e") == "a\\nb\\rc\\td\\x7fe");
    CHECK(format_message(Logger::Severity::info, "caf\xc3\xa9") == "caf\xc3\xa9");  // UTF-8 kept
    std::string long_text(Logger::max_text + 100, 'x');
    CHECK(format_message(Logger::Severity::warning, long_text).size() == 9 + Logger::max_text);
}

TEST_CASE("the file layout is a syslog timestamp, host and mailroom/ROLE[PID]", "[log]") {
    std::tm tm{};
    tm.tm_year = 2026 - 1900;
    tm.tm_mon = 10;
    tm.tm_mday = 21;
    tm.tm_hour = 20;
    tm.tm_min = 23;
    tm.tm_sec = 34;
    tm.tm_isdst = -1;
    std::time_t when = std::mktime(&tm);
    CHECK(format_file_line(when, "host", "mailroom/local", 4242, "ABC: removed") ==
          "Nov 21 20:23:34 host mailroom/local[4242]: ABC: removed\n");
    tm.tm_mon = 0;
    tm.tm_mday = 5;
    tm.tm_hour = 7;
    when = std::mktime(&tm);
    // Single-digit days are space-padded, as syslogd writes them.
    CHECK(format_file_line(when, "h", "mailroom/qmgr", 1, "x") == "Jan  5 07:23:34 h mailroom/qmgr[1]: x\n");
}

TEST_CASE("log = FILE appends one line per event in the syslog layout", "[log]") {
    ScratchLog scratch;
    {
        spit(scratch.path, "earlier line\n");
        auto log = Logger::open("pickup", scratch.path);
        REQUIRE(log);
        log->info("ABC: uid=1000 from=<alice>");
        log->warning("slow disk");
    }
    auto lines = lines_of(slurp(scratch.path));
    REQUIRE(lines.size() == 3);
    CHECK(lines[0] == "earlier line");
    std::string tag = "mailroom/pickup[" + std::to_string(::getpid()) + "]: ";
    CHECK(starts_with_syslog_stamp(lines[1]));
    CHECK(has_host_and_tag(lines[1], tag + "ABC: uid=1000 from=<alice>"));
    CHECK(starts_with_syslog_stamp(lines[2]));
    CHECK(has_host_and_tag(lines[2], tag + "warning: slow disk"));
}

TEST_CASE("a forked child logs its own pid", "[log]") {
    ScratchLog scratch;
    auto log = Logger::open("local", scratch.path);
    REQUIRE(log);
    pid_t pid = ::fork();
    REQUIRE(pid >= 0);
    if (pid == 0) {
        log->info("from the child");
        ::_exit(0);
    }
    int status = 0;
    REQUIRE(::waitpid(pid, &status, 0) == pid);
    CHECK(slurp(scratch.path).find("mailroom/local[" + std::to_string(pid) + "]: from the child\n") !=
          std::string::npos);
}

TEST_CASE("reopen() follows a rotated log file", "[log]") {
    ScratchLog scratch;
    auto log = Logger::open("qmgr", scratch.path);
    REQUIRE(log);
    log->info("before");
    REQUIRE(::rename(scratch.path.c_str(), (scratch.path + ".1").c_str()) == 0);
    REQUIRE(log->reopen());
    log->info("after");
    CHECK(slurp(scratch.path + ".1").find("before") != std::string::npos);
    CHECK(slurp(scratch.path).find("after") != std::string::npos);
    CHECK(slurp(scratch.path).find("before") == std::string::npos);
}

TEST_CASE("log = stderr writes mailroom/ROLE[PID]: TEXT", "[log]") {
    ScratchLog scratch;
    int saved = ::dup(STDERR_FILENO);
    int fd = ::open(scratch.path.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0600);
    REQUIRE(fd >= 0);
    ::dup2(fd, STDERR_FILENO);
    ::close(fd);
    {
        auto log = Logger::open("smtpd", "stderr");
        if (log) log->error("lost connection");
    }
    ::dup2(saved, STDERR_FILENO);
    ::close(saved);
    CHECK(slurp(scratch.path) == "mailroom/smtpd[" + std::to_string(::getpid()) + "]: error: lost connection\n");
}

TEST_CASE("a log destination other than syslog, stderr or an absolute path is refused", "[log]") {
    for (std::string_view bad : {"", "maillog", "./maillog", "Syslog"}) {
        CAPTURE(bad);
        auto log = Logger::open("local", bad);
        REQUIRE_FALSE(log);
        CHECK(log.error().errno_value() == EINVAL);
    }
    auto missing = Logger::open("local", "/nonexistent-mailroom-dir/maillog");
    REQUIRE_FALSE(missing);
    CHECK(missing.error().message().find("/nonexistent-mailroom-dir/maillog") != std::string::npos);
}

TEST_CASE("a log that cannot be written never fails the caller", "[log]") {
    // In a child, so that a signal, an abort or a hang shows as such: every write to
    // /dev/full fails with ENOSPC, the calls return and the child goes on to exit 0.
    pid_t pid = ::fork();
    REQUIRE(pid >= 0);
    if (pid == 0) {
        ::alarm(30);  // a logger that blocked would be killed by SIGALRM
        auto full = Logger::open("local", "/dev/full");
        if (!full) ::_exit(2);
        for (int i = 0; i < 1000; ++i) {
            full->info("dropped");
            full->warning("dropped");
            full->error("dropped");
        }
        if (!full->reopen()) ::_exit(3);
        full->info("dropped after reopen");
        ::_exit(0);
    }
    int status = 0;
    REQUIRE(::waitpid(pid, &status, 0) == pid);
    INFO("wait status " << status);
    REQUIRE(WIFEXITED(status));
    CHECK(WEXITSTATUS(status) == 0);
}

TEST_CASE("a moved-from logger writes nothing, the logger it moved to writes its lines", "[log]") {
    ScratchLog scratch;
    int saved = ::dup(STDERR_FILENO);
    int fd = ::open(scratch.path.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0600);
    REQUIRE(fd >= 0);
    ::dup2(fd, STDERR_FILENO);
    ::close(fd);
    {
        Logger moved_from = Logger::to_stderr("local");
        Logger owner = std::move(moved_from);
        moved_from.info("a moved-from logger writes nothing");  // NOLINT: tested on purpose
        owner.info("the owner writes");
    }
    ::dup2(saved, STDERR_FILENO);
    ::close(saved);
    CHECK(slurp(scratch.path) == "mailroom/local[" + std::to_string(::getpid()) + "]: the owner writes\n");
}

namespace {

// The child's side of the syslog test. glibc's syslog() always writes to /dev/log,
// so the child gets a /dev of its own (a private mount namespace with a tmpfs on
// /dev; as a non-root user, inside a user namespace) and binds a datagram socket
// there: what the logger sends is read back, and the machine's syslog sees nothing.
// Writes each datagram followed by '\0' to out; exits 77 when it cannot set up its /dev.
[[noreturn]] void syslog_child(int out) {
    const uid_t uid = ::getuid();
    const gid_t gid = ::getgid();
    if (::unshare(CLONE_NEWNS) != 0) {
        if (::unshare(CLONE_NEWUSER | CLONE_NEWNS) != 0) ::_exit(77);
        spit("/proc/self/setgroups", "deny");
        spit("/proc/self/uid_map", std::to_string(uid) + " " + std::to_string(uid) + " 1\n");
        spit("/proc/self/gid_map", std::to_string(gid) + " " + std::to_string(gid) + " 1\n");
    }
    if (::mount(nullptr, "/", nullptr, MS_REC | MS_PRIVATE, nullptr) != 0 ||
        ::mount("tmpfs", "/dev", "tmpfs", 0, "mode=0755") != 0)
        ::_exit(77);
    int sock = ::socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    struct sockaddr_un address {};
    address.sun_family = AF_UNIX;
    std::snprintf(address.sun_path, sizeof address.sun_path, "%s", "/dev/log");
    if (sock < 0 || ::bind(sock, reinterpret_cast<const sockaddr*>(&address), sizeof address) != 0) ::_exit(10);
    struct timeval timeout {5, 0};
    ::setsockopt(sock, SOL_SOCKET, SO_RCVTIMEO, &timeout, sizeof timeout);
    ::closelog();  // a connection inherited from the parent would go to the real /dev/log
    {
        auto log = Logger::open("local", "syslog");
        if (!log) ::_exit(11);
        log->info("mailroom unit test: syslog destination");
        Logger moved = std::move(*log);  // the ident follows the move: no dangling pointer
        moved.warning("after a move");
        moved.error("an error");
    }
    auto qmgr = Logger::open("qmgr", "syslog");
    if (!qmgr) ::_exit(12);
    qmgr->info("another role");
    for (int i = 0; i < 4; ++i) {
        char buf[2048];
        ssize_t n = ::recv(sock, buf, sizeof buf - 1, 0);
        if (n < 0) ::_exit(13);
        buf[n] = '\0';
        if (::write(out, buf, static_cast<size_t>(n) + 1) != n + 1) ::_exit(14);
    }
    ::_exit(0);
}

// "<PRI>" + stamp + "TAG[PID]: TEXT", as glibc sends it to /dev/log.
void check_datagram(const std::string& datagram, int priority, const std::string& tag_pid_text) {
    INFO("datagram: " << datagram);
    std::string pri = "<" + std::to_string(priority) + ">";
    REQUIRE(datagram.rfind(pri, 0) == 0);
    std::string_view rest = std::string_view(datagram).substr(pri.size());
    CHECK(starts_with_syslog_stamp(rest));
    CHECK(rest.substr(16) == tag_pid_text);
}

}  // namespace

TEST_CASE("syslog lines go to /dev/log under mailroom/ROLE[PID] with facility mail", "[log]") {
    int pipe_fds[2];
    REQUIRE(::pipe(pipe_fds) == 0);
    pid_t pid = ::fork();
    REQUIRE(pid >= 0);
    if (pid == 0) {
        ::close(pipe_fds[0]);
        syslog_child(pipe_fds[1]);
    }
    ::close(pipe_fds[1]);
    std::string received;
    char buf[4096];
    for (ssize_t n; (n = ::read(pipe_fds[0], buf, sizeof buf)) > 0;) received.append(buf, static_cast<size_t>(n));
    ::close(pipe_fds[0]);
    int status = 0;
    REQUIRE(::waitpid(pid, &status, 0) == pid);
    REQUIRE(WIFEXITED(status));
    if (WEXITSTATUS(status) == 77) {
        WARN("SKIPPED: cannot mount a private /dev here (no mount or user namespace)");
        return;
    }
    CHECK(WEXITSTATUS(status) == 0);
    std::vector<std::string> datagrams;
    for (size_t at = 0, end; (end = received.find('\0', at)) != std::string::npos; at = end + 1)
        datagrams.push_back(received.substr(at, end - at));
    REQUIRE(datagrams.size() == 4);
    const std::string pid_part = "[" + std::to_string(pid) + "]: ";
    // LOG_MAIL is 2 << 3 = 16; info 6, warning 4, error 3.
    check_datagram(datagrams[0], 16 + 6, "mailroom/local" + pid_part + "mailroom unit test: syslog destination");
    check_datagram(datagrams[1], 16 + 4, "mailroom/local" + pid_part + "warning: after a move");
    check_datagram(datagrams[2], 16 + 3, "mailroom/local" + pid_part + "error: an error");
    check_datagram(datagrams[3], 16 + 6, "mailroom/qmgr" + pid_part + "another role");
}
