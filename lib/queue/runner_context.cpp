#include "queue/runner_context.hpp"

#include "delivery/alias_db.hpp"
#include "delivery/expansion_sources.hpp"

namespace mailroom::mail {

namespace {

core::Logger open_role(const std::string& role, const std::string& destination, bool echo) {
    auto opened = core::Logger::open(role, destination);
    if (!opened) return core::Logger::to_stderr(role);
    opened->echo_to_stderr(echo);
    return std::move(*opened);
}

}  // namespace

RunnerLogs RunnerLogs::open(const std::string& destination, bool echo_to_stderr) {
    return RunnerLogs{open_role("qmgr", destination, echo_to_stderr), open_role("local", destination, echo_to_stderr),
                      open_role("bounce", destination, echo_to_stderr), open_role("lmtp", destination, echo_to_stderr),
                      open_role("smtp", destination, echo_to_stderr)};
}

RunnerContext RunnerContext::from_config(const core::Config& config, const Spool& spool, bool echo_to_stderr) {
    auto users = std::make_shared<core::NssUserDb>();
    auto environment = ExpansionEnvironment::from_config(config, users);
    RunnerLogs logs = RunnerLogs::open(config.str("log"), echo_to_stderr);
    // As Postfix and sendmail warn: aliases edited but not compiled are not in use.
    if (auto fresh = check_alias_db_freshness(config.str("aliases")); !fresh.warning().empty()) {
        logs.qmgr.warning(fresh.warning());
    }
    return RunnerContext{spool,
                         QueueSettings::from_config(config),
                         users,
                         std::move(logs),
                         std::make_shared<core::SystemClock>(),
                         DeliveryRights::of_this_process(),
                         environment.settings,
                         environment.sources,
                         environment.sources,
                         environment.run_as,
                         std::make_shared<DeliveryAgents>(),
                         nullptr,
                         config.str("local_transport") != "local"};
}

}  // namespace mailroom::mail
