#include "delivery/delivery_agents.hpp"

#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <climits>

#include <fmt/format.h>

#include "core/descriptors.hpp"
#include "delivery/command_output.hpp"

namespace mailroom::mail {

namespace {

// A reply is one status line.
constexpr size_t max_reply = 4096;

// True when the agent has nothing to say, as it must between requests: a byte
// waiting is a reply nobody asked for, an end of file a dead agent.
bool quiet(int socket) {
    char byte;
    ssize_t n = ::recv(socket, &byte, 1, MSG_DONTWAIT | MSG_PEEK);
    return n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK);
}

}  // namespace

struct DeliveryAgents::Connection {
    Identity identity;
    AgentConnection agent;
    Clock::time_point last_used;
    // The request in flight (0: none), and when it must be answered by.
    Ticket in_flight = 0;
    Clock::time_point deadline;
    std::chrono::seconds timeout{0};
};

DeliveryAgents::DeliveryAgents() : DeliveryAgents(Limits{}) {}
DeliveryAgents::DeliveryAgents(Limits limits)
    : limits_(limits), owner_(::getpid()), source_(std::make_unique<AgentRegistry>(limits)) {}

// The connections close before the source goes: an agent of our own registry then
// sees its last connection end while the registry ends it.
DeliveryAgents::~DeliveryAgents() {
    forget_if_inherited();
    connections_.clear();
}

void DeliveryAgents::use_source(std::unique_ptr<AgentSource> source) {
    forget_if_inherited();
    connections_.clear();
    source_->forget();  // a fresh pool's registry is empty; a forked one's is the parent's
    source_ = std::move(source);
}

void DeliveryAgents::forget_if_inherited() {
    const pid_t self = ::getpid();
    if (owner_ == self) return;
    // A fork of the owner: our copies of its connections close, its agents are left
    // to it, and agents of our own are started as needed.
    connections_.clear();
    finished_.clear();
    source_->forget();
    source_ = std::make_unique<AgentRegistry>(limits_);
    owner_ = self;
}

void DeliveryAgents::retire_idle(Clock::time_point now) {
    connections_.remove_if(
        [&](const Connection& c) { return c.in_flight == 0 && now - c.last_used > limits_.idle; });
}

void DeliveryAgents::collect(Connections::iterator connection) {
    const Ticket ticket = connection->in_flight;
    auto end_with = [&](Status status, bool kill) {
        if (kill) core::kill_by_pidfd(connection->agent.process.get());
        finished_.insert_or_assign(ticket, std::move(status));
        connections_.erase(connection);
    };
    char reply[max_reply];
    const int socket = connection->agent.socket.get();
    for (;;) {
        auto now = Clock::now();
        if (now >= connection->deadline) {
            return end_with(Status::temp("4.3.0", fmt::format("delivery process timed out after {} s",
                                                              connection->timeout.count())),
                            true);
        }
        struct pollfd ready {socket, POLLIN, 0};
        auto wait = std::chrono::ceil<std::chrono::milliseconds>(connection->deadline - now).count();
        int r = ::poll(&ready, 1, static_cast<int>(std::min<int64_t>(wait, INT_MAX)));
        if (r < 0 && errno != EINTR) return end_with(Status::from_errno(errno, "poll on a delivery agent"), true);
        if (r <= 0) continue;
        ssize_t n = ::recv(socket, reply, sizeof reply, MSG_TRUNC);
        if (n < 0 && errno == EINTR) continue;
        if (n <= 0) {
            // It died with the request, as a killed delivery child would.
            return end_with(Status::temp("4.3.0", "delivery process ended without a report"), false);
        }
        auto status = static_cast<size_t>(n) <= sizeof reply
                          ? status_from_output(std::string_view(reply, static_cast<size_t>(n)))
                          : std::nullopt;
        if (!status) return end_with(Status::temp("4.3.0", "delivery agent answered without a status line"), true);
        finished_.insert_or_assign(ticket, std::move(*status));
        connection->in_flight = 0;
        connection->last_used = Clock::now();
        return;
    }
}

DeliveryAgents::Connections::iterator DeliveryAgents::find_or_connect(const Identity& as, Status& failure) {
    auto found = std::find_if(connections_.begin(), connections_.end(),
                              [&](const Connection& c) { return same_credentials(c.identity, as); });
    if (found != connections_.end()) return found;
    // Full: the least recently used goes, once it has answered what it was asked.
    while (!connections_.empty() && connections_.size() >= std::max<size_t>(limits_.max_agents, 1)) {
        if (connections_.front().in_flight != 0) {
            collect(connections_.begin());  // answered, or closed
            continue;
        }
        connections_.pop_front();
    }
    AgentOffer offer = source_->connect(as);
    if (!offer.failure.is_ok()) {
        failure = std::move(offer.failure);
        return connections_.end();
    }
    connections_.push_back(Connection{as, std::move(offer.connection), Clock::now()});
    return std::prev(connections_.end());
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
    const int message_fd = message.content_fd();

    // Twice at most: a connection found dead before it took the request is replaced once.
    for (int attempt = 0; attempt < 2;) {
        Status failure = Status::ok();
        auto connection = find_or_connect(as, failure);
        if (connection == connections_.end()) {
            finished_.emplace(ticket, std::move(failure));
            return ticket;
        }
        // One request at a time per connection: this user's earlier write is answered first.
        if (connection->in_flight != 0) {
            collect(connection);
            continue;
        }
        ++attempt;
        const int socket = connection->agent.socket.get();
        if (!quiet(socket) || !core::send_with_fds(socket, packet, {&message_fd, 1})) {
            connections_.erase(connection);
            continue;
        }
        connection->in_flight = ticket;
        connection->deadline = deadline;
        connection->timeout = timeout;
        connection->last_used = Clock::now();
        connections_.splice(connections_.end(), connections_, connection);
        return ticket;
    }
    finished_.emplace(ticket, Status::temp("4.3.0", "no delivery agent took the request"));
    return ticket;
}

Status DeliveryAgents::wait(Ticket ticket) {
    forget_if_inherited();
    auto finished = finished_.find(ticket);
    if (finished == finished_.end()) {
        auto connection = std::find_if(connections_.begin(), connections_.end(),
                                       [&](const Connection& c) { return c.in_flight == ticket; });
        if (connection == connections_.end()) return Status::temp("4.3.0", "no such delivery in flight");
        collect(connection);
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
    for (const auto& c : connections_) out.push_back(c.agent.pid);
    return out;
}

}  // namespace mailroom::mail
