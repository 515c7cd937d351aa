// forward_path expansion, the private group, and ForwardFile::read (SPEC 2 and 5,
// docs/forward.md). Cases that need another uid run only as root and say so otherwise.
#include <fcntl.h>
#include <linux/capability.h>
#include <sys/inotify.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <csignal>
#include <map>
#include <string>

#include <catch2/catch.hpp>
#include <chrono>

#include "delivery/forward_file.hpp"
#include "delivery/forward_path.hpp"
#include "delivery/private_group.hpp"
#include "support/test_support.hpp"

using namespace mailroom::mail;
using mailroom::core::UserInfo;
using mailroom::test::seconds_since;
using mailroom::test::spit;
using mailroom::test::TempDir;
using Kind = ForwardResult::Kind;
using Why = SkippedForwardPath::Why;

namespace {

// Numeric ids that need no account: the machine's users are never touched.
constexpr uid_t test_uid = 54331;
constexpr gid_t test_gid = 54332;
constexpr uid_t other_uid = 54399;

bool running_as_root(const char* why) {
    if (::geteuid() == 0) return true;
    WARN(std::string("skipped: needs root ") + why);
    return false;
}

class FakeGroups final : public GroupDb {
public:
    std::map<gid_t, GroupInfo> groups;
    bool fail = false;
    mailroom::core::Result<std::optional<GroupInfo>> find_gid(gid_t gid) const override {
        if (fail) return mailroom::core::unexpected_errno("look up group " + std::to_string(gid), EIO);
        auto it = groups.find(gid);
        if (it == groups.end()) return std::optional<GroupInfo>{};
        return std::optional<GroupInfo>{it->second};
    }
};

// A home folder for a user: as root, a made-up uid owns it; otherwise we are the user.
struct Home {
    TempDir tmp;
    UserInfo user;
    std::string path;

    explicit Home(const std::string& folder_name = "home") {
        path = tmp.path + "/" + folder_name;
        REQUIRE(::mkdir(path.c_str(), 0755) == 0);
        if (::geteuid() == 0) {
            user = UserInfo{"fwdtest", test_uid, test_gid, path, "/bin/sh", ""};
            REQUIRE(::chmod(tmp.path.c_str(), 0711) == 0);  // the user must get through it
            REQUIRE(::chown(path.c_str(), test_uid, test_gid) == 0);
        } else {
            user = UserInfo{"tester", ::geteuid(), ::getegid(), path, "/bin/sh", ""};
        }
    }

    std::string file(const std::string& name) const { return path + "/" + name; }

    // Writes a file in the home with this mode, owned by the user.
    std::string write(const std::string& name, std::string_view text, mode_t mode = 0644) const {
        std::string p = file(name);
        spit(p, text);
        REQUIRE(::chmod(p.c_str(), mode) == 0);
        if (::geteuid() == 0) REQUIRE(::chown(p.c_str(), user.uid, user.gid) == 0);
        return p;
    }

