#include "core/config.hpp"

#include <fcntl.h>
#include <netdb.h>
#include <unistd.h>

#include <algorithm>
#include <cassert>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <optional>

#include <fmt/format.h>

#include "core/config_keys.hpp"
#include "core/io.hpp"
#include "core/set_id.hpp"
#include "core/unique_fd.hpp"

namespace mailroom::core {

namespace {

// Bounds on input, so that a wrong -C (a binary, /dev/zero) fails fast and cleanly.
constexpr size_t max_file_bytes = 4 << 20;
// A physical line, a joined logical line and an expanded value are all held to this;
// the last one also stops `a = $b$b$b`, `b = $c$c$c`... from growing exponentially.
constexpr size_t max_line_bytes = 64 << 10;
// Longest value quoted in an error line.
constexpr size_t max_quoted = 100;

std::string where(const std::string& name, unsigned line) {
    return line ? fmt::format("{}:{}: ", name, line) : name + ": ";
}

Unexpected error_at(const std::string& name, unsigned line, std::string_view what) {
    return unexpected(input_error(where(name, line) + std::string(what)));
}

std::string quoted(std::string_view v) {
    if (v.size() <= max_quoted) return fmt::format("'{}'", v);
    return fmt::format("'{}...'", v.substr(0, max_quoted));
}

bool is_blank(char c) { return c == ' ' || c == '\t'; }
bool is_key_char(char c) {
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_';
}

std::string_view trim(std::string_view s) {
    while (!s.empty() && is_blank(s.front())) s.remove_prefix(1);
    while (!s.empty() && is_blank(s.back())) s.remove_suffix(1);
    return s;
}

// What is wrong with the bytes of one physical line (CR of CRLF already removed), if anything.
std::optional<std::string> bad_bytes(std::string_view line) {
    if (line.size() > max_line_bytes)
        return fmt::format("line is longer than {} bytes", max_line_bytes);
    for (char c : line) {
        auto u = static_cast<unsigned char>(c);
        if (u == 0) return std::string("line contains a NUL byte");
        if (u == '\r') return std::string("line contains a carriage return not followed by a newline");
        if ((u < 0x20 && u != '\t') || u == 0x7f)
            return fmt::format("line contains the control character 0x{:02x}", u);
    }
    return std::nullopt;
}

std::string escape_dollars(std::string_view s) {
    std::string out;
    for (char c : s) {
        if (c == '$') out += '$';
        out += c;
    }
    return out;
}

struct AddrinfoFree {
    void operator()(addrinfo* a) const { freeaddrinfo(a); }
};

// gethostname, made fully qualified through the resolver when it has no dot (as
// sendmail does); without a network the plain name stays, which is fine.
std::string system_host_name() {
    char buf[256] = {};
    if (gethostname(buf, sizeof buf - 1) != 0 || buf[0] == '\0') return "localhost";
    std::string name(buf);
    if (name.find('.') != std::string::npos) return name;
    addrinfo hints{};
    hints.ai_flags = AI_CANONNAME;
    addrinfo* found = nullptr;
    if (getaddrinfo(name.c_str(), nullptr, &hints, &found) != 0) return name;
    std::unique_ptr<addrinfo, AddrinfoFree> owner(found);
    if (found && found->ai_canonname && std::strchr(found->ai_canonname, '.'))
        return found->ai_canonname;
    return name;
}

// mydomain's default: the host name minus its first label.
std::string domain_of(std::string_view host) {
    size_t dot = host.find('.');
    if (dot == std::string_view::npos || dot + 1 == host.size()) return "localdomain";
    return std::string(host.substr(dot + 1));
}

size_t key_index_or_die(std::string_view key) {
    auto i = config_key_index(key);
    if (!i) {
        // A key missing from the table is a bug in the caller, not bad input.
        std::fprintf(stderr, "mailroom: bug: unknown configuration key '%.*s'\n",
                     static_cast<int>(key.size()), key.data());
        std::abort();
    }
    return *i;
}

void require_type(size_t index, KeyType type) {
    const ConfigKey& k = config_keys()[index];
    if (k.type != type) {
        std::fprintf(stderr, "mailroom: bug: configuration key '%.*s' read as the wrong type\n",
                     static_cast<int>(k.name.size()), k.name.data());
        std::abort();
    }
}

const size_t myhostname_index = 0;  // table order is fixed by SPEC; checked in parse

}  // namespace

// Expands every entry depth first, detecting loops with an in-progress mark, and
// validates each expanded value against its type.
class Config::Resolver {
public:
    explicit Resolver(Config& config)
        : c_(config), state_(config.entries_.size(), State::todo) {}

