"""A private Postfix instance for the queue benchmark, entirely under one folder.

Owns ROOT/{etc,queue,data,mail,postfix.log}: main.cf and master.cf written here
(master.cf copied from Debian's default), its own queue_directory and
data_directory, mail_spool_directory ROOT/mail (mbox) or ROOT/mail/ (Maildir).
The instance listens on no network address: the only inet service of Debian's
master.cf (smtp) is commented out and inet_interfaces = loopback-only besides.

Invariants: /etc/postfix and /var/spool/postfix are only read (master.cf copied),
never written; the instance is stopped with `postfix -c ROOT/etc stop` by whoever
started it (queue_bench.py does so in a finally). It must never signal or stop a
Postfix it did not start.
"""
import os
import subprocess
from pathlib import Path

from bench_common import CLEAN_ENV, set_aside, tail, tree_cpu_seconds

POSTFIX = "/usr/sbin/postfix"
SENDMAIL = "/usr/sbin/sendmail"
POSTCONF = "/usr/sbin/postconf"
MASTER_CF_SOURCES = ("/etc/postfix/master.cf", "/usr/share/postfix/master.cf.dist")


def postfix_version() -> str:
    out = subprocess.run([POSTCONF, "-d", "-h", "mail_version"], capture_output=True,
                         text=True, env=CLEAN_ENV)
    return out.stdout.strip() or "unknown"


def _rewrite_master_cf(text: str, drop=()) -> str:
    """Debian's master.cf with: no chroot (a chroot would need copies of /etc files
    inside the private queue folder), the smtp inet listener and the services in
    DROP commented out."""
    out = []
    for line in text.splitlines(keepends=True):
        f = line.split()
        if line[:1] in (" ", "\t", "#", "\n", "") or len(f) < 8:
            out.append(line)
            continue
        if (f[0] == "smtp" and f[1] == "inet") or f[0] in drop:
            out.append("#" + line)
            continue
        f[4] = "n"
        out.append("%-10s %-10s %-5s %-5s %-5s %-7s %-7s %s\n" % (*f[:7], " ".join(f[7:])))
    return "".join(out)


def _override(main_cf: str, settings: dict) -> str:
    """MAIN_CF with each KEY = VALUE of SETTINGS replacing its line, or appended:
    one line per key, so Postfix has no "overriding earlier entry" to warn about."""
    lines = main_cf.splitlines()
    for key, value in settings.items():
        line = f"{key} = {value}"
        at = [i for i, text in enumerate(lines) if text.split("=", 1)[0].strip() == key]
        if at:
            lines[at[0]] = line
        else:
            lines.append(line)
    return "\n".join(lines) + "\n"


