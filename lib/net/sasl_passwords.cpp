#include "net/sasl_passwords.hpp"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <fmt/format.h>

#include <utility>

#include "core/io.hpp"
#include "core/unique_fd.hpp"

namespace mailroom::net {

namespace {

bool is_blank(char c) { return c == ' ' || c == '\t'; }

std::string_view trimmed(std::string_view s) {
    while (!s.empty() && is_blank(s.front())) s.remove_prefix(1);
    while (!s.empty() && is_blank(s.back())) s.remove_suffix(1);
    return s;
}

std::string lower(std::string_view s) {
    std::string out(s);
    for (auto& c : out)
        if (c >= 'A' && c <= 'Z') c = static_cast<char>(c - 'A' + 'a');
    return out;
}

}  // namespace

core::Result<SaslPasswords> SaslPasswords::parse(std::string_view text, std::string_view name) {
    auto error = [&](size_t line, std::string what) {
        return core::unexpected_input(fmt::format("{}:{}: {}", name, line, what));
    };
    if (text.size() > max_file_bytes)
        return core::unexpected_input(fmt::format("{}: file is larger than {} octets (1 MiB)", name, max_file_bytes));
    SaslPasswords table;
    size_t line_no = 0;
    while (!text.empty()) {
        ++line_no;
        auto newline = text.find('\n');
        std::string_view line = text.substr(0, newline);
        text.remove_prefix(newline == text.npos ? text.size() : newline + 1);
        if (!line.empty() && line.back() == '\r') line.remove_suffix(1);  // a CRLF file reads as an LF file
        if (line.size() > max_line_bytes)
            return error(line_no, fmt::format("line is longer than {} octets", max_line_bytes));
        // Control bytes are named by their value only: the line may hold a password.
        for (char c : line) {
            auto byte = static_cast<unsigned char>(c);
            if ((byte < 0x20 && byte != '\t') || byte == 0x7f)
                return error(line_no, fmt::format("a control character (0x{:02x})", byte));
        }
        std::string_view rest = trimmed(line);
        if (rest.empty() || rest.front() == '#') continue;

        size_t end = 0;
        while (end < rest.size() && !is_blank(rest[end])) ++end;
        std::string_view host = rest.substr(0, end);
        std::string_view login = trimmed(rest.substr(end));
        // Not quoted: a line without its HOST would show its USER:PASSWORD here.
        if (!Relayhost::parse(host))
            return error(line_no, "HOST is not written as relayhost is (host, host:port, [host] or [host]:port)");
        if (login.empty()) return error(line_no, "HOST without USER:PASSWORD");
        size_t colon = login.find(':');
        if (colon == std::string_view::npos) return error(line_no, "want USER:PASSWORD after HOST (no ':' found)");
        if (colon == 0) return error(line_no, "empty USER before ':'");
        if (colon + 1 == login.size()) return error(line_no, "empty PASSWORD after ':'");
        std::string key = lower(host);
        if (auto first = table.logins_.find(key); first != table.logins_.end())
            return error(line_no, fmt::format("HOST {} is given again (first on line {})", host, first->second.line));
        table.logins_.emplace(std::move(key),
                              Entry{Login{std::string(login.substr(0, colon)), std::string(login.substr(colon + 1))},
                                    line_no});
    }
    return table;
}

core::Result<SaslPasswords> SaslPasswords::load(const std::string& path) {
    // O_NONBLOCK: a FIFO planted at the path must not hang the start.
    core::UniqueFd fd(::open(path.c_str(), O_RDONLY | O_CLOEXEC | O_NOCTTY | O_NONBLOCK));
    if (!fd) return core::unexpected_errno("open " + path);
    struct stat st {};
    if (::fstat(fd.get(), &st) != 0) return core::unexpected_errno("stat " + path);
    if (!S_ISREG(st.st_mode)) return core::unexpected_input(path + ": not a regular file");
    const unsigned mode = st.st_mode & 07777;
    if (st.st_mode & (S_IROTH | S_IWOTH))
        return core::unexpected_input(fmt::format(
            "{}: {} by every user (mode {:04o}), and it holds passwords: make it mode 0600 or 0640 (chmod o-rw {})",
            path, (st.st_mode & S_IROTH) ? "readable" : "writable", mode, path));
    if (static_cast<uint64_t>(st.st_size) > max_file_bytes)
        return core::unexpected_input(fmt::format("{}: file is larger than {} octets (1 MiB)", path, max_file_bytes));
    // A file that grew while read stops one octet past the limit: parse refuses it.
    auto text = core::read_up_to(fd.get(), max_file_bytes, path);
    if (!text) return core::unexpected(text.error());
    return parse(*text, path);
}

std::optional<SaslPasswords::Login> SaslPasswords::find(const Relayhost& relayhost) const {
    for (const std::string& key : {relayhost.written(), relayhost.host}) {
        auto found = logins_.find(lower(key));
        if (found != logins_.end()) return found->second.login;
    }
    return std::nullopt;
}

}  // namespace mailroom::net
