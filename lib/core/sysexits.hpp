// Exit codes of every mailroom program: the <sysexits.h> values under names that
// say what they mean (SPEC.md section 6), plus their classic names for messages.
// Invariant: each value equals its <sysexits.h> macro (checked in sysexits_test.cpp).
// Must never: include <sysexits.h> here, whose EX_* macros would leak into every user.
#pragma once

namespace mailroom::core::sysexit {

inline constexpr int ok = 0;
inline constexpr int usage = 64;          // command line wrong
inline constexpr int data_error = 65;     // bad address or message
inline constexpr int no_input = 66;       // input file missing or unreadable
inline constexpr int no_user = 67;        // addressee unknown
inline constexpr int no_host = 68;        // host name unknown
inline constexpr int unavailable = 69;    // service unavailable
inline constexpr int software = 70;       // internal software error (a bug)
inline constexpr int os_error = 71;       // system error (fork failed...)
inline constexpr int os_file = 72;        // critical OS file missing
inline constexpr int cant_create = 73;    // can't create (user) output file
inline constexpr int io_error = 74;       // input/output error
inline constexpr int temp_fail = 75;      // temporary failure: the sender retries
inline constexpr int protocol = 76;       // remote error in protocol
inline constexpr int no_permission = 77;  // permission denied
inline constexpr int config = 78;         // configuration error

}  // namespace mailroom::core::sysexit

namespace mailroom::core {

// "EX_TEMPFAIL" for 75, for lines like "exit 75 (EX_TEMPFAIL)"; "EX_UNKNOWN" for a
// code outside the table (a command may exit with anything).
constexpr const char* sysexit_name(int code) {
    switch (code) {
        case sysexit::ok: return "EX_OK";
        case sysexit::usage: return "EX_USAGE";
        case sysexit::data_error: return "EX_DATAERR";
        case sysexit::no_input: return "EX_NOINPUT";
        case sysexit::no_user: return "EX_NOUSER";
        case sysexit::no_host: return "EX_NOHOST";
        case sysexit::unavailable: return "EX_UNAVAILABLE";
        case sysexit::software: return "EX_SOFTWARE";
        case sysexit::os_error: return "EX_OSERR";
        case sysexit::os_file: return "EX_OSFILE";
        case sysexit::cant_create: return "EX_CANTCREAT";
        case sysexit::io_error: return "EX_IOERR";
        case sysexit::temp_fail: return "EX_TEMPFAIL";
        case sysexit::protocol: return "EX_PROTOCOL";
        case sysexit::no_permission: return "EX_NOPERM";
        case sysexit::config: return "EX_CONFIG";
        default: return "EX_UNKNOWN";
    }
}

}  // namespace mailroom::core
