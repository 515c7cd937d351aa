// A program running set-id reads only the installed configuration and starts other
// programs with a fixed environment (core/set_id.hpp, Config::choose_source); the log
// file it may create is for the spool owner alone.
#include "core/set_id.hpp"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <catch2/catch.hpp>
#include <cstring>
#include <string>

#include "core/config.hpp"
#include "core/log.hpp"
#include "support/test_support.hpp"

using mailroom::core::Config;
using mailroom::core::ConfigSource;
using mailroom::test::TempDir;

namespace {

// Gives this process another effective group for the scope (root only), which is
// what a set-gid program looks like from inside.
struct EffectiveGroup {
    explicit EffectiveGroup(gid_t gid) { REQUIRE(::setegid(gid) == 0); }
    ~EffectiveGroup() { (void)::setegid(::getgid()); }
};

}  // namespace

TEST_CASE("without set-id rights, -C and MAILROOM_CONF choose the file, which must then exist", "[set-id]") {
    auto given = Config::choose_source("/c/mailroom.conf", "/env/mailroom.conf", false);
    REQUIRE(given);
    CHECK(given->path == "/c/mailroom.conf");
    CHECK(given->named);
    auto env = Config::choose_source("", "/env/mailroom.conf", false);
    REQUIRE(env);
    CHECK(env->path == "/env/mailroom.conf");
    CHECK(env->named);
    for (const char* unset : {static_cast<const char*>(nullptr), ""}) {
        auto installed = Config::choose_source("", unset, false);
        REQUIRE(installed);
        CHECK(installed->path == Config::installed_path());
        CHECK_FALSE(installed->named);
    }
    CHECK(Config::installed_path() == MAILROOM_SYSCONFDIR "/mailroom.conf");
}

TEST_CASE("a set-id program refuses -C and MAILROOM_CONF, naming the file and the installed one", "[set-id]") {
    auto by_c = Config::choose_source("/home/eve/evil.conf", nullptr, true);
    REQUIRE_FALSE(by_c);
    CHECK(by_c.error().message() == "will not read /home/eve/evil.conf given by -C (a program running set-id reads only " +
                                        Config::installed_path() + ")");
    auto by_env = Config::choose_source("", "/home/eve/evil.conf", true);
    REQUIRE_FALSE(by_env);
    CHECK(by_env.error().message() ==
          "will not read /home/eve/evil.conf given by MAILROOM_CONF (a program running set-id reads only " +
              Config::installed_path() + ")");
    // -C wins over the environment, and is what the refusal names.
    auto both = Config::choose_source("/a.conf", "/b.conf", true);
    REQUIRE_FALSE(both);
    CHECK_THAT(both.error().message(), Catch::StartsWith("will not read /a.conf given by -C "));
    // Control bytes of the caller's text are not echoed.
    auto odd = Config::choose_source("/x\n\033[2J", nullptr, true);
    REQUIRE_FALSE(odd);
    CHECK(odd.error().message().find_first_of("\n\033") == std::string::npos);
}

TEST_CASE("a set-id refusal is the same whether the named file exists or not", "[set-id]") {
    TempDir tmp;
    std::string present = tmp.path + "/present.conf", missing = tmp.path + "/missing.conf";
    { std::FILE* f = std::fopen(present.c_str(), "w"); REQUIRE(f); std::fputs("myhostname = a.example\n", f); std::fclose(f); }
    auto a = Config::choose_source(present, nullptr, true);
    auto b = Config::choose_source(missing, nullptr, true);
    REQUIRE_FALSE(a);
    REQUIRE_FALSE(b);
    std::string text_a = a.error().message(), text_b = b.error().message();
    text_a.replace(text_a.find(present), present.size(), "FILE");
    text_b.replace(text_b.find(missing), missing.size(), "FILE");
    CHECK(text_a == text_b);
    CHECK(a.error().errno_value() == b.error().errno_value());
}

TEST_CASE("a set-id program may name the installed file itself, or nothing", "[set-id]") {
    const std::string installed = Config::installed_path();
    for (auto [dash_c, env] : {std::pair<std::string, const char*>{installed, nullptr},
                               {"", installed.c_str()}, {"", nullptr}, {"", ""}}) {
        auto source = Config::choose_source(dash_c, env, true);
        REQUIRE(source);
        CHECK(source->path == Config::installed_path());
        CHECK_FALSE(source->named);  // may be missing: then every key has its default
    }
}

TEST_CASE("a process whose effective group differs from its real one is set-id, and starts others with PATH only",
          "[set-id]") {
    if (::getuid() == ::geteuid() && ::getgid() == ::getegid()) {
        CHECK_FALSE(mailroom::core::running_set_id());
        // Not set-id: what it starts gets its environment as it is.
        ::setenv("MAILROOM_SET_ID_TEST", "1", 1);
        auto envp = mailroom::core::child_environment();
        bool found = false;
        for (char* e : envp) found = found || (e && std::strcmp(e, "MAILROOM_SET_ID_TEST=1") == 0);
        CHECK(found);
        CHECK(envp.back() == nullptr);
        ::unsetenv("MAILROOM_SET_ID_TEST");
    }
    if (::geteuid() != 0) return;  // only root can take another effective group
    EffectiveGroup other(65534);
    CHECK(mailroom::core::running_set_id());
    ::setenv("MAILROOM_CONF", "/home/eve/evil.conf", 1);
    auto envp = mailroom::core::child_environment();
    ::unsetenv("MAILROOM_CONF");
    REQUIRE(envp.size() == 2);
    CHECK(std::string(envp[0]) == "PATH=/usr/bin:/bin");
    CHECK(envp[1] == nullptr);
    auto refused = Config::choose_source("/home/eve/evil.conf");
    CHECK_FALSE(refused);
}

TEST_CASE("a log file is created readable by its owner only, whatever the umask", "[set-id][log]") {
    TempDir tmp;
    std::string path = tmp.path + "/maillog";
    mode_t old = ::umask(0);
    auto log = mailroom::core::Logger::open("pickup", path);
    ::umask(old);
    REQUIRE(log);
    log->info("secret line");
    struct stat st {};
    REQUIRE(::stat(path.c_str(), &st) == 0);
    CHECK((st.st_mode & 07777) == 0600);
}

TEST_CASE("an existing log file keeps its mode", "[set-id][log]") {
    TempDir tmp;
    std::string path = tmp.path + "/maillog";
    int fd = ::open(path.c_str(), O_WRONLY | O_CREAT, 0644);
    REQUIRE(fd >= 0);
    ::fchmod(fd, 0644);
    ::close(fd);
    auto log = mailroom::core::Logger::open("pickup", path);
    REQUIRE(log);
    struct stat st {};
    REQUIRE(::stat(path.c_str(), &st) == 0);
    CHECK((st.st_mode & 07777) == 0644);
}