    // The user's private group, as a fake group database gives it.
    FakeGroups private_group() const {
        FakeGroups fake;
        fake.groups[user.gid] = GroupInfo{user.name, user.gid, {}};
        return fake;
    }
};

ForwardResult read_dot_forward(const Home& home, const ForwardReadOptions& options = {}) {
    return ForwardFile::read(home.user, {home.file(".forward")}, options);
}

bool has_control_byte(const std::string& text) {
    for (char c : text)
        if (static_cast<unsigned char>(c) < 0x20 || c == 0x7f) return true;
    return false;
}

// Runs fn in a forked child killed after `seconds` (SIGALRM) and returns what it
// returned, or "killed by signal N" / "exit N": a reader that blocks fails the test
// instead of hanging it.
template <typename Fn>
std::string in_child(Fn fn, unsigned seconds = 10) {
    int fds[2];
    REQUIRE(::pipe(fds) == 0);
    pid_t pid = ::fork();
    REQUIRE(pid >= 0);
    if (pid == 0) {
        ::close(fds[0]);
        ::alarm(seconds);
        std::string out = fn();
        (void)!::write(fds[1], out.data(), out.size());
        ::_exit(0);
    }
    ::close(fds[1]);
    std::string out;
    char buf[512];
    for (ssize_t n; (n = ::read(fds[0], buf, sizeof buf)) > 0;) out.append(buf, static_cast<size_t>(n));
    ::close(fds[0]);
    int status = 0;
    REQUIRE(::waitpid(pid, &status, 0) == pid);
    if (WIFSIGNALED(status)) return "killed by signal " + std::to_string(WTERMSIG(status));
    if (WEXITSTATUS(status) != 0) return "exit " + std::to_string(WEXITSTATUS(status));
    return out;
}

std::string kind_and_reason(const ForwardResult& r) {
    const char* names[] = {"none", "used", "refused", "temporary"};
    return std::string(names[static_cast<int>(r.kind)]) + "|" + r.reason;
}

// Watches a file for being opened: opened() is true once anything opened it since.
struct OpenWatch {
    int fd = -1;
    explicit OpenWatch(const std::string& path) {
        fd = ::inotify_init1(IN_NONBLOCK | IN_CLOEXEC);
        REQUIRE(fd >= 0);
        REQUIRE(::inotify_add_watch(fd, path.c_str(), IN_OPEN | IN_ACCESS) >= 0);
    }
    ~OpenWatch() { ::close(fd); }
    bool opened() const {
        alignas(inotify_event) char buf[4096];
        return ::read(fd, buf, sizeof buf) > 0;
    }
};

// Root without CAP_DAC_OVERRIDE and CAP_DAC_READ_SEARCH, as root is on a root-squashed
// NFS mount: it may switch ids (CAP_SETUID, CAP_SETGID stay) but reads only what
// uid 0 itself may. For the calling (child) process only.
bool drop_root_file_access() {
    __user_cap_header_struct header{_LINUX_CAPABILITY_VERSION_3, 0};
    __user_cap_data_struct data[2]{};
    if (::syscall(SYS_capget, &header, data) != 0) return false;
    const uint32_t dac = (1u << CAP_DAC_OVERRIDE) | (1u << CAP_DAC_READ_SEARCH);
    data[0].effective &= ~dac;
    data[0].permitted &= ~dac;
    data[0].inheritable &= ~dac;
    return ::syscall(SYS_capset, &header, data) == 0;
}

}  // namespace

// ---- forward_path ---------------------------------------------------------------

TEST_CASE("forward_path: the default tries $home/.forward+ext before $home/.forward for bob+ext", "[forward]") {
    UserInfo bob{"bob", 1001, 1001, "/home/bob", "/bin/sh", ""};
    auto paths = expand_forward_path(ForwardPathSettings{}, bob, "ext");
    CHECK(paths.paths == std::vector<std::string>{"/home/bob/.forward+ext", "/home/bob/.forward"});
    CHECK(paths.skipped.empty());
}

TEST_CASE("forward_path: the configured default and recipient_delimiter come from mailroom.conf", "[forward]") {
    UserInfo bob{"bob", 1001, 1001, "/home/bob", "/bin/sh", ""};
    auto defaults = ForwardPathSettings::from_config(mailroom::core::Config::defaults());
    CHECK(expand_forward_path(defaults, bob, "ext").paths ==
          std::vector<std::string>{"/home/bob/.forward+ext", "/home/bob/.forward"});
    auto dash = mailroom::core::Config::parse("recipient_delimiter = -\n", "main.conf");
    REQUIRE(dash);
    CHECK(expand_forward_path(ForwardPathSettings::from_config(*dash), bob, "ext").paths ==
          std::vector<std::string>{"/home/bob/.forward-ext", "/home/bob/.forward"});
    auto off = mailroom::core::Config::parse("recipient_delimiter =\n", "main.conf");
    REQUIRE(off);
    // The item became "$home/.forward${extension}": it must not give ".forwardext".
    CHECK(expand_forward_path(ForwardPathSettings::from_config(*off), bob, "ext").paths ==
          std::vector<std::string>{"/home/bob/.forward"});
}

