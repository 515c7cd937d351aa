#include "delivery/forward_file.hpp"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <new>
#include <optional>

#include "core/io.hpp"
#include "core/log.hpp"
#include "core/privilege.hpp"
#include "core/unique_fd.hpp"

namespace mailroom::mail {
namespace {

using Kind = ForwardResult::Kind;

std::string shown(std::string_view path) { return core::escape_line(path, 1024); }

ForwardResult decided(Kind kind, const std::string& path, const core::UserInfo& user, std::string reason = "") {
    ForwardResult result;
    result.kind = kind;
    result.path = path;
    std::string home = user.home;
    while (home.size() > 1 && home.back() == '/') home.pop_back();
    bool under_home = home.size() > 1 && home.front() == '/' && path.size() > home.size() + 1 &&
                      path.compare(0, home.size(), home) == 0 && path[home.size()] == '/';
    result.shown_path = under_home ? "~" + shown(user.name) + shown(path.substr(home.size())) : shown(path);
    result.reason = std::move(reason);
    return result;
}

// The SPEC 5 rules on what the probe found, in the order docs/forward.md lists them.
ForwardResult judge(const core::UserInfo& user, const std::string& path, Probe probe,
                    const ForwardReadOptions& options) {
    if (probe.state == Probe::State::refused) return decided(Kind::refused, path, user, probe.reason);
    if (probe.state == Probe::State::temporary) return decided(Kind::temporary, path, user, probe.reason);
    // Sticky does not save a world-writable folder: anyone may create the name there
    // before the user does (SPEC 5: the .forward is then ignored).
    if (probe.folder_st.st_mode & S_IWOTH)
        return decided(Kind::refused, path, user, "in a world-writable folder " + shown(probe.folder));
    const struct stat& st = probe.file_st;
    if (!S_ISREG(st.st_mode)) return decided(Kind::refused, path, user, not_regular_reason(st.st_mode));
    if (st.st_uid != user.uid && st.st_uid != 0)
        return decided(Kind::refused, path, user, "owned by uid " + std::to_string(st.st_uid));
    if (st.st_mode & S_IWOTH) return decided(Kind::refused, path, user, "world-writable");
    if (st.st_mode & S_IWGRP) {
        NssGroupDb nss;
        const GroupDb& groups = options.groups ? *options.groups : nss;
        auto is_private = is_private_group(user, st.st_gid, groups);
        if (!is_private)
            return decided(Kind::temporary, path, user, "group-writable, and " + shown(is_private.error().message()));
        if (!*is_private)
            return decided(Kind::refused, path, user,
                           "group-writable (gid " + std::to_string(st.st_gid) + " is not " + shown(user.name) +
                               "'s private group)");
    }
    // Links are not counted: the file is read with the user's rights, so a hard link
    // to a file the user may not read gives nothing, and one to a file they may read
    // gives nothing they could not write into their own .forward (docs/forward.md).
    if (probe.too_large) return decided(Kind::refused, path, user, "larger than " + size_text(options.max_size));
    if (size_t nul = probe.bytes.find('\0'); nul != std::string::npos) {
        auto line = 1 + std::count(probe.bytes.begin(), probe.bytes.begin() + static_cast<std::ptrdiff_t>(nul), '\n');
        return decided(Kind::refused, path, user, "holds a NUL byte (line " + std::to_string(line) + ")");
    }
    ForwardResult result = decided(Kind::used, path, user);
    result.lines = lines_of(probe.bytes);
    return result;
}

ForwardResult read_paths(const core::UserInfo& user, const std::vector<std::string>& paths,
                         const ForwardReadOptions& options) {
    if (paths.empty()) return {};
    FoundProbe found = probe_first(paths, options.max_size, user);
    if (found.probe.state == Probe::State::missing) return {};
    return judge(user, found.path, std::move(found.probe), options);
}

}  // namespace

std::string ForwardResult::where(const ForwardLine& line) const {
    return shown_path + ":" + std::to_string(line.number);
}

std::string ForwardResult::describe() const {
    switch (kind) {
        case Kind::none: return "no .forward";
        case Kind::used:
            return shown_path + ": " + std::to_string(lines.size()) + (lines.size() == 1 ? " line" : " lines");
        case Kind::refused: return shown_path + " ignored: " + reason;
        case Kind::temporary: return shown_path + " unreadable now: " + reason;
    }
    return "";
}

ForwardResult ForwardFile::read(const core::UserInfo& user, const std::vector<std::string>& paths,
                                const ForwardReadOptions& options) {
    try {
        return read_paths(user, paths, options);
    } catch (const std::bad_alloc&) {
        // The switch, if any, was undone by its destructor on the way out.
        ForwardResult result;
        result.kind = Kind::temporary;
        result.path = paths.empty() ? "" : paths.front();
        result.shown_path = shown(result.path);
        result.reason = "out of memory";
        return result;
    }
}

ForwardResult ForwardFile::find(const core::UserInfo& user, std::string_view extension,
                                const ForwardPathSettings& settings, const ForwardReadOptions& options) {
    ForwardPaths paths = expand_forward_path(settings, user, extension);
    ForwardResult result = read(user, paths.paths, options);
    result.skipped = std::move(paths.skipped);
    return result;
}

}  // namespace mailroom::mail
