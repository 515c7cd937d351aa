"""Real mail programs as peers of mailroom's LMTP server, each a private instance
entirely inside a folder the caller gives (Python 3 standard library only).

    with DovecotLmtp(work / "dovecot", {"alice": (60001, 60001, "/tmp/x/home/alice")}) as dv:
        smtplib.LMTP(dv.socket).sendmail(...)
        dv.doveadm_fetch("alice", "hdr.subject body")   # [{"hdr.subject": ..., "body": ...}]

    with PostfixLmtpClient(work / "postfix", "unix:" + lmtp_socket) as pf:
        pf.sendmail(["-f", "sender@example.org", "alice@localhost"], message_bytes)
        pf.wait_queue_empty(60)

DovecotLmtp is a Dovecot 2.3 master (`dovecot -F -c WORKDIR/dovecot.conf`, a child
of this process) that serves LMTP only, on the unix socket WORKDIR/lmtp (mode 0666),
with base_dir, state_dir and its log inside WORKDIR, ssl = no, no inet listener
(protocols = lmtp opens none), users from a passwd-file in WORKDIR (no system
accounts needed: any uid >= 1 works, its home is created and chowned when missing),
Maildir in ~/Maildir, mail_fsync = always. Recipients `user@anydomain` and `user` are
the same user (auth_username_format = %Ln). doveadm_fetch() reads a mailbox back with
`doveadm -c WORKDIR/dovecot.conf -f json fetch -u USER FIELDS mailbox INBOX all`.

PostfixLmtpClient is a Postfix 3.x instance (`postfix -c WORKDIR/etc start`): its own
config_directory, queue_directory and data_directory under WORKDIR, log in
WORKDIR/postfix.log (postlogd), no network listener at all (master.cf has no inet
service), every recipient @localhost (and bare names, myorigin = localhost) handed to
lmtp_target (`local_transport = lmtp:unix:/abs/path` or `lmtp:inet:host:port`), any
user name accepted (local_recipient_maps empty, no aliases), anything else bounced by
the error transport, never relayed. Its lmtp client runs as the `postfix` user, not
chrooted: an absolute unix path is used as it is (a relative one would be relative to
queue_directory, its working folder, so this module always makes it absolute); the
socket must be writable by that user and every folder above it searchable, which
__enter__ checks when the socket exists and check_target() checks on demand.

LmtpServer runs any LMTP server from an argv until its unix socket greets (220) and
stops it with SIGTERM; Lmtpd is mailroom's own lmtpd so (build/bin or MAILROOM_BIN,
`lmtpd -C WORKDIR/mailroom.conf -l unix:WORKDIR/lmtp`, Maildir in ~/Maildir/, users
from nss_wrapper files): point PostfixLmtpClient at its socket, and read what it
delivered with a DovecotLmtp given the same users (same homes):

    users = {"alice": (60001, 60001, f"{tmp}/home/alice")}
    with Lmtpd(f"{tmp}/lmtpd", users) as lm, \
         PostfixLmtpClient(f"{tmp}/postfix", "unix:" + lm.socket) as pf:
        pf.sendmail(["alice"], msg); pf.wait_queue_empty(60)
    with DovecotLmtp(f"{tmp}/dovecot", users) as dv:
        dv.doveadm_fetch("alice", "hdr.subject body")

Every class raises PeerUnavailable (a unittest.SkipTest) when the programs or the
accounts it needs (postfix user, postdrop group, Dovecot's internal users) are not on
this machine, and PeerError (with the log) when the instance does not come up.
DovecotLmtp, PostfixLmtpClient and Lmtpd need root (PeerUnavailable otherwise).

Invariants: nothing outside WORKDIR and the users' homes given is written (Postfix and Dovecot read their
programs' own files under /usr and /etc/postfix/dynamicmaps.cf and postfix-files,
never /etc/dovecot, never the system's queue or /var/mail); only processes this
module started are signalled (the Dovecot master by its Popen, the Postfix master
through `postfix -c WORKDIR/etc stop`, which reads that instance's own pid file);
every instance started is stopped at __exit__, also when __enter__ fails half way.
"""
import grp
import json
import os
import pty
import pwd
import shutil
import signal
import socket
import stat
import subprocess
import threading
import time
import unittest
from pathlib import Path

