// Descriptors between processes: moved above the standard three, passed over a
// unix socket (SCM_RIGHTS), and a process held by a pidfd. Shared by Subprocess
// and the delivery agents (delivery/delivery_agent.hpp), which hand a stored
// message and agent connections from one process to another.
// Must never: leave a received descriptor unowned (a packet with more descriptors
// than asked for has the rest closed), or let a signal interrupt a transfer midway.
#pragma once

#include <sys/types.h>

#include <cstddef>
#include <span>
#include <string_view>
#include <vector>

#include "core/result.hpp"
#include "core/unique_fd.hpp"

namespace mailroom::core {

// `fd` at 3 or above, so that moving it onto 0, 1 or 2 in a child cannot clobber
// another one (a parent started with stdout closed gets a socket end at 1).
Result<UniqueFd> above_stdio(UniqueFd fd);

// A pidfd of `pid` (close-on-exec), or an empty one where the kernel has none (< 5.3).
UniqueFd open_pidfd(pid_t pid);
// SIGKILL to the process a pidfd holds; nothing when it has ended (no pid reuse risk).
void kill_by_pidfd(int pidfd);

// Sends one packet with `fds` attached. False when the peer is gone or the
// socket failed (errno tells), never SIGPIPE.
bool send_with_fds(int socket, std::string_view packet, std::span<const int> fds);

// One received packet: its length (0: the peer closed; < 0: errno), the
// descriptors it carried (close-on-exec), and whether it was cut short.
struct ReceivedPacket {
    ssize_t length = 0;
    std::vector<UniqueFd> fds;
    bool truncated = false;
};
// Receives one packet into buf (of `size`), keeping at most `max_fds` descriptors.
ReceivedPacket receive_with_fds(int socket, char* buf, size_t size, size_t max_fds);

}  // namespace mailroom::core
