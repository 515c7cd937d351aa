#include "queue/runner_context.hpp"

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
                      open_role("bounce", destination, echo_to_stderr)};
}

RunnerContext RunnerContext::from_config(const core::Config& config, const Spool& spool, bool echo_to_stderr) {
    return RunnerContext{spool,
                         QueueSettings::from_config(config),
                         std::make_shared<core::NssUserDb>(),
                         RunnerLogs::open(config.str("log"), echo_to_stderr),
                         std::make_shared<core::SystemClock>(),
                         DeliveryRights::of_this_process()};
}

}  // namespace mailroom::mail
