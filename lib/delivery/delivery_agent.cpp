#include "delivery/delivery_agent.hpp"

#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <memory>
#include <optional>
#include <string_view>

#include "core/descriptors.hpp"
#include "delivery/maildir_batch.hpp"
#include "delivery/write_job.hpp"

namespace mailroom::mail {

namespace {

// A request is two paths, two addresses and a few numbers.
constexpr size_t max_request = 64 * 1024;
// What the owner says on the control socket, with the agent's end of a new connection.
constexpr std::string_view connect_word = "connect";

// --- the agent's side: already switched to its user, for life ---

// The request waiting on a connection: answered now, or (a Maildir write) staged
// in `batch` under the connection's index, to be answered once the batch is durable.
std::optional<Status> take_request(core::ReceivedPacket& packet, const char* buf,
                                   const std::optional<MailboxLocation>& only, MaildirBatch& batch, size_t index) {
    if (packet.truncated || packet.fds.size() != 1)
        return Status::temp("4.3.0", "malformed delivery request: cut short or without its message");
    auto request = decode_write_request(std::string_view(buf, static_cast<size_t>(packet.length)));
    if (!request) return Status::temp("4.3.0", request.error().message());
    if (only && (request->job.format != only->format || request->job.info.path != only->path))
        return Status::perm("5.7.1", "delivery agent refused a write outside the mailbox it serves");
    auto message = Message::from_stored(std::move(packet.fds[0]), request->offset, request->size);
    if (!message) return Status::from_error(message.error());
    if (request->job.format == MailboxFormat::maildir) return batch.add(index, *message, request->job.info);
    return run_write_job(request->job, *message);
}

bool reply(int connection, const Status& status) {
    std::string line = writer_report_line(status);
    return ::send(connection, line.data(), line.size(), MSG_NOSIGNAL) >= 0;
}

int serve(int control, int first_connection, const std::optional<MailboxLocation>& only) {
    // Allocated once, never zero-filled (docs/delivery-model.md).
    std::unique_ptr<char[]> buf(new char[max_request]);
    std::vector<core::UniqueFd> connections;
    connections.emplace_back(first_connection);
    bool control_open = true;
    std::vector<struct pollfd> ready;
    std::vector<bool> over;
    MaildirBatch batch;
    while (control_open || !connections.empty()) {
        ready.assign(1, {control_open ? control : -1, POLLIN, 0});
        for (const auto& c : connections) ready.push_back({c.get(), POLLIN, 0});
        if (::poll(ready.data(), ready.size(), -1) < 0) {
            if (errno == EINTR) continue;
            return 1;
        }
        if (ready[0].revents != 0) {
            char word[16];
            core::ReceivedPacket handed = core::receive_with_fds(control, word, sizeof word, 1);
            if (handed.length <= 0) {
                control_open = false;
            } else if (!handed.truncated && handed.fds.size() == 1 &&
                       std::string_view(word, static_cast<size_t>(handed.length)) == connect_word) {
                connections.push_back(std::move(handed.fds[0]));
            }  // anything else: not the owner's, dropped with its descriptors
        }
        // One request from each connection that has one (a connection added just now
        // has no poll entry yet); the Maildir writes among them are made durable
        // together, the rest are answered at once.
        over.assign(connections.size(), false);
        for (size_t i = 0; i + 1 < ready.size(); ++i) {
            if (ready[i + 1].revents == 0) continue;
            core::ReceivedPacket packet = core::receive_with_fds(connections[i].get(), buf.get(), max_request, 1);
            if (packet.length <= 0) {
                over[i] = true;
            } else if (auto answered = take_request(packet, buf.get(), only, batch, i)) {
                over[i] = !reply(connections[i].get(), *answered);
            }
        }
        if (!batch.empty()) {
            for (const auto& [index, status] : batch.finish()) {
                over[index] = !reply(connections[index].get(), status);
            }
        }
        // Walked from the last, so that closing one does not move those still to come.
        for (size_t i = over.size(); i-- > 0;) {
            if (over[i]) connections.erase(connections.begin() + static_cast<std::ptrdiff_t>(i));
        }
    }
    return 0;
}

Status start_failure(const core::Error& error, const AgentIdentity& as) {
    if (error.errno_value() == EPERM) return Status::perm("5.7.1", "cannot deliver as " + as.name + ": " + error.message());
    return Status::from_error(error);
}

struct SocketPair {
    core::UniqueFd ours, theirs;
};

core::Result<SocketPair> socket_pair() {
    int ends[2];
    if (::socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, ends) != 0)
        return core::unexpected_errno("socketpair for a delivery agent");
    core::UniqueFd ours(ends[0]);
    auto theirs = core::above_stdio(core::UniqueFd(ends[1]));
    if (!theirs) return core::unexpected(theirs.error());
    return SocketPair{std::move(ours), std::move(*theirs)};
}

}  // namespace

