#include "password_service.hpp"

#include <signal.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include <fmt/format.h>

namespace mailroom::mta {

namespace {

const char* word_of(core::PasswordVerdict verdict) {
    switch (verdict) {
        case core::PasswordVerdict::accepted: return "ok";
        case core::PasswordVerdict::refused: return "no";
        case core::PasswordVerdict::unavailable: return "tmp";
    }
    return "tmp";
}

// The user name as the log shows it. The Logger escapes control bytes and
// backslashes (once, as for every line); a space here becomes %20 and a % %25, so
// that "bob verdict=ok" cannot pass for a field of the line (a fail2ban pattern
// reads the first verdict=) and the name can still be read back.
std::string shown_user(std::string_view user) {
    std::string shown;
    for (char c : user) {
        if (c == ' ') shown += "%20";
        else if (c == '%') shown += "%25";
        else shown += c;
    }
    return shown;
}

void answer(int channel, uint64_t id, core::PasswordVerdict verdict) {
    const std::string packet = smtp::encode_password_answer(id, verdict);
    // The asker may have gone (EPIPE): nothing to do then, and never a SIGPIPE.
    (void)::send(channel, packet.data(), packet.size(), MSG_NOSIGNAL | MSG_DONTWAIT);
}

}  // namespace

PasswordService::PasswordService(std::string pam_service, size_t max_checks, const core::Logger& log)
    : PasswordService(
          [service = std::move(pam_service)](const std::string& user, std::string_view password) {
              return core::check_password(service, user, password);
          },
          max_checks, log) {}

PasswordService::PasswordService(Checker check, size_t max_checks, const core::Logger& log,
                                 std::chrono::seconds time_limit)
    : check_(std::move(check)), max_checks_(max_checks == 0 ? 1 : max_checks), log_(log), time_limit_(time_limit) {}

PasswordService::~PasswordService() {
    for (auto& pending : waiting_) core::wipe(pending.request.password);
}

void PasswordService::log_verdict(const std::string& user, core::PasswordVerdict verdict, std::string_view why) const {
    std::string line = fmt::format("smtpd auth: user={} verdict={}", shown_user(user), word_of(verdict));
    if (verdict == core::PasswordVerdict::unavailable && !why.empty()) line += fmt::format(" why={}", why);
    log_.info(line);
}

void PasswordService::on_request(int channel, std::string_view packet) {
    auto request = smtp::decode_password_request(packet);
    if (!request) {
        log_.warning(fmt::format("smtpd auth: malformed password request ({} bytes), not answered", packet.size()));
        return;
    }
    Pending pending{channel, std::move(*request)};
    core::wipe(request->password);
    if (running_.size() < max_checks_) return start(pending);
    if (waiting_.size() >= max_waiting) {
        answer(channel, pending.request.id, core::PasswordVerdict::unavailable);
        log_verdict(pending.request.user, core::PasswordVerdict::unavailable, "too many checks waiting");
        core::wipe(pending.request.password);
        return;
    }
    waiting_.push_back(std::move(pending));
}

void PasswordService::start(Pending& pending) {
    pid_t pid = ::fork();
    if (pid == 0) run_child(pending);
    if (pid < 0) {
        int error = errno;
        answer(pending.channel, pending.request.id, core::PasswordVerdict::unavailable);
        log_verdict(pending.request.user, core::PasswordVerdict::unavailable,
                    fmt::format("fork: {}", std::strerror(error)));
    } else {
        running_.emplace(pid, pending.request.user);
    }
    // The parent is done with the password: the child has its own copy.
    core::wipe(pending.request.password);
}

void PasswordService::run_child(Pending& pending) {
    // The copies of the other requests' passwords this child got with the parent's
    // memory are none of its business.
    for (auto& other : waiting_) core::wipe(other.request.password);
    // The root side blocks the signals its loop reads from a signalfd; this child
    // takes them as any process does, and ends by SIGALRM past its time limit.
    sigset_t none;
    sigemptyset(&none);
    ::signal(SIGALRM, SIG_DFL);
    ::sigprocmask(SIG_SETMASK, &none, nullptr);
    ::alarm(static_cast<unsigned>(time_limit_.count() > 0 ? time_limit_.count() : 1));

    core::PasswordCheck check;
    try {
        check = check_(pending.request.user, pending.request.password);
    } catch (...) {
        // The top of this process: nothing may unwind into the parent's loop it copied.
        check = {core::PasswordVerdict::unavailable, "the check failed"};
    }
    core::wipe(pending.request.password);
    answer(pending.channel, pending.request.id, check.verdict);
    log_verdict(pending.request.user, check.verdict, check.why);
    ::_exit(0);
}

bool PasswordService::reaped(pid_t pid) { return reaped(pid, 0); }

bool PasswordService::reaped(pid_t pid, int status) {
    auto found = running_.find(pid);
    if (found == running_.end()) return false;
    if (WIFSIGNALED(status)) {
        // Ended before it could answer or log: the asker reaches its timeout.
        log_verdict(found->second, core::PasswordVerdict::unavailable,
                    fmt::format("the check was ended by signal {}", WTERMSIG(status)));
    }
    running_.erase(found);
    while (running_.size() < max_checks_ && !waiting_.empty()) {
        Pending next = std::move(waiting_.front());
        waiting_.pop_front();
        start(next);
    }
    return true;
}

}  // namespace mailroom::mta