DOVECOT = shutil.which("dovecot", path="/usr/sbin:/usr/bin:/sbin:/bin") or "/usr/sbin/dovecot"
DOVEADM = shutil.which("doveadm", path="/usr/bin:/usr/sbin:/bin:/sbin") or "/usr/bin/doveadm"
DOVECOT_LMTP = "/usr/lib/dovecot/lmtp"
POSTFIX = "/usr/sbin/postfix"
POSTFIX_SENDMAIL = "/usr/sbin/sendmail"
POSTCONF = "/usr/sbin/postconf"
POSTFIX_DAEMONS = "/usr/lib/postfix/sbin"
# The environment of every peer program: small, fixed, nothing of the caller's.
PEER_ENV = {"PATH": "/usr/sbin:/usr/bin:/sbin:/bin", "LANG": "C"}
UNIX_PATH_MAX = 107  # sun_path holds 108 bytes with the terminating NUL


class PeerUnavailable(unittest.SkipTest):
    """This machine lacks a program or an account the peer needs: the test using it
    is skipped (unittest.SkipTest), with this text as the reason."""


class PeerError(RuntimeError):
    """The peer is installed but did not start, stop or deliver as it should."""


def _tail(path: Path, lines: int = 15) -> str:
    try:
        text = path.read_text(errors="replace").splitlines()
    except OSError:
        return "(no log)"
    return "\n".join(text[-lines:])


def _require_root(what: str) -> None:
    if os.geteuid() != 0:
        raise PeerUnavailable(f"{what} needs root (it runs as root and writes as the mail users)")


def _require_programs(*paths: str) -> None:
    missing = [p for p in paths if not os.access(p, os.X_OK)]
    if missing:
        raise PeerUnavailable("not installed: " + ", ".join(missing))


def _user(name: str):
    try:
        return pwd.getpwnam(name)
    except KeyError:
        return None


def _group(name: str):
    try:
        return grp.getgrnam(name)
    except KeyError:
        return None


def unreachable_by(path: Path, uid: int, gid: int, groups=()) -> str:
    """Why user UID (primary group GID, supplementary GROUPS) cannot connect to the
    unix socket PATH, judged from the modes of PATH and every folder above it, or ""
    when it can. Root's view (os.access) would say yes to everything."""
    groups = set(groups) | {gid}

    def allowed(st, bits_user, bits_group, bits_other):
        if st.st_uid == uid:
            return st.st_mode & bits_user == bits_user
        if st.st_gid in groups:
            return st.st_mode & bits_group == bits_group
        return st.st_mode & bits_other == bits_other

    path = Path(os.path.abspath(path))
    for folder in reversed(path.parents):
        try:
            st = folder.stat()
        except OSError as e:
            return f"{folder}: {e.strerror}"
        if not allowed(st, stat.S_IXUSR, stat.S_IXGRP, stat.S_IXOTH):
            return f"folder {folder} (mode {stat.filemode(st.st_mode)}, owner {st.st_uid}:{st.st_gid}) is not searchable"
    try:
        st = path.stat()
    except OSError as e:
        return f"{path}: {e.strerror}"
    if not stat.S_ISSOCK(st.st_mode):
        return f"{path} is not a socket"
    if not allowed(st, stat.S_IWUSR, stat.S_IWGRP, stat.S_IWOTH):
        return f"socket {path} (mode {stat.filemode(st.st_mode)}, owner {st.st_uid}:{st.st_gid}) is not writable"
    return ""


def lmtp_greeting(path: str, timeout: float = 5.0) -> bytes:
    """Connects to the LMTP unix socket PATH, reads the greeting, says QUIT."""
    with socket.socket(socket.AF_UNIX) as s:
        s.settimeout(timeout)
        s.connect(path)
        greeting = b""
        while not greeting.endswith(b"\n"):
            chunk = s.recv(4096)
            if not chunk:
                break
            greeting += chunk
        try:
            s.sendall(b"QUIT\r\n")
            s.recv(4096)
        except OSError:
            pass
        return greeting


