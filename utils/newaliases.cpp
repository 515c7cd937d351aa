// newaliases — compile the aliases file (sendmail -bi, sendmail -I).
//
// SYNOPSIS
//   newaliases [-C FILE] [-f ALIASES]
//
// Reads ALIASES (default: the `aliases` configuration key, /etc/aliases) as
// aliases(5) describes it (docs/aliases.md) and writes ALIASES.cdb beside it,
// atomically: a temp file in the same folder, fsync, rename, fsync of the folder, so
// deliveries see the old database or the new one, whole. A name given twice keeps
// its first entry (as Postfix), with a warning naming both lines; a file without a
// postmaster entry gets `postmaster: root` in the database, with a note. Prints
//   newaliases: N aliases, longest L bytes, T bytes total
// on stdout (N records, L the longest right-hand side, T names plus right-hand sides).
// A syntax error prints `FILE:LINE: error: WHAT` on stderr and changes nothing.
//
// EXIT STATUS
//   0 compiled; 64 usage; 65 syntax error (the old database stays); 66 the file
//   cannot be opened; 73 the database cannot be created in its folder; 74 I/O error;
//   77 -C, MAILROOM_CONF or -f given to a set-id run; 78 configuration.
//
// PRIVILEGES
//   Needs write access to the aliases file's folder (root for /etc). Running set-id
//   (sendmail -bi from a set-uid sendmail) it reads only the installed configuration
//   and only the file its `aliases` key names.
#include <sysexits.h>

#include <cerrno>
#include <cstdio>
#include <exception>
#include <string>

#include <fmt/format.h>

#include "core/config.hpp"
#include "core/log.hpp"
#include "core/process_signals.hpp"
#include "core/set_id.hpp"
#include "delivery/alias_db.hpp"
#include "delivery/aliases_file.hpp"

namespace core = mailroom::core;
namespace mail = mailroom::mail;

namespace {

constexpr const char* usage_line = "usage: newaliases [-C FILE] [-f ALIASES]";

int fail(int code, const std::string& what) {
    core::report_on_stderr("newaliases", core::Logger::Severity::error, what);
    return code;
}

// A whole `FILE:LINE: ...` line of the parser, escaped, in one write.
void print_line(const std::string& text) { std::fprintf(stderr, "%s\n", core::escape_line(text).c_str()); }

bool is_missing_input(int err) {
    return err == ENOENT || err == EACCES || err == EPERM || err == ENOTDIR || err == ELOOP ||
           err == ENAMETOOLONG || err == EISDIR;
}

int compile(const std::string& source) {
    mail::AliasesOptions options;
    options.keep_targets = false;  // the database holds the text; lookups parse it again
    auto file = mail::read_aliases_file(source, options);
    if (!file) {
        int err = file.error().errno_value();
        if (file.error().code == std::error_code()) {
            print_line(file.error().message());  // FILE:LINE: error: WHAT
            return EX_DATAERR;
        }
        return fail(is_missing_input(err) ? EX_NOINPUT : EX_IOERR,
                    "cannot read the aliases file (" + file.error().message() + ")");
    }
    for (const auto& warning : file->warnings) print_line(warning);
    std::string db = mail::alias_db_path(source);
    auto stats = mail::compile_alias_db(*file, db);
    if (!stats) {
        int err = stats.error().errno_value();
        bool cannot_create = err == EACCES || err == EPERM || err == EROFS || err == ENOENT || err == ENOTDIR;
        return fail(cannot_create ? EX_CANTCREAT : EX_IOERR,
                    "cannot write " + db + " (" + stats.error().message() + "); the old database is unchanged");
    }
    if (stats->postmaster_added)
        core::report_on_stderr("newaliases", core::Logger::Severity::info,
                               source + " has no postmaster alias: added postmaster: root");
    std::printf("newaliases: %zu aliases, longest %zu bytes, %zu bytes total\n", stats->aliases, stats->longest,
                stats->total);
    return std::fflush(stdout) == 0 ? EX_OK : fail(EX_IOERR, "cannot write the summary");
}

int run(int argc, char** argv) {
    std::string config_file, aliases_file;
    for (int i = 1; i < argc; ++i) {
        std::string arg = argv[i];
        if (arg == "--help") {
            std::printf("%s\nCompile the aliases file into ALIASES.cdb.\n", usage_line);
            return EX_OK;
        }
        if (arg == "--version") {
            std::printf("newaliases (mailroom) %s\n", MAILROOM_VERSION);
            return EX_OK;
        }
        std::string* target = arg.rfind("-C", 0) == 0 ? &config_file : arg.rfind("-f", 0) == 0 ? &aliases_file : nullptr;
        if (!target) return fail(EX_USAGE, "bad argument " + arg + " (" + usage_line + ")");
        if (arg.size() > 2) *target = arg.substr(2);
        else if (i + 1 < argc) *target = argv[++i];
        else return fail(EX_USAGE, "option " + arg + " needs a value (" + usage_line + ")");
        if (target->empty()) return fail(EX_USAGE, "option " + arg.substr(0, 2) + " needs a value");
    }
    auto source = core::Config::choose_source(config_file);
    if (!source) return fail(EX_NOPERM, source.error().message());
    auto config = core::Config::load_for_program(*source);
    if (!config) return fail(EX_CONFIG, config.error().message());
    const std::string& configured = config->str("aliases");
    // A set-id run compiles only the configured file: -f would let the caller have a
    // file of their choice read and a database written beside it with our rights.
    if (!aliases_file.empty() && aliases_file != configured && core::running_set_id())
        return fail(EX_NOPERM, "will not compile a file given by -f (a program running set-id compiles only " +
                                   configured + ")");
    return compile(aliases_file.empty() ? configured : aliases_file);
}

}  // namespace

int main(int argc, char** argv) {
    core::ignore_write_signals();
    try {
        return run(argc, argv);
    } catch (const std::exception&) {
        std::fputs("newaliases: error: internal error (unexpected exception)\n", stderr);
        return EX_SOFTWARE;
    }
}
