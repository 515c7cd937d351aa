// Set-id programs: sendmail is meant to be installed set-uid to the spool owner
// (docs/security.md), so it runs with rights its caller does not have. Nothing the
// caller chose may then steer what it does with them: not the configuration file
// (-C, MAILROOM_CONF: Config::choose_source refuses them), and not the environment
// of the programs it starts (the sibling mta, mailq...), which get child_environment().
// Postfix holds the same line with alternate_config_directories and postdrop's clean
// environment.
#pragma once

#include <vector>

namespace mailroom::core {

// True when this process runs with rights its caller does not have: real and
// effective user or group ids differ (set-uid, set-gid), or the kernel started it
// as a secure execution (AT_SECURE: file capabilities, an LSM transition), the same
// test the dynamic loader applies before it ignores LD_PRELOAD.
bool running_set_id();

// The whole environment a set-id program gives a program it starts: this and
// nothing else (no MAILROOM_CONF, LD_*, TZ, locale, HOME). The programs it starts
// read the installed configuration, log in the system's time zone, find nothing
// through PATH (siblings are run by full path) and need nothing more.
inline constexpr const char* set_id_child_path = "PATH=/usr/bin:/bin";

// What a program about to exec another passes as envp (null-terminated): only
// set_id_child_path when running_set_id(), else its own environment unchanged.
// The strings live until the process execs or exits.
std::vector<char*> child_environment();

}  // namespace mailroom::core
