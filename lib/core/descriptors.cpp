#include "core/descriptors.hpp"

#include <fcntl.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

namespace mailroom::core {

namespace {
// The most descriptors one packet carries here: a connection and a pidfd.
constexpr size_t max_passed = 4;
}  // namespace

Result<UniqueFd> above_stdio(UniqueFd fd) {
    if (fd.get() > STDERR_FILENO) return fd;
    UniqueFd moved(::fcntl(fd.get(), F_DUPFD_CLOEXEC, STDERR_FILENO + 1));
    if (!moved) return unexpected_errno("move a descriptor above the standard ones");
    return moved;
}

UniqueFd open_pidfd(pid_t pid) {
#ifdef SYS_pidfd_open
    return UniqueFd(static_cast<int>(::syscall(SYS_pidfd_open, pid, 0)));
#else
    (void)pid;
    return UniqueFd();
#endif
}

void kill_by_pidfd(int pidfd) {
#ifdef SYS_pidfd_send_signal
    if (pidfd >= 0) (void)::syscall(SYS_pidfd_send_signal, pidfd, SIGKILL, nullptr, 0);
#else
    (void)pidfd;
#endif
}

bool send_with_fds(int socket, std::string_view packet, std::span<const int> fds) {
    if (fds.size() > max_passed) {
        errno = EINVAL;
        return false;
    }
    struct iovec iov {const_cast<char*>(packet.data()), packet.size()};
    alignas(struct cmsghdr) char control[CMSG_SPACE(sizeof(int) * max_passed)] = {};
    struct msghdr msg {};
    msg.msg_iov = &iov;
    msg.msg_iovlen = 1;
    if (!fds.empty()) {
        msg.msg_control = control;
        msg.msg_controllen = CMSG_SPACE(sizeof(int) * fds.size());
        cmsghdr* c = CMSG_FIRSTHDR(&msg);
        c->cmsg_level = SOL_SOCKET;
        c->cmsg_type = SCM_RIGHTS;
        c->cmsg_len = CMSG_LEN(sizeof(int) * fds.size());
        std::memcpy(CMSG_DATA(c), fds.data(), sizeof(int) * fds.size());
    }
    ssize_t n;
    do {
        n = ::sendmsg(socket, &msg, MSG_NOSIGNAL);
    } while (n < 0 && errno == EINTR);
    return n == static_cast<ssize_t>(packet.size());
}

ReceivedPacket receive_with_fds(int socket, char* buf, size_t size, size_t max_fds) {
    ReceivedPacket packet;
    struct iovec iov {buf, size};
    alignas(struct cmsghdr) char control[CMSG_SPACE(sizeof(int) * max_passed)];
    struct msghdr msg {};
    msg.msg_iov = &iov;
    msg.msg_iovlen = 1;
    msg.msg_control = control;
    msg.msg_controllen = sizeof control;
    do {
        packet.length = ::recvmsg(socket, &msg, MSG_CMSG_CLOEXEC);
    } while (packet.length < 0 && errno == EINTR);
    if (packet.length < 0) return packet;
    packet.truncated = (msg.msg_flags & (MSG_TRUNC | MSG_CTRUNC)) != 0;
    for (cmsghdr* c = CMSG_FIRSTHDR(&msg); c; c = CMSG_NXTHDR(&msg, c)) {
        if (c->cmsg_level != SOL_SOCKET || c->cmsg_type != SCM_RIGHTS) continue;
        size_t count = (c->cmsg_len - CMSG_LEN(0)) / sizeof(int);
        for (size_t i = 0; i < count; ++i) {
            int received;
            std::memcpy(&received, CMSG_DATA(c) + i * sizeof(int), sizeof received);
            UniqueFd owned(received);  // closed here unless kept
            if (packet.fds.size() < max_fds) packet.fds.push_back(std::move(owned));
            else packet.truncated = true;
        }
    }
    return packet;
}

}  // namespace mailroom::core
