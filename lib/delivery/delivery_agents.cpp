#include "delivery/delivery_agents.hpp"

#include <fcntl.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <climits>
#include <cstring>
#include <memory>

#include "core/subprocess.hpp"
#include "core/unique_fd.hpp"
#include "delivery/command_output.hpp"

namespace mailroom::mail {

namespace {

// A request is two paths, two addresses and a few numbers; a reply one status line.
constexpr size_t max_request = 64 * 1024;
constexpr size_t max_reply = 4096;
// How long a dead agent's exit may take to be seen before it is killed outright.
constexpr std::chrono::milliseconds reap_grace{1000};

bool same(const DeliveryAgents::Identity& a, const DeliveryAgents::Identity& b) {
    return a.root == b.root && a.credentials.uid == b.credentials.uid && a.credentials.gid == b.credentials.gid &&
           a.credentials.groups == b.credentials.groups;
}

// --- the agent's side: already switched to its user, for life ---

// Receives one request and the descriptor sent with it. 0: the owner closed the pair.
ssize_t receive_request(int socket, char* buf, core::UniqueFd& fd, bool& truncated) {
    struct iovec iov {buf, max_request};
    alignas(struct cmsghdr) char control[CMSG_SPACE(sizeof(int))];
    struct msghdr msg {};
    msg.msg_iov = &iov;
    msg.msg_iovlen = 1;
    msg.msg_control = control;
    msg.msg_controllen = sizeof control;
    ssize_t n;
    do {
        n = ::recvmsg(socket, &msg, MSG_CMSG_CLOEXEC);
    } while (n < 0 && errno == EINTR);
    if (n <= 0) return n;
    truncated = (msg.msg_flags & (MSG_TRUNC | MSG_CTRUNC)) != 0;
    for (cmsghdr* c = CMSG_FIRSTHDR(&msg); c; c = CMSG_NXTHDR(&msg, c)) {
        if (c->cmsg_level == SOL_SOCKET && c->cmsg_type == SCM_RIGHTS && c->cmsg_len == CMSG_LEN(sizeof(int))) {
            int received;
            std::memcpy(&received, CMSG_DATA(c), sizeof received);
            fd.reset(received);
        }
    }
    return n;
}

Status serve_one(std::string_view packet, core::UniqueFd fd, bool truncated) {
    if (truncated || !fd) return Status::temp("4.3.0", "malformed delivery request: cut short or without its message");
    auto request = decode_write_request(packet);
    if (!request) return Status::temp("4.3.0", request.error().message());
    auto message = Message::from_stored(std::move(fd), request->offset, request->size);
    if (!message) return Status::from_error(message.error());
    return run_write_job(request->job, *message);
}

int serve(int socket) {
    // Allocated once, never zero-filled (docs/delivery-model.md).
    std::unique_ptr<char[]> buf(new char[max_request]);
    for (;;) {
        core::UniqueFd fd;
        bool truncated = false;
        ssize_t n = receive_request(socket, buf.get(), fd, truncated);
        if (n <= 0) return 0;
        Status status = serve_one(std::string_view(buf.get(), static_cast<size_t>(n)), std::move(fd), truncated);
        std::string reply = writer_report_line(status);
        if (::send(socket, reply.data(), reply.size(), MSG_NOSIGNAL) < 0) return 0;
    }
}

// --- the owner's side ---

core::Result<core::UniqueFd> above_stdio(core::UniqueFd fd) {
    if (fd.get() > STDERR_FILENO) return fd;
    core::UniqueFd moved(::fcntl(fd.get(), F_DUPFD_CLOEXEC, STDERR_FILENO + 1));
    if (!moved) return core::unexpected_errno("move a socket above the standard descriptors");
    return moved;
}

bool send_request(int socket, const std::string& packet, int message_fd) {
    struct iovec iov {const_cast<char*>(packet.data()), packet.size()};
    alignas(struct cmsghdr) char control[CMSG_SPACE(sizeof(int))] = {};
    struct msghdr msg {};
    msg.msg_iov = &iov;
    msg.msg_iovlen = 1;
    msg.msg_control = control;
    msg.msg_controllen = sizeof control;
    cmsghdr* c = CMSG_FIRSTHDR(&msg);
    c->cmsg_level = SOL_SOCKET;
    c->cmsg_type = SCM_RIGHTS;
    c->cmsg_len = CMSG_LEN(sizeof(int));
    std::memcpy(CMSG_DATA(c), &message_fd, sizeof message_fd);
    ssize_t n;
    do {
        n = ::sendmsg(socket, &msg, MSG_NOSIGNAL);
    } while (n < 0 && errno == EINTR);
    return n == static_cast<ssize_t>(packet.size());
}

// True when the agent has nothing to say, as it must between requests: a byte
// waiting is a reply nobody asked for, an end of file a dead agent.
bool quiet(int socket) {
    char byte;
    ssize_t n = ::recv(socket, &byte, 1, MSG_DONTWAIT | MSG_PEEK);
    return n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK);
}

}  // namespace