    Result<void> run() {
        for (size_t i = 0; i < c_.entries_.size(); ++i) {
            if (auto r = expand(i); !r) return r;
            const Entry& e = c_.entries_[i];
            const ConfigKey& k = config_keys()[i];
            if (auto want = check_value(k.type, e.value))
                return error_at(c_.name_, e.line, fmt::format("bad value for '{}': {} ({})", k.name,
                                                              quoted(e.value), *want));
        }
        return {};
    }

private:
    enum class State { todo, busy, done };

    Result<void> expand(size_t i) {
        if (state_[i] == State::done) return {};
        if (state_[i] == State::busy) return loop_error(i);
        state_[i] = State::busy;
        path_.push_back(i);
        Entry& e = c_.entries_[i];
        if (e.line == 0 && config_keys()[i].default_kind == DefaultKind::host_domain) {
            // The default follows myhostname as configured, so expand that first.
            if (auto r = expand(myhostname_index); !r) return r;
            e.raw = escape_dollars(domain_of(c_.entries_[myhostname_index].value));
        }
        std::string out;
        std::string_view raw = e.raw;
        size_t pos = 0;
        while (pos < raw.size()) {
            size_t dollar = raw.find('$', pos);
            out.append(raw.substr(pos, dollar - pos));
            if (dollar == std::string_view::npos) break;
            pos = dollar + 1;
            if (pos < raw.size() && raw[pos] == '$') {
                out += '$';
                ++pos;
                continue;
            }
            bool braced = pos < raw.size() && raw[pos] == '{';
            size_t start = pos + (braced ? 1 : 0);
            size_t end = start;
            while (end < raw.size() && is_key_char(raw[end])) ++end;
            bool closed = !braced || (end < raw.size() && raw[end] == '}');
            auto ref = config_key_index(raw.substr(start, end - start));
            if (end == start || !closed || !ref) {
                out += '$';  // not a key: kept for whoever expands it later
                continue;
            }
            if (auto r = expand(*ref); !r) return r;
            out += c_.entries_[*ref].value;
            pos = end + (braced ? 1 : 0);
            if (out.size() > max_line_bytes)
                return error_at(c_.name_, e.line,
                                fmt::format("value of '{}' is longer than {} bytes after expansion",
                                            config_keys()[i].name, max_line_bytes));
        }
        e.value = std::move(out);
        state_[i] = State::done;
        path_.pop_back();
        return {};
    }

    // path_ holds the keys being expanded; the loop is the part from i onwards. The
    // line reported is that of the first key in the loop the file gives.
    Unexpected loop_error(size_t i) {
        auto first = std::find(path_.begin(), path_.end(), i);
        std::vector<size_t> loop(first, path_.end());
        auto given = std::find_if(loop.begin(), loop.end(),
                                  [&](size_t k) { return c_.entries_[k].line != 0; });
        if (given != loop.end()) std::rotate(loop.begin(), given, loop.end());
        std::string chain;
        for (size_t k : loop) chain += std::string(config_keys()[k].name) + " -> ";
        chain += config_keys()[loop.front()].name;
        std::string_view key = config_keys()[loop.front()].name;
        return error_at(c_.name_, c_.entries_[loop.front()].line,
                        fmt::format("expansion loop in '{}': {}", key, chain));
    }

