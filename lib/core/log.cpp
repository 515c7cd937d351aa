#include "core/log.hpp"

#include <fcntl.h>
#include <syslog.h>
#include <unistd.h>

#include <cerrno>
#include <algorithm>
#include <climits>
#include <fmt/format.h>
#include <utility>

#include "core/utf8.hpp"

namespace mailroom::core {
namespace {

std::string short_host_name() {
    char buf[HOST_NAME_MAX + 1] = {};
    if (::gethostname(buf, sizeof buf - 1) != 0 || buf[0] == '\0') return "localhost";
    std::string host(buf);
    return host.substr(0, host.find('.'));  // syslogd drops the domain
}

UniqueFd open_log_file(const std::string& path) {
    // 0600: a set-uid sendmail creates it with the submitter's group, and no
    // submitter may read other people's log lines. An existing file keeps its mode.
    return UniqueFd(::open(path.c_str(), O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC | O_NOCTTY, 0600));
}

// One write(): with O_APPEND the kernel places the whole line at the end at once,
// so concurrent writers never split each other's lines. A failed or short write
// is dropped: logging must not fail the caller.
void write_line(int fd, const std::string& line) {
    while (::write(fd, line.data(), line.size()) < 0 && errno == EINTR) {
    }
}

int syslog_priority(Logger::Severity severity) {
    switch (severity) {
        case Logger::Severity::warning: return LOG_WARNING;
        case Logger::Severity::error: return LOG_ERR;
        case Logger::Severity::info: break;
    }
    return LOG_INFO;
}

void append_hex_escapes(std::string& out, std::string_view bytes) {
    static constexpr char digits[] = "0123456789abcdef";
    for (char c : bytes) {
        auto u = static_cast<unsigned char>(c);
        out += "\\x";
        out += digits[u >> 4];
        out += digits[u & 0xF];
    }
}

}  // namespace

std::string escape_line(std::string_view text, size_t limit) {
    std::string out;
    out.reserve(std::min(text.size(), limit));
    std::string piece;
    for (size_t pos = 0; pos < text.size() && out.size() < limit;) {
        // Plain printable ASCII, nearly every line, is copied in one go.
        size_t plain = pos;
        while (plain < text.size() && text[plain] >= 0x20 && text[plain] < 0x7F && text[plain] != '\\') ++plain;
        if (plain > pos) {
            size_t n = std::min(plain - pos, limit - out.size());
            out.append(text.substr(pos, n));
            pos += n;
            continue;
        }
        size_t length = 1;
        piece.clear();
        switch (text[pos]) {
            case '\\': piece = "\\\\"; break;
            case '\n': piece = "\\n"; break;
            case '\r': piece = "\\r"; break;
            case '\t': piece = "\\t"; break;
            default: {
                char32_t code_point = 0;
                length = static_cast<unsigned char>(text[pos]) < 0x80 ? 0 : utf8_sequence(text, pos, code_point);
                if (length == 0) {
                    length = 1;  // a C0 control, DEL, or a byte outside valid UTF-8
                    append_hex_escapes(piece, text.substr(pos, 1));
                } else if (code_point <= 0x9F) {
                    append_hex_escapes(piece, text.substr(pos, length));  // a C1 control
                } else {
                    piece.assign(text.substr(pos, length));
                }
            }
        }
        if (out.size() + piece.size() > limit) break;
        out += piece;
        pos += length;
    }
    return out;
}

std::string format_message(Logger::Severity severity, std::string_view text) {
    std::string message;
    if (severity == Logger::Severity::warning) message = "warning: ";
    if (severity == Logger::Severity::error) message = "error: ";
    message += escape_line(text, Logger::max_text);
    return message;
}

void report_on_stderr(std::string_view program, Logger::Severity severity, std::string_view text) {
    std::string line(program);
    line += ": ";
    line += format_message(severity, text);
    line += '\n';
    write_line(STDERR_FILENO, line);
}

std::string format_file_line(std::time_t when, std::string_view host, std::string_view tag,
                             pid_t pid, std::string_view message) {
    // Month names spelled here: strftime's %b would follow LC_TIME, syslog's do not.
    static constexpr const char* months[] = {"Jan", "Feb", "Mar", "Apr", "May", "Jun",
                                             "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"};
    std::tm tm{};
    ::localtime_r(&when, &tm);
    return fmt::format("{} {:2d} {:02d}:{:02d}:{:02d} {} {}[{}]: {}\n", months[tm.tm_mon % 12],
                       tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec, host, tag, pid, message);
}

Logger::Logger(Kind kind, std::string role) : kind_(kind), tag_("mailroom/" + std::move(role)) {}

Result<Logger> Logger::open(std::string role, std::string_view destination) {
    if (destination == "syslog") return Logger(Kind::syslog, std::move(role));
    if (destination == "stderr") return to_stderr(std::move(role));
    if (destination.empty() || destination.front() != '/')
        return unexpected_errno("log destination \"" + std::string(destination) +
                                    "\" is not syslog, stderr or an absolute path", EINVAL);
    Logger logger(Kind::file, std::move(role));
    logger.path_ = std::string(destination);
    logger.file_ = open_log_file(logger.path_);
    if (!logger.file_) return unexpected_errno("open log file " + logger.path_);
    ::tzset();  // localtime_r need not read TZ by itself
    logger.host_ = short_host_name();
    return logger;
}

Logger Logger::to_stderr(std::string role) { return Logger(Kind::stderr_stream, std::move(role)); }

Logger Logger::capture(std::string role, std::vector<std::string>* sink) {
    Logger logger(Kind::capture, std::move(role));
    logger.sink_ = sink;
    return logger;
}

Logger::Logger(Logger&& other) noexcept
    : kind_(std::exchange(other.kind_, Kind::none)),
      tag_(std::move(other.tag_)),
      path_(std::move(other.path_)),
      host_(std::move(other.host_)),
      file_(std::move(other.file_)),
      sink_(std::exchange(other.sink_, nullptr)),
      echo_(other.echo_) {}

Logger& Logger::operator=(Logger&& other) noexcept {
    if (this != &other) {
        if (kind_ == Kind::syslog) ::closelog();
        kind_ = std::exchange(other.kind_, Kind::none);
        tag_ = std::move(other.tag_);
        path_ = std::move(other.path_);
        host_ = std::move(other.host_);
        file_ = std::move(other.file_);
        sink_ = std::exchange(other.sink_, nullptr);
        echo_ = other.echo_;
    }
    return *this;
}

Logger::~Logger() {
    // closelog() also forgets the ident pointer, which points into tag_.
    if (kind_ == Kind::syslog) ::closelog();
}

void Logger::log(Severity severity, std::string_view text) const {
    std::string message = format_message(severity, text);
    if (echo_ && kind_ != Kind::stderr_stream) {
        write_line(STDERR_FILENO, fmt::format("{}[{}]: {}\n", tag_, ::getpid(), message));
    }
    switch (kind_) {
        case Kind::none: return;
        case Kind::syslog:
            // openlog on every line: it only records the ident (tag_ may have moved
            // since the last call) and lets two Loggers of different roles coexist.
            ::openlog(tag_.c_str(), LOG_PID, LOG_MAIL);
            ::syslog(LOG_MAIL | syslog_priority(severity), "%s", message.c_str());
            return;
        case Kind::stderr_stream:
            write_line(STDERR_FILENO, fmt::format("{}[{}]: {}\n", tag_, ::getpid(), message));
            return;
        case Kind::file:
            if (file_) write_line(file_.get(), format_file_line(std::time(nullptr), host_, tag_, ::getpid(), message));
            return;
        case Kind::capture:
            if (sink_ != nullptr) sink_->push_back(std::move(message));
            return;
    }
}

Result<void> Logger::reopen() {
    if (kind_ != Kind::file) return {};
    UniqueFd fresh = open_log_file(path_);
    if (!fresh) return unexpected_errno("reopen log file " + path_);
    file_ = std::move(fresh);
    return {};
}

}  // namespace mailroom::core
