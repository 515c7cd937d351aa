// submit_message: stdin through the SubmissionFilter into a committed queue entry,
// with the envelope sendmail gives it (SPEC 1, "sendmail").
#include "queue/queue_submission.hpp"

#include <unistd.h>

#include <catch2/catch.hpp>
#include <string>
#include <vector>

#include "core/unique_fd.hpp"
#include "support/test_support.hpp"

using namespace mailroom::mail;
using mailroom::core::UniqueFd;
using mailroom::test::TempDir;

namespace {

// A descriptor that reads `input` then end of file (small inputs: the pipe buffer holds them).
UniqueFd input_of(const std::string& input) {
    int fds[2];
    REQUIRE(::pipe(fds) == 0);
    REQUIRE(::write(fds[1], input.data(), input.size()) == static_cast<ssize_t>(input.size()));
    ::close(fds[1]);
    return UniqueFd(fds[0]);
}

Envelope submitted_envelope(std::string sender, std::vector<std::string> recipients) {
    TempDir tmp;
    auto spool = Spool::open(tmp.path + "/spool");
    REQUIRE(spool);
    SubmitRequest request;
    request.filter.myhostname = "host.example";
    request.filter.login = "alice";
    request.sender = std::move(sender);
    request.recipients = std::move(recipients);
    request.default_domain = "host.example";
    UniqueFd input = input_of("Subject: s\n\nbody\n");
    auto queued = submit_message(*spool, std::move(request), input.get());
    REQUIRE(queued);
    auto entry = read_entry(*spool, QueueFolder::queue, queued->id);
    REQUIRE(entry);
    return entry->envelope;
}

}  // namespace

TEST_CASE("A sendmail sender without a domain gets @myhostname, as Postfix's append_at_myorigin", "[queue_submission]") {
    CHECK(submitted_envelope("root", {"bob"}).sender == "root@host.example");
    CHECK(submitted_envelope("alice@elsewhere.example", {"bob"}).sender == "alice@elsewhere.example");
}

TEST_CASE("The null sender stays null in a sendmail submission", "[queue_submission]") {
    CHECK(submitted_envelope("", {"bob"}).sender.empty());
}

TEST_CASE("A sendmail recipient without a domain gets @myhostname, so bob and bob@host are one", "[queue_submission]") {
    auto envelope = submitted_envelope("root", {"bob", "bob@host.example", "carol@far.example"});
    CHECK(envelope.recipients == std::vector<std::string>{"bob@host.example", "carol@far.example"});
}