TEST_CASE("forward_path: an item that uses the extension is skipped when the address has none", "[forward]") {
    UserInfo bob{"bob", 1001, 1001, "/home/bob", "/bin/sh", ""};
    auto paths = expand_forward_path(ForwardPathSettings{}, bob, "");
    CHECK(paths.paths == std::vector<std::string>{"/home/bob/.forward"});
    REQUIRE(paths.skipped.size() == 1);
    CHECK(paths.skipped[0].why == Why::no_extension);
    CHECK_FALSE(paths.skipped[0].worth_reporting());

    // An empty recipient_delimiter disables extensions: nothing names one.
    ForwardPathSettings no_delimiter;
    no_delimiter.recipient_delimiter = "";
    auto plain = expand_forward_path(no_delimiter, bob, "ext");
    CHECK(plain.paths == std::vector<std::string>{"/home/bob/.forward"});
}

TEST_CASE("forward_path: $home, $user, $extension, $recipient_delimiter and their ${} forms expand", "[forward]") {
    UserInfo bob{"bob", 1001, 1001, "/home/bob", "/bin/sh", ""};
    ForwardPathSettings settings;
    settings.recipient_delimiter = "-";
    settings.items = {"${home}/.fwd$recipient_delimiter$extension", "/etc/forward/$user", "/etc/forward/${user}.$extension",
                      "$home/a$-b"};
    auto paths = expand_forward_path(settings, bob, "list");
    CHECK(paths.paths == std::vector<std::string>{"/home/bob/.fwd-list", "/etc/forward/bob", "/etc/forward/bob.list",
                                                  "/home/bob/a$-b"});
}

TEST_CASE("forward_path: an item that does not expand to an absolute path is skipped with a reason", "[forward]") {
    ForwardPathSettings settings;
    settings.items = {"$home/.forward", "forward/$user", "$local/.forward"};
    UserInfo homeless{"bob", 1001, 1001, "", "/bin/sh", ""};
    auto paths = expand_forward_path(settings, homeless, "");
    CHECK(paths.paths.empty());
    REQUIRE(paths.skipped.size() == 3);
    CHECK(paths.skipped[0].why == Why::not_absolute);  // "/.forward" must not come from an empty home
    CHECK(paths.skipped[0].reason == "the home folder \"\" is not an absolute path");
    CHECK(paths.skipped[1].reason == "not an absolute path: \"forward/bob\"");
    CHECK(paths.skipped[1].why == Why::not_absolute);
    CHECK(paths.skipped[2].why == Why::unknown_variable);
    CHECK(paths.skipped[2].reason == "unknown variable $local");
    for (const auto& s : paths.skipped) CHECK(s.worth_reporting());
}

TEST_CASE("forward_path: an extension holding '/', starting with '.' or holding a control byte never reaches a path",
          "[forward]") {
    UserInfo bob{"bob", 1001, 1001, "/home/bob", "/bin/sh", ""};
    ForwardPathSettings settings;
    settings.items = {"$home/.forward+$extension", "$home/${extension}/.forward", "$home/.forward"};
    for (const std::string& ext : std::vector<std::string>{"../x", "a/b", ".x", "..", "x\ny", std::string("x\0y", 3), "\x7f"}) {
        CAPTURE(ext);
        auto paths = expand_forward_path(settings, bob, ext);
        CHECK(paths.paths == std::vector<std::string>{"/home/bob/.forward"});
        REQUIRE(paths.skipped.size() == 2);
        for (const auto& s : paths.skipped) {
            CHECK(s.why == Why::unsafe_extension);
            CHECK(s.reason.rfind("extension \"", 0) == 0);
            CHECK_FALSE(has_control_byte(s.reason));
        }
    }
    CHECK(unsafe_extension_reason("../x") == "extension \"../x\" holds '/'");
    CHECK(unsafe_extension_reason(".x") == "extension \".x\" starts with '.'");
    CHECK(unsafe_extension_reason("x\ny") == "extension \"x\\ny\" holds a control byte");
    CHECK(unsafe_extension_reason("list-2024") == "");
}

