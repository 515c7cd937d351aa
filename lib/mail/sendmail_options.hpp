// SendmailOptions: the command line of `sendmail`, parsed the way sendmail(1) and
// Postfix's sendmail read it (SPEC 1, "sendmail"). Pure: no I/O, no environment, no
// configuration; the program's main decides what the options mean for the run
// (usage when there are no recipients and no -t, loading -C, exit codes).
//
// Argument order follows POSIX getopt, as Postfix builds it on Linux (its sys_defs.h
// prepends "+" to the option string, so glibc does not permute) and as BSD sendmail's
// getopt always did: options come first, and the first operand ends them. Everything
// after it, even a word starting with '-', is a recipient, exactly as after `--`.
// So `sendmail bob -t` sends to "bob" and "-t"; that keeps a recipient such as
// `-oops@example.org` (mutt passes `-- -oops@example.org`) from turning into an option.
//
// Option letters cluster (`-ti` = `-t -i`); a letter that takes a value takes the rest
// of its word, or the next word when the rest is empty (`-fme@x`, `-f me@x`).
// Must never: print, exit, or accept an option it does not know (the error names it).
#pragma once

#include <chrono>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "core/result.hpp"

namespace mailroom::mail {

enum class SendmailMode {
    deliver,          // -bm, the default: read a message and queue it
    list_queue,       // -bp
    rebuild_aliases,  // -bi, -I
    smtp_session,     // -bs
    daemon,           // -bd (with -qINTERVAL: the runner's scan interval)
    verify,           // -bv
    run_queue,        // -q, -qINTERVAL
    help,             // --help, -h
    version,          // --version
};

enum class DeliveryMode {
    interactive,  // -odi: deliver before exiting
    background,   // -odb: the default
    queue_only,   // -odq (and sendmail's -odd, "deferred")
};

struct SendmailOptions {
    SendmailMode mode = SendmailMode::deliver;
    DeliveryMode delivery = DeliveryMode::background;
    bool recipients_from_headers = false;    // -t
    bool dot_ends_message = true;            // -i / -oi clear it
    std::optional<std::string> sender;       // -f/-r as given; "" and "<>" mean the null sender
    std::optional<std::string> full_name;    // -F
    bool verbose = false;                    // -v
    std::optional<std::string> config_file;  // -C FILE
    std::optional<std::chrono::seconds> queue_interval;  // -q30m → 1800 s; plain -q → nullopt
    std::string dsn_notify, dsn_ret, dsn_envid;          // -N, -R, -V (kept for DSN support)
    std::vector<std::string> recipients;                 // operands, in order
};

// args without argv[0]. An error is a usage error (the caller exits 64); its message()
// names the option: "unknown option -Z", "option -f needs a value".
//
// Read: -t -i -v -I -f/-r -F -C -b{m,p,i,s,d,v} -q[INTERVAL] -o{i,d?} -N -R -V,
// --help, -h, --version. Accepted and ignored, with their values: -A -B -G -L -O -U -X
// -c -e -m -p -x, every other -o (-oem, -oee, -om, -ob..., -oA...), -h N (hop count).
// -h alone is help; with a value (-h30, or -h 30: digits only) it is the ignored hop
// count, so an old script's hop count never turns a submission into a help text.
// -q takes its value only attached: -q30m, -q1h30m (units s m h d w; a number without
// unit is minutes, as sendmail reads it). -qR, -qI, -qS and friends are not supported.
// When -bd and -q both appear the mode is daemon, with -q's interval.
// --help and --version win over any other mode.
core::Result<SendmailOptions> parse_sendmail_options(const std::vector<std::string>& args);

// The synopsis, for the usage line and the top of --help:
// "sendmail [-t] [-i] [-f sender] ... [--] [recipient ...]".
std::string_view sendmail_synopsis();

}  // namespace mailroom::mail
