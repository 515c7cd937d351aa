#include "net/agent_writer.hpp"

#include <sys/socket.h>

#include <cerrno>
#include <algorithm>
#include <deque>
#include <vector>

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/posix/stream_descriptor.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <fmt/format.h>

#include "core/descriptors.hpp"
#include "delivery/command_output.hpp"

namespace mailroom::net {

namespace asio = boost::asio;
using mail::Status;

namespace {
constexpr size_t max_reply = 4096;
}

struct AgentWriter::Link {
    Link(asio::any_io_executor executor, mail::AgentIdentity identity, mail::AgentConnection connection)
        : as(std::move(identity)), pidfd(std::move(connection.process)), socket(executor, connection.socket.release()) {}

    mail::AgentIdentity as;
    core::UniqueFd pidfd;
    asio::posix::stream_descriptor socket;
    bool busy = false;
    bool dead = false;
    std::deque<std::shared_ptr<asio::steady_timer>> waiting;  // writes queued behind the one in flight
    Clock::time_point last_used = Clock::now();

    // The next queued write may go; all of them when the link is dead (each then
    // asks for a fresh connection).
    void release() {
        busy = false;
        last_used = Clock::now();
        while (!waiting.empty()) {
            waiting.front()->cancel();
            waiting.pop_front();
            if (!dead) break;
        }
    }
};

AgentWriter::AgentWriter(asio::any_io_executor executor, mail::AgentSource& source, std::chrono::seconds timeout,
                         unsigned lanes, std::chrono::seconds idle)
    : executor_(std::move(executor)), source_(source), timeout_(timeout), lanes_(std::max(lanes, 1u)), idle_(idle) {}

AgentWriter::~AgentWriter() = default;

// An idle connection for `as`, else a new one on a lane not yet open, else the
// busy one with the shortest queue.
std::shared_ptr<AgentWriter::Link> AgentWriter::link_for(const mail::AgentIdentity& as, Status& failure) {
    std::shared_ptr<Link> shortest;
    std::vector<bool> lane_open(lanes_, false);
    auto [first, last] = links_.equal_range(as.credentials.uid);
    for (auto it = first; it != last; ++it) {
        const auto& link = it->second;
        mail::AgentIdentity probe = as;
        probe.lane = link->as.lane;
        if (link->dead || !mail::same_credentials(link->as, probe)) continue;
        if (!link->busy) return link;
        if (link->as.lane < lanes_) lane_open[link->as.lane] = true;
        if (!shortest || link->waiting.size() < shortest->waiting.size()) shortest = link;
    }
    unsigned lane = 0;
    while (lane < lanes_ && lane_open[lane]) ++lane;
    if (lane == lanes_ && shortest) return shortest;
    mail::AgentIdentity wanted = as;
    wanted.lane = lane;
    mail::AgentOffer offer = source_.connect(wanted);
    if (!offer.failure.is_ok()) {
        failure = offer.failure;
        return nullptr;
    }
    auto link = std::make_shared<Link>(executor_, wanted, std::move(offer.connection));
    links_.emplace(as.credentials.uid, link);
    return link;
}

void AgentWriter::retire_idle(Clock::time_point now) {
    for (auto it = links_.begin(); it != links_.end();) {
        const auto& link = it->second;
        if (link->dead || (!link->busy && link->waiting.empty() && now - link->last_used > idle_)) {
            link->dead = true;
            it = links_.erase(it);
        } else {
            ++it;
        }
    }
}

asio::awaitable<Status> AgentWriter::write(const mail::AgentIdentity& as, const mail::WriteJob& job, int content_fd,
                                           uint64_t size) {
    std::shared_ptr<Link> link;
    for (;;) {
        Status failure = Status::ok();
        link = link_for(as, failure);
        if (!link) co_return failure;
        if (!link->busy) break;
        auto turn = std::make_shared<asio::steady_timer>(executor_, asio::steady_timer::time_point::max());
        link->waiting.push_back(turn);
        co_await turn->async_wait(asio::as_tuple(asio::use_awaitable));
        if (!link->dead && !link->busy) break;
    }
    link->busy = true;

    const int socket = link->socket.native_handle();
    std::string request = mail::encode_write_request({job, 0, size});
    if (!core::send_with_fds(socket, request, {&content_fd, 1})) {
        // Gone while idle: the next write asks for a fresh connection.
        link->dead = true;
        link->release();
        co_return Status::temp("4.3.0", fmt::format("delivery agent for {} is gone: {}", as.name, std::strerror(errno)));
    }
    // Shared with the timer's handler, which may already be queued when the reply
    // comes: then it must find the write done and leave the agent alone.
    struct Watch {
        bool done = false, timed_out = false;
    };
    auto watch = std::make_shared<Watch>();
    asio::steady_timer deadline(executor_, timeout_);
    deadline.async_wait([link, watch](const boost::system::error_code& ec) {
        if (ec || watch->done) return;
        watch->timed_out = true;
        core::kill_by_pidfd(link->pidfd.get());
    });
    char reply[max_reply];
    ssize_t n;
    for (;;) {
        auto [ec] = co_await link->socket.async_wait(asio::posix::descriptor_base::wait_read,
                                                      asio::as_tuple(asio::use_awaitable));
        n = ::recv(socket, reply, sizeof reply, MSG_DONTWAIT | MSG_TRUNC);
        if (n >= 0 || (errno != EAGAIN && errno != EINTR) || ec) break;
    }
    watch->done = true;
    deadline.cancel();
    const bool timed_out = watch->timed_out;
    std::optional<Status> status;
    if (n > 0 && static_cast<size_t>(n) <= sizeof reply) status = mail::status_from_output(std::string_view(reply, static_cast<size_t>(n)));
    if (!status) {
        link->dead = true;
        if (!timed_out) core::kill_by_pidfd(link->pidfd.get());
        status = timed_out ? Status::temp("4.3.0", fmt::format("delivery process timed out after {} s", timeout_.count()))
                 : n <= 0  ? Status::temp("4.3.0", "delivery process ended without a report")
                           : Status::temp("4.3.0", "delivery agent answered without a status line");
    }
    link->release();
    co_return *status;
}

}  // namespace mailroom::net
