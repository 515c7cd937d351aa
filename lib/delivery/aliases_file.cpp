#include "delivery/aliases_file.hpp"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <optional>
#include <unordered_map>

#include <fmt/format.h>

#include "core/io.hpp"
#include "core/unique_fd.hpp"

namespace mailroom::mail {

namespace {

constexpr std::size_t max_shown = 60;

bool is_blank(char c) { return c == ' ' || c == '\t'; }

std::string shown(std::string_view s) {
    std::string out = s.size() <= max_shown ? std::string(s) : std::string(s.substr(0, max_shown)) + "...";
    return "'" + out + "'";
}

std::string lowercase(std::string_view s) {
    std::string out(s);
    for (char& c : out)
        if (c >= 'A' && c <= 'Z') c = static_cast<char>(c - 'A' + 'a');
    return out;
}

// An entry whose right-hand side is still being read (continuation lines).
struct Pending {
    std::string name;
    unsigned line = 0;          // of the name
    unsigned last_line = 0;     // the last physical line joined
    unsigned column = 1;        // where text starts
    std::string text;
};

class Reader {
public:
    Reader(std::string_view text, const std::string& name, const AliasesOptions& limits)
        : s_(text), name_(name), limits_(limits) {}

    core::Result<AliasesFile> run() {
        if (s_.size() > limits_.max_file_bytes)
            return core::unexpected_input(
                fmt::format("{}: error: file is larger than {} bytes", name_, limits_.max_file_bytes));
        file_.path = name_;
        // One entry per line at most: no rehash or regrowth while reading a big file.
        std::size_t lines = static_cast<std::size_t>(std::count(s_.begin(), s_.end(), '\n')) + 1;
        std::size_t expected = std::min(lines, limits_.max_entries);
        file_.entries.reserve(expected);
        first_line_.reserve(expected);
        std::optional<Pending> current;
        unsigned line_no = 0;
        std::size_t pos = 0;
        while (pos < s_.size()) {
            std::size_t nl = s_.find('\n', pos);
            bool has_newline = nl != std::string_view::npos;
            std::string_view line = s_.substr(pos, has_newline ? nl - pos : std::string_view::npos);
            pos = has_newline ? nl + 1 : s_.size();
            ++line_no;
            if (line.size() > limits_.max_line_bytes)
                return error(line_no, fmt::format("line is longer than {} bytes", limits_.max_line_bytes));
            // CRLF files (edited elsewhere) read as LF files; a CR anywhere else is an error.
            if (has_newline && !line.empty() && line.back() == '\r') line.remove_suffix(1);
            if (auto bad = bad_byte(line)) return error(line_no, *bad);

            std::size_t first = 0;
            while (first < line.size() && is_blank(line[first])) ++first;
            if (first == line.size() || line[first] == '#') continue;
            if (first > 0) {
                if (!current) return error(line_no, "continuation line with no alias before it");
                // One '\n' per physical line (comments and blank lines included), so
                // that targets keep their own line numbers.
                current->text.append(line_no - current->last_line, '\n');
                current->text.append(line);
                current->last_line = line_no;
                if (current->text.size() > limits_.max_entry_bytes)
                    return error(current->line, fmt::format("alias {} is longer than {} bytes",
                                                            shown(current->name), limits_.max_entry_bytes));
                continue;
            }
            if (current) {
                if (auto r = finish(*current); !r) return core::unexpected(r.error());
            }
            auto started = start(line, line_no);
            if (!started) return core::unexpected(started.error());
            current = std::move(*started);
        }
        if (current) {
            if (auto r = finish(*current); !r) return core::unexpected(r.error());
        }
        return std::move(file_);
    }

private:
    core::Unexpected error(unsigned line, std::string_view what) const {
        return core::unexpected_input(fmt::format("{}:{}: error: {}", name_, line, what));
    }

    static std::optional<std::string> bad_byte(std::string_view line) {
        for (std::size_t i = 0; i < line.size(); ++i) {
            auto c = static_cast<unsigned char>(line[i]);
            if (c == 0) return fmt::format("NUL byte at column {}", i + 1);
            if (c == '\r') return fmt::format("carriage return at column {}", i + 1);
            if ((c < 0x20 && c != '\t') || c == 0x7f)
                return fmt::format("control character 0x{:02x} at column {}", c, i + 1);
        }
        return std::nullopt;
    }