class DovecotLmtp:
    """A private Dovecot master serving LMTP on WORKDIR/lmtp (see the module text).

    USERS maps a user name to (uid, gid, home). Attributes once entered: socket (the
    LMTP socket path), conf (dovecot.conf), pid (the master's pid), logfile."""

    name = "Dovecot"

    def __init__(self, workdir, users: dict, extra_conf: str = "", start_timeout: float = 30.0,
                 socket_path=None):
        self.workdir = Path(os.path.abspath(workdir))
        self.users = dict(users)
        self.extra_conf = extra_conf
        self.start_timeout = start_timeout
        self.conf = self.workdir / "dovecot.conf"
        self.base_dir = self.workdir / "run"
        self.state_dir = self.workdir / "state"
        self.logfile = self.workdir / "dovecot.log"
        self.passwd = self.workdir / "users"
        self.socket = os.path.abspath(socket_path) if socket_path else str(self.workdir / "lmtp")
        self.proc = None
        self.pid = None

    # ---- configuration ---------------------------------------------------------
    def _internal_users(self):
        """(default_internal_user, default_login_user): Dovecot's own accounts when the
        package made them, else nobody for both."""
        internal = "dovecot" if _user("dovecot") else "nobody"
        login = "dovenull" if _user("dovenull") else "nobody"
        if not _user(internal) or not _user(login):
            raise PeerUnavailable("no account for Dovecot's internal processes (dovecot, dovenull or nobody)")
        return internal, login

    def write_config(self) -> None:
        """Writes WORKDIR/dovecot.conf and the passwd-file, creates missing homes."""
        internal, login = self._internal_users()
        for d in (self.workdir, self.base_dir, self.state_dir):
            d.mkdir(parents=True, exist_ok=True)
        # Searchable by everyone: the users' lmtp processes and Postfix's lmtp client
        # (user postfix) reach the socket through it.
        self.workdir.chmod(0o755)
        longest = str(self.base_dir / "anvil-auth-penalty")
        if len(longest) > UNIX_PATH_MAX or len(self.socket) > UNIX_PATH_MAX:
            raise PeerError(f"work folder {self.workdir} is too long for unix socket paths")
        make_homes(self.users)
        lines = [f"{name}:x:{uid}:{gid}::{os.path.abspath(home)}::"
                 for name, (uid, gid, home) in self.users.items()]
        self.passwd.write_text("\n".join(lines) + "\n")
        self.passwd.chmod(0o644)
        self.conf.write_text(f"""# Private Dovecot for mailroom's tests: LMTP on {self.socket} only.
base_dir = {self.base_dir}
state_dir = {self.state_dir}
instance_name = mailroom-peer-{os.getpid()}-{id(self) & 0xffffff:x}
log_path = {self.logfile}
info_log_path = {self.logfile}
protocols = lmtp
# No inet listener exists with protocols = lmtp; this only keeps any from '*'.
listen = 127.0.0.1
ssl = no
default_internal_user = {internal}
default_login_user = {login}
first_valid_uid = 1
first_valid_gid = 1
mail_location = maildir:~/Maildir
mail_fsync = always
lmtp_save_to_detail_mailbox = no
# user@anydomain and user are one user of the passwd-file.
auth_username_format = %Ln
passdb {{
  driver = passwd-file
  args = {self.passwd}
}}
userdb {{
  driver = passwd-file
  args = {self.passwd}
}}
service lmtp {{
  unix_listener {self.socket} {{
    mode = 0666
  }}
}}
{self.extra_conf}
""")

    # ---- process control -------------------------------------------------------
    def __enter__(self):
        _require_root("a private Dovecot")
        _require_programs(DOVECOT, DOVEADM, DOVECOT_LMTP)
        self.write_config()
        check = subprocess.run([DOVECOT, "-c", str(self.conf), "-n"], env=PEER_ENV,
                               capture_output=True, text=True)
        if check.returncode != 0:
            raise PeerError(f"Dovecot refuses {self.conf}: {check.stderr.strip()}")
        try:
            self._start()
        except BaseException:
            self.stop()
            raise
        return self

    def _start(self) -> None:
        with open(self.logfile, "ab") as log:
            self.proc = subprocess.Popen([DOVECOT, "-F", "-c", str(self.conf)], env=PEER_ENV,
                                         stdin=subprocess.DEVNULL, stdout=log, stderr=log)
        self.pid = self.proc.pid
        deadline = time.monotonic() + self.start_timeout
        last = None
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise PeerError(f"dovecot exited {self.proc.returncode} at start; log:\n{_tail(self.logfile)}")
            if os.path.exists(self.socket):
                try:
                    greeting = lmtp_greeting(self.socket)
                    if greeting.startswith(b"220"):
                        return
                    last = f"greeting {greeting!r}"
                except OSError as e:
                    last = str(e)
            time.sleep(0.05)
        raise PeerError(f"Dovecot's LMTP did not answer on {self.socket} in {self.start_timeout:.0f} s "
                        f"({last}); log:\n{_tail(self.logfile)}")

    def stop(self) -> None:
        if self.proc is None:
            return
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.proc = None

    def __exit__(self, *exc):
        self.stop()
        return False

    # ---- reading ---------------------------------------------------------------
    def doveadm(self, args, timeout: float = 60.0) -> subprocess.CompletedProcess:
        argv = [DOVEADM, "-c", str(self.conf), *args]
        return subprocess.run(argv, env=PEER_ENV, capture_output=True, text=True, timeout=timeout)

    def doveadm_fetch(self, user: str, fields, query=("mailbox", "INBOX", "all")) -> list:
        """The messages of USER matching QUERY, as Dovecot reads them: a list of dicts
        field name -> text, one per message in uid order. FIELDS is a string
        ("hdr.subject body") or a list of doveadm fetch field names."""
        if not isinstance(fields, str):
            fields = " ".join(fields)
        out = self.doveadm(["-f", "json", "fetch", "-u", user, fields, *query])
        if out.returncode != 0:
            raise PeerError(f"doveadm fetch -u {user} failed (exit {out.returncode}): {out.stderr.strip()}")
        return json.loads(out.stdout or "[]")

    def maildir(self, user: str) -> Path:
        return Path(os.path.abspath(self.users[user][2])) / "Maildir"

    def log(self) -> str:
        try:
            return self.logfile.read_text(errors="replace")
        except OSError:
            return ""


