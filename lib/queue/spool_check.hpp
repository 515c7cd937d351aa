// Spool check: what `mailctl check` verifies of spool_dir (docs/spool.md's table of
// owners and modes) and of the aliases database, as a list of findings.
//
//   spool_dir    exists, a folder, mode 0755 or stricter; its owner is the spool owner
//   tmp/ queue/ hold/ quarantine/   folders (not symlinks), owner, mode 0700
//   every file in them             a regular file, owner, mode 0600, one link
//   trigger      a FIFO, owner, mode 0600
//   daemon.lock  (when there) a regular file of the owner or root, mode 0600
//   quarantine/  entries there are warnings: they wait for the administrator
//   $aliases.cdb older than $aliases: error (stale); missing while $aliases
//                exists: warning (newaliases has not run)
//   mail_spool_dir  world-writable (1777, 0777): warning naming it and Debian's
//                root:mail 2775 (any user can plant files beside another's mailbox)
//   home folders with home_mailbox an mbox: each user's folder that holds it,
//                world-writable: warning naming user and folder (at most ten, then a count)
//
// Each finding has an area that decides mailctl's exit code (check_exit_code).
// Must never: change, create or repair anything (it only reads and reports), or
// print an unbounded list: past a few bad files a folder gets one summary line.
#pragma once

#include <string>
#include <vector>

namespace mailroom::mail {

struct CheckFinding {
    enum class Severity { warning, error };
    enum class Area {
        config,      // the configuration or what it names (aliases db): exit 78
        missing,     // a spool folder or the trigger is missing or of the wrong kind: exit 73
        permission,  // wrong owner, mode or link count: exit 77
    };
    Severity severity = Severity::error;
    Area area = Area::permission;
    std::string text;
};

std::vector<CheckFinding> check_spool(const std::string& spool_dir);
std::vector<CheckFinding> check_aliases(const std::string& aliases_path);
// The folder mailboxes are delivered into (mail_spool_dir). Only warnings: many
// systems ship /var/mail 1777 and deliver fine; a missing folder is not reported here.
std::vector<CheckFinding> check_mail_folder(const std::string& mail_spool_dir);

// An account whose home may hold an mbox (home_mailbox).
struct HomeOfUser {
    std::string user;
    std::string home;
};
// The folders that hold the mbox `home/home_mailbox` of each account (home_mailbox an
// mbox file, not a Maildir/), where world-writable: the same planted-file danger as a
// world-writable mail_spool_dir. Folders shared by several accounts are checked once;
// missing ones are skipped. Only warnings.
std::vector<CheckFinding> check_home_mail_folders(const std::string& home_mailbox,
                                                  const std::vector<HomeOfUser>& accounts);

// 0 when no finding is an error; else 78 for a config error, else 73 for a missing
// folder, else 77 (SPEC section 6).
int check_exit_code(const std::vector<CheckFinding>& findings);

}  // namespace mailroom::mail
