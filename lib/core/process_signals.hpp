// Signal dispositions of mailroom's programs (sendmail, mta, mda, mailq, mailctl).
//
// A write that cannot be done must come back as an error the caller can handle,
// never kill the process: SIGPIPE (a log or stdout pipe whose reader is gone) would
// kill a delivery in the middle of its work, although the logger promises never to
// harm its caller (core/log.hpp); SIGXFSZ (a file written past the caller's
// RLIMIT_FSIZE, `ulimit -f`) would kill sendmail or a mailbox writer instead of
// letting it remove what it wrote and report a temporary failure. Ignored, the
// kernel answers EPIPE and EFBIG instead. Each main calls ignore_write_signals()
// first thing, so a caller's dispositions (a set-id sendmail's caller chooses them)
// do not matter either.
//
// Ignored signals stay ignored across execve: a program that is not mailroom's own
// (a future `| command` alias or .forward pipe run by /bin/sh -c) would inherit
// them and misbehave (`yes | head` never ends). Every exec of another program must
// call restore_default_signals() in the child just before it: mta/sibling_exec.cpp
// does, and so must the launcher of the aliases issue.
#pragma once

namespace mailroom::core {

// SIGPIPE and SIGXFSZ ignored for the whole process (and its forks).
void ignore_write_signals();

// Both back to SIG_DFL: in a child, just before it execs another program.
void restore_default_signals();

}  // namespace mailroom::core