MASTER_CF = """# Private instance: no inet service, nothing chrooted.
# service type  private unpriv  chroot  wakeup  maxproc command
pickup    unix  n       -       n       60      1       pickup
cleanup   unix  n       -       n       -       0       cleanup
qmgr      unix  n       -       n       300     1       qmgr
rewrite   unix  -       -       n       -       -       trivial-rewrite
bounce    unix  -       -       n       -       0       bounce
defer     unix  -       -       n       -       0       bounce
trace     unix  -       -       n       -       0       bounce
verify    unix  -       -       n       -       1       verify
flush     unix  n       -       n       1000?   0       flush
smtp      unix  -       -       n       -       -       smtp
showq     unix  n       -       n       -       -       showq
error     unix  -       -       n       -       -       error
retry     unix  -       -       n       -       -       error
discard   unix  -       -       n       -       -       discard
local     unix  -       n       n       -       -       local
lmtp      unix  -       -       n       -       -       lmtp
scache    unix  -       -       n       -       1       scache
postlog   unix-dgram n  -       n       -       1       postlogd
"""


def normalize_lmtp_target(target: str) -> str:
    """'unix:/abs', '/abs', 'relative' (made absolute here), 'inet:host:port' ->
    the Postfix next-hop after 'lmtp:'."""
    target = str(target)
    if target.startswith("inet:"):
        return target
    path = target[5:] if target.startswith("unix:") else target
    return "unix:" + os.path.abspath(path)