    // `name: ...` or `"name": ...`.
    core::Result<Pending> start(std::string_view line, unsigned line_no) const {
        Pending p;
        p.line = p.last_line = line_no;
        std::size_t i = 0;
        std::string raw;
        if (line[0] == '"') {
            for (i = 1; i < line.size() && line[i] != '"'; ++i) {
                if (line[i] == '\\' && i + 1 < line.size()) ++i;
                raw += line[i];
            }
            if (i >= line.size()) return error(line_no, "unterminated quoted alias name");
            ++i;
        } else {
            while (i < line.size() && line[i] != ':' && !is_blank(line[i])) raw += line[i++];
        }
        while (i < line.size() && is_blank(line[i])) ++i;
        if (i >= line.size() || line[i] != ':')
            return error(line_no, fmt::format("missing ':' after alias name {}", shown(raw)));
        if (raw.empty()) return error(line_no, "empty alias name");
        if (raw.size() > limits_.max_name_bytes)
            return error(line_no, fmt::format("alias name is longer than {} bytes", limits_.max_name_bytes));
        if (raw.find('@') != std::string::npos)
            return error(line_no, fmt::format("alias name {} is not a local name (no @domain on the left)", shown(raw)));
        p.name = lowercase(raw);
        ++i;  // the colon
        while (i < line.size() && is_blank(line[i])) ++i;
        p.column = static_cast<unsigned>(i + 1);
        p.text = std::string(line.substr(i));
        if (p.text.size() > limits_.max_entry_bytes)
            return error(line_no, fmt::format("alias {} is longer than {} bytes", shown(p.name), limits_.max_entry_bytes));
        return p;
    }

    core::Result<void> finish(Pending& p) {
        while (!p.text.empty() && (is_blank(p.text.back()) || p.text.back() == '\n')) p.text.pop_back();
        auto parsed = parse_targets(p.text, TargetSource::aliases, TextPosition{p.line, p.column});
        if (!parsed.ok()) return error(parsed.error->at.line, parsed.error->what);
        if (parsed.targets.empty()) return error(p.line, fmt::format("alias {} has no targets", shown(p.name)));
        auto [seen, inserted] = first_line_.try_emplace(p.name, p.line);
        if (!inserted) {
            // Postfix's rule: the first entry wins; sendmail's last-wins would let a
            // line appended at the end silently take over an existing alias.
            file_.warnings.push_back(fmt::format("{}:{}: warning: duplicate alias {} ignored: the entry at line {} is used",
                                                 name_, p.line, shown(p.name), seen->second));
            return {};
        }
        if (file_.entries.size() >= limits_.max_entries)
            return error(p.line, fmt::format("more than {} aliases", limits_.max_entries));
        file_.entries.push_back(AliasEntry{std::move(p.name), std::move(p.text), TextPosition{p.line, p.column},
                                           limits_.keep_targets ? std::move(parsed.targets)
                                                                : std::vector<ParsedTarget>{}});
        return {};
    }

    std::string_view s_;
    const std::string& name_;
    const AliasesOptions& limits_;
    AliasesFile file_;
    std::unordered_map<std::string, unsigned> first_line_;
};

}  // namespace

bool AliasesFile::needs_postmaster() const {
    for (const auto& e : entries)
        if (e.name == "postmaster") return false;
    return true;
}

core::Result<AliasesFile> parse_aliases(std::string_view text, const std::string& name, const AliasesOptions& limits) {
    return Reader(text, name, limits).run();
}

core::Result<AliasesFile> read_aliases_file(const std::string& path, const AliasesOptions& limits) {
    core::UniqueFd fd(::open(path.c_str(), O_RDONLY | O_CLOEXEC | O_NOCTTY));
    if (!fd) return core::unexpected_errno("open " + path);
    std::string text;
    struct stat st {};
    // One allocation for a regular file instead of regrowing (and copying) it.
    if (::fstat(fd.get(), &st) == 0 && S_ISREG(st.st_mode))
        text.reserve(std::min<std::size_t>(static_cast<std::size_t>(st.st_size), limits.max_file_bytes) + 1);
    char buf[1 << 16];
    for (;;) {
        auto n = core::read_some(fd.get(), buf, sizeof buf, "read " + path);
        if (!n) return core::unexpected(n.error());
        if (*n == 0) break;
        text.append(buf, *n);
        // One byte past the limit is enough for parse_aliases to report the size.
        if (text.size() > limits.max_file_bytes) break;
    }
    return parse_aliases(text, path, limits);
}

std::string render_alias_name(std::string_view name) {
    bool plain = !name.empty() && name.front() != '#' && name.front() != '"';
    for (char c : name)
        if (c == ':' || c == '"' || c == '\\' || is_blank(c)) plain = false;
    if (plain) return std::string(name);
    std::string out = "\"";
    for (char c : name) {
        if (c == '"' || c == '\\') out += '\\';
        out += c;
    }
    return out + '"';
}

std::string render_aliases(const std::vector<AliasEntry>& entries) {
    std::string out;
    for (const auto& e : entries) out += render_alias_name(e.name) + ": " + render_targets(e.targets) + "\n";
    return out;
}

}  // namespace mailroom::mail
