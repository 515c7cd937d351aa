// Everything a queue runner works with, built once: the spool, the settings from
// the configuration, the account database, the three log roles, the clock, the
// rights of this process, and the sources expansion reads (aliases.cdb, .forward
// and :include: files). `mta -q`, `mta -d`, `sendmail -odi` and
// `mailctl flush` all get theirs from `from_config`, so they cannot drift apart;
// tests build one by hand with fakes (a FixedClock, a fake UserDb, captured logs).
// Must never: hold a mutable global, or decide rights from anything but `rights`.
#pragma once

#include <memory>

#include "core/clock.hpp"
#include "core/config.hpp"
#include "core/log.hpp"
#include "core/users.hpp"
#include "delivery/delivery_agents.hpp"
#include "delivery/delivery_rights.hpp"
#include "delivery/expander.hpp"
#include "delivery/run_as.hpp"
#include "queue/mailbox_transport.hpp"
#include "queue/queue_policy.hpp"
#include "queue/remote_transport.hpp"
#include "queue/spool.hpp"

namespace mailroom::mail {

// One Logger per Postfix role the runner speaks as (SPEC section 9).
struct RunnerLogs {
    core::Logger qmgr;
    core::Logger local;
    core::Logger bounce;
    core::Logger lmtp;  // deliveries through local_transport = lmtp:...
    core::Logger smtp = core::Logger::to_stderr("smtp");  // remote deliveries (the SMTP transport)

    // The `log` destination of the configuration; a log that cannot be opened
    // falls back to stderr rather than stopping delivery. echo: also on stderr (-v).
    static RunnerLogs open(const std::string& destination, bool echo_to_stderr = false);
};

struct RunnerContext {
    const Spool& spool;
    QueueSettings settings;
    std::shared_ptr<const core::UserDb> users;
    RunnerLogs logs;
    std::shared_ptr<const core::Clock> clock;
    DeliveryRights rights;
    // Expansion: where aliases, .forward and :include: files come from, and the
    // facts that decide who a file or command runs as.
    ExpansionSettings expansion;
    std::shared_ptr<const ExpansionSources> sources;
    std::shared_ptr<const RunAsFacts> facts;
    RunAsSettings run_as;
    // Long-lived per-user writers for mailbox and file leaves (delivery/delivery_agents.hpp);
    // none: a child per write. Shared by the copies of a context, owned by the process
    // that starts them (a forked worker starts its own).
    std::shared_ptr<DeliveryAgents> agents;
    // local_transport = lmtp:...: mailbox leaves go there, several a transaction
    // (queue/mailbox_transport.hpp); none: the local writers above.
    std::shared_ptr<MailboxTransport> mailbox_transport;
    // Set by from_config when local_transport is not "local": then a mailbox leaf
    // without a transport attached is deferred, never written here by mistake.
    bool mailbox_transport_required = false;
    // Remote leaves go there (queue/remote_transport.hpp), grouped by destination;
    // none: they are deferred 4.3.5 "remote delivery not configured".
    std::shared_ptr<RemoteTransport> remote_transport;

    // The real thing: settings and logs from `config`, accounts through NSS, the
    // system clock, this process's rights.
    static RunnerContext from_config(const core::Config& config, const Spool& spool, bool echo_to_stderr = false);
};

}  // namespace mailroom::mail
