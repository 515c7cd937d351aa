// PasswordClient: the SMTP sessions process's side of the password channel
// (smtp/password_request.hpp). That process runs as an unprivileged user and
// cannot check a password; it asks the listener's root side
// (mta/password_service.hpp) over a SOCK_SEQPACKET pair, from its event loop,
// without blocking it: any number of sessions may await an answer at once.
//
// Each check gets an id of its own (counting up from 1, never reused), sends one
// request packet and waits for the answer with that id, at most `timeout`. One
// reader takes the answers off the channel while checks are waiting (and only
// then, so that an idle client leaves the loop free to end).
// Invariants: `accepted` only from an answer "ok" carrying this check's id; a
// timeout, a closed channel, a send that fails or a malformed answer give
// `unavailable` (454: the client tries again later). A malformed answer cannot be
// told apart from whose it was: it is dropped, and its asker reaches its timeout.
// An answer whose asker has stopped waiting (timed out) is dropped: ids are never
// reused, so it can never be taken for another's. A user or password outside the
// request's bounds is `refused` without asking (no account can match it).
// Must never: keep the password after the request is sent (the request and the
// argument are zeroed), block the loop on a full channel, or resume a check twice.
#pragma once

#include <chrono>
#include <memory>
#include <string>

#include <boost/asio/any_io_executor.hpp>
#include <boost/asio/awaitable.hpp>

#include "core/pam_password.hpp"
#include "core/unique_fd.hpp"

namespace mailroom::net {

class PasswordClient {
public:
    // `channel`: the sessions process's end of the SOCK_SEQPACKET pair (the client takes it).
    PasswordClient(boost::asio::any_io_executor executor, core::UniqueFd channel, std::chrono::seconds timeout);
    // Checks still waiting end `unavailable`; the channel closes.
    ~PasswordClient();

    // Any number of sessions may await at once; answers are matched by id. Timeout, a
    // closed channel or a malformed answer: unavailable (never accepted).
    boost::asio::awaitable<core::PasswordVerdict> check(std::string user, std::string password);
    // Checks sent and not yet answered.
    size_t waiting() const;

    PasswordClient(const PasswordClient&) = delete;
    PasswordClient& operator=(const PasswordClient&) = delete;

private:
    struct State;
    struct Waiter;
    static boost::asio::awaitable<void> read_answers(std::shared_ptr<State> state);
    static boost::asio::awaitable<bool> send(std::shared_ptr<State> state, const std::string& packet, Waiter& waiter);

    std::shared_ptr<State> state_;
};

}  // namespace mailroom::net
