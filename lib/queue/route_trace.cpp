#include "queue/route_trace.hpp"

#include <fmt/format.h>

#include "core/sysexits.hpp"
#include "mail/address.hpp"
#include "delivery/local_delivery.hpp"
#include "queue/queue_listing.hpp"

namespace mailroom::mail {

namespace {

std::string status_text(const Status& status) { return fmt::format("{} ({})", status.text(), status.code()); }

}  // namespace

Trace trace_address(std::string_view address, const QueueSettings& settings, const core::UserDb& users) {
    Trace trace;
    trace.lines.push_back(printable_text(address));
    auto parsed = Address::parse(address, ParseMode::bare);
    if (!parsed || parsed->is_null()) {
        trace.lines.push_back("  bad address: " + printable_text(parsed ? "empty address" : parsed.error().message()));
        trace.lines.push_back("  -> bounced (5.1.3)");
        trace.exit_code = core::sysexit::data_error;
        return trace;
    }
    Route route = route_recipient(parsed->str(), settings);
    if (route.kind == Route::Kind::invalid) {
        trace.lines.push_back("  -> bounced: " + printable_text(status_text(route.invalid)));
        trace.exit_code = core::sysexit::data_error;
        return trace;
    }
    if (route.kind == Route::Kind::remote) {
        // What the queue runner does today (queue_runner.cpp): defer until the SMTP client exists.
        trace.lines.push_back("  remote address " + printable_text(route.address) + ": domain not in mydestination");
        trace.lines.push_back("  -> deferred: remote delivery not configured (4.3.5); bounced after maximal_queue_lifetime");
        trace.exit_code = core::sysexit::temp_fail;
        return trace;
    }
    std::string step = "  local address " + printable_text(route.address) + ": user " + printable_text(route.user);
    if (!route.extension.empty()) step += ", extension " + printable_text(route.extension);
    trace.lines.push_back(step);
    auto user = users.find(route.user);
    if (!user) {
        trace.lines.push_back("  -> deferred: user lookup failed: " + printable_text(user.error().message()));
        trace.exit_code = core::sysexit::temp_fail;
        return trace;
    }
    if (!*user) {
        trace.lines.push_back("  -> bounced: unknown user: \"" + printable_text(route.user) + "\" (5.1.1)");
        trace.exit_code = core::sysexit::no_user;
        return trace;
    }
    MailboxLocation mailbox = mailbox_location(settings.local, **user);
    trace.lines.push_back(fmt::format("  -> mailbox {} ({}), written as {} (uid {})", printable_text(mailbox.path),
                                      mailbox.format == MailboxFormat::maildir ? "maildir" : "mbox",
                                      printable_text((*user)->name), (*user)->uid));
    return trace;
}

}  // namespace mailroom::mail