TEST_CASE("forward_path: a home holding a .. component is skipped", "[forward]") {
    UserInfo odd{"bob", 1001, 1001, "/home/../etc", "/bin/sh", ""};
    auto paths = expand_forward_path(ForwardPathSettings{}, odd, "");
    CHECK(paths.paths.empty());
    REQUIRE(paths.skipped.size() == 2);
    CHECK(paths.skipped[1].why == Why::parent_component);
}

// ---- the private group ----------------------------------------------------------

TEST_CASE("the private group is the group named after the user, with the user's primary gid, and no other member",
          "[forward]") {
    UserInfo bob{"bob", 1001, 1001, "/home/bob", "/bin/sh", ""};
    FakeGroups groups;
    groups.groups[1001] = GroupInfo{"bob", 1001, {}};
    groups.groups[100] = GroupInfo{"users", 100, {}};
    CHECK(*is_private_group(bob, 1001, groups));
    CHECK_FALSE(*is_private_group(bob, 100, groups));  // not the primary gid
    groups.groups[1001].members = {"bob"};
    CHECK(*is_private_group(bob, 1001, groups));  // naming only the user is no other member
    groups.groups[1001].members = {"bob", "eve"};
    CHECK_FALSE(*is_private_group(bob, 1001, groups));
    groups.groups[1001] = GroupInfo{"staff", 1001, {}};
    CHECK_FALSE(*is_private_group(bob, 1001, groups));  // primary, but not named after bob
    groups.groups.erase(1001);
    CHECK_FALSE(*is_private_group(bob, 1001, groups));  // no such group
    groups.fail = true;
    CHECK_FALSE(is_private_group(bob, 1001, groups).has_value());  // cannot tell: an error
}

TEST_CASE("the system's group database answers for gid 0", "[forward]") {
    auto root = NssGroupDb().find_gid(0);
    REQUIRE(root);
    REQUIRE(*root);
    CHECK((*root)->gid == 0);
}

// ---- ForwardFile::read ------------------------------------------------------------

TEST_CASE(".forward: no file at any path is none", "[forward]") {
    Home home;
    auto r = ForwardFile::read(home.user, {home.file(".forward+x"), home.file(".forward"), "/nonexistent/dir/.forward"});
    CHECK(r.kind == Kind::none);
    CHECK(r.describe() == "no .forward");
    CHECK(ForwardFile::read(home.user, {}).kind == Kind::none);
}

TEST_CASE(".forward: a regular file owned by the user is used, with its lines and their numbers", "[forward]") {
    Home home;
    home.write(".forward", "# my forward\r\n\nalice@example.org\r\n   \n  # indented comment\n\\tester, |\"/usr/bin/procmail\"\nlast");
    auto r = read_dot_forward(home);
    REQUIRE(r.kind == Kind::used);
    CHECK(r.path == home.file(".forward"));
    REQUIRE(r.lines.size() == 3);
    CHECK(r.lines[0].number == 3);
    CHECK(r.lines[0].text == "alice@example.org");
    CHECK(r.lines[1].number == 6);
    CHECK(r.lines[1].text == "\\tester, |\"/usr/bin/procmail\"");
    CHECK(r.lines[2].number == 7);
    CHECK(r.lines[2].text == "last");
    CHECK(r.shown_path == "~" + home.user.name + "/.forward");
    CHECK(r.where(r.lines[0]) == "~" + home.user.name + "/.forward:3");
    CHECK(r.describe() == "~" + home.user.name + "/.forward: 3 lines");
}