    Config& c_;
    std::vector<State> state_;
    std::vector<size_t> path_;
};

Result<Config> Config::parse(std::string_view text, const std::string& name) {
    if (text.size() > max_file_bytes)
        return error_at(name, 0, fmt::format("file is larger than {} bytes", max_file_bytes));
    auto keys = config_keys();
    Config c;
    c.name_ = name;
    c.entries_.resize(keys.size());

    Entry* current = nullptr;  // the logical line a continuation joins
    unsigned line_no = 0;
    size_t pos = 0;
    while (pos < text.size()) {
        size_t nl = text.find('\n', pos);
        std::string_view line = text.substr(pos, nl == std::string_view::npos ? nl : nl - pos);
        pos = nl == std::string_view::npos ? text.size() : nl + 1;
        ++line_no;
        if (!line.empty() && line.back() == '\r') line.remove_suffix(1);
        if (auto bad = bad_bytes(line)) return error_at(name, line_no, *bad);

        std::string_view body = trim(line);
        if (body.empty() || body.front() == '#') continue;
        if (is_blank(line.front())) {
            if (!current)
                return error_at(name, line_no, "continuation line with no 'key = value' line before it");
            current->raw += current->raw.empty() ? "" : " ";
            current->raw += body;
            if (current->raw.size() > max_line_bytes)
                return error_at(name, line_no,
                                fmt::format("line is longer than {} bytes", max_line_bytes));
            continue;
        }
        size_t eq = body.find('=');
        std::string_view key = trim(body.substr(0, eq));
        bool key_ok = eq != std::string_view::npos && !key.empty() &&
                      std::all_of(key.begin(), key.end(), is_key_char);
        if (!key_ok) return error_at(name, line_no, "line is not 'key = value'");
        auto index = config_key_index(key);
        if (!index) return error_at(name, line_no, fmt::format("unknown key {}", quoted(key)));
        // A key given twice: the later line wins, as in Postfix.
        current = &c.entries_[*index];
        current->raw = std::string(trim(body.substr(eq + 1)));
        current->line = line_no;
    }

    assert(keys[myhostname_index].default_kind == DefaultKind::host_name);
    for (size_t i = 0; i < keys.size(); ++i) {
        Entry& e = c.entries_[i];
        if (e.line != 0) continue;
        // Only look the host name up when the file does not give it: it may ask DNS.
        if (keys[i].default_kind == DefaultKind::host_name) e.raw = escape_dollars(system_host_name());
        else e.raw = std::string(keys[i].default_value);
    }
    if (auto r = Resolver(c).run(); !r) return unexpected(r.error());
    return c;
}

Result<Config> Config::load(const std::string& path) {
    UniqueFd fd(::open(path.c_str(), O_RDONLY | O_CLOEXEC | O_NOCTTY));
    if (!fd) return unexpected_errno("cannot open " + path);
    std::string text;
    char buf[65536];
    for (;;) {
        auto n = read_some(fd.get(), buf, sizeof buf, path);
        if (!n) return unexpected(n.error());
        if (*n == 0) break;
        text.append(buf, *n);
        // One byte past the limit is enough for parse to report the size.
        if (text.size() > max_file_bytes) break;
    }
    return parse(text, path);
}

Config Config::defaults() {
    auto c = parse("", "defaults");
    if (!c) {
        std::fprintf(stderr, "mailroom: bug: built-in defaults rejected: %s\n",
                     c.error().message().c_str());
        std::abort();
    }
    return std::move(c).value();
}

std::string Config::installed_path() { return MAILROOM_SYSCONFDIR "/mailroom.conf"; }

Result<ConfigSource> Config::choose_source(const std::string& dash_c, const char* env_conf, bool set_id) {
    std::string given = dash_c;
    const char* how = "-C";
    if (given.empty() && env_conf && *env_conf) {
        given = env_conf;
        how = "MAILROOM_CONF";
    }
    if (given.empty() || (set_id && given == installed_path())) return ConfigSource{installed_path(), false};
    if (!set_id) return ConfigSource{given, true};
    // The caller's own words, on the caller's own terminal; still no control bytes.
    std::string shown = given.substr(0, std::min(given.size(), max_quoted));
    for (char& c : shown) {
        if (static_cast<unsigned char>(c) < 0x20 || c == 0x7f) c = '?';
    }
    return unexpected_input(fmt::format("will not read {} given by {} (a program running set-id reads only {})",
                                        shown, how, installed_path()));
}

Result<ConfigSource> Config::choose_source(const std::string& dash_c) {
    return choose_source(dash_c, std::getenv("MAILROOM_CONF"), running_set_id());
}

Result<Config> Config::load_for_program(const ConfigSource& source) {
    if (!source.named && ::access(source.path.c_str(), F_OK) != 0 && errno == ENOENT) return defaults();
    return load(source.path);
}

size_t Config::index_of(std::string_view key) const { return key_index_or_die(key); }

const std::string& Config::str(std::string_view key) const { return entries_[index_of(key)].value; }

std::vector<std::string> Config::list(std::string_view key) const { return split_list(str(key)); }

uint64_t Config::size(std::string_view key) const {
    size_t i = index_of(key);
    require_type(i, KeyType::size);
    return parse_size(entries_[i].value).value_or(0);  // validated in parse
}

uint64_t Config::number(std::string_view key) const {
    size_t i = index_of(key);
    require_type(i, KeyType::number);
    return parse_number(entries_[i].value).value_or(0);
}

std::chrono::seconds Config::duration(std::string_view key) const {
    size_t i = index_of(key);
    require_type(i, KeyType::time);
    return parse_time(entries_[i].value).value_or(std::chrono::seconds(0));
}

std::string Config::default_text(size_t index) const {
    switch (config_keys()[index].default_kind) {
        case DefaultKind::host_name: return escape_dollars(system_host_name());
        case DefaultKind::host_domain:
            return escape_dollars(domain_of(entries_[myhostname_index].value));
        case DefaultKind::literal: break;
    }
    return std::string(config_keys()[index].default_value);
}

bool Config::is_default(std::string_view key) const {
    size_t i = index_of(key);
    return entries_[i].line == 0 || entries_[i].raw == default_text(i);
}

std::string Config::dump(bool all) const {
    std::string out;
    auto keys = config_keys();
    for (size_t i = 0; i < keys.size(); ++i) {
        if (!all && is_default(keys[i].name)) continue;
        const std::string& raw = entries_[i].raw;
        // An empty value prints as `key =`, without trailing white space.
        out += raw.empty() ? fmt::format("{} =\n", keys[i].name)
                           : fmt::format("{} = {}\n", keys[i].name, raw);
    }
    return out;
}

}  // namespace mailroom::core
