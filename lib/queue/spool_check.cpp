#include "queue/spool_check.hpp"

#include <dirent.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <fmt/format.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <memory>
#include <set>

#include "core/io.hpp"
#include "core/sysexits.hpp"
#include "delivery/alias_db.hpp"
#include "queue/queue_id.hpp"

namespace mailroom::mail {

namespace {

using Area = CheckFinding::Area;
using Severity = CheckFinding::Severity;

// Past this many bad files in one folder, the rest are counted, not listed.
constexpr size_t max_files_listed = 10;

void add(std::vector<CheckFinding>& out, Severity severity, Area area, std::string text) {
    out.push_back({severity, area, std::move(text)});
}

std::string mode_text(mode_t mode) { return fmt::format("{:04o}", static_cast<unsigned>(mode & 07777)); }

std::string file_kind(mode_t mode) {
    if (S_ISLNK(mode)) return "a symbolic link";
    if (S_ISDIR(mode)) return "a folder";
    if (S_ISFIFO(mode)) return "a FIFO";
    if (S_ISSOCK(mode)) return "a socket";
    return "not a regular file";
}

// The problems of one queue file, empty when it is as docs/spool.md says.
std::vector<std::string> file_problems(const struct stat& st, uid_t owner) {
    std::vector<std::string> problems;
    if (!S_ISREG(st.st_mode)) {
        problems.push_back("is " + file_kind(st.st_mode) + ", not a regular file");
        return problems;
    }
    if (st.st_uid != owner) problems.push_back(fmt::format("belongs to uid {}, not {}", st.st_uid, owner));
    if ((st.st_mode & 07777) != 0600) problems.push_back("has mode " + mode_text(st.st_mode) + ", not 0600");
    // A second name would let whoever holds it read or change the entry after it left the queue.
    if (st.st_nlink != 1) problems.push_back(fmt::format("has {} links, not 1", st.st_nlink));
    return problems;
}

void check_files(const std::string& path, uid_t owner, bool is_quarantine, std::vector<CheckFinding>& out) {
    std::unique_ptr<DIR, int (*)(DIR*)> dir(::opendir(path.c_str()), ::closedir);
    if (!dir) {
        add(out, Severity::error, Area::permission, fmt::format("cannot read {} ({})", path, std::strerror(errno)));
        return;
    }
    size_t bad = 0, entries = 0;
    while (struct dirent* entry = ::readdir(dir.get())) {
        std::string name = entry->d_name;
        if (name == "." || name == "..") continue;
        struct stat st {};
        if (::fstatat(::dirfd(dir.get()), name.c_str(), &st, AT_SYMLINK_NOFOLLOW) != 0) continue;  // gone meanwhile
        if (!is_valid_queue_id(name)) {
            add(out, Severity::warning, Area::permission,
                fmt::format("{}/{} is not a queue entry (not a queue ID): the queue ignores it", path, name));
        } else if (is_quarantine) {
            ++entries;
        }
        auto problems = file_problems(st, owner);
        if (problems.empty()) continue;
        if (++bad > max_files_listed) continue;
        add(out, Severity::error, Area::permission, fmt::format("{}/{} {}", path, name, fmt::join(problems, ", ")));
    }
    if (bad > max_files_listed) {
        add(out, Severity::error, Area::permission,
            fmt::format("{} more files in {} with a wrong kind, owner, mode or link count", bad - max_files_listed, path));
    }
    if (entries > 0) {
        add(out, Severity::warning, Area::permission,
            fmt::format("{} {} in quarantine ({}): unreadable entries; look at them, then mailctl delete ID",
                        entries, entries == 1 ? "entry" : "entries", path));
    }
}

void check_folder(const std::string& path, uid_t owner, bool is_quarantine, std::vector<CheckFinding>& out) {
    struct stat st {};
    if (::lstat(path.c_str(), &st) != 0) {
        add(out, Severity::error, Area::missing, fmt::format("{} is missing ({})", path, std::strerror(errno)));
        return;
    }
    if (!S_ISDIR(st.st_mode)) {
        add(out, Severity::error, Area::missing, fmt::format("{} is {}, not a folder", path, file_kind(st.st_mode)));
        return;
    }
    if (st.st_uid != owner) {
        add(out, Severity::error, Area::permission,
            fmt::format("{} belongs to uid {}, not the spool owner (uid {})", path, st.st_uid, owner));
    }
    if ((st.st_mode & 07777) != 0700) {
        add(out, Severity::error, Area::permission, fmt::format("{} has mode {}, not 0700", path, mode_text(st.st_mode)));
    }
    check_files(path, owner, is_quarantine, out);
}

void check_trigger(const std::string& path, uid_t owner, std::vector<CheckFinding>& out) {
    struct stat st {};
    if (::lstat(path.c_str(), &st) != 0) {
        add(out, Severity::error, Area::missing,
            fmt::format("{} is missing ({}): submissions cannot wake the daemon", path, std::strerror(errno)));
        return;
    }
    if (!S_ISFIFO(st.st_mode)) {
        add(out, Severity::error, Area::missing, fmt::format("{} is {}, not a FIFO", path, file_kind(st.st_mode)));
        return;
    }
    if (st.st_uid != owner) {
        add(out, Severity::error, Area::permission,
            fmt::format("{} belongs to uid {}, not the spool owner (uid {})", path, st.st_uid, owner));
    }
    if ((st.st_mode & 07777) != 0600) {
        add(out, Severity::error, Area::permission, fmt::format("{} has mode {}, not 0600", path, mode_text(st.st_mode)));
    }
}

void check_daemon_lock(const std::string& path, uid_t owner, std::vector<CheckFinding>& out) {
    struct stat st {};
    if (::lstat(path.c_str(), &st) != 0) return;  // made by the first mta -d
    if (!S_ISREG(st.st_mode)) {
        add(out, Severity::error, Area::permission, fmt::format("{} is {}", path, file_kind(st.st_mode)));
        return;
    }
    // mta -d runs as root and creates it: root or the spool owner may own it.
    if (st.st_uid != owner && st.st_uid != 0) {
        add(out, Severity::error, Area::permission,
            fmt::format("{} belongs to uid {}, not the spool owner (uid {}) or root", path, st.st_uid, owner));
    }
    if ((st.st_mode & 077) != 0) {
        add(out, Severity::error, Area::permission, fmt::format("{} has mode {}, not 0600", path, mode_text(st.st_mode)));
    }
}

}  // namespace

std::vector<CheckFinding> check_spool(const std::string& spool_dir) {
    std::vector<CheckFinding> out;
    struct stat st {};
    if (::stat(spool_dir.c_str(), &st) != 0) {
        add(out, Severity::error, Area::missing, fmt::format("spool_dir {} ({})", spool_dir, std::strerror(errno)));
        return out;
    }
    if (!S_ISDIR(st.st_mode)) {
        add(out, Severity::error, Area::missing, fmt::format("spool_dir {} is not a folder", spool_dir));
        return out;
    }
    // Its owner is the spool owner (docs/spool.md): everything below must be theirs.
    uid_t owner = st.st_uid;
    if ((st.st_mode & 07777 & ~mode_t{0755}) != 0) {
        add(out, Severity::error, Area::permission,
            fmt::format("spool_dir {} has mode {}, not 0755 or stricter", spool_dir, mode_text(st.st_mode)));
    }
    for (const char* name : {"tmp", "queue", "hold", "quarantine"}) {
        check_folder(spool_dir + "/" + name, owner, std::strcmp(name, "quarantine") == 0, out);
    }
    check_trigger(spool_dir + "/trigger", owner, out);
    check_daemon_lock(spool_dir + "/daemon.lock", owner, out);
    return out;
}

std::vector<CheckFinding> check_aliases(const std::string& aliases_path) {
    std::vector<CheckFinding> out;
    // The same comparison the runner logs (delivery/alias_db.hpp), worded for mailctl.
    auto f = check_alias_db_freshness(aliases_path);
    using State = AliasDbFreshness::State;
    switch (f.state) {
    case State::fresh: break;
    case State::cannot_check:
        add(out, Severity::warning, Area::config, "cannot check the aliases database: " + f.warning());
        break;
    case State::db_missing:
        add(out, Severity::warning, Area::config,
            fmt::format("aliases database {} is missing: run newaliases to use {}", f.db_path, aliases_path));
        break;
    case State::db_older:
        add(out, Severity::error, Area::config,
            fmt::format("aliases database {} is older than {}: run newaliases", f.db_path, aliases_path));
        break;
    case State::source_missing:
        if (::access(f.db_path.c_str(), F_OK) == 0)
            add(out, Severity::warning, Area::config, fmt::format("{} exists but {} does not", f.db_path, aliases_path));
        break;
    }
    return out;
}

std::vector<CheckFinding> check_mail_folder(const std::string& mail_spool_dir) {
    std::vector<CheckFinding> out;
    struct stat st {};
    if (::stat(mail_spool_dir.c_str(), &st) != 0 || !S_ISDIR(st.st_mode)) return out;
    if ((st.st_mode & S_IWOTH) == 0) return out;
    // Any user can then create files beside another user's mailbox: a dotlock that the
    // owner may not remove, a crash-repair record (ignored since issue 7, but still
    // there). Without the sticky bit they can also remove or rename others' mailboxes.
    std::string sticky = (st.st_mode & S_ISVTX)
                             ? ""
                             : ", and without the sticky bit any user can also remove or rename other users' mailboxes";
    add(out, Severity::warning, Area::permission,
        fmt::format("mail_spool_dir {} is world-writable (mode {}): any user can create files beside another "
                    "user's mailbox{}; Debian uses root:mail 2775 instead (chown root:mail, chmod 2775; deliveries "
                    "then run with group mail)",
                    mail_spool_dir, mode_text(st.st_mode), sticky));
    return out;
}

std::vector<CheckFinding> check_home_mail_folders(const std::string& home_mailbox,
                                                  const std::vector<HomeOfUser>& accounts) {
    std::vector<CheckFinding> out;
    if (home_mailbox.empty() || home_mailbox.back() == '/') return out;  // none, or Maildir
    std::set<std::string> seen;
    size_t bad = 0;
    for (const HomeOfUser& account : accounts) {
        std::string folder = core::dir_of(account.home + "/" + home_mailbox);
        if (!seen.insert(folder).second) continue;
        struct stat st {};
        if (::stat(folder.c_str(), &st) != 0 || !S_ISDIR(st.st_mode) || (st.st_mode & S_IWOTH) == 0) continue;
        if (++bad > max_files_listed) continue;
        add(out, Severity::warning, Area::permission,
            fmt::format("the folder {} of {}'s mailbox is world-writable (mode {}): any user can create files "
                        "beside the mailbox; make it 0755 or stricter (chmod o-w)",
                        folder, account.user, mode_text(st.st_mode)));
    }
    if (bad > max_files_listed)
        add(out, Severity::warning, Area::permission,
            fmt::format("{} more world-writable folders holding users' mailboxes", bad - max_files_listed));
    return out;
}

int check_exit_code(const std::vector<CheckFinding>& findings) {
    auto has_error = [&](Area area) {
        return std::any_of(findings.begin(), findings.end(), [&](const CheckFinding& finding) {
            return finding.severity == Severity::error && finding.area == area;
        });
    };
    if (has_error(Area::config)) return core::sysexit::config;
    if (has_error(Area::missing)) return core::sysexit::cant_create;
    if (has_error(Area::permission)) return core::sysexit::no_permission;
    return core::sysexit::ok;
}

}  // namespace mailroom::mail
