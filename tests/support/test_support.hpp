// Helpers shared by the unit tests: a scratch folder under /tmp, whole-file reads and
// writes, folder listings, file ages, timing, and child processes (one already dead,
// one holding an fcntl lock). Header-only. Helpers about mail or the configuration
// stay beside their tests (unit/mbox_test_support.hpp, unit/config_test_helpers.hpp).
#pragma once

#include <fcntl.h>
#include <grp.h>
#include <stdlib.h>
#include <sys/time.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <unistd.h>

#include <catch2/catch.hpp>
#include <chrono>
#include <ctime>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>
#include <string_view>
#include <system_error>
#include <vector>

namespace mailroom::test {

// The whole content of a file; empty when it cannot be read.
inline std::string slurp(const std::string& path) {
    std::ifstream in(path, std::ios::binary);
    std::stringstream ss;
    ss << in.rdbuf();
    return ss.str();
}

// Writes text as the whole file, or at its end with append.
inline void spit(const std::string& path, std::string_view text, bool append = false) {
    std::ofstream(path, std::ios::binary | (append ? std::ios::app : std::ios::trunc)) << text;
}

// A fresh folder under /tmp, removed with everything in it at the end of the test.
struct TempDir {
    std::string path;
    TempDir() {
        char tmpl[] = "/tmp/mailroom-test-XXXXXX";
        REQUIRE(::mkdtemp(tmpl) != nullptr);
        path = tmpl;
    }
    ~TempDir() {
        std::error_code ignored;
        std::filesystem::remove_all(path, ignored);
    }
    TempDir(const TempDir&) = delete;
    TempDir& operator=(const TempDir&) = delete;

    // Writes the file name in the folder and returns its path.
    std::string write(const std::string& name, std::string_view text) const {
        std::string file = path + "/" + name;
        spit(file, text);
        return file;
    }
};

// The names in a folder (not . and ..), in no particular order; none when it cannot be read.
inline std::vector<std::string> names_in(const std::string& dir) {
    std::vector<std::string> names;
    std::error_code ec;
    for (const auto& entry : std::filesystem::directory_iterator(dir, ec))
        names.push_back(entry.path().filename().string());
    return names;
}

// The lines of text, without their newlines.
inline std::vector<std::string> lines_of(const std::string& text) {
    std::vector<std::string> lines;
    std::istringstream in(text);
    for (std::string line; std::getline(in, line);) lines.push_back(line);
    return lines;
}

// Sets the access and modification times of path to `by` ago. A symlink itself is
// aged, not what it points to.
inline void age(const std::string& path, std::chrono::seconds by) {
    struct timeval tv[2] {};
    tv[0].tv_sec = tv[1].tv_sec = ::time(nullptr) - by.count();
    REQUIRE(::lutimes(path.c_str(), tv) == 0);
}

inline double seconds_since(std::chrono::steady_clock::time_point start) {
    return std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
}

// The pid of a child that has exited and been reaped: a dead writer.
inline pid_t dead_pid() {
    pid_t pid = ::fork();
    REQUIRE(pid >= 0);
    if (pid == 0) ::_exit(0);
    REQUIRE(::waitpid(pid, nullptr, 0) == pid);
    return pid;
}

// A child that fcntl-locks the whole of path and holds the lock for hold (or until
// killed). Returns its pid once the lock is held; the caller reaps it.
inline pid_t hold_lock_in_child(const std::string& path, std::chrono::milliseconds hold) {
    int ready[2];
    REQUIRE(::pipe(ready) == 0);
    pid_t pid = ::fork();
    REQUIRE(pid >= 0);
    if (pid == 0) {
        ::close(ready[0]);
        int fd = ::open(path.c_str(), O_RDWR);
        struct flock fl {};
        fl.l_type = F_WRLCK;
        fl.l_whence = SEEK_SET;
        if (fd < 0 || ::fcntl(fd, F_SETLK, &fl) != 0) ::_exit(1);
        (void)!::write(ready[1], "x", 1);
        ::usleep(static_cast<useconds_t>(hold.count() * 1000));
        ::_exit(0);
    }
    ::close(ready[1]);
    char c = 0;
    REQUIRE(::read(ready[0], &c, 1) == 1);
    ::close(ready[0]);
    return pid;
}

// Runs fn (returning std::string) in a child switched for good to uid (gid the same
// number, no supplementary groups; we are root) and returns what it returned.
template <typename Fn>
std::string output_of_child_as(uid_t uid, Fn fn) {
    int fds[2];
    REQUIRE(::pipe(fds) == 0);
    pid_t pid = ::fork();
    REQUIRE(pid >= 0);
    if (pid == 0) {
        ::close(fds[0]);
        if (::setgroups(0, nullptr) != 0 || ::setgid(uid) != 0 || ::setuid(uid) != 0) ::_exit(2);
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
    REQUIRE(WIFEXITED(status));
    REQUIRE(WEXITSTATUS(status) == 0);
    return out;
}

}  // namespace mailroom::test
