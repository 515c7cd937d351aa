#include "sibling_exec.hpp"

#include <fcntl.h>
#include <sys/wait.h>
#include <sysexits.h>
#include <unistd.h>

#include <cerrno>
#include <climits>
#include <cstdio>
#include <cstring>

#include "core/process_signals.hpp"
#include "core/set_id.hpp"
#include "core/log.hpp"

namespace mailroom::mta {

namespace {

std::string sibling_path(const std::string& program) {
    char self[PATH_MAX];
    ssize_t n = ::readlink("/proc/self/exe", self, sizeof self - 1);
    if (n <= 0) return program;
    std::string path(self, static_cast<size_t>(n));
    return path.substr(0, path.rfind('/') + 1) + program;
}

void exec_now(const std::string& path, const std::string& program, const std::vector<std::string>& args) {
    std::vector<char*> argv;
    argv.push_back(const_cast<char*>(program.c_str()));
    for (const auto& arg : args) argv.push_back(const_cast<char*>(arg.c_str()));
    argv.push_back(nullptr);
    // From a set-id sendmail, nothing of the caller's environment goes on (core/set_id.hpp);
    // the signals we ignore go back to their defaults (core/process_signals.hpp).
    mailroom::core::restore_default_signals();
    ::execve(path.c_str(), argv.data(), mailroom::core::child_environment().data());
    int failed = errno;
    mailroom::core::ignore_write_signals();  // still us: the exec failed
    errno = failed;
}

}  // namespace

int exec_sibling(const std::string& program, const std::vector<std::string>& args) {
    std::string path = sibling_path(program);
    std::fflush(stdout);
    exec_now(path, program, args);
    mailroom::core::report_on_stderr("sendmail", mailroom::core::Logger::Severity::error,
                                     "cannot run " + path + " (" + std::strerror(errno) + ")");
    return EX_UNAVAILABLE;
}

bool spawn_sibling(const std::string& program, const std::vector<std::string>& args) {
    std::string path = sibling_path(program);
    pid_t child = ::fork();
    if (child < 0) return false;
    if (child == 0) {
        // Fork twice so that the runner is adopted by init: the caller (cron, PHP)
        // may wait for every child of ours, and must not wait for the delivery.
        if (::fork() != 0) ::_exit(0);
        ::setsid();
        int null = ::open("/dev/null", O_RDWR);
        if (null >= 0) {
            ::dup2(null, STDIN_FILENO);
            ::dup2(null, STDOUT_FILENO);
            ::dup2(null, STDERR_FILENO);
            if (null > STDERR_FILENO) ::close(null);
        }
        exec_now(path, program, args);
        ::_exit(EX_UNAVAILABLE);
    }
    int status = 0;
    while (::waitpid(child, &status, 0) < 0 && errno == EINTR) {
    }
    return true;
}

}  // namespace mailroom::mta
