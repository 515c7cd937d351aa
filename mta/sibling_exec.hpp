// Starting the other mailroom programs from sendmail: they are looked up beside
// the running binary (/proc/self/exe), so a build tree and an installation both
// find their own copies, never whatever is first in PATH. From a set-id sendmail
// they get only core::child_environment()'s fixed PATH as their environment.
#pragma once

#include <string>
#include <vector>

namespace mailroom::mta {

// Replaces this process with the sibling program; returns an exit code (69, with
// an error line) only when that fails.
int exec_sibling(const std::string& program, const std::vector<std::string>& args);

// Starts the sibling in the background, detached (own session, stdio on
// /dev/null, not our child), and does not wait for it. False when it could not start.
bool spawn_sibling(const std::string& program, const std::vector<std::string>& args);

}  // namespace mailroom::mta
