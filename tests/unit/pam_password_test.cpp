// The PAM check (core/pam_password.hpp). The cases that ask PAM are hidden
// ("[.pam]"): they run only under pam_wrapper with pam_matrix, through
// tests/unit/run_pam_tests.sh (CTest "unit: PAM cases under pam_wrapper"), which
// preloads the wrapper and runs `unit_tests "[pam]"`. Each case writes its own
// service folder and password file and points pam_wrapper and pam_matrix at them
// (the script says where pam_matrix.so is: PAM_MATRIX_MODULE).
// The rest needs no PAM and runs everywhere.
#include "core/pam_password.hpp"

#include <stdlib.h>
#include <sys/stat.h>

#include <catch2/catch.hpp>
#include <optional>
#include <string>

#include "support/test_support.hpp"

using namespace mailroom::core;
using namespace std::string_literals;

namespace {

// Sets an environment variable for the life of the object, then puts back what was there.
class ScopedEnv {
public:
    ScopedEnv(const char* name, const std::string& value) : name_(name) {
        if (const char* old = ::getenv(name)) old_ = old;
        ::setenv(name, value.c_str(), 1);
    }
    ~ScopedEnv() {
        if (old_) ::setenv(name_, old_->c_str(), 1);
        else ::unsetenv(name_);
    }
    ScopedEnv(const ScopedEnv&) = delete;
    ScopedEnv& operator=(const ScopedEnv&) = delete;

private:
    const char* name_;
    std::optional<std::string> old_;
};

// pam_wrapper's service folder holding the service "mailroom-test" (pam_matrix for
// auth and account), pam_matrix's password file: alice may use mailroom-test, bob
// only another service (his account step fails here). No "other" service: a
// service not in the folder has no configuration at all.
struct PamMatrix {
    mailroom::test::TempDir dir;
    std::optional<ScopedEnv> services, passwords;
    PamMatrix() {
        const char* wrapper = ::getenv("PAM_WRAPPER");
        const char* preload = ::getenv("LD_PRELOAD");
        const char* matrix = ::getenv("PAM_MATRIX_MODULE");
        INFO("the [pam] cases run under pam_wrapper: tests/unit/run_pam_tests.sh");
        REQUIRE(wrapper != nullptr);
        REQUIRE(std::string(wrapper) == "1");
        REQUIRE(preload != nullptr);
        REQUIRE(std::string(preload).find("pam_wrapper") != std::string::npos);
        REQUIRE(matrix != nullptr);
        ::mkdir((dir.path + "/services").c_str(), 0755);
        dir.write("services/mailroom-test", "auth required "s + matrix + "\naccount required " + matrix + "\n");
        dir.write("passdb", "alice:secret:mailroom-test\nbob:hunter2:another-service\n");
        services.emplace("PAM_WRAPPER_SERVICE_DIR", dir.path + "/services");
        passwords.emplace("PAM_MATRIX_PASSWD", dir.path + "/passdb");
    }
};

}  // namespace

TEST_CASE("PAM accepts the right password", "[.pam]") {
    PamMatrix pam;
    auto check = check_password("mailroom-test", "alice", "secret", "192.0.2.7");
    CHECK(check.verdict == PasswordVerdict::accepted);
    CHECK(check.why.empty());
    CHECK(check_password("mailroom-test", "alice", "secret").verdict == PasswordVerdict::accepted);
}

TEST_CASE("PAM refuses a wrong password, and never names it", "[.pam]") {
    PamMatrix pam;
    auto check = check_password("mailroom-test", "alice", "secreT");
    CHECK(check.verdict == PasswordVerdict::refused);
    CHECK(check.why.find("pam_authenticate") == 0);
    CHECK(check.why.find("secreT") == std::string::npos);
    CHECK(check_password("mailroom-test", "alice", "secret\n").verdict == PasswordVerdict::refused);
    CHECK(check_password("mailroom-test", "alice", std::string(1024, 's')).verdict == PasswordVerdict::refused);
}

TEST_CASE("PAM refuses an unknown user", "[.pam]") {
    PamMatrix pam;
    CHECK(check_password("mailroom-test", "mallory", "secret").verdict == PasswordVerdict::refused);
    CHECK(check_password("mailroom-test", "Alice", "secret").verdict == PasswordVerdict::refused);
}

TEST_CASE("PAM refuses a right password when the account step says no", "[.pam]") {
    PamMatrix pam;
    // pam_matrix's account step lets bob use another service only.
    auto check = check_password("mailroom-test", "bob", "hunter2");
    CHECK(check.verdict == PasswordVerdict::refused);
    CHECK(check.why.find("pam_acct_mgmt") == 0);
}

TEST_CASE("a PAM service without configuration is unavailable, not a wrong password", "[.pam]") {
    // pam_start fails when neither the service nor "other" is configured: that is the
    // administrator's to fix, and the client is told to try later (454), never that
    // its password is wrong (535). On a stock Debian host the same name would fall
    // back to /etc/pam.d/other and be refused there as a wrong password would.
    PamMatrix pam;
    auto check = check_password("no-such-service", "alice", "secret");
    CHECK(check.verdict == PasswordVerdict::unavailable);
    CHECK(check.why.find("pam_start") == 0);
}

TEST_CASE("a PAM back end that cannot be read is unavailable", "[.pam]") {
    PamMatrix pam;
    ScopedEnv gone("PAM_MATRIX_PASSWD", pam.dir.path + "/no-such-passdb");
    auto check = check_password("mailroom-test", "alice", "secret");
    CHECK(check.verdict == PasswordVerdict::unavailable);
    CHECK(check.why.find("pam_authenticate") == 0);
}

TEST_CASE("an empty user or password, or one holding a NUL, is refused without asking PAM", "[pam_password]") {
    CHECK(check_password("mailroom-test", "", "secret").verdict == PasswordVerdict::refused);
    CHECK(check_password("mailroom-test", "alice", "").verdict == PasswordVerdict::refused);
    CHECK(check_password("mailroom-test", "al\0ce"s, "secret").verdict == PasswordVerdict::refused);
    CHECK(check_password("mailroom-test", "alice", "sec\0ret"s).verdict == PasswordVerdict::refused);
    CHECK(check_password("", "alice", "secret").verdict == PasswordVerdict::unavailable);
}

TEST_CASE("secret_copy keeps any length out of the inline buffer", "[pam_password]") {
    for (size_t length : {0, 1, 15, 16, 31, 32, 1024}) {
        std::string copy = secret_copy(std::string(length, 'x'));
        CHECK(copy == std::string(length, 'x'));
        CHECK(copy.capacity() >= 32);
        const char* buffer = copy.data();
        std::string moved = std::move(copy);
        CHECK(moved.data() == buffer);  // the bytes moved with their buffer
        wipe(moved);
        CHECK(moved.empty());
        for (size_t i = 0; i < length; ++i) REQUIRE(buffer[i] == '\0');
    }
}