class PostfixLmtpClient:
    """A private Postfix that hands every local recipient to LMTP_TARGET (see the
    module text). Attributes once entered: confdir, queue, logfile, target."""

    name = "Postfix"
    QUEUES = ("maildrop", "incoming", "active", "deferred", "hold")

    def __init__(self, workdir, lmtp_target: str, main_cf: dict = None,
                 myhostname: str = "peers.example"):
        self.workdir = Path(os.path.abspath(workdir))
        self.target = normalize_lmtp_target(lmtp_target)
        self.main_cf_overrides = dict(main_cf or {})
        self.myhostname = myhostname
        self.confdir = self.workdir / "etc"
        self.queue = self.workdir / "queue"
        self.data = self.workdir / "data"
        self.logfile = self.workdir / "postfix.log"
        self.started = False

    # ---- configuration ---------------------------------------------------------
    def _accounts(self):
        missing = []
        owner = _user("postfix")
        if not owner:
            missing.append("user postfix (mail_owner)")
        if not _group("postdrop"):
            missing.append("group postdrop (setgid_group)")
        if missing:
            raise PeerUnavailable("Postfix needs " + " and ".join(missing) + ", absent on this machine")
        return owner

    def _write_config(self) -> None:
        for d in (self.workdir, self.confdir):
            d.mkdir(parents=True, exist_ok=True)
            d.chmod(0o755)
        # Root-owned before `postfix start`, whose create-missing step makes its
        # subfolders (maildrop set-gid postdrop, public, private, ...) and data_directory.
        self.queue.mkdir(mode=0o755, exist_ok=True)
        os.chown(self.queue, 0, 0)
        settings = {
            "compatibility_level": "3.6",
            "queue_directory": str(self.queue),
            "data_directory": str(self.data),
            "maillog_file": str(self.logfile),
            "maillog_file_prefixes": str(self.workdir),
            "inet_interfaces": "loopback-only",
            "inet_protocols": "ipv4",
            "myhostname": self.myhostname,
            "myorigin": "localhost",
            "mydestination": "localhost",
            "mynetworks_style": "host",
            "relayhost": "",
            "local_transport": "lmtp:" + self.target,
            "local_recipient_maps": "",
            "alias_maps": "",
            "alias_database": "",
            # Never relay anything from a test: other domains bounce at once.
            "default_transport": "error:5.7.1 this private Postfix delivers only to localhost",
            "relay_transport": "error:5.7.1 this private Postfix delivers only to localhost",
            "biff": "no",
            "append_dot_mydomain": "no",
            "smtputf8_enable": "yes",
        }
        settings.update(self.main_cf_overrides)
        (self.confdir / "main.cf").write_text(
            f"# Private Postfix for mailroom's tests: nothing outside {self.workdir}.\n"
            + "".join(f"{k} = {v}\n" for k, v in settings.items()))
        (self.confdir / "master.cf").write_text(MASTER_CF)

    # ---- process control -------------------------------------------------------
    def __enter__(self):
        _require_root("a private Postfix")
        _require_programs(POSTFIX, POSTFIX_SENDMAIL, POSTCONF, os.path.join(POSTFIX_DAEMONS, "lmtp"))
        self.owner = self._accounts()
        self._write_config()
        try:
            self._start()
            if self.target.startswith("unix:") and os.path.exists(self.target[5:]):
                self.check_target()
        except BaseException:
            self.stop()
            raise
        return self

    def _run(self, args, timeout: float = 120.0) -> subprocess.CompletedProcess:
        """`postfix -c CONFDIR ARGS`. Its stderr is a pseudo-terminal: the postfix
        command reports errors (a bad main.cf, a master that fails to start) on
        stderr only when it is a terminal, else only to syslog or maillog_file,
        which postlogd has not opened yet when the start fails."""
        controller, terminal = pty.openpty()
        chunks = []

        def drain():
            while True:
                try:
                    chunk = os.read(controller, 4096)
                except OSError:  # EIO: every holder of the terminal side closed it
                    return
                if not chunk:
                    return
                chunks.append(chunk)

        reader = threading.Thread(target=drain, daemon=True)
        reader.start()
        try:
            proc = subprocess.run([POSTFIX, "-c", str(self.confdir), *args], env=PEER_ENV,
                                  stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=terminal,
                                  timeout=timeout)
        finally:
            os.close(terminal)
            reader.join(5)
            os.close(controller)
        text = b"".join(chunks).decode(errors="replace").replace("\r\n", "\n")
        return subprocess.CompletedProcess(proc.args, proc.returncode,
                                           proc.stdout.decode(errors="replace"), text)

    def _start(self) -> None:
        res = self._run(["start"])
        # `postfix start` returns once the master is ready (master -w) or has failed;
        # Postfix writes its errors to maillog_file rather than to a pipe.
        self.started = True
        if res.returncode != 0:
            raise PeerError(f"postfix -c {self.confdir} start failed (exit {res.returncode}): "
                            f"{res.stderr.strip()}\nlog:\n{_tail(self.logfile)}")
        if not os.path.exists(self.queue / "public" / "pickup"):
            raise PeerError(f"the private Postfix has no pickup service; log:\n{_tail(self.logfile)}")

    def master_pid(self) -> int:
        return int((self.queue / "pid" / "master.pid").read_text().split()[0])

    def stop(self) -> None:
        if not self.started:
            return
        try:
            pid = self.master_pid()
        except (OSError, ValueError):
            pid = None
        self._run(["stop"])
        self.started = False
        # `postfix stop` signals the master and returns; wait until it is gone, so the
        # caller may remove the folder behind it.
        deadline = time.monotonic() + 20
        while pid and time.monotonic() < deadline and os.path.exists(f"/proc/{pid}"):
            try:
                with open(f"/proc/{pid}/stat") as f:
                    if f.read().rsplit(")", 1)[1].split()[0] == "Z":
                        break
            except OSError:
                break
            time.sleep(0.05)

    def __exit__(self, *exc):
        self.stop()
        return False

    def check_target(self) -> None:
        """Raises PeerError when Postfix's lmtp client (user postfix) could not
        connect to the unix socket of the target."""
        if not self.target.startswith("unix:"):
            return
        owner = self.owner
        groups = [g.gr_gid for g in grp.getgrall() if owner.pw_name in g.gr_mem]
        why = unreachable_by(Path(self.target[5:]), owner.pw_uid, owner.pw_gid, groups)
        if why:
            raise PeerError(f"Postfix's lmtp client (user {owner.pw_name}) cannot reach {self.target}: {why}")

    # ---- mail ------------------------------------------------------------------
    def sendmail(self, args, message: bytes, timeout: float = 60.0) -> subprocess.CompletedProcess:
        """Postfix's own sendmail with this instance's configuration: `sendmail -C
        CONFDIR ARGS` with MESSAGE on stdin. Returns the CompletedProcess (bytes)."""
        if isinstance(message, str):
            message = message.encode()
        return subprocess.run([POSTFIX_SENDMAIL, "-C", str(self.confdir), *args], input=message,
                              env=PEER_ENV, capture_output=True, timeout=timeout)

    def queue_files(self) -> dict:
        """Queue files per queue folder (maildrop, incoming, active, deferred, hold)."""
        counts = {}
        for q in self.QUEUES:
            n = 0
            for _, _, files in os.walk(self.queue / q):
                n += len(files)
            counts[q] = n
        return counts

    def wait_queue_empty(self, timeout: float = 60.0) -> None:
        """Waits until every queue folder is empty. Raises PeerError with the log
        when a message was deferred or held (a failed delivery, which would not be
        retried within a test) or when TIMEOUT passes."""
        deadline = time.monotonic() + timeout
        while True:
            counts = self.queue_files()
            if not any(counts.values()):
                return
            waiting = counts["maildrop"] + counts["incoming"] + counts["active"]
            if not waiting and (counts["deferred"] or counts["hold"]):
                raise PeerError(f"Postfix deferred or held mail {counts}; log:\n{_tail(self.logfile)}")
            if time.monotonic() > deadline:
                raise PeerError(f"the Postfix queue is not empty after {timeout:.0f} s {counts}; "
                                f"log:\n{_tail(self.logfile)}")
            time.sleep(0.05)

    def log(self) -> str:
        try:
            return self.logfile.read_text(errors="replace")
        except OSError:
            return ""