TEST_CASE(".forward: a file outside the user's home is shown by its full path", "[forward]") {
    Home home;
    std::string elsewhere = home.tmp.path + "/forwards";
    REQUIRE(::mkdir(elsewhere.c_str(), 0755) == 0);
    spit(elsewhere + "/tester", "alice\n");
    if (::geteuid() == 0) REQUIRE(::chown((elsewhere + "/tester").c_str(), home.user.uid, home.user.gid) == 0);
    auto r = ForwardFile::read(home.user, {elsewhere + "/tester"});
    REQUIRE(r.kind == Kind::used);
    CHECK(r.where(r.lines[0]) == elsewhere + "/tester:1");
}

TEST_CASE(".forward: .forward+ext is tried before .forward for bob+ext, the first that exists decides", "[forward]") {
    Home home;
    home.write(".forward", "plain\n");
    ForwardPathSettings settings;  // the default forward_path
    SECTION("only .forward: used for bob+ext") {
        auto r = ForwardFile::find(home.user, "ext", settings);
        REQUIRE(r.kind == Kind::used);
        CHECK(r.path == home.file(".forward"));
    }
    SECTION(".forward+ext exists: used for bob+ext, .forward for bob") {
        home.write(".forward+ext", "extended\n");
        auto r = ForwardFile::find(home.user, "ext", settings);
        REQUIRE(r.kind == Kind::used);
        CHECK(r.path == home.file(".forward+ext"));
        CHECK(r.lines.at(0).text == "extended");
        auto plain = ForwardFile::find(home.user, "", settings);
        REQUIRE(plain.kind == Kind::used);
        CHECK(plain.path == home.file(".forward"));
        REQUIRE(plain.skipped.size() == 1);
        CHECK(plain.skipped[0].why == Why::no_extension);
    }
    SECTION("a refused .forward+ext does not fall back to .forward") {
        home.write(".forward+ext", "extended\n", 0666);
        auto r = ForwardFile::find(home.user, "ext", settings);
        CHECK(r.kind == Kind::refused);
        CHECK(r.path == home.file(".forward+ext"));
        CHECK(r.reason == "world-writable");
    }
}

TEST_CASE(".forward: a group-writable file is refused unless its group is the user's own private group", "[forward]") {
    Home home;
    home.write(".forward", "alice\n", 0664);
    FakeGroups private_group = home.private_group();
    auto allowed = read_dot_forward(home, {64 * 1024, &private_group});
    CHECK(allowed.kind == Kind::used);

    FakeGroups shared = private_group;
    shared.groups[home.user.gid].members = {"eve"};
    auto refused = read_dot_forward(home, {64 * 1024, &shared});
    CHECK(refused.kind == Kind::refused);
    CHECK(refused.reason == "group-writable (gid " + std::to_string(home.user.gid) + " is not " + home.user.name +
                                "'s private group)");
    CHECK(refused.describe() == "~" + home.user.name + "/.forward ignored: " + refused.reason);

    FakeGroups broken;
    broken.fail = true;
    auto unknown = read_dot_forward(home, {64 * 1024, &broken});
    CHECK(unknown.kind == Kind::temporary);  // cannot be judged now: defer, do not ignore
    CHECK(unknown.reason.rfind("group-writable, and look up group", 0) == 0);

    // Not group-writable: no group is looked up at all.
    REQUIRE(::chmod(home.file(".forward").c_str(), 0644) == 0);
    CHECK(read_dot_forward(home, {64 * 1024, &broken}).kind == Kind::used);
}

TEST_CASE(".forward: a group-writable file whose group is not the user's primary group is refused", "[forward]") {
    if (!running_as_root("to give the file another group")) return;
    Home home;
    std::string path = home.write(".forward", "alice\n", 0664);
    REQUIRE(::chown(path.c_str(), home.user.uid, test_gid + 1) == 0);
    FakeGroups groups = home.private_group();
    groups.groups[test_gid + 1] = GroupInfo{home.user.name, test_gid + 1, {}};  // named after bob, not his gid
    auto r = read_dot_forward(home, {64 * 1024, &groups});
    CHECK(r.kind == Kind::refused);
    CHECK(r.reason.rfind("group-writable", 0) == 0);
}

