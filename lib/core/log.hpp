// Logger: one object per program role ("pickup", "qmgr", "local"...) that writes
// one line per event where the `log` key says: syslog (ident "mailroom/ROLE",
// LOG_PID, facility mail), stderr ("mailroom/ROLE[PID]: TEXT"), or an absolute
// file path ("Nov 21 20:23:34 HOST mailroom/ROLE[PID]: TEXT", appended with one
// write() per line so that processes sharing the file never interleave lines).
// Warnings and errors carry Postfix's "warning: " / "error: " prefixes, so log
// analysers (pflogsumm) read the lines as Postfix's. A capture destination keeps
// lines in memory for tests.
// Invariants: a line never holds a newline or other control byte (escaped by
// escape_line, see docs/logging.md) and is at most max_text bytes of text; the pid
// is read at each line, so a forked child logs its own. The log file stays open from open() on, so
// a child that dropped privileges can still log.
// Must never: fail, throw or block the caller because the log could not be written;
// be a global (it is passed to whoever logs).
#pragma once

#include <sys/types.h>

#include <ctime>
#include <string>
#include <string_view>
#include <vector>

#include "core/result.hpp"
#include "core/unique_fd.hpp"

namespace mailroom::core {

class Logger {
public:
    enum class Severity { info, warning, error };
    static constexpr size_t max_text = 8192;

    // destination: "syslog", "stderr" or an absolute path. Error: anything else
    // (a configuration error), or a log file that cannot be opened for appending.
    static Result<Logger> open(std::string role, std::string_view destination);
    static Logger to_stderr(std::string role);
    // Each line's text with its severity prefix ("warning: disk full") is appended
    // to *sink, which must outlive the Logger.
    static Logger capture(std::string role, std::vector<std::string>* sink);

    Logger(Logger&& other) noexcept;
    Logger& operator=(Logger&& other) noexcept;
    Logger(const Logger&) = delete;
    Logger& operator=(const Logger&) = delete;
    ~Logger();

    void info(std::string_view text) const { log(Severity::info, text); }
    void warning(std::string_view text) const { log(Severity::warning, text); }
    void error(std::string_view text) const { log(Severity::error, text); }
    void log(Severity severity, std::string_view text) const;

    // "mailroom/ROLE": the syslog ident and the tag of every line.
    const std::string& tag() const { return tag_; }
    // A file destination opens its path again (after log rotation); the old
    // descriptor is kept when that fails. A no-op for the other destinations.
    Result<void> reopen();
    // The log file's descriptor, for a child that closes all others; -1 otherwise.
    int file_fd() const { return file_.get(); }
    // sendmail -v: every line also goes to stderr, as the user watches delivery.
    void echo_to_stderr(bool on) { echo_ = on; }

private:
    enum class Kind { none, syslog, stderr_stream, file, capture };
    Logger(Kind kind, std::string role);

    Kind kind_ = Kind::none;
    std::string tag_;
    std::string path_;   // Kind::file
    std::string host_;   // Kind::file: short host name, as syslogd writes it
    UniqueFd file_;      // Kind::file
    std::vector<std::string>* sink_ = nullptr;  // Kind::capture
    bool echo_ = false;
};

// "Nov 21 20:23:34 host mailroom/local[4242]: text\n" for local time `when`;
// exposed for tests of the exact layout.
std::string format_file_line(std::time_t when, std::string_view host, std::string_view tag,
                             pid_t pid, std::string_view message);
// The text with its severity prefix, escaped by escape_line, at most max_text
// bytes of escaped text.
std::string format_message(Logger::Severity severity, std::string_view text);

// Text made safe to be one line of a log or a terminal, whatever bytes it came
// from (an address, a file name, a header): a backslash becomes "\\", newline,
// carriage return and tab "\n", "\r", "\t", every other control byte (C0, DEL),
// C1 control (U+0080-U+009F) and byte that is not part of valid UTF-8 "\xHH" per
// byte; valid printable UTF-8 is kept. So a caller's log can never gain a forged
// line or a terminal escape, and the original bytes can be read back. At most
// `limit` bytes result: an escape sequence is never cut in half.
std::string escape_line(std::string_view text, size_t limit = Logger::max_text);

// "PROGRAM: error: TEXT" (or "PROGRAM: warning: TEXT", "PROGRAM: TEXT" for info)
// on stderr with TEXT escaped by escape_line, in one write: the one way the
// programs report to their caller, so no error line can repeat raw input.
void report_on_stderr(std::string_view program, Logger::Severity severity, std::string_view text);

}  // namespace mailroom::core