class Postfix:
    """One private Postfix instance. queue_only: no qmgr in master.cf, so pickup and
    cleanup file each submission complete into incoming/ where it stays, never
    tried (for the mailq measurement)."""

    name = "Postfix"

    def __init__(self, root: Path, mailbox_format: str, queue_only: bool = False,
                 main_cf: dict = None):
        self.root = root
        # main.cf settings that replace (or add to) the ones written here, for a
        # benchmark that needs an alias map or an imported environment (bench_alias.py).
        self.main_cf_overrides = dict(main_cf or {})
        self.format = mailbox_format
        self.queue_only = queue_only
        self.etc = root / "etc"
        self.queue = root / "queue"
        self.spool = root / "mail"
        self.logfile = root / "postfix.log"
        self.started = False

    # ---- configuration ---------------------------------------------------------
    def configure(self) -> None:
        for d in (self.root, self.etc):
            d.mkdir(parents=True, exist_ok=True)
            d.chmod(0o755)
        # queue_directory must exist, root-owned, before `postfix start`; its
        # subfolders (maildrop set-gid postdrop, public, ...) and data_directory are
        # then made by postfix-script's create-missing step from postfix-files.
        self.queue.mkdir(mode=0o755, exist_ok=True)
        # Mail folder mode 1777, like a classic world-writable /var/mail: Postfix's
        # local(8) then writes an mbox in mail_spool_directory with the recipient's
        # own uid (with 0755 it would use root and chown), and Maildir delivery always
        # runs as the recipient, who must be able to create ROOT/mail/nobody/ itself.
        # mailroom's runner also delivers as nobody, so both get the same folder.
        self.spool.mkdir(exist_ok=True)
        self.spool.chmod(0o1777)
        spool_setting = str(self.spool) + ("/" if self.format == "maildir" else "")
        main_cf = f"""# Private benchmark instance: nothing outside {self.root}.
compatibility_level = 3.6
queue_directory = {self.queue}
data_directory = {self.root}/data
maillog_file = {self.logfile}
maillog_file_prefixes = {self.root}
inet_interfaces = loopback-only
inet_protocols = ipv4
myhostname = bench.example
mydestination = $myhostname, localhost
mynetworks_style = host
relayhost =
mail_spool_directory = {spool_setting}
home_mailbox =
mailbox_command =
mailbox_size_limit = 0
alias_maps =
alias_database =
biff = no
append_dot_mydomain = no
"""
        if self.queue_only:
            # Without qmgr nobody hands out in-flow tokens; the fill would otherwise
            # pause in_flow_delay (1 s) per message. Only the untimed fill uses this.
            main_cf += "in_flow_delay = 0\n"
        main_cf = _override(main_cf, self.main_cf_overrides)
        (self.etc / "main.cf").write_text(main_cf)
        source = next((p for p in MASTER_CF_SOURCES if os.path.exists(p)), None)
        if source is None:
            raise RuntimeError("no master.cf to copy (package postfix)")
        drop = ("qmgr",) if self.queue_only else ()
        (self.etc / "master.cf").write_text(_rewrite_master_cf(Path(source).read_text(), drop))
        self.master_cf_source = source

    # ---- process control -------------------------------------------------------
    def start_argv(self):
        return [POSTFIX, "-c", str(self.etc), "start"]

    def stop_argv(self):
        return [POSTFIX, "-c", str(self.etc), "stop"]

    def start(self) -> None:
        res = subprocess.run(self.start_argv(), env=CLEAN_ENV, capture_output=True, text=True)
        # Postfix logs its errors to maillog_file, not to a non-terminal stderr.
        if res.returncode != 0:
            raise RuntimeError(f"postfix start failed (exit {res.returncode}): "
                               f"{res.stderr.strip()} {tail(self.logfile, 3)}")
        self.started = True

    def stop(self) -> None:
        if not self.started:
            return
        subprocess.run(self.stop_argv(), env=CLEAN_ENV, capture_output=True)
        self.started = False

    def master_pid(self) -> int:
        return int((self.queue / "pid" / "master.pid").read_text().split()[0])

    def cpu_seconds(self) -> float:
        """CPU of the master and every daemon it started (pickup, cleanup, qmgr,
        trivial-rewrite, local, postlogd, ...), exited ones included."""
        cpu = tree_cpu_seconds(self.master_pid())
        if cpu != cpu:  # NaN: no such process
            raise RuntimeError("the Postfix master is not running")
        return cpu

    # ---- mail ------------------------------------------------------------------
    def submit_argv(self, recipient: str = "nobody"):
        return [SENDMAIL, "-C", str(self.etc), "-i", recipient]

    def mailbox(self) -> Path:
        return self.spool / "nobody"

    def reset_mailbox(self) -> None:
        set_aside(self.mailbox())

    def queued(self) -> int:
        """Queue files in incoming/ (hashing is off for incoming by default)."""
        try:
            return len(os.listdir(self.queue / "incoming"))
        except OSError:
            return 0

    def maildrop_empty(self) -> bool:
        return not os.listdir(self.queue / "maildrop")

    def mailq_shell(self) -> str:
        return f"MAIL_CONFIG={self.etc} /usr/bin/mailq | tail -1"

    def log_tail(self) -> str:
        return tail(self.logfile, 4)
