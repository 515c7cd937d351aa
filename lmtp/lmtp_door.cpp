#include "lmtp/lmtp_door.hpp"

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/this_coro.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <fmt/format.h>

namespace mailroom::lmtp {

namespace asio = boost::asio;

namespace {

asio::awaitable<void> write_one(net::AgentWriter& writer, const smtp::PlannedWrite& write, int content_fd,
                                uint64_t size, mail::Status& outcome) {
    outcome = co_await writer.write(write.as, write.job, content_fd, size);
}

}  // namespace

mail::Status LmtpDoor::open(const smtp::Transaction& transaction) {
    opened_micros_ = clock_.now_micros();
    return door_.open(transaction);
}

asio::awaitable<std::vector<mail::Status>> LmtpDoor::commit(const smtp::Transaction& transaction) {
    const size_t count = transaction.recipients.size();
    auto plan = door_.plan(transaction);
    if (!plan) co_return std::vector<mail::Status>(count, mail::Status::from_error(plan.error()));

    std::vector<mail::Status> outcomes(count, mail::Status::temp("4.3.0", "not delivered"));
    for (size_t i = 0; i < count && i < plan->outcomes.size(); ++i) {
        if (plan->outcomes[i]) outcomes[i] = *plan->outcomes[i];
    }
    // Every user's write at once: each agent writes and syncs while the others do.
    // The writes refer to *plan, which lives until the last of them is done.
    if (!plan->writes.empty()) {
        auto executor = co_await asio::this_coro::executor;
        auto remaining = std::make_shared<size_t>(plan->writes.size());
        auto all_done = std::make_shared<asio::steady_timer>(executor, asio::steady_timer::time_point::max());
        for (const auto& write : plan->writes) {
            asio::co_spawn(executor, write_one(writer_, write, plan->content_fd, plan->size, outcomes[write.recipient]),
                           [remaining, all_done](std::exception_ptr) {
                               if (--*remaining == 0) all_done->cancel();
                           });
        }
        // co_spawn hands each completion over through a post, so the cancel cannot come
        // before this wait; the check only guards that promise.
        if (*remaining > 0) co_await all_done->async_wait(asio::as_tuple(asio::use_awaitable));
    }
    const double delay = static_cast<double>(clock_.now_micros() - opened_micros_) / 1e6;
    for (size_t i = 0; i < count; ++i) {
        const auto& rcpt = transaction.recipients[i];
        std::string orig = rcpt.dsn.orcpt.empty() ? "" : fmt::format(", orig_to=<{}>", rcpt.dsn.orcpt);
        log_.info(fmt::format("{}: to=<{}>{}, relay=local, delay={:.2f}, {}", door_.id(), rcpt.recipient.str(), orig,
                              delay, outcomes[i].to_log()));
    }
    door_.abort();  // the held text goes
    co_return outcomes;
}

}  // namespace mailroom::lmtp
