#include "core/users.hpp"

#include <sys/wait.h>
#include <unistd.h>

#include <catch2/catch.hpp>
#include <cstdlib>
#include <string>

#include "support/test_support.hpp"

using namespace mailroom::core;
using namespace mailroom::test;

TEST_CASE("root is found by name and by uid", "[users]") {
    NssUserDb db;
    auto by_name = db.find("root");
    REQUIRE(by_name);
    REQUIRE(by_name->has_value());
    CHECK((*by_name)->uid == 0);
    CHECK((*by_name)->name == "root");
    CHECK_FALSE((*by_name)->home.empty());

    auto by_uid = db.find_uid(0);
    REQUIRE(by_uid);
    REQUIRE(by_uid->has_value());
    CHECK((*by_uid)->name == "root");
}

TEST_CASE("a user that does not exist is not found, which is not an error", "[users]") {
    NssUserDb db;
    auto r = db.find("no-such-user-mailroom-test");
    REQUIRE(r);
    CHECK_FALSE(r->has_value());
    auto u = db.find_uid(3999999999u);
    REQUIRE(u);
    CHECK_FALSE(u->has_value());
}

TEST_CASE("names no account may have are not found without asking NSS", "[users]") {
    NssUserDb db;
    for (std::string_view bad : {"", "-f", ".hidden", "../root", "a/b", "ro\not", "root\n",
                                 "tab\there", "sp ace", "del\x7f"}) {
        CAPTURE(bad);
        auto r = db.find(bad);
        REQUIRE(r);
        CHECK_FALSE(r->has_value());
    }
    auto with_nul = db.find(std::string_view("root\0x", 6));
    REQUIRE(with_nul);
    CHECK_FALSE(with_nul->has_value());
    CHECK_FALSE(is_plausible_user_name(std::string(257, 'a')));
    CHECK(is_plausible_user_name("alice.smith"));
    CHECK(is_plausible_user_name("bob-2_x"));
}

TEST_CASE("the full name is the first GECOS field with & as the capitalised login", "[users]") {
    CHECK(gecos_full_name("Alice Smith,Room 1,555-1234,", "alice") == "Alice Smith");
    CHECK(gecos_full_name("& Jones", "bob") == "Bob Jones");
    CHECK(gecos_full_name("", "bob").empty());
    CHECK(gecos_full_name(",office", "bob").empty());
    CHECK(gecos_full_name("Plain", "x") == "Plain");
}

TEST_CASE("root's groups start with its primary group", "[users]") {
    NssUserDb db;
    auto root = db.find("root");
    REQUIRE(root);
    REQUIRE(root->has_value());
    auto groups = supplementary_groups(**root);
    REQUIRE(groups);
    REQUIRE_FALSE(groups->empty());
    CHECK(groups->front() == (*root)->gid);
}

// Runs inside a re-executed copy of this binary whose NSS is nss_wrapper's fake
// files (see the next test): the fake account never touches the machine's.
TEST_CASE("nss_wrapper child: a fake account is found with its groups", "[.][users]") {
    if (std::getenv("NSS_WRAPPER_PASSWD") == nullptr) {
        WARN("only meaningful under nss_wrapper");
        return;
    }
    NssUserDb db;
    auto r = db.find("fakeuser");
    REQUIRE(r);
    REQUIRE(r->has_value());
    const UserInfo& u = **r;
    CHECK(u.uid == 4242);
    CHECK(u.gid == 4242);
    CHECK(u.home == "/home/fakeuser");
    CHECK(u.shell == "/bin/sh");
    CHECK(gecos_full_name(u.gecos, u.name) == "Fake Fakeuser");
    auto by_uid = db.find_uid(4242);
    REQUIRE(by_uid);
    REQUIRE(by_uid->has_value());
    CHECK((*by_uid)->name == "fakeuser");
    auto groups = supplementary_groups(u);
    REQUIRE(groups);
    CHECK(*groups == std::vector<gid_t>{4242, 5000});
}

TEST_CASE("a fake account under nss_wrapper is found with its groups", "[users]") {
    const char* lib = "/usr/lib/x86_64-linux-gnu/libnss_wrapper.so";
    if (::access(lib, R_OK) != 0) {
        WARN("libnss_wrapper.so not installed: skipped");
        return;
    }
    TempDir dir;
    std::string passwd = dir.write("passwd", "root:x:0:0:root:/root:/bin/sh\n"
                                             "fakeuser:x:4242:4242:Fake &,Room 1:/home/fakeuser:/bin/sh\n");
    std::string group = dir.write("group", "root:x:0:\nfakeuser:x:4242:\nmailgrp:x:5000:fakeuser\n");

    pid_t pid = ::fork();
    REQUIRE(pid >= 0);
    if (pid == 0) {
        ::setenv("LD_PRELOAD", lib, 1);
#ifdef __SANITIZE_ADDRESS__
        // The preloaded wrapper comes before ASan's runtime; harmless for this test.
        std::string asan = "verify_asan_link_order=0";
        if (const char* old = std::getenv("ASAN_OPTIONS")) asan = std::string(old) + ":" + asan;
        ::setenv("ASAN_OPTIONS", asan.c_str(), 1);
#endif
        ::setenv("NSS_WRAPPER_PASSWD", passwd.c_str(), 1);
        ::setenv("NSS_WRAPPER_GROUP", group.c_str(), 1);
        // -w NoTests: a renamed child test fails instead of silently matching nothing.
        const char* argv[] = {"unit_tests", "-w", "NoTests",
                              "nss_wrapper child: a fake account is found with its groups", nullptr};
        ::execv("/proc/self/exe", const_cast<char* const*>(argv));
        ::_exit(127);
    }
    int status = 0;
    REQUIRE(::waitpid(pid, &status, 0) == pid);
    REQUIRE(WIFEXITED(status));
    CHECK(WEXITSTATUS(status) == 0);
}