struct DeliveryAgents::Agent {
    Identity identity;
    core::Subprocess process;
    core::UniqueFd socket;
    Clock::time_point last_used;
    // The request in flight (0: none), and when it must be answered by.
    Ticket in_flight = 0;
    Clock::time_point deadline;
    std::chrono::seconds timeout{0};
};

DeliveryAgents::DeliveryAgents() : DeliveryAgents(Limits{}) {}
DeliveryAgents::DeliveryAgents(Limits limits) : limits_(limits) {}

DeliveryAgents::~DeliveryAgents() { forget_if_inherited(); }

void DeliveryAgents::forget_if_inherited() {
    const pid_t self = ::getpid();
    if (owner_ == self) return;
    // Another process's agents (we are its fork): close our copies of their sockets,
    // leave the processes to their owner.
    for (auto& agent : agents_) agent.process.release();
    agents_.clear();
    finished_.clear();
    owner_ = self;
}

void DeliveryAgents::retire_idle(Clock::time_point now) {
    agents_.remove_if([&](const Agent& agent) { return agent.in_flight == 0 && now - agent.last_used > limits_.idle; });
}

void DeliveryAgents::collect(Agents::iterator agent) {
    const Ticket ticket = agent->in_flight;
    auto end_with = [&](Status status) {
        finished_.insert_or_assign(ticket, std::move(status));
        agents_.erase(agent);  // killed with its group and reaped
    };
    char reply[max_reply];
    for (;;) {
        auto now = Clock::now();
        if (now >= agent->deadline) {
            core::SubprocessResult timed_out;
            timed_out.timed_out = true;
            return end_with(writer_death(timed_out, agent->timeout));
        }
        struct pollfd ready {agent->socket.get(), POLLIN, 0};
        auto wait = std::chrono::ceil<std::chrono::milliseconds>(agent->deadline - now).count();
        int r = ::poll(&ready, 1, static_cast<int>(std::min<int64_t>(wait, INT_MAX)));
        if (r < 0 && errno != EINTR) return end_with(Status::from_errno(errno, "poll on a delivery agent"));
        if (r <= 0) continue;
        ssize_t n = ::recv(agent->socket.get(), reply, sizeof reply, MSG_TRUNC);
        if (n < 0 && errno == EINTR) continue;
        if (n <= 0) {
            // It died with the request: what it came to, as for a delivery child.
            agent->socket.reset();
            auto ended = agent->process.run({}, Clock::now() + reap_grace);
            return end_with(ended ? writer_death(*ended, agent->timeout) : Status::from_error(ended.error()));
        }
        auto status = static_cast<size_t>(n) <= sizeof reply
                          ? status_from_output(std::string_view(reply, static_cast<size_t>(n)))
                          : std::nullopt;
        if (!status) return end_with(Status::temp("4.3.0", "delivery agent answered without a status line"));
        finished_.insert_or_assign(ticket, std::move(*status));
        agent->in_flight = 0;
        agent->last_used = Clock::now();
        return;
    }
}

