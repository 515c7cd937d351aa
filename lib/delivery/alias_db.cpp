#include "delivery/alias_db.hpp"

#include <cdb.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <charconv>
#include <cstring>

#include <fmt/format.h>

#include "core/atomic_file.hpp"
#include "core/unique_fd.hpp"

namespace mailroom::mail {

namespace {

constexpr std::string_view record_magic = "mailroom-alias 1\n";
constexpr mode_t db_mode = 0644;  // anyone may look an alias up (mailctl trace); only the owner writes

std::string lowercase(std::string_view s) {
    std::string out(s);
    for (char& c : out)
        if (c >= 'A' && c <= 'Z') c = static_cast<char>(c - 'A' + 'a');
    return out;
}

bool read_number(std::string_view& s, unsigned& out, char end) {
    auto [p, ec] = std::from_chars(s.data(), s.data() + s.size(), out);
    if (ec != std::errc() || p == s.data() || p == s.data() + s.size() || *p != end) return false;
    s.remove_prefix(static_cast<std::size_t>(p - s.data()) + 1);
    return true;
}

// tinycdb has no way to drop a half-made database but finishing it: that frees its
// record lists; what it writes goes into the temp file, which ~TempFile removes.
void abandon(struct cdb_make& maker) { (void)cdb_make_finish(&maker); }

bool before(const struct timespec& a, const struct timespec& b) {
    return a.tv_sec < b.tv_sec || (a.tv_sec == b.tv_sec && a.tv_nsec < b.tv_nsec);
}

}  // namespace

std::string alias_db_path(const std::string& source_path) { return source_path + ".cdb"; }

std::string encode_alias_record(const AliasEntry& entry) {
    return fmt::format("{}{} {}\n{}", record_magic, entry.at.line, entry.at.column, entry.text);
}

core::Result<AliasEntry> decode_alias_record(std::string_view name, std::string_view record) {
    auto corrupt = [&](std::string_view why) {
        return core::unexpected_input(fmt::format("corrupt record for alias '{}' ({})", name, why));
    };
    if (record.substr(0, record_magic.size()) != record_magic) return corrupt("unknown record format");
    record.remove_prefix(record_magic.size());
    AliasEntry e;
    e.name = std::string(name);
    if (!read_number(record, e.at.line, ' ') || !read_number(record, e.at.column, '\n') || e.at.column == 0)
        return corrupt("bad position");
    e.text = std::string(record);
    auto parsed = parse_targets(e.text, TargetSource::aliases, e.at);
    if (!parsed.ok()) return corrupt(parsed.error->what);
    e.targets = std::move(parsed.targets);
    return e;
}

core::Result<AliasDbStats> compile_alias_db(const AliasesFile& file, const std::string& db_path) {
    auto temp = core::TempFile::create_for(db_path, db_mode);
    if (!temp) return core::unexpected(temp.error());
    struct cdb_make maker {};
    if (cdb_make_start(&maker, temp->fd()) != 0) return core::unexpected_errno("start " + temp->path());
    AliasDbStats stats;
    auto add = [&](const AliasEntry& e) -> core::Result<void> {
        std::string value = encode_alias_record(e);
        // Each name is added once (aliases_file dropped duplicates): plain add, no index scan.
        if (cdb_make_add(&maker, e.name.data(), static_cast<unsigned>(e.name.size()), value.data(),
                         static_cast<unsigned>(value.size())) != 0)
            return core::unexpected_errno("write " + temp->path());
        ++stats.aliases;
        stats.longest = std::max(stats.longest, e.text.size());
        stats.total += e.name.size() + e.text.size();
        return {};
    };
    for (const auto& e : file.entries) {
        if (auto r = add(e); !r) {
            abandon(maker);
            return core::unexpected(r.error());
        }
    }
    if (file.needs_postmaster()) {
        AliasEntry postmaster{"postmaster", "root", TextPosition{0, 1}, {}};
        if (auto r = add(postmaster); !r) {
            abandon(maker);
            return core::unexpected(r.error());
        }
        stats.postmaster_added = true;
    }
    // Writes the hash tables and flushes cdb_make's buffer (and frees it).
    if (cdb_make_finish(&maker) != 0) return core::unexpected_errno("write " + temp->path());
    // TempFile::commit: fsync, rename over db_path, fsync the folder (each step's crash
    // reasoning is in core/atomic_file.cpp); a failure removes the temp file.
    if (auto r = temp->commit(); !r) return core::unexpected(r.error());
    return stats;
}

struct AliasDb::Mapping {
    core::UniqueFd fd;
    struct cdb db {};
    bool mapped = false;
    ~Mapping() {
        if (mapped) cdb_free(&db);
    }
};

AliasDb::AliasDb(std::unique_ptr<Mapping> mapping, std::string path, std::string source, uid_t owner)
    : mapping_(std::move(mapping)), path_(std::move(path)), source_(std::move(source)), owner_(owner) {}
AliasDb::AliasDb(AliasDb&&) noexcept = default;
AliasDb& AliasDb::operator=(AliasDb&&) noexcept = default;
AliasDb::~AliasDb() = default;

core::Result<AliasDb> AliasDb::open(const std::string& db_path, std::string source_path) {
    auto m = std::make_unique<Mapping>();
    m->fd = core::UniqueFd(::open(db_path.c_str(), O_RDONLY | O_CLOEXEC | O_NOCTTY));
    if (!m->fd) return core::unexpected_errno("open " + db_path);
    struct stat st {};
    if (::fstat(m->fd.get(), &st) != 0) return core::unexpected_errno("stat " + db_path);
    if (!S_ISREG(st.st_mode)) return core::unexpected_errno("open " + db_path, EINVAL);
    // cdb_init maps the file; it fails with EPROTO on a file too short to be a cdb.
    errno = 0;
    if (cdb_init(&m->db, m->fd.get()) != 0)
        return core::unexpected_errno("read " + db_path + " (not a constant database?)", errno ? errno : EPROTO);
    m->mapped = true;
    return AliasDb(std::move(m), db_path, std::move(source_path), st.st_uid);
}

core::Result<std::optional<AliasRecord>> AliasDb::lookup(std::string_view name) const {
    std::string key = lowercase(name);
    struct cdb* db = &mapping_->db;
    errno = 0;
    int found = cdb_find(db, key.data(), static_cast<unsigned>(key.size()));
    if (found < 0) return core::unexpected_errno("read " + path_, errno ? errno : EPROTO);
    if (found == 0) return std::optional<AliasRecord>();
    std::string value(cdb_datalen(db), '\0');
    if (cdb_read(db, value.data(), cdb_datalen(db), cdb_datapos(db)) != 0)
        return core::unexpected_errno("read " + path_, errno ? errno : EPROTO);
    auto entry = decode_alias_record(key, value);
    if (!entry) return core::unexpected_input(path_ + ": " + entry.error().message());
    AliasRecord r{key, source_, entry->at.line, std::move(entry->targets)};
    return std::optional<AliasRecord>(std::move(r));
}

std::string AliasRecord::provenance() const {
    if (line == 0) return alias_db_path(source_path) + " (added by newaliases)";
    return fmt::format("{}:{}", source_path, line);
}

std::string AliasDbFreshness::warning() const {
    switch (state) {
        case State::fresh:
        case State::source_missing: return {};
        case State::db_missing: return fmt::format("database {} is missing: run newaliases", db_path);
        case State::db_older: return fmt::format("database {} is older than source file {}", db_path, source_path);
        case State::cannot_check:
            return fmt::format("cannot compare {} with {} ({})", db_path, source_path, std::strerror(error_number));
    }
    return {};
}

AliasDbFreshness check_alias_db_freshness(const std::string& source_path) {
    AliasDbFreshness f;
    f.source_path = source_path;
    f.db_path = alias_db_path(source_path);
    struct stat source {}, db {};
    bool have_source = ::stat(source_path.c_str(), &source) == 0;
    int source_errno = errno;
    bool have_db = ::stat(f.db_path.c_str(), &db) == 0;
    int db_errno = errno;
    using State = AliasDbFreshness::State;
    if (!have_source && source_errno != ENOENT) {
        f.state = State::cannot_check;
        f.error_number = source_errno;
    } else if (!have_db && db_errno != ENOENT) {
        f.state = State::cannot_check;
        f.error_number = db_errno;
    } else if (!have_source) {
        f.state = State::source_missing;
    } else if (!have_db) {
        f.state = State::db_missing;
    } else if (before(db.st_mtim, source.st_mtim)) {
        f.state = State::db_older;
    }
    return f;
}

}  // namespace mailroom::mail