TEST_CASE(".forward: a world-writable file is refused", "[forward]") {
    Home home;
    home.write(".forward", "alice\n", 0646);
    auto r = read_dot_forward(home);
    CHECK(r.kind == Kind::refused);
    CHECK(r.reason == "world-writable");
    CHECK(r.lines.empty());
}

TEST_CASE(".forward: a symbolic link is refused and the file it points to is not read", "[forward]") {
    Home home;
    std::string target = home.write("real-forward", "secret@example.org\n");
    REQUIRE(::symlink(target.c_str(), home.file(".forward").c_str()) == 0);
    OpenWatch watch(target);
    auto r = read_dot_forward(home);
    CHECK_FALSE(watch.opened());
    CHECK(r.kind == Kind::refused);
    CHECK(r.reason == "a symbolic link");
    CHECK(r.lines.empty());
    // Also when it points to a folder or nowhere.
    REQUIRE(::unlink(home.file(".forward").c_str()) == 0);
    REQUIRE(::symlink("/nonexistent", home.file(".forward").c_str()) == 0);
    CHECK(read_dot_forward(home).reason == "a symbolic link");
}

TEST_CASE(".forward: a file owned by another user is refused, naming its uid, root's is used", "[forward]") {
    if (!running_as_root("to give the file to another uid")) return;
    Home home;
    std::string path = home.write(".forward", "alice\n");
    REQUIRE(::chown(path.c_str(), other_uid, test_gid) == 0);
    auto r = read_dot_forward(home);
    CHECK(r.kind == Kind::refused);
    CHECK(r.reason == "owned by uid " + std::to_string(other_uid));
    REQUIRE(::chown(path.c_str(), 0, 0) == 0);
    CHECK(read_dot_forward(home).kind == Kind::used);
}

TEST_CASE(".forward: a file in a world-writable home is refused, even when the home is sticky", "[forward]") {
    Home home;
    home.write(".forward", "alice\n");
    for (mode_t mode : {01777, 0777, 0757}) {
        CAPTURE(mode);
        REQUIRE(::chmod(home.path.c_str(), mode) == 0);
        auto r = read_dot_forward(home);
        CHECK(r.kind == Kind::refused);
        CHECK(r.reason == "in a world-writable folder " + home.path);
    }
    // Without a .forward there is nothing to ignore.
    REQUIRE(::unlink(home.file(".forward").c_str()) == 0);
    CHECK(read_dot_forward(home).kind == Kind::none);
}

TEST_CASE(".forward: the reason never holds a raw control byte", "[forward]") {
    Home home("ho\nme\x1b[2J");
    home.write(".forward", "alice\n");
    REQUIRE(::chmod(home.path.c_str(), 0777) == 0);
    auto r = read_dot_forward(home);
    CHECK(r.kind == Kind::refused);
    CHECK(r.reason.find("in a world-writable folder ") == 0);
    CHECK(r.reason.find("ho\\nme\\x1b[2J") != std::string::npos);
    CHECK_FALSE(has_control_byte(r.reason));
    CHECK_FALSE(has_control_byte(r.describe()));
    // And the path outside the home is escaped in shown_path as well.
    ForwardResult other = ForwardFile::read(home.user, {home.tmp.path + "/x\r\n/.forward"});
    CHECK(other.kind == Kind::none);
}

TEST_CASE(".forward: a FIFO is refused without blocking", "[forward]") {
    Home home;
    REQUIRE(::mkfifo(home.file(".forward").c_str(), 0644) == 0);
    if (::geteuid() == 0) REQUIRE(::chown(home.file(".forward").c_str(), home.user.uid, home.user.gid) == 0);
    OpenWatch watch(home.file(".forward"));
    auto start = std::chrono::steady_clock::now();
    std::string outcome = in_child([&] { return kind_and_reason(read_dot_forward(home)); }, 5);
    CHECK(outcome == "refused|a FIFO");
    CHECK_FALSE(watch.opened());  // never even opened
    CHECK(seconds_since(start) < 4.0);
}

