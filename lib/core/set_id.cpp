#include "core/set_id.hpp"

#include <sys/auxv.h>
#include <unistd.h>

extern char** environ;

namespace mailroom::core {

bool running_set_id() {
    if (::getuid() != ::geteuid() || ::getgid() != ::getegid()) return true;
    // Ids equal but the kernel still granted something (file capabilities).
    return ::getauxval(AT_SECURE) != 0;
}

std::vector<char*> child_environment() {
    std::vector<char*> envp;
    if (running_set_id()) {
        envp.push_back(const_cast<char*>(set_id_child_path));
    } else {
        for (char** e = environ; e && *e; ++e) envp.push_back(*e);
    }
    envp.push_back(nullptr);
    return envp;
}

}  // namespace mailroom::core
