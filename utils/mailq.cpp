// mailq — list the mail queue (sendmail -bp).
//
// SYNOPSIS
//   mailq [-C FILE] [--json]
//
// Lists the messages in queue/ and on hold, oldest first, in the layout of
// Postfix's mailq: queue ID (`*` being delivered now, `!` on hold), size, arrival
// time and sender, then each recipient not yet done, under the reason of its last
// deferral. With --json, one JSON object a line per message, as `postqueue -j`
// (docs/mailq.md). Entries in quarantine/ are not listed: a note on stderr counts
// them (`mailctl check` reports them too). Nothing in the spool is changed.
//
// EXIT STATUS
//   0 the queue was listed (an empty one too, and no spool_dir yet: nothing was
//   ever queued); 64 usage; 74 the listing could not be written; 75 the spool could
//   not be read; 77 no permission to read it; 78 configuration.
//
// PRIVILEGES
//   The queue folders belong to the spool owner (mode 0700): run it as root or the
//   spool owner, or install it set-uid to the spool owner as sendmail is; running
//   set-id it reads only the installed configuration (-C, MAILROOM_CONF: exit 77).
#include <sys/stat.h>
#include <sysexits.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <exception>
#include <optional>
#include <string>

#include "core/config.hpp"
#include "core/io.hpp"
#include "core/process_signals.hpp"
#include "core/log.hpp"
#include "queue/queue_listing.hpp"

namespace core = mailroom::core;
namespace mail = mailroom::mail;

namespace {

constexpr const char* usage_line = "usage: mailq [-C FILE] [--json]";

struct Options {
    std::string config_file;
    mail::ListingFormat format = mail::ListingFormat::text;
};

int fail(int code, const std::string& what) {
    core::report_on_stderr("mailq", core::Logger::Severity::error, what);
    return code;
}

std::optional<int> parse_options(int argc, char** argv, Options& options) {
    for (int i = 1; i < argc; ++i) {
        std::string arg = argv[i];
        if (arg == "--help") {
            std::printf("%s\nList the mail queue: ID (* being delivered, ! on hold), size, arrival, sender, recipients.\n",
                        usage_line);
            return EX_OK;
        } else if (arg == "--version") {
            std::printf("mailq (mailroom) %s\n", MAILROOM_VERSION);
            return EX_OK;
        } else if (arg == "--json") {
            options.format = mail::ListingFormat::json;
        } else if (arg.rfind("-C", 0) == 0) {
            if (arg.size() > 2) options.config_file = arg.substr(2);
            else if (i + 1 < argc) options.config_file = argv[++i];
            else return fail(EX_USAGE, std::string("option -C needs a value (") + usage_line + ")");
        } else {
            return fail(EX_USAGE, "bad argument " + arg + " (" + usage_line + ")");
        }
    }
    return std::nullopt;
}

int spool_failure(const core::Error& error) {
    int err = error.errno_value();
    int code = err == EACCES || err == EPERM ? EX_NOPERM : EX_TEMPFAIL;
    return fail(code, "cannot read the queue (" + error.message() + ")");
}

int run(const Options& options) {
    auto source = core::Config::choose_source(options.config_file);
    if (!source) return fail(EX_NOPERM, source.error().message());
    auto config = core::Config::load_for_program(*source);
    if (!config) return fail(EX_CONFIG, config.error().message());
    const std::string& dir = config->str("spool_dir");
    // A listing must not create the spool (Spool::open would). Programs create it on
    // first use, so before the first message there is none: the queue is empty
    // (mailctl check reports a spool_dir that does not exist).
    struct stat st {};
    if (::stat(dir.c_str(), &st) != 0) {
        if (errno != ENOENT) return spool_failure(core::errno_error("spool_dir " + dir));
        if (options.format == mail::ListingFormat::text) std::fputs("Mail queue is empty\n", stdout);
        return EX_OK;
    }
    auto spool = mail::Spool::open(dir);
    if (!spool) return spool_failure(spool.error());

    bool write_failed = false;
    int write_errno = 0;
    auto write = [&](std::string_view chunk) {
        auto written = core::write_all(STDOUT_FILENO, chunk, "standard output");
        if (written) return true;
        write_failed = true;
        write_errno = written.error().errno_value();
        return false;
    };
    auto listed = mail::list_queue(*spool, options.format, write);
    if (!listed) return spool_failure(listed.error());
    // The reader went away (mailq | head): as Postfix, that is no error.
    if (write_failed && write_errno == EPIPE) return EX_OK;
    if (write_failed) return fail(EX_IOERR, "cannot write the listing (standard output: " + std::string(std::strerror(write_errno)) + ")");

    size_t quarantined = 0;
    (void)spool->for_each_entry(mail::QueueFolder::quarantine, [&](const std::string&) {
        ++quarantined;
        return true;
    });
    if (quarantined > 0) {
        std::fprintf(stderr, "mailq: warning: %zu %s in quarantine\n", quarantined,
                     quarantined == 1 ? "entry" : "entries");
    }
    return EX_OK;
}

}  // namespace

int main(int argc, char** argv) {
    mailroom::core::ignore_write_signals();
    try {
        Options options;
        if (auto stop = parse_options(argc, argv, options)) return *stop;
        return run(options);
    } catch (const std::exception&) {
        std::fputs("mailq: error: internal error (unexpected exception)\n", stderr);
        return EX_SOFTWARE;
    }
}