NSS_WRAPPER = "/usr/lib/x86_64-linux-gnu/libnss_wrapper.so"
MAILROOM_BIN = os.environ.get("MAILROOM_BIN") or os.path.join(
    os.path.dirname(os.path.abspath(__file__)), "..", "..", "build", "bin")
# System accounts copied into an nss_wrapper passwd file when they exist: root and
# nobody (mailroom's default_privs), Dovecot's internal users (a Dovecot started as
# a stand-in server under the same environment looks them up).
SYSTEM_ACCOUNTS = ("root", "nobody", "dovecot", "dovenull")


def make_homes(users: dict) -> None:
    """Creates each missing home of USERS (name -> (uid, gid, home)), mode 0700,
    owned by its user."""
    for uid_gid_home in users.values():
        uid, gid, home = uid_gid_home
        if not os.path.exists(home):
            os.makedirs(home, mode=0o700)
            os.chown(home, uid, gid)


def write_nss_files(folder, users: dict):
    """FOLDER/passwd and FOLDER/group for nss_wrapper: USERS (name -> (uid, gid,
    home)), each with a group of its own name, plus the SYSTEM_ACCOUNTS this machine
    has. Returns (passwd path, group path)."""
    folder = Path(folder)
    passwd, group, gids = [], [], set()
    for name, (uid, gid, home) in users.items():
        passwd.append(f"{name}:x:{uid}:{gid}:{name}:{os.path.abspath(home)}:/bin/sh")
        if gid not in gids:
            group.append(f"{name}:x:{gid}:")
            gids.add(gid)
    for name in SYSTEM_ACCOUNTS:
        pw = _user(name)
        if pw and name not in users:
            passwd.append(":".join([pw.pw_name, "x", str(pw.pw_uid), str(pw.pw_gid), pw.pw_gecos,
                                    pw.pw_dir, pw.pw_shell]))
            if pw.pw_gid not in gids:
                try:
                    gname = grp.getgrgid(pw.pw_gid).gr_name
                except KeyError:
                    gname = name
                group.append(f"{gname}:x:{pw.pw_gid}:")
                gids.add(pw.pw_gid)
    (folder / "passwd").write_text("\n".join(passwd) + "\n")
    (folder / "group").write_text("\n".join(group) + "\n")
    return folder / "passwd", folder / "group"


