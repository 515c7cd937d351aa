#include "core/atomic_file.hpp"

#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <catch2/catch.hpp>
#include <string>
#include <vector>

#include "support/test_support.hpp"

using namespace mailroom::core;
using namespace mailroom::test;

TEST_CASE("write_file_atomically creates the file with the content and the exact mode", "[atomic_file]") {
    TempDir dir;
    std::string path = dir.path + "/aliases.cdb";
    mode_t old_umask = ::umask(077);
    auto r = write_file_atomically(path, "hello\n", 0644);
    ::umask(old_umask);
    REQUIRE(r);
    CHECK(slurp(path) == "hello\n");
    struct stat st {};
    REQUIRE(::stat(path.c_str(), &st) == 0);
    CHECK((st.st_mode & 07777) == 0644);
    CHECK(names_in(dir.path) == std::vector<std::string>{"aliases.cdb"});
}

TEST_CASE("write_file_atomically replaces an existing file whole", "[atomic_file]") {
    TempDir dir;
    std::string path = dir.path + "/state";
    REQUIRE(write_file_atomically(path, "old content that is longer", 0600));
    REQUIRE(write_file_atomically(path, "new", 0600));
    CHECK(slurp(path) == "new");
    CHECK(names_in(dir.path).size() == 1);
}

TEST_CASE("a failed rename leaves no temp file and the target untouched", "[atomic_file]") {
    TempDir dir;
    std::string path = dir.path + "/occupied";
    REQUIRE(::mkdir(path.c_str(), 0700) == 0);
    std::string inside = path + "/x";
    REQUIRE(write_file_atomically(inside, "x", 0600));  // a non-empty folder cannot be replaced
    auto r = write_file_atomically(path, "data", 0600);
    REQUIRE_FALSE(r);
    CHECK(r.error().message().find("rename") != std::string::npos);
    CHECK(names_in(dir.path) == std::vector<std::string>{"occupied"});
}

TEST_CASE("a folder that does not exist is an error naming the temp file", "[atomic_file]") {
    auto r = write_file_atomically("/nonexistent-mailroom-dir/file", "data", 0600);
    REQUIRE_FALSE(r);
    CHECK(r.error().errno_value() == ENOENT);
    CHECK(r.error().message().find("/nonexistent-mailroom-dir/") != std::string::npos);
}

TEST_CASE("an uncommitted TempFile removes its file", "[atomic_file]") {
    TempDir dir;
    std::string path = dir.path + "/target";
    {
        auto tmp = TempFile::create_for(path, 0600);
        REQUIRE(tmp);
        REQUIRE(tmp->write("partial"));
        CHECK(tmp->path().rfind(dir.path + "/.target.tmp.", 0) == 0);
        CHECK(names_in(dir.path).size() == 1);
    }
    CHECK(names_in(dir.path).empty());
}

TEST_CASE("a moved TempFile is removed once, by its new owner", "[atomic_file]") {
    TempDir dir;
    auto tmp = TempFile::create_for(dir.path + "/target", 0600);
    REQUIRE(tmp);
    TempFile owner = std::move(*tmp);
    CHECK(tmp->path().empty());
    REQUIRE(owner.write("abc"));
    REQUIRE(owner.commit());
    CHECK(slurp(dir.path + "/target") == "abc");
    CHECK(owner.path().empty());
    CHECK_FALSE(owner.commit());  // committing twice is refused, not a second rename
}

TEST_CASE("two temp files for one target get different names", "[atomic_file]") {
    TempDir dir;
    auto a = TempFile::create_for(dir.path + "/t", 0600);
    auto b = TempFile::create_for(dir.path + "/t", 0600);
    REQUIRE(a);
    REQUIRE(b);
    CHECK(a->path() != b->path());
}

TEST_CASE("a crash before the rename leaves the old file whole", "[atomic_file]") {
    TempDir dir;
    std::string path = dir.path + "/db";
    REQUIRE(write_file_atomically(path, "old", 0600));
    pid_t pid = ::fork();
    REQUIRE(pid >= 0);
    if (pid == 0) {
        auto tmp = TempFile::create_for(path, 0600);
        if (tmp) (void)tmp->write("new but never committed");
        ::_exit(0);  // no destructors: the process died mid-write
    }
    int status = 0;
    REQUIRE(::waitpid(pid, &status, 0) == pid);
    CHECK(slurp(path) == "old");
}
