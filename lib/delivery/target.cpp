#include "delivery/target.hpp"

namespace mailroom::mail {

std::string Target::describe() const {
    switch (kind()) {
        case Target::Kind::mailbox: {
            const auto& location = std::get<MailboxTarget>(what).location;
            return (location.format == MailboxFormat::maildir ? "maildir " : "mailbox ") + location.path;
        }
        case Target::Kind::file: return "file " + std::get<FileTarget>(what).path;
        case Target::Kind::command: return "command \"" + std::get<CommandTarget>(what).command + "\"";
        case Target::Kind::remote: return "remote " + std::get<RemoteTarget>(what).address;
    }
    return "?";
}

Target Target::mailbox(std::string address, core::UserInfo user, MailboxLocation location, std::string provenance) {
    return Target{std::move(address), std::move(provenance), std::move(user), std::nullopt,
                  MailboxTarget{std::move(location)}};
}

Target Target::file(std::string address, std::string path, core::UserInfo user, core::Credentials credentials,
                    std::string provenance) {
    return Target{std::move(address), std::move(provenance), std::move(user), std::move(credentials),
                  FileTarget{std::move(path)}};
}

Target Target::command(std::string address, std::string command, core::UserInfo user,
                       core::Credentials credentials, std::string provenance) {
    return Target{std::move(address), std::move(provenance), std::move(user), std::move(credentials),
                  CommandTarget{std::move(command)}};
}

Target Target::remote(std::string address, std::string provenance) {
    return Target{address, std::move(provenance), {}, std::nullopt, RemoteTarget{address}};
}

}  // namespace mailroom::mail