def nss_wrapper_env(passwd, group, base: dict = None) -> dict:
    """An environment in which getpwnam() and friends read PASSWD and GROUP."""
    if not os.path.exists(NSS_WRAPPER):
        raise PeerUnavailable(f"not installed: {NSS_WRAPPER} (package libnss-wrapper)")
    env = dict(base if base is not None else PEER_ENV)
    env.update({"LD_PRELOAD": NSS_WRAPPER, "NSS_WRAPPER_PASSWD": str(passwd),
                "NSS_WRAPPER_GROUP": str(group)})
    return env


class LmtpServer:
    """Any LMTP server run from ARGV that listens on the unix socket SOCKET: started
    as a child of this process (stdout and stderr into STDERR_FILE), ready once the
    socket greets with 220, stopped with SIGTERM (SIGKILL after 20 s) at exit.
    Attributes: socket, pid, proc."""

    name = "LMTP server"

    def __init__(self, argv, socket_path, env: dict = None, stderr_file=None,
                 start_timeout: float = 30.0, logfile=None):
        self.argv = [str(a) for a in argv]
        self.socket = os.path.abspath(socket_path)
        self.env = dict(env if env is not None else PEER_ENV)
        self.stderr_file = Path(stderr_file or (self.socket + ".stderr"))
        self.logfile = Path(logfile) if logfile else None
        self.start_timeout = start_timeout
        self.proc = None
        self.pid = None

    def __enter__(self):
        _require_programs(self.argv[0])
        try:
            self.start()
        except BaseException:
            self.stop()
            raise
        return self

    def start(self) -> None:
        with open(self.stderr_file, "ab") as err:
            self.proc = subprocess.Popen(self.argv, env=self.env, stdin=subprocess.DEVNULL,
                                         stdout=err, stderr=err)
        self.pid = self.proc.pid
        deadline = time.monotonic() + self.start_timeout
        last = None
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise PeerError(f"{' '.join(self.argv)} exited {self.proc.returncode} at start:\n{self.log()}")
            if os.path.exists(self.socket):
                try:
                    greeting = lmtp_greeting(self.socket)
                    if greeting.startswith(b"220"):
                        return
                    last = f"greeting {greeting!r}"
                except OSError as e:
                    last = str(e)
            time.sleep(0.05)
        raise PeerError(f"{' '.join(self.argv)} did not greet on {self.socket} in "
                        f"{self.start_timeout:.0f} s ({last}):\n{self.log()}")

    def stop(self) -> None:
        if self.proc is None:
            return
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.proc = None

    def __exit__(self, *exc):
        self.stop()
        return False

    def log(self) -> str:
        """Its stderr, then its log file when it has one."""
        text = ""
        for path in (self.stderr_file, self.logfile):
            if path:
                try:
                    text += path.read_text(errors="replace")
                except OSError:
                    pass
        return text