bool same_credentials(const AgentIdentity& a, const AgentIdentity& b) {
    auto same_pin = [](const std::optional<MailboxLocation>& x, const std::optional<MailboxLocation>& y) {
        return x.has_value() == y.has_value() && (!x || (x->format == y->format && x->path == y->path));
    };
    return a.root == b.root && a.credentials.uid == b.credentials.uid && a.credentials.gid == b.credentials.gid &&
           a.credentials.groups == b.credentials.groups && same_pin(a.only, b.only) && a.lane == b.lane;
}

AgentRegistry::AgentRegistry(DeliveryAgentLimits limits) : limits_(limits), owner_(::getpid()) {}

AgentRegistry::~AgentRegistry() { forget_if_inherited(); }

void AgentRegistry::forget() {
    for (auto& agent : live_) agent.process.release();
    for (auto& process : retired_) process.release();
    live_.clear();  // closes our copies of their control sockets
    retired_.clear();
    owner_ = ::getpid();
}

void AgentRegistry::forget_if_inherited() {
    if (owner_ != ::getpid()) forget();
}

void AgentRegistry::retire(Agents::iterator agent) {
    agent->control.reset();
    retired_.push_back(std::move(agent->process));
    live_.erase(agent);
}

void AgentRegistry::retire_idle(Clock::time_point now) {
    forget_if_inherited();
    for (auto it = live_.begin(); it != live_.end();) {
        auto next = std::next(it);
        if (now - it->last_connected > limits_.idle) retire(it);
        it = next;
    }
    retired_.remove_if([](core::Subprocess& process) { return process.reap_if_exited(); });
}

bool AgentRegistry::reaped(pid_t pid) {
    for (auto it = live_.begin(); it != live_.end(); ++it) {
        if (it->process.pid() != pid) continue;
        it->process.release();
        live_.erase(it);
        return true;
    }
    for (auto it = retired_.begin(); it != retired_.end(); ++it) {
        if (it->pid() != pid) continue;
        it->release();
        retired_.erase(it);
        return true;
    }
    return false;
}

std::vector<pid_t> AgentRegistry::pids() const {
    std::vector<pid_t> out;
    for (const auto& agent : live_) out.push_back(agent.process.pid());
    return out;
}

AgentRegistry::Agents::iterator AgentRegistry::start(const AgentIdentity& as, AgentOffer& offer) {
    while (!live_.empty() && live_.size() >= std::max<size_t>(limits_.max_agents, 1)) retire(live_.begin());
    auto control = socket_pair();
    if (!control) {
        offer.failure = Status::from_error(control.error());
        return live_.end();
    }
    auto connection = socket_pair();
    if (!connection) {
        offer.failure = Status::from_error(connection.error());
        return live_.end();
    }
    const int control_fd = control->theirs.get(), connection_fd = connection->theirs.get();
    core::SubprocessOptions options;
    options.credentials = as.credentials;
    options.root = as.root;
    options.keep_fds = {control_fd, connection_fd};
    auto process = core::Subprocess::start([=] { return serve(control_fd, connection_fd, as.only); }, options);
    if (!process) {
        offer.failure = start_failure(process.error(), as);
        return live_.end();
    }
    // It talks over its sockets only: the pipes would cost the owner two descriptors an agent.
    process->close_pipes();
    const pid_t pid = process->pid();
    live_.push_back(Agent{as, std::move(*process), std::move(control->ours), Clock::now()});
    offer.connection = AgentConnection{std::move(connection->ours), core::open_pidfd(pid), pid};
    return std::prev(live_.end());
}

bool AgentRegistry::hand_out(Agent& agent, AgentOffer& offer) {
    auto pair = socket_pair();
    if (!pair) {
        offer.failure = Status::from_error(pair.error());
        return true;  // the agent is not to blame
    }
    const int theirs = pair->theirs.get();
    if (!core::send_with_fds(agent.control.get(), connect_word, {&theirs, 1})) return false;
    const pid_t pid = agent.process.pid();
    offer.connection = AgentConnection{std::move(pair->ours), core::open_pidfd(pid), pid};
    agent.last_connected = Clock::now();
    return true;
}

AgentOffer AgentRegistry::connect(const AgentIdentity& as) {
    AgentOffer offer;
    retire_idle(Clock::now());
    auto found = std::find_if(live_.begin(), live_.end(), [&](const Agent& a) { return same_credentials(a.identity, as); });
    if (found != live_.end()) {
        if (hand_out(*found, offer)) {
            live_.splice(live_.end(), live_, found);
            return offer;
        }
        live_.erase(found);  // dead (its control end is closed): killed if need be, reaped
    }
    start(as, offer);
    return offer;
}

}  // namespace mailroom::mail