TEST_CASE(".forward: a folder named .forward is refused", "[forward]") {
    Home home;
    REQUIRE(::mkdir(home.file(".forward").c_str(), 0755) == 0);
    auto r = read_dot_forward(home);
    CHECK(r.kind == Kind::refused);
    CHECK(r.reason == "a folder");
}

TEST_CASE(".forward: a file larger than 64 KB is refused, 64 KB is read", "[forward]") {
    Home home;
    std::string line = std::string(63, 'a') + "\n";  // 64 bytes
    std::string text;
    while (text.size() < 64 * 1024) text += line;
    REQUIRE(text.size() == 64 * 1024);
    home.write(".forward", text);
    auto fits = read_dot_forward(home);
    REQUIRE(fits.kind == Kind::used);
    CHECK(fits.lines.size() == 1024);
    home.write(".forward", text + "b");
    auto r = read_dot_forward(home);
    CHECK(r.kind == Kind::refused);
    CHECK(r.reason == "larger than 64 KB");
    CHECK(r.lines.empty());
}

TEST_CASE(".forward: a file holding a NUL byte is refused", "[forward]") {
    Home home;
    home.write(".forward", std::string("alice\nbob\0|evil\ncarol\n", 22));
    auto r = read_dot_forward(home);
    CHECK(r.kind == Kind::refused);
    CHECK(r.reason == "holds a NUL byte (line 2)");
    CHECK(r.lines.empty());
}

TEST_CASE(".forward: a home its user may not search is refused with the reason", "[forward]") {
    if (!running_as_root("to give the home to another uid")) return;
    Home home;
    home.write(".forward", "alice\n");
    REQUIRE(::chown(home.path.c_str(), other_uid, test_gid) == 0);
    REQUIRE(::chmod(home.path.c_str(), 0700) == 0);
    auto r = read_dot_forward(home);
    CHECK(r.kind == Kind::refused);
    CHECK(r.reason == "folder " + home.path + " cannot be searched: Permission denied");
}

TEST_CASE(".forward: a home that is a symbolic link is judged as the folder it leads to", "[forward]") {
    Home home;
    home.write(".forward", "alice\n");
    UserInfo linked = home.user;
    linked.home = home.tmp.path + "/link";
    REQUIRE(::symlink(home.path.c_str(), linked.home.c_str()) == 0);
    auto r = ForwardFile::read(linked, {linked.home + "/.forward"});
    REQUIRE(r.kind == Kind::used);
    CHECK(r.shown_path == "~" + linked.name + "/.forward");
    REQUIRE(::chmod(home.path.c_str(), 01777) == 0);  // the folder that holds the file
    auto refused = ForwardFile::read(linked, {linked.home + "/.forward"});
    CHECK(refused.kind == Kind::refused);
    CHECK(refused.reason == "in a world-writable folder " + linked.home);
}

TEST_CASE(".forward: a file the user may not read is refused with the reason", "[forward]") {
    // As root this holds only because the file is opened with the user's rights.
    Home home;
    home.write(".forward", "alice\n", 0000);
    auto r = read_dot_forward(home);
    CHECK(r.kind == Kind::refused);
    CHECK(r.reason == "cannot be opened: Permission denied");
}

