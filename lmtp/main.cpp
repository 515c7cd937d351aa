// lmtpd — mailroom's LMTP server (RFC 2033).
//
// SYNOPSIS
//   lmtpd [-C FILE] [-l unix:PATH | -l inet:HOST:PORT]... [-i]
//
// Listens where -l or lmtpd_listen say (default unix:$spool_dir/lmtp), or with -i
// serves one session on standard input and output (inetd, systemd Accept=yes).
// Each recipient is a local user (user@domain with domain in mydestination, or a
// bare user; user+ext with recipient_delimiter), checked at RCPT; after the data
// each accepted recipient gets its own reply, once the message is in its mailbox
// (mailbox_format, home_mailbox, mail_spool_dir) and synced. No alias or .forward
// expansion. Extensions: PIPELINING, SIZE, 8BITMIME, ENHANCEDSTATUSCODES, SMTPUTF8,
// CHUNKING, DSN. SIGTERM finishes the transactions in progress and ends.
//
// PRIVILEGES
//   Started as root: listeners are bound as root; sessions run in a process switched
//   to default_privs; writes are made by per-user agents pinned
//   to the user's mailbox (docs/security.md "lmtpd").
//
// EXIT STATUS
//   0 stopped by SIGTERM or the -i session ended; 64 usage; 71 a listener could not be
//   made; 78 bad configuration.
#include <getopt.h>
#include <sysexits.h>

#include <cstdio>
#include <cstring>
#include <exception>
#include <string>

#include "core/config.hpp"
#include "core/log.hpp"
#include "core/process_signals.hpp"
#include "lmtp/lmtpd.hpp"

namespace core = mailroom::core;
namespace lmtp = mailroom::lmtp;

namespace {

constexpr const char* usage_line = "usage: lmtpd [-C FILE] [-l unix:PATH | -l inet:HOST:PORT]... [-i]";

int fail(int code, const std::string& what) {
    core::report_on_stderr("lmtpd", core::Logger::Severity::error, what);
    return code;
}

int run(int argc, char** argv) {
    for (int i = 1; i < argc; ++i) {
        if (std::strcmp(argv[i], "--help") == 0) {
            std::printf("%s\nDeliver mail received by LMTP into local mailboxes.\n", usage_line);
            return EX_OK;
        }
        if (std::strcmp(argv[i], "--version") == 0) {
            std::printf("lmtpd (mailroom) %s\n", MAILROOM_VERSION);
            return EX_OK;
        }
    }
    std::string config_file;
    lmtp::LmtpdOptions options;
    opterr = 0;
    int opt;
    while ((opt = ::getopt(argc, argv, ":C:l:i")) != -1) {
        switch (opt) {
            case 'C': config_file = optarg; break;
            case 'l': options.listen.emplace_back(optarg); break;
            case 'i': options.inetd = true; break;
            case ':': return fail(EX_USAGE, std::string("option -") + static_cast<char>(optopt) + " needs a value (" + usage_line + ")");
            default: return fail(EX_USAGE, std::string("bad option -") + static_cast<char>(optopt) + " (" + usage_line + ")");
        }
    }
    if (optind < argc) return fail(EX_USAGE, std::string("unexpected argument '") + argv[optind] + "' (" + usage_line + ")");
    if (options.inetd && !options.listen.empty()) return fail(EX_USAGE, "-i and -l exclude each other");

    auto source = core::Config::choose_source(config_file);
    if (!source) return fail(EX_NOPERM, source.error().message());
    auto config = core::Config::load_for_program(*source);
    if (!config) return fail(EX_CONFIG, config.error().message());
    auto opened = core::Logger::open("lmtpd", config->str("log"));
    if (!opened) return fail(EX_CONFIG, "cannot open the log (" + opened.error().message() + ")");
    return lmtp::run_lmtpd(*config, options, *opened);
}

}  // namespace

int main(int argc, char** argv) {
    core::ignore_write_signals();
    try {
        return run(argc, argv);
    } catch (const std::exception&) {
        std::fputs("lmtpd: error: internal error (unexpected exception)\n", stderr);
        return EX_SOFTWARE;
    }
}
