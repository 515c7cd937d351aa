#include "queue/queue_submission.hpp"

#include "core/io.hpp"
#include "mail/address.hpp"
#include "queue/front_door.hpp"

namespace mailroom::mail {

core::Result<Submitted> submit_message(const Spool& spool, SubmitRequest request, int input_fd) {
    auto door = FrontDoor::open(spool, FrontDoorSettings{.default_domain = request.default_domain,
                                                         .size_limit = request.filter.size_limit,
                                                         .submitter_uid = request.filter.uid});
    if (!door) return core::unexpected(door.error());
    request.filter.queue_id = door->id();
    request.filter.now = door->arrival();
    SubmissionFilter filter(request.filter, [&](std::string_view bytes) { return door->write(bytes); });
    std::string chunk(64 * 1024, '\0');
    while (!filter.ended_by_dot()) {
        auto n = core::read_some(input_fd, chunk.data(), chunk.size(), "standard input");
        if (!n) return core::unexpected(n.error());
        if (*n == 0) break;
        if (auto r = filter.feed(std::string_view(chunk.data(), *n)); !r) return core::unexpected(r.error());
    }
    if (auto r = filter.finish(); !r) return core::unexpected(r.error());

    // A -f sender was parsed by sendmail (it may be the null sender); the door qualifies it.
    // The default one is LOGIN@myhostname, and a login name need not be a dot-string
    // ("john.doe."): its local part is then quoted, as a reply to it must write it.
    Status sender = door->set_sender(request.sender);
    if (!sender.is_ok()) {
        auto at = request.sender.rfind('@');
        if (at != std::string::npos) {
            sender = door->set_sender(Address::quote_local(std::string_view(request.sender).substr(0, at)) +
                                      request.sender.substr(at));
        }
        if (!sender.is_ok()) return core::unexpected_input(sender.text());
    }
    // -t recipients first, in header order, then the command line's; each once (the door
    // keeps the first). The filter and sendmail vouch that each parses.
    const std::vector<std::string>* lists[] = {&filter.header_recipients(), &request.recipients};
    for (const auto* list : lists) {
        for (const auto& given : *list) {
            if (auto s = door->add_recipient(given); !s.is_ok()) return core::unexpected_input(s.text());
        }
    }
    auto committed = door->commit();
    if (!committed) return core::unexpected(committed.error());
    return Submitted{committed->id, committed->size, committed->recipients, filter.message_id()};
}

}  // namespace mailroom::mail
