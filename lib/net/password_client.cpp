#include "net/password_client.hpp"

#include <sys/socket.h>

#include <cerrno>
#include <map>
#include <optional>
#include <variant>

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/experimental/awaitable_operators.hpp>
#include <boost/asio/posix/stream_descriptor.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/use_awaitable.hpp>

#include "smtp/password_request.hpp"

// g++ 12 warns of a mismatched new/delete inside Asio's coroutine frames, wrongly.
#pragma GCC diagnostic ignored "-Wmismatched-new-delete"

namespace mailroom::net {

namespace asio = boost::asio;
using namespace boost::asio::experimental::awaitable_operators;
using core::PasswordVerdict;

namespace {
constexpr auto tuple_awaitable = asio::as_tuple(asio::use_awaitable);
}

// Shared by the client and its coroutines: a check or the reader still running when
// the client goes finds the state there, closed.
struct PasswordClient::State {
    State(asio::any_io_executor executor, int fd, std::chrono::seconds wait)
        : socket(executor, fd), timeout(wait) {}

    asio::posix::stream_descriptor socket;
    std::chrono::seconds timeout;
    uint64_t next_id = 1;
    std::map<uint64_t, Waiter*> waiting;
    bool reading = false;
    bool closed = false;

    // Every waiting check ends unavailable; no check is sent after.
    void close();
};

// One check waiting for its answer: registered under its id for as long as it lives
// (in the check's coroutine frame), woken by the reader through its timer.
struct PasswordClient::Waiter {
    Waiter(std::shared_ptr<State> shared, uint64_t number)
        : state(std::move(shared)), id(number), timer(state->socket.get_executor(), state->timeout) {
        state->waiting.emplace(id, this);
    }
    ~Waiter() {
        state->waiting.erase(id);
        // Nobody waits any more: the reader stops, so that the loop may end.
        if (state->waiting.empty() && state->reading) {
            boost::system::error_code ignored;
            state->socket.cancel(ignored);
        }
    }
    Waiter(const Waiter&) = delete;
    Waiter& operator=(const Waiter&) = delete;

    void answer(PasswordVerdict given) {
        if (verdict) return;  // the first answer stands
        verdict = given;
        timer.cancel();
    }

    std::shared_ptr<State> state;
    uint64_t id;
    asio::steady_timer timer;  // the deadline; cancelled by an answer
    std::optional<PasswordVerdict> verdict;
};

void PasswordClient::State::close() {
    closed = true;
    for (auto& [id, waiter] : waiting) waiter->answer(PasswordVerdict::unavailable);
}

PasswordClient::PasswordClient(asio::any_io_executor executor, core::UniqueFd channel, std::chrono::seconds timeout)
    : state_(std::make_shared<State>(std::move(executor), channel.release(), timeout)) {}

PasswordClient::~PasswordClient() {
    state_->close();
    boost::system::error_code ignored;
    state_->socket.close(ignored);
}

size_t PasswordClient::waiting() const { return state_->waiting.size(); }

// Sends the packet whole (a SEQPACKET send is all or nothing), waiting for room in
// the channel until the check's deadline. False: not sent.
asio::awaitable<bool> PasswordClient::send(std::shared_ptr<State> state, const std::string& packet, Waiter& waiter) {
    for (;;) {
        if (state->closed) co_return false;
        ssize_t sent = ::send(state->socket.native_handle(), packet.data(), packet.size(), MSG_DONTWAIT | MSG_NOSIGNAL);
        if (sent == static_cast<ssize_t>(packet.size())) co_return true;
        if (sent >= 0 || (errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR && errno != ENOBUFS)) {
            // The root side is gone (EPIPE, ECONNRESET) or the channel broken.
            state->close();
            co_return false;
        }
        if (errno == EINTR) continue;
        auto ready = co_await (state->socket.async_wait(asio::posix::descriptor_base::wait_write, tuple_awaitable) ||
                               waiter.timer.async_wait(tuple_awaitable));
        if (ready.index() == 1) co_return false;  // the deadline came first
    }
}

asio::awaitable<void> PasswordClient::read_answers(std::shared_ptr<State> state) {
    char packet[smtp::max_password_answer + 1];
    while (!state->waiting.empty() && !state->closed) {
        auto [ec] = co_await state->socket.async_wait(asio::posix::descriptor_base::wait_read, tuple_awaitable);
        if (state->closed) break;
        if (ec == asio::error::operation_aborted) continue;  // the last waiter left, or a new one came meanwhile
        if (ec) {
            state->close();
            break;
        }
        for (;;) {
            ssize_t n = ::recv(state->socket.native_handle(), packet, sizeof packet, MSG_DONTWAIT | MSG_TRUNC);
            if (n < 0 && errno == EINTR) continue;
            if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) break;
            if (n <= 0) {
                state->close();  // 0: the root side has gone
                break;
            }
            if (static_cast<size_t>(n) > smtp::max_password_answer) continue;  // cut short: malformed
            auto answer = smtp::decode_password_answer(std::string_view(packet, static_cast<size_t>(n)));
            if (!answer) continue;
            auto found = state->waiting.find(answer->first);
            if (found != state->waiting.end()) found->second->answer(answer->second);
        }
    }
    state->reading = false;
}

asio::awaitable<PasswordVerdict> PasswordClient::check(std::string user, std::string password) {
    // Held here: the state outlives the client if it goes while this waits.
    std::shared_ptr<State> state = state_;
    if (!smtp::fits_password_request(user, password)) {
        core::wipe(password);
        co_return PasswordVerdict::refused;
    }
    if (state->closed) {
        core::wipe(password);
        co_return PasswordVerdict::unavailable;
    }
    Waiter waiter(state, state->next_id++);
    std::string request = smtp::encode_password_request(waiter.id, user, password);
    core::wipe(password);
    bool sent = co_await send(state, request, waiter);
    core::wipe(request);
    if (!sent) co_return PasswordVerdict::unavailable;
    if (!state->reading) {
        state->reading = true;
        asio::co_spawn(state->socket.get_executor(), read_answers(state), asio::detached);
    }
    if (!waiter.verdict) co_await waiter.timer.async_wait(tuple_awaitable);
    co_return waiter.verdict.value_or(PasswordVerdict::unavailable);
}

}  // namespace mailroom::net
