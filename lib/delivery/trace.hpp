// Trace: where mail for an address would go, as `mailctl trace ADDRESS...` and
// `sendmail -bv` print it. It is the expander's own walk (expander.hpp) with each
// leaf resolved the way delivery resolves it (run_as.hpp, mailbox_location), so
// what it says is what the runner does; it delivers and changes nothing.
//
//   team@host.example
//     local address team@host.example: user team
//     alias team (/etc/aliases:3)
//       local address bob@host.example: user bob
//         -> mailbox /var/mail/bob (mbox), written as bob (uid 1001)
//       -> command |/usr/bin/archive, run as nobody (uid 65534)
//
// --json gives the same tree, one JSON object per address on one line.
// Must never: deliver, write, or print a byte of the address that is not printable.
#pragma once

#include <string>
#include <string_view>
#include <vector>

#include "core/users.hpp"
#include "delivery/expander.hpp"
#include "delivery/local_delivery.hpp"
#include "delivery/run_as.hpp"

namespace mailroom::mail {

struct TraceContext {
    const ExpansionSettings& expansion;
    const ExpansionSources& sources;
    const RunAsFacts& facts;
    const core::UserDb& users;
    const LocalDeliverySettings& local;
    RunAsSettings run_as;
    DeliveryRights rights;
    std::string relayhost;  // as configured: where remote leaves go; "" = their MX hosts
};

struct Trace {
    std::vector<std::string> lines;  // the address, then one indented line per step
    std::string json;                // the same tree as one JSON object (no newline)
    // The worst of the leaves: 0 deliverable; 65 bad address; 67 unknown user;
    // 75 would be deferred (a lookup that failed);
    // otherwise the sysexits code of the bounce (sysexits of Status).
    int exit_code = 0;
};

Trace trace_address(std::string_view address, const TraceContext& context);

}  // namespace mailroom::mail
