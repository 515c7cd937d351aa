#include "delivery/forward_path.hpp"

#include <optional>

#include "core/log.hpp"

namespace mailroom::mail {
namespace {

bool is_control(char c) {
    auto u = static_cast<unsigned char>(c);
    return u < 0x20 || u == 0x7f;
}

bool is_name_char(char c) {
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_';
}

// Quoted and escaped for a reason line: the extension is the outsider's text.
std::string quoted(std::string_view text) { return "\"" + core::escape_line(text, 200) + "\""; }

bool has_parent_component(std::string_view path) {
    size_t start = 0;
    while (start <= path.size()) {
        size_t slash = path.find('/', start);
        if (slash == std::string_view::npos) slash = path.size();
        if (path.substr(start, slash - start) == "..") return true;
        start = slash + 1;
    }
    return false;
}

// One item expanded, or the reason it is skipped.
struct Expansion {
    std::string path;
    std::optional<SkippedForwardPath::Why> why;
    std::string reason;
};

Expansion skip(SkippedForwardPath::Why why, std::string reason) { return {"", why, std::move(reason)}; }

Expansion expand_item(std::string_view item, const ForwardPathSettings& settings, const core::UserInfo& user,
                      std::string_view extension) {
    using Why = SkippedForwardPath::Why;
    std::string out;
    size_t pos = 0;
    while (pos < item.size()) {
        size_t dollar = item.find('$', pos);
        if (dollar == std::string_view::npos) {
            out.append(item.substr(pos));
            break;
        }
        out.append(item.substr(pos, dollar - pos));
        pos = dollar + 1;
        bool braced = pos < item.size() && item[pos] == '{';
        size_t start = braced ? pos + 1 : pos;
        size_t end = start;
        while (end < item.size() && is_name_char(item[end])) ++end;
        bool closed = !braced || (end < item.size() && item[end] == '}');
        if (end == start || !closed) {
            out += '$';  // not a variable: kept, as the configuration keeps it
            continue;
        }
        std::string_view name = item.substr(start, end - start);
        pos = braced ? end + 1 : end;
        if (name == "home") {
            // An empty home would turn "$home/.forward" into "/.forward".
            if (user.home.empty() || user.home.front() != '/')
                return skip(Why::not_absolute, "the home folder " + quoted(user.home) + " is not an absolute path");
            out += user.home;
        } else if (name == "user") {
            out += user.name;
        } else if (name == "extension" || name == "recipient_delimiter") {
            // The delimiter only means something with an extension after it.
            if (extension.empty() || (name == "recipient_delimiter" && settings.recipient_delimiter.empty()))
                return skip(Why::no_extension, "the address has no extension");
            if (auto why = unsafe_extension_reason(extension); !why.empty())
                return skip(Why::unsafe_extension, why);
            out += name == "extension" ? std::string(extension) : settings.recipient_delimiter;
        } else {
            return skip(Why::unknown_variable, "unknown variable $" + core::escape_line(name, 100));
        }
    }
    if (out.empty() || out.front() != '/')
        return skip(Why::not_absolute, "not an absolute path: " + quoted(out));
    if (has_parent_component(out)) return skip(Why::parent_component, "holds a \"..\" component: " + quoted(out));
    return {std::move(out), std::nullopt, ""};
}

}  // namespace

ForwardPathSettings ForwardPathSettings::from_config(const core::Config& config) {
    ForwardPathSettings settings;
    settings.items = config.list("forward_path");
    settings.recipient_delimiter = config.str("recipient_delimiter");
    return settings;
}

std::string unsafe_extension_reason(std::string_view extension) {
    if (extension.find('/') != std::string_view::npos) return "extension " + quoted(extension) + " holds '/'";
    if (!extension.empty() && extension.front() == '.')
        return "extension " + quoted(extension) + " starts with '.'";
    for (char c : extension)
        if (is_control(c)) return "extension " + quoted(extension) + " holds a control byte";
    return "";
}

ForwardPaths expand_forward_path(const ForwardPathSettings& settings, const core::UserInfo& user,
                                 std::string_view extension) {
    ForwardPaths result;
    // No delimiter, no extension: the configuration has already put the (empty)
    // delimiter into the items, so "$home/.forward${extension}" must not see one.
    if (settings.recipient_delimiter.empty()) extension = {};
    for (const auto& item : settings.items) {
        Expansion e = expand_item(item, settings, user, extension);
        if (e.why) {
            result.skipped.push_back({core::escape_line(item), *e.why, std::move(e.reason)});
            continue;
        }
        result.paths.push_back(std::move(e.path));
    }
    return result;
}

}  // namespace mailroom::mail
