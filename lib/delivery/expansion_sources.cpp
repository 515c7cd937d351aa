#include "delivery/expansion_sources.hpp"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>

#include "core/log.hpp"
#include "core/unique_fd.hpp"
#include "delivery/file_probe.hpp"
#include "delivery/forward_file.hpp"

namespace mailroom::mail {

namespace {

IncludedFile decided(IncludedFile::Kind kind, const std::string& path, std::string reason, uid_t owner = 0) {
    return IncludedFile{kind, path, owner, {}, std::move(reason)};
}

// "writable by others" for an :include: file: by its group or by anyone.
std::string writable_reason(mode_t mode) {
    if (mode & S_IWOTH) return "writable by anyone";
    if (mode & S_IWGRP) return "writable by its group";
    return "";
}

}  // namespace

IncludedFile read_include_file(const std::string& path, const core::UserInfo* as, size_t max_size) {
    if (path.empty() || path[0] != '/') return decided(IncludedFile::Kind::refused, path, "not an absolute path");
    core::UserInfo self{"", ::geteuid(), ::getegid(), "", "", ""};
    FoundProbe found = probe_first({path}, max_size, as ? *as : self);
    const Probe& probe = found.probe;
    switch (probe.state) {
        case Probe::State::missing: return decided(IncludedFile::Kind::refused, path, "no such file");
        case Probe::State::refused: return decided(IncludedFile::Kind::refused, path, probe.reason);
        case Probe::State::temporary: return decided(IncludedFile::Kind::temporary, path, probe.reason);
        case Probe::State::exists: break;
    }
    if (probe.folder_st.st_mode & S_IWOTH) {
        return decided(IncludedFile::Kind::refused, path, "in a world-writable folder " + core::escape_line(probe.folder, 1024));
    }
    const struct stat& st = probe.file_st;
    if (!S_ISREG(st.st_mode)) return decided(IncludedFile::Kind::refused, path, not_regular_reason(st.st_mode));
    if (auto why = writable_reason(st.st_mode); !why.empty()) return decided(IncludedFile::Kind::refused, path, why);
    if (probe.too_large) return decided(IncludedFile::Kind::refused, path, "larger than " + size_text(max_size));
    if (probe.bytes.find('\0') != std::string::npos) return decided(IncludedFile::Kind::refused, path, "holds a NUL byte");
    IncludedFile file = decided(IncludedFile::Kind::used, path, "", st.st_uid);
    file.lines = lines_of(probe.bytes);
    return file;
}

SystemExpansionSources::SystemExpansionSources(std::string aliases_path, std::shared_ptr<const core::UserDb> users,
                                               ForwardPathSettings forward)
    : aliases_path_(std::move(aliases_path)), users_(users), forward_(std::move(forward)) {}

core::Result<const AliasDb*> SystemExpansionSources::database() const {
    if (!opened_) {
        auto db = AliasDb::open(alias_db_path(aliases_path_), aliases_path_);
        if (!db) {
            // No database at all: no aliases (postmaster still resolves to root).
            if (db.error().errno_value() != ENOENT) return core::unexpected(db.error());
        } else {
            db_.emplace(std::move(*db));
        }
        opened_ = true;
    }
    return db_ ? &*db_ : nullptr;
}

core::Result<std::optional<AliasFound>> SystemExpansionSources::alias(std::string_view name) const {
    auto db = database();
    if (!db) return core::unexpected(db.error());
    if (!*db) return std::optional<AliasFound>();
    auto record = (*db)->lookup(name);
    if (!record) return core::unexpected(record.error());
    if (!*record) return std::optional<AliasFound>();
    return std::optional<AliasFound>(AliasFound{(*record)->source_path, (*record)->line, std::move((*record)->targets)});
}

core::Result<std::optional<core::UserInfo>> SystemExpansionSources::user(std::string_view name) const {
    return users_->find(name);
}

ForwardResult SystemExpansionSources::forward(const core::UserInfo& account, std::string_view extension) const {
    return ForwardFile::find(account, extension, forward_);
}

IncludedFile SystemExpansionSources::include(const std::string& path, const core::UserInfo* as) const {
    return read_include_file(path, as);
}

core::Result<uid_t> SystemExpansionSources::aliases_owner() const {
    auto db = database();
    if (!db) return core::unexpected(db.error());
    // A command from an aliases entry with no database behind it cannot exist.
    if (!*db) return core::unexpected_errno("open " + alias_db_path(aliases_path_), ENOENT);
    // Trusted by its owner only: a database others may write gives no rights to run
    // anything (its lists of addresses still work).
    struct stat st {};
    if (::stat((*db)->path().c_str(), &st) != 0) return core::unexpected_errno("stat " + (*db)->path());
    if (auto why = writable_reason(st.st_mode); !why.empty()) return core::unexpected_input("is " + why);
    return (*db)->owner_uid();
}

core::Result<uid_t> SystemExpansionSources::include_owner(const std::string& path) const {
    // Rights come from the file as it is now: examined without following a link,
    // and refused when others may now write it.
    struct stat st {};
    if (::lstat(path.c_str(), &st) != 0) {
        if (errno == ENOENT) return core::unexpected_input("is gone");
        return core::unexpected_errno("lstat " + path);
    }
    if (!S_ISREG(st.st_mode)) return core::unexpected_input("is " + not_regular_reason(st.st_mode));
    if (auto why = writable_reason(st.st_mode); !why.empty()) return core::unexpected_input("is " + why);
    return st.st_uid;
}

ExpansionEnvironment ExpansionEnvironment::from_config(const core::Config& config,
                                                       std::shared_ptr<const core::UserDb> users) {
    ExpansionEnvironment environment;
    environment.settings = ExpansionSettings::from_config(config);
    environment.run_as.default_privs = config.str("default_privs");
    environment.sources = std::make_shared<SystemExpansionSources>(config.str("aliases"), std::move(users),
                                                                    ForwardPathSettings::from_config(config));
    return environment;
}

}  // namespace mailroom::mail