TEST_CASE(".forward: in a home only its user can enter (root-squashed NFS), it is read with the user's rights",
          "[forward][root]") {
    if (!running_as_root("to switch to the user's rights")) return;
    Home home;
    home.write(".forward", "alice\n", 0400);
    REQUIRE(::chmod(home.path.c_str(), 0700) == 0);
    std::string outcome = in_child([&]() -> std::string {
        if (!drop_root_file_access()) return "cannot drop capabilities";
        // Now uid 0 may not enter the user's 0700 home, as root on a root-squashed mount.
        int probe = ::open(home.file(".forward").c_str(), O_RDONLY);
        if (probe >= 0 || errno != EACCES) return "root can still read the file: not simulated";
        std::vector<gid_t> groups_before(64);
        groups_before.resize(static_cast<size_t>(::getgroups(64, groups_before.data())));
        auto r = read_dot_forward(home);
        std::vector<gid_t> groups_after(64);
        groups_after.resize(static_cast<size_t>(::getgroups(64, groups_after.data())));
        if (::geteuid() != 0 || ::getegid() != 0 || groups_after != groups_before) return "ids not restored";
        if (r.kind != Kind::used) return kind_and_reason(r);
        return r.lines.at(0).text;
    });
    if (outcome == "cannot drop capabilities" || outcome == "root can still read the file: not simulated") {
        WARN("skipped: " + outcome);
        return;
    }
    CHECK(outcome == "alice");
}

TEST_CASE(".forward: extensions ../x and .x never make the reader leave the home or pick another file",
          "[forward]") {
    Home home;
    home.write(".forward", "plain\n");
    // Without the extension rules, ../x would reach into a folder ".forward+..",
    // .x would pick a file the pattern never meant, and $home/$extension/.forward
    // with ".." the .forward above the home.
    REQUIRE(::mkdir(home.file(".forward+..").c_str(), 0755) == 0);
    home.write(".forward+../x", "evil-x\n");
    home.write(".forward+.x", "evil-dot\n");
    ForwardPathSettings settings;
    settings.items = {"$home/.forward+$extension", "$home/$extension/.forward", "$home/.forward"};
    std::string parent_forward = home.tmp.path + "/.forward";  // what $home/../.forward would be
    spit(parent_forward, "evil-parent\n");
    for (const char* ext : {"../x", ".x", ".."}) {
        CAPTURE(ext);
        auto r = ForwardFile::find(home.user, ext, settings);
        REQUIRE(r.kind == Kind::used);
        CHECK(r.path == home.file(".forward"));
        CHECK(r.lines.at(0).text == "plain");
        REQUIRE(r.skipped.size() == 2);
        CHECK(r.skipped[0].why == Why::unsafe_extension);
        CHECK(r.skipped[0].worth_reporting());
    }
}

TEST_CASE(".forward: a path that is not absolute is refused, never read relative to the current folder", "[forward]") {
    Home home;
    home.write(".forward", "alice\n");
    REQUIRE(::chdir(home.path.c_str()) == 0);
    auto r = ForwardFile::read(home.user, {".forward"});
    REQUIRE(::chdir("/") == 0);
    CHECK(r.kind == Kind::refused);
    CHECK(r.reason == "not an absolute path");
}

TEST_CASE(".forward: a temporary failure (no file descriptor left) defers instead of refusing", "[forward]") {
    Home home;
    home.write(".forward", "alice\n");
    std::string outcome = in_child([&]() -> std::string {
        int lowest_free = ::dup(0);
        if (lowest_free < 0) return "dup failed";
        ::close(lowest_free);
        rlimit limit{static_cast<rlim_t>(lowest_free), static_cast<rlim_t>(lowest_free)};
        if (::setrlimit(RLIMIT_NOFILE, &limit) != 0) return "setrlimit failed";
        return kind_and_reason(read_dot_forward(home));
    });
    CAPTURE(outcome);
    CHECK(outcome.rfind("temporary|", 0) == 0);
}

TEST_CASE("errors that may pass (EIO, ESTALE, ENOMEM) defer, a refusal (EACCES, ELOOP) does not", "[forward]") {
    for (int err : {EIO, ESTALE, ENOMEM, ENFILE, EMFILE, EAGAIN, ETIMEDOUT}) CHECK(is_temporary_file_error(err));
    for (int err : {EACCES, EPERM, ELOOP, EISDIR, EINVAL}) CHECK_FALSE(is_temporary_file_error(err));
}
