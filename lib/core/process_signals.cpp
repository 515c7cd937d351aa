#include "core/process_signals.hpp"

#include <signal.h>

namespace mailroom::core {

namespace {

constexpr int write_signals[] = {SIGPIPE, SIGXFSZ};

void set_all(void (*handler)(int)) {
    struct sigaction action {};
    action.sa_handler = handler;
    sigemptyset(&action.sa_mask);
    for (int sig : write_signals) ::sigaction(sig, &action, nullptr);
}

}  // namespace

void ignore_write_signals() { set_all(SIG_IGN); }

void restore_default_signals() { set_all(SIG_DFL); }

}  // namespace mailroom::core