class Lmtpd(LmtpServer):
    """mailroom's lmtpd from BIN_DIR (MAILROOM_BIN or build/bin) as a peer, in
    WORKDIR: `lmtpd -C WORKDIR/mailroom.conf -l unix:WORKDIR/lmtp`, Maildir in each
    user's ~/Maildir/ (mailbox_format = maildir, home_mailbox = Maildir/), its log in
    WORKDIR/lmtpd.log, users USERS (name -> (uid, gid, home)) from nss_wrapper files
    in WORKDIR. CONFIG adds or replaces mailroom.conf keys."""

    name = "mailroom lmtpd"

    def __init__(self, workdir, users: dict, bin_dir=None, config: dict = None,
                 start_timeout: float = 30.0):
        self.workdir = Path(os.path.abspath(workdir))
        self.users = dict(users)
        self.program = os.path.join(os.path.abspath(bin_dir or MAILROOM_BIN), "lmtpd")
        self.conf = self.workdir / "mailroom.conf"
        self.settings = {
            "myhostname": "peers.example",
            "spool_dir": str(self.workdir / "spool"),
            "mail_spool_dir": str(self.workdir / "mail"),
            "aliases": str(self.workdir / "aliases"),
            "mailbox_format": "maildir",
            "home_mailbox": "Maildir/",
            "log": str(self.workdir / "lmtpd.log"),
        }
        self.settings.update(config or {})
        socket_path = self.workdir / "lmtp"
        super().__init__([self.program, "-C", self.conf, "-l", f"unix:{socket_path}"], socket_path,
                         stderr_file=self.workdir / "lmtpd.stderr", start_timeout=start_timeout,
                         logfile=self.settings["log"])

    def __enter__(self):
        _require_root("lmtpd as a peer")
        if not os.access(self.program, os.X_OK):
            raise PeerUnavailable(f"lmtpd is not built ({self.program})")
        for d in (self.workdir, Path(self.settings["spool_dir"]), Path(self.settings["mail_spool_dir"])):
            d.mkdir(parents=True, exist_ok=True)
            d.chmod(0o755)
        make_homes(self.users)
        passwd, group = write_nss_files(self.workdir, self.users)
        self.env = nss_wrapper_env(passwd, group, dict(PEER_ENV, TMPDIR=str(self.workdir)))
        self.conf.write_text("".join(f"{k} = {v}\n" for k, v in self.settings.items()))
        return super().__enter__()

    def maildir(self, user: str) -> Path:
        return Path(os.path.abspath(self.users[user][2])) / "Maildir"