DeliveryAgents::Agents::iterator DeliveryAgents::find_or_start(const Identity& as, Status& failure) {
    auto found =
        std::find_if(agents_.begin(), agents_.end(), [&](const Agent& agent) { return same(agent.identity, as); });
    if (found != agents_.end()) return found;
    // Full: the least recently used goes, once it has answered what it was asked.
    while (!agents_.empty() && agents_.size() >= std::max<size_t>(limits_.max_agents, 1)) {
        if (agents_.front().in_flight != 0) {
            collect(agents_.begin());  // answered, or ended
            continue;
        }
        agents_.pop_front();
    }

    int pair[2];
    if (::socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, pair) != 0) {
        failure = Status::from_errno(errno, "socketpair for a delivery agent");
        return agents_.end();
    }
    core::UniqueFd ours(pair[0]);
    auto theirs = above_stdio(core::UniqueFd(pair[1]));
    if (!theirs) {
        failure = Status::from_error(theirs.error());
        return agents_.end();
    }
    const int agent_socket = theirs->get();
    core::SubprocessOptions options;
    options.credentials = as.credentials;
    options.root = as.root;
    options.keep_fds = {agent_socket};
    auto process = core::Subprocess::start([agent_socket] { return serve(agent_socket); }, options);
    if (!process) {
        failure = process.error().errno_value() == EPERM
                      ? Status::perm("5.7.1", "cannot deliver as " + as.name + ": " + process.error().message())
                      : Status::from_error(process.error());
        return agents_.end();
    }
    agents_.push_back(Agent{as, std::move(*process), std::move(ours), Clock::now()});
    return std::prev(agents_.end());
}

DeliveryAgents::Ticket DeliveryAgents::send(const WriteJob& job, const Message& message, const Identity& as,
                                            Clock::time_point deadline, std::chrono::seconds timeout) {
    forget_if_inherited();
    const Ticket ticket = next_ticket_++;
    if (!can_send(message)) {
        finished_.emplace(ticket, Status::temp("4.3.0", "a message held in memory cannot go to a delivery agent"));
        return ticket;
    }
    retire_idle(Clock::now());
    const std::string packet = encode_write_request({job, message.content_offset(), message.size()});

    // Twice at most: an agent found dead before it took the request is replaced once.
    for (int attempt = 0; attempt < 2;) {
        Status failure = Status::ok();
        auto agent = find_or_start(as, failure);
        if (agent == agents_.end()) {
            finished_.emplace(ticket, std::move(failure));
            return ticket;
        }
        // One request at a time per agent: this user's earlier write is answered first.
        if (agent->in_flight != 0) {
            collect(agent);
            continue;
        }
        ++attempt;
        if (!quiet(agent->socket.get()) || !send_request(agent->socket.get(), packet, message.content_fd())) {
            agents_.erase(agent);
            continue;
        }
        agent->in_flight = ticket;
        agent->deadline = deadline;
        agent->timeout = timeout;
        agent->last_used = Clock::now();
        agents_.splice(agents_.end(), agents_, agent);
        return ticket;
    }
    finished_.emplace(ticket, Status::temp("4.3.0", "no delivery agent took the request"));
    return ticket;
}

Status DeliveryAgents::wait(Ticket ticket) {
    forget_if_inherited();
    auto finished = finished_.find(ticket);
    if (finished == finished_.end()) {
        auto agent = std::find_if(agents_.begin(), agents_.end(),
                                  [&](const Agent& a) { return a.in_flight == ticket; });
        if (agent == agents_.end()) return Status::temp("4.3.0", "no such delivery in flight");
        collect(agent);
        finished = finished_.find(ticket);
        if (finished == finished_.end()) return Status::temp("4.3.0", "no such delivery in flight");
    }
    Status status = std::move(finished->second);
    finished_.erase(finished);
    return status;
}

Status DeliveryAgents::write(const WriteJob& job, const Message& message, const Identity& as,
                             Clock::time_point deadline, std::chrono::seconds timeout) {
    return wait(send(job, message, as, deadline, timeout));
}

std::vector<pid_t> DeliveryAgents::pids() const {
    std::vector<pid_t> out;
    for (const auto& agent : agents_) out.push_back(agent.process.pid());
    return out;
}

}  // namespace mailroom::mail
