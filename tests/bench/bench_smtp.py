#!/usr/bin/python3
"""SMTP benchmark: mailroom's SMTP listener (`mta -d` with smtpd_listen) side by side
with Postfix's smtpd, both delivering into a local Maildir, in one run.

usage: bench_smtp.py [--sessions S] [--messages M] [--length L] [--runs R]
                     [--sessions-held N] [--tls-handshakes K] [--tls-workers W]
                     [--tls-held T] [--no-postfix-default] [--parts LIST]
                     [--timeout SECONDS] [--wait-idle SECONDS] [--held-wait SECONDS]
                     [--commit TEXT] [--out FILE] [--keep] [BIN_DIR]

  sudo python3 tests/bench/bench_smtp.py /tmp/bsmtp/build/bin       # the whole run
  sudo python3 tests/bench/bench_smtp.py --parts throughput --runs 1 BIN_DIR

The exact command of the default run (BIN_DIR defaults to build/bin):

  sudo python3 tests/bench/bench_smtp.py --sessions 8 --messages 5000 --length 4096 \
      --runs 3 --sessions-held 500 --tls-handshakes 1000 --tls-workers 4 --tls-held 500 \
      --wait-idle 120 --held-wait 30 BIN_DIR

1. Throughput. `smtp-source -s S -m M -l L -M localhost -f sender@bench.example
   -t bench@localhost 127.0.0.1:PORT` (defaults S=8, M=5000, L=4096: BASELINE.md's
   command, one connection per message) into (A) `mta -C CONF -d` with
   `smtpd_listen = 127.0.0.1:PORT`, `mailbox_format = maildir`, `home_mailbox =
   Maildir/` and (B) a private Postfix whose smtpd listens on 127.0.0.1:PORT2 and whose
   local(8) delivers with `home_mailbox = Maildir/`. Timed from smtp-source's start
   until the recipient's Maildir (new/ + cur/, polled every 10 ms) holds all M
   messages; smtp-source must exit 0 and the Maildir hold exactly M. Messages/s = M /
   that time. RUNS (3) runs each, A and B interleaved (order alternating), after an
   untimed warm-up of 500 messages each; medians. The Maildir of the previous run is
   set aside, never deleted before a run (bench_common.set_aside), and every dirty
   page on the machine is written out (sync) before each run. The time until
   smtp-source exited (every message queued, 250 after fsync on both sides) is shown
   beside it.
2. CPU ms per message: user+system CPU of each server's whole process tree
   (bench_common.tree_cpu_seconds: `mta -d` with its listener, sessions process,
   runner and delivery children; Postfix's master with smtpd, cleanup, qmgr,
   trivial-rewrite, local, proxymap, anvil, tlsmgr, postlogd...), from just before
   smtp-source starts to 1 s after the last delivery, divided by M; and the peak sum
   of VmRSS over the tree, sampled every 0.1 s.
3. STARTTLS handshakes per second: W (4) worker processes (Python ssl) share K (1000)
   sessions, each: connect, greeting, EHLO, STARTTLS, 220, a full TLS 1.3 handshake
   (no resumption; the client verifies the certificate), QUIT inside TLS, 221,
   close. Handshakes/s = K / wall time; the servers' tree CPU and the client's own
   CPU per handshake (the client shares the machine's CPUs, so the rate is bounded
   by both; 1000 / server CPU ms is shown as handshakes/s per server core). Same
   self-signed RSA 2048 certificate and key for both (mailroom: smtpd_tls_cert_file /
   smtpd_tls_key_file; Postfix: the same files and smtpd_tls_security_level = may),
   set for every part, throughput included. RUNS runs each, interleaved, after a
   warm-up of 100; medians. Parts 1 and 3 run on the same two servers.
4. Sessions held (fresh servers for each row): N (500) TCP connections opened at
   once, each greeted and past EHLO, held; the tree's summed VmRSS, PSS and process
   count before (idle) and while held; memory per session = (held - idle) /
   answered. Postfix runs one smtpd process per session, at most
   default_process_limit (100 by default) at once: its rows run with
   `default_process_limit = N + 100` in the private main.cf (master(8) also listens
   with a backlog of max(the service's maxproc, default_process_limit)), and once with
   Debian's default 100, where the sessions past the limit wait for their greeting
   and count as not answered (--held-wait, 30 s, for all of them). Then T (500)
   sessions held past STARTTLS + TLS handshake + a second EHLO: memory per TLS
   session, both servers.

Same conditions: both servers run as root with the same nss_wrapper users (LD_PRELOAD
of libnss_wrapper.so, Postfix's daemons through main.cf's import_environment): the
recipient `bench` (uid 60001, a home of its own on each side), the spool owner
`mailroom` (uid 20900, `mta -d`'s sessions process runs as it: it refuses a root-owned
spool), root, nobody and Postfix's own accounts. Each logs to a file of its own.
Both fsync the queue file before the 250 and the Maildir file on delivery.

Runs as root. Everything lives in one mktemp -d folder, removed at the end unless
--keep; only 127.0.0.1 is listened on; /etc/postfix is only read (master.cf copied);
only processes started here are signalled (mta -d by its Popen, Postfix through
`postfix -c ETC stop`). The machine is shared: every measured run first waits
(--wait-idle, at most 120 s) until the rest of the machine uses under 0.25 CPU over
2 s; its line then notes the 1-minute load average and any compiler seen running
before it, and after it the CPU the rest of the machine used meanwhile (busy time
from /proc/stat minus the server tree, the client and this script) and the
hypervisor's steal time (the load average also counts the previous run's own
processes; the CPU of others does not). The table goes to stdout and to FILE
(build/bench/smtp.txt); progress to stderr.
"""
import argparse
import multiprocessing
import os
import pwd
import grp
import resource
import shutil
import signal
import socket
import ssl
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
TOP = HERE.parent.parent
sys.path.insert(0, str(TOP / "tests" / "integration"))

from bench_common import CLEAN_ENV, MailboxCounter, log, median, set_aside, tail, tree_cpu_seconds  # noqa: E402
from bench_lmtp import RssSampler, fs_of, read_reply, tree_pids, tree_pss_kb, tree_rss_kb  # noqa: E402
from bench_postfix import Postfix, postfix_version  # noqa: E402

SMTP_SOURCE = "/usr/sbin/smtp-source"
NSS_WRAPPER = "/usr/lib/x86_64-linux-gnu/libnss_wrapper.so"
USER, UID = "bench", 60001
SPOOL_OWNER, SPOOL_UID = "mailroom", 20900
RECIPIENT = f"{USER}@localhost"
SENDER = "sender@bench.example"
HELO = "localhost"
WARMUP = 500
TLS_WARMUP = 100
SETTLE = 1.0
TARGET = 1.5
POSTFIX_DEFAULT_LIMIT = 100
COMPILERS = {"cc1plus", "cc1", "c++", "g++", "ld", "ld.gold", "ld.lld", "lto1", "clang", "clang++"}


def parse_args():
    p = argparse.ArgumentParser(description="mailroom mta -d vs Postfix smtpd benchmark (smtp-source)")
    p.add_argument("bin_dir", nargs="?", default=str(TOP / "build" / "bin"))
    p.add_argument("--sessions", "-s", type=int, default=8, help="smtp-source -s (8)")
    p.add_argument("--messages", "-m", type=int, default=5000, help="smtp-source -m (5000)")
    p.add_argument("--length", "-l", type=int, default=4096, help="smtp-source -l, payload bytes (4096)")
    p.add_argument("--runs", type=int, default=3, help="runs per server, interleaved (3)")
    p.add_argument("--sessions-held", type=int, default=500, metavar="N",
                   help="plain sessions held past EHLO (500; 0: skip)")
    p.add_argument("--tls-handshakes", type=int, default=1000, metavar="K",
                   help="STARTTLS sessions per run (1000; 0: skip)")
    p.add_argument("--tls-workers", type=int, default=4, metavar="W", help="parallel TLS clients (4)")
    p.add_argument("--tls-held", type=int, default=500, metavar="T",
                   help="sessions held past STARTTLS (500; 0: skip)")
    p.add_argument("--no-postfix-default", action="store_true",
                   help="skip the held row of Postfix with its default process limit")
    p.add_argument("--parts", default="throughput,tls,held,tlsheld",
                   help="comma list of throughput, tls, held, tlsheld (all)")
    p.add_argument("--timeout", type=float, default=600, help="seconds per throughput run (600)")
    p.add_argument("--wait-idle", type=float, default=120, metavar="SECONDS",
                   help="before each measured run, wait at most this long for the rest of the "
                        "machine to use under 0.25 CPU (120; 0: never wait)")
    p.add_argument("--held-wait", type=float, default=30, metavar="SECONDS",
                   help="time for all held sessions to be greeted (30)")
    p.add_argument("--out", default=str(TOP / "build" / "bench" / "smtp.txt"))
    p.add_argument("--keep", action="store_true", help="keep the work folder (logs, Maildirs)")
    p.add_argument("--commit", help="the commit BIN_DIR was built from, for the table "
                                    "(default: HEAD of this tree, which may differ)")
    a = p.parse_args()
    IDLE_WAIT["limit"] = a.wait_idle
    a.parts = [x.strip() for x in a.parts.split(",") if x.strip()]
    for part in a.parts:
        if part not in ("throughput", "tls", "held", "tlsheld"):
            p.error(f"unknown part {part!r}")
    return a


# ---- machine state ------------------------------------------------------------------
def busy_note() -> str:
    """The 1-minute load average, and the compilers running now if any."""
    seen = set()
    for name in os.listdir("/proc"):
        if not name.isdigit():
            continue
        try:
            with open(f"/proc/{name}/comm") as f:
                comm = f.read().strip()
        except OSError:
            continue
        if comm in COMPILERS:
            seen.add(comm)
    note = f"load {os.getloadavg()[0]:.2f}"
    if seen:
        note += " BUSY: " + ",".join(sorted(seen)) + " running"
    return note


def _cpu_ticks():
    with open("/proc/stat") as f:
        v = [int(x) for x in f.readline().split()[1:]]
    # user nice system idle iowait irq softirq steal ...
    return sum(v[:8]) - v[3] - v[4], v[7]


class MachineCpu:
    """CPU seconds the whole machine was busy during a run, minus what the run
    itself used (the server's tree, the client processes, this script), and the time
    the hypervisor stole: what someone else took from the measurement."""

    def __enter__(self):
        self.busy0, self.steal0 = _cpu_ticks()
        self.own0 = time.process_time()
        return self

    def other(self, ours: float) -> str:
        busy1, steal1 = _cpu_ticks()
        clk = os.sysconf("SC_CLK_TCK")
        busy = (busy1 - self.busy0 - (steal1 - self.steal0)) / clk
        other = busy - ours - (time.process_time() - self.own0)
        return f"others {max(other, 0.0):.2f} CPU s, steal {(steal1 - self.steal0) / clk:.2f} s"

    def __exit__(self, *exc):
        return False


IDLE_WAIT = {"limit": 0.0}  # seconds a run may wait for the machine to be idle (--wait-idle)


def wait_idle(threshold: float = 0.25, window: float = 2.0) -> str:
    """Before a measured run: waits (at most --wait-idle seconds) until the machine
    spends under THRESHOLD CPUs (steal excluded, this script excluded) over WINDOW
    seconds, so that another user's compile does not land in the middle of a run.
    Returns a note for the run's line ("" when it was idle at once)."""
    limit = IDLE_WAIT["limit"]
    if limit <= 0:
        return ""
    clk = os.sysconf("SC_CLK_TCK")
    start = time.monotonic()
    while True:
        b0, s0 = _cpu_ticks()
        own0 = time.process_time()
        time.sleep(window)
        b1, s1 = _cpu_ticks()
        busy = ((b1 - b0) - (s1 - s0)) / clk - (time.process_time() - own0)
        waited = time.monotonic() - start
        if busy / window < threshold:
            return "" if waited <= window + 0.5 else f"waited {waited:.0f} s for an idle machine; "
        if waited >= limit:
            return f"NOT IDLE: {busy / window:.2f} CPUs busy after waiting {waited:.0f} s; "


def _start_time(pid: int):
    """The start time of PID (field 22 of /proc/PID/stat), or None when it is gone or
    a zombie: with the pid it names one process, never a later one given the same pid."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            fields = f.read().rsplit(b")", 1)[1].split()
    except OSError:
        return None
    return None if fields[0] == b"Z" else int(fields[19])


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def make_certificate(folder: Path):
    """A self-signed RSA 2048 certificate for bench.example and 127.0.0.1, its key
    (mode 0600, root's)."""
    cert, key = folder / "cert.pem", folder / "key.pem"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", str(key),
                    "-out", str(cert), "-days", "2", "-subj", "/CN=bench.example",
                    "-addext", "subjectAltName=DNS:bench.example,IP:127.0.0.1"],
                   check=True, capture_output=True, env=CLEAN_ENV)
    key.chmod(0o600)
    cert.chmod(0o644)
    return cert, key


def write_users(folder: Path, home: Path) -> dict:
    """nss_wrapper's passwd and group files in FOLDER (recipient bench with HOME, the
    spool owner, root, nobody, Postfix's accounts); returns the environment using them."""
    passwd = ["root:x:0:0:root:/root:/bin/sh",
              f"{USER}:x:{UID}:{UID}:Bench:{home}:/bin/sh",
              f"{SPOOL_OWNER}:x:{SPOOL_UID}:{SPOOL_UID}:mailroom spool:/nonexistent:/usr/sbin/nologin",
              "nobody:x:65534:65534:nobody:/nonexistent:/usr/sbin/nologin"]
    group = ["root:x:0:", f"{USER}:x:{UID}:", f"{SPOOL_OWNER}:x:{SPOOL_UID}:", "nogroup:x:65534:"]
    try:
        pw = pwd.getpwnam("postfix")
        passwd.append(f"postfix:x:{pw.pw_uid}:{pw.pw_gid}::{pw.pw_dir}:/usr/sbin/nologin")
        for name in ("postfix", "postdrop"):
            gr = grp.getgrnam(name)
            group.append(f"{gr.gr_name}:x:{gr.gr_gid}:")
    except KeyError:
        pass  # no Postfix accounts: the Postfix side fails to start and says so
    (folder / "passwd").write_text("\n".join(passwd) + "\n")
    (folder / "group").write_text("\n".join(group) + "\n")
    for f in ("passwd", "group"):
        (folder / f).chmod(0o644)
    return {"LD_PRELOAD": NSS_WRAPPER, "NSS_WRAPPER_PASSWD": str(folder / "passwd"),
            "NSS_WRAPPER_GROUP": str(folder / "group")}


def make_home(root: Path) -> Path:
    home = root / "home" / USER
    home.parent.mkdir(parents=True, exist_ok=True)
    home.parent.chmod(0o755)
    home.mkdir(mode=0o700)
    os.chown(home, UID, UID)
    return home


def greets(port: int, timeout: float = 2.0) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=timeout) as s:
            ok = read_reply(s, time.monotonic() + timeout).startswith(b"220")
            try:
                s.sendall(b"QUIT\r\n")
                read_reply(s, time.monotonic() + timeout)
            except OSError:
                pass
            return ok
    except OSError:
        return False


# ---- the two servers ------------------------------------------------------------------
class MailroomSide:
    name = "mailroom"

    def __init__(self, bin_dir: Path, root: Path, cert: Path, key: Path):
        self.bin, self.root, self.cert, self.key = bin_dir, root, cert, key
        self.port = free_port()
        self.conf = root / "mailroom.conf"
        self.logfile = root / "mailroom.log"
        self.proc = None
        self.out = None
        self.rates, self.accept_rates, self.cpu_ms, self.peaks, self.runs = [], [], [], [], []
        self.tls = {"rate": [], "cpu": [], "client": [], "runs": []}
        self.failed = self.tls_failed = None

    def start(self) -> None:
        self.root.mkdir(parents=True, exist_ok=True)
        self.root.chmod(0o755)
        self.home = make_home(self.root)
        self.env = {**CLEAN_ENV, "TMPDIR": str(self.root), **write_users(self.root, self.home)}
        spool = self.root / "spool"
        spool.mkdir(mode=0o755)
        os.chown(spool, SPOOL_UID, SPOOL_UID)
        mail = self.root / "mail"
        mail.mkdir()
        mail.chmod(0o1777)
        self.conf.write_text(f"""# bench_smtp.py: mailroom's side, nothing outside {self.root}
myhostname = bench.example
mydestination = $myhostname, localhost
spool_dir = {spool}
mail_spool_dir = {mail}
aliases = {self.root / 'aliases'}
mailbox_format = maildir
home_mailbox = Maildir/
log = {self.logfile}
smtpd_listen = 127.0.0.1:{self.port}
smtpd_tls_cert_file = {self.cert}
smtpd_tls_key_file = {self.key}
""")
        self.out = open(self.root / "mta.out", "ab")
        self.proc = subprocess.Popen(self.argv(), env=self.env, stdin=subprocess.DEVNULL,
                                     stdout=self.out, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"mta -d exited {self.proc.returncode}: {self.log_tail()}")
            if greets(self.port):
                return
            time.sleep(0.05)
        raise RuntimeError(f"mta -d does not greet on 127.0.0.1:{self.port}: {self.log_tail()}")

    def argv(self):
        return [str(self.bin / "mta"), "-C", str(self.conf), "-d"]

    def describe(self) -> str:
        return (f"{' '.join(self.argv())}  (smtpd_listen = 127.0.0.1:PORT, mydestination = $myhostname, "
                f"localhost, mailbox_format = maildir, home_mailbox = Maildir/, smtpd_tls_cert_file/key_file set)")

    @property
    def pid(self) -> int:
        return self.proc.pid

    def maildir(self) -> Path:
        return self.home / "Maildir"

    def cpu_seconds(self) -> float:
        if self.proc is None or self.proc.poll() is not None:
            raise RuntimeError(f"mta -d is not running: {self.log_tail()}")
        return tree_cpu_seconds(self.proc.pid)

    def stop(self) -> None:
        if self.proc is not None:
            # Its descendants, known by pid and start time: one that outlives the daemon
            # (a sessions process stuck in a session) is ended too, and nothing else.
            started = {pid: _start_time(pid) for pid in tree_pids(self.proc.pid) if pid != self.proc.pid}
            if self.proc.poll() is None:
                self.proc.send_signal(signal.SIGTERM)
                try:
                    self.proc.wait(timeout=30)
                except subprocess.TimeoutExpired:
                    self.proc.kill()
                    self.proc.wait()
            self.proc = None
            left = [pid for pid, t in started.items() if t is not None and _start_time(pid) == t]
            for sig in (signal.SIGTERM, signal.SIGKILL):
                for pid in left:
                    try:
                        os.kill(pid, sig)
                    except ProcessLookupError:
                        pass
                deadline = time.monotonic() + 5
                while time.monotonic() < deadline and any(_start_time(p) == started[p] for p in left):
                    time.sleep(0.05)
                left = [p for p in left if _start_time(p) == started[p]]
                if not left:
                    break
                log(f"bench_smtp: mta -d left {len(left)} process(es) behind; ending them ({sig.name})")
        if self.out:
            self.out.close()
            self.out = None

    def log_tail(self) -> str:
        return f"{tail(self.logfile, 3)} {tail(self.root / 'mta.out', 3)}"


class PostfixSide:
    name = "Postfix"

    def __init__(self, root: Path, cert: Path, key: Path, process_limit: int = 0):
        self.root, self.cert, self.key = root, cert, key
        self.process_limit = process_limit  # 0: Postfix's default (100)
        self.port = free_port()
        self.inst = None
        self.rates, self.accept_rates, self.cpu_ms, self.peaks, self.runs = [], [], [], [], []
        self.tls = {"rate": [], "cpu": [], "client": [], "runs": []}
        self.failed = self.tls_failed = None

    def start(self) -> None:
        self.root.mkdir(parents=True, exist_ok=True)
        self.root.chmod(0o755)
        self.home = make_home(self.root)
        nss = write_users(self.root, self.home)
        import_env = " ".join(["MAIL_CONFIG MAIL_DEBUG MAIL_LOGTAG TZ XAUTHORITY DISPLAY "
                               "LANG=C POSTLOG_SERVICE POSTLOG_HOSTNAME"] +
                              [f"{k}={v}" for k, v in nss.items()])
        settings = {
            "home_mailbox": "Maildir/",
            "import_environment": import_env,
            "inet_interfaces": "127.0.0.1",
            "smtpd_tls_cert_file": str(self.cert),
            "smtpd_tls_key_file": str(self.key),
            "smtpd_tls_security_level": "may",
        }
        if self.process_limit:
            settings["default_process_limit"] = str(self.process_limit)
        self.inst = Postfix(self.root / "postfix", "maildir", main_cf=settings)
        self.inst.configure()
        master_cf = self.inst.etc / "master.cf"
        master_cf.write_text(master_cf.read_text()
                             + f"127.0.0.1:{self.port} inet n       -       n       -       -       smtpd\n")
        self.inst.start()
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            if greets(self.port):
                return
            time.sleep(0.05)
        raise RuntimeError(f"Postfix's smtpd does not greet on 127.0.0.1:{self.port}: {self.log_tail()}")

    def describe(self) -> str:
        return (f"{' '.join(self.inst.start_argv()) if self.inst else 'postfix -c ETC start'}  "
                f"(master.cf: 127.0.0.1:PORT inet n - n - - smtpd; main.cf: mydestination = $myhostname, "
                f"localhost, home_mailbox = Maildir/, smtpd_tls_cert_file/key_file set, "
                f"smtpd_tls_security_level = may, otherwise bench_postfix.py's private instance)")

    @property
    def pid(self) -> int:
        return self.inst.master_pid()

    def maildir(self) -> Path:
        return self.home / "Maildir"

    def cpu_seconds(self) -> float:
        return self.inst.cpu_seconds()

    def stop(self) -> None:
        if self.inst is None or not self.inst.started:
            return
        try:
            pid = self.inst.master_pid()
        except (OSError, ValueError):
            pid = None
        self.inst.stop()
        # `postfix stop` returns before the master is gone; wait, so the next part
        # starts on a quiet machine and the folder can go.
        deadline = time.monotonic() + 20
        while pid and time.monotonic() < deadline and os.path.exists(f"/proc/{pid}"):
            try:
                with open(f"/proc/{pid}/stat") as f:
                    if f.read().rsplit(")", 1)[1].split()[0] == "Z":
                        break
            except OSError:
                break
            time.sleep(0.05)

    def log_tail(self) -> str:
        return self.inst.log_tail() if self.inst else "(not configured)"


class Failed(Exception):
    pass


# ---- 1. throughput ---------------------------------------------------------------------
def smtp_source_argv(a, port, messages: int):
    return [SMTP_SOURCE, "-s", str(a.sessions), "-m", str(messages), "-l", str(a.length),
            "-M", HELO, "-f", SENDER, "-t", RECIPIENT, f"127.0.0.1:{port}"]


def throughput_run(a, side, messages: int, timed: bool = True) -> None:
    maildir = side.maildir()
    set_aside(maildir)
    counter = MailboxCounter(maildir, "maildir", messages)
    # The previous run's (or warm-up's) dirty pages written out first: the kernel's
    # writeback of another side's 40 MB must not land in the middle of this run.
    os.sync()
    note = wait_idle() + busy_note()
    cpu0 = side.cpu_seconds()
    ru0 = resource.getrusage(resource.RUSAGE_CHILDREN)
    deadline = time.monotonic() + a.timeout
    with RssSampler(side.pid) as rss, MachineCpu() as machine:
        t0 = time.monotonic()
        proc = subprocess.Popen(smtp_source_argv(a, side.port, messages), env=CLEAN_ENV,
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        t_sent = t_done = None
        try:
            while True:
                if t_sent is None and proc.poll() is not None:
                    t_sent = time.monotonic()
                    if proc.returncode != 0:
                        break
                if counter.count() >= messages:
                    t_done = time.monotonic()
                    break
                if time.monotonic() > deadline:
                    break
                time.sleep(0.01)
            out, err = proc.communicate(timeout=max(5.0, deadline - time.monotonic()))
            if t_sent is None:
                t_sent = time.monotonic()
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
        time.sleep(SETTLE)
        cpu1 = side.cpu_seconds()
        ru1 = resource.getrusage(resource.RUSAGE_CHILDREN)
        client = (ru1.ru_utime + ru1.ru_stime) - (ru0.ru_utime + ru0.ru_stime)
        note += "; during the run: smtp-source %.2f CPU s, %s" % (client, machine.other(cpu1 - cpu0 + client))
    if proc.returncode != 0:
        raise Failed(f"smtp-source exit {proc.returncode}: {(err or out).strip()[-300:]}; "
                     f"server log: {side.log_tail()}")
    got = counter.count()
    if t_done is None:
        raise Failed(f"timed out after {a.timeout:.0f} s with {got} of {messages} delivered; "
                     f"server log: {side.log_tail()}")
    if got != messages:
        raise Failed(f"smtp-source sent {messages} but the Maildir holds {got}; server log: {side.log_tail()}")
    secs, sent = t_done - t0, t_sent - t0
    cpu = 1000.0 * (cpu1 - cpu0) / messages
    line = (f"{side.name:<9} {secs:7.2f} s {messages / secs:7.1f} msg/s (smtp-source done at {sent:6.2f} s, "
            f"{messages / sent:7.1f} msg/s)  {cpu:5.2f} ms CPU/msg  peak RSS {rss.peak_kb / 1024:6.1f} MB "
            f"({rss.peak_procs} procs)  [{note}]")
    if timed:
        side.rates.append(messages / secs)
        side.accept_rates.append(messages / sent)
        side.cpu_ms.append(cpu)
        side.peaks.append(rss.peak_kb)
        side.runs.append(line)
        log("  " + line)
    else:
        log("  warm-up " + line)


# ---- 3. STARTTLS handshakes --------------------------------------------------------------
def client_context(cert: Path) -> ssl.SSLContext:
    ctx = ssl.create_default_context(cafile=str(cert))
    ctx.minimum_version = ssl.TLSVersion.TLSv1_3
    ctx.maximum_version = ssl.TLSVersion.TLSv1_3
    return ctx


def expect(sock, code: bytes, timeout: float = 30.0) -> bytes:
    reply = read_reply(sock, time.monotonic() + timeout)
    if not reply.startswith(code):
        raise OSError(f"expected {code.decode()}, got {reply[:120]!r}")
    return reply


def starttls_session(port: int, ctx: ssl.SSLContext, quit_after: bool = True):
    """connect, 220, EHLO, 250, STARTTLS, 220, TLS handshake; then QUIT and 221
    (QUIT_AFTER) or EHLO again and the TLS socket returned (held)."""
    s = socket.create_connection(("127.0.0.1", port), timeout=30)
    try:
        expect(s, b"220")
        s.sendall(b"EHLO client.bench.example\r\n")
        if b"STARTTLS" not in expect(s, b"250"):
            raise OSError("no STARTTLS in the EHLO reply")
        s.sendall(b"STARTTLS\r\n")
        expect(s, b"220")
        t = ctx.wrap_socket(s, server_hostname="127.0.0.1")
        if t.version() != "TLSv1.3":
            raise OSError(f"negotiated {t.version()}")
        if quit_after:
            t.sendall(b"QUIT\r\n")
            expect(t, b"221")
            t.close()
            return None
        t.sendall(b"EHLO client.bench.example\r\n")
        expect(t, b"250")
        return t
    except BaseException:
        s.close()
        raise


def _tls_worker(port, cert, count, start, results):
    ctx = client_context(Path(cert))
    errors, first = 0, ""
    start.wait()
    for _ in range(count):
        try:
            starttls_session(port, ctx)
        except Exception as e:  # noqa: BLE001 - counted and reported, never lost
            errors += 1
            first = first or f"{type(e).__name__}: {e}"
    results.put((errors, first))


def tls_run(a, side, cert: Path, total: int, timed: bool = True) -> None:
    mp = multiprocessing.get_context("fork")
    workers = max(1, a.tls_workers)
    counts = [total // workers + (1 if i < total % workers else 0) for i in range(workers)]
    start, results = mp.Event(), mp.Queue()
    procs = [mp.Process(target=_tls_worker, args=(side.port, str(cert), c, start, results)) for c in counts]
    for p in procs:
        p.start()
    time.sleep(0.2)  # the workers are forked and waiting
    note = wait_idle() + busy_note()
    ru0 = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu0 = side.cpu_seconds()
    with MachineCpu() as machine:
        t0 = time.monotonic()
        start.set()
        outcome = [results.get(timeout=a.timeout) for _ in procs]
        secs = time.monotonic() - t0
        for p in procs:
            p.join()
        time.sleep(SETTLE)
        cpu1 = side.cpu_seconds()
        ru1 = resource.getrusage(resource.RUSAGE_CHILDREN)
        client = (ru1.ru_utime + ru1.ru_stime) - (ru0.ru_utime + ru0.ru_stime)
        note += "; during the run: " + machine.other(cpu1 - cpu0 + client)
    errors = sum(e for e, _ in outcome)
    if errors:
        raise Failed(f"{errors} of {total} STARTTLS sessions failed: {next(f for _, f in outcome if f)}; "
                     f"server log: {side.log_tail()}")
    rate, cpu, ccpu = total / secs, 1000 * (cpu1 - cpu0) / total, 1000 * client / total
    line = (f"{side.name:<9} {secs:6.2f} s {rate:7.1f} handshakes/s  server {cpu:5.2f} ms CPU each, "
            f"client {ccpu:5.2f} ms  [{note}]")
    if timed:
        side.tls["rate"].append(rate)
        side.tls["cpu"].append(cpu)
        side.tls["client"].append(ccpu)
        side.tls["runs"].append(line)
        log("  " + line)
    else:
        log("  warm-up " + line)


# ---- 4. sessions held ------------------------------------------------------------------
def hold_sessions(side, n: int, cert: Path = None, wait: float = 30.0) -> dict:
    """Opens N connections at once, takes each past its greeting and EHLO (and with
    CERT past STARTTLS, the handshake and a second EHLO), measures the tree while
    they are all held, then QUITs them."""
    time.sleep(1.0)
    note = wait_idle() + busy_note()
    idle_kb, idle_procs = tree_rss_kb(side.pid)
    idle_pss = tree_pss_kb(side.pid)
    ctx = client_context(cert) if cert else None
    socks, answered, refused = [], 0, None
    try:
        for _ in range(n):
            try:
                socks.append(socket.create_connection(("127.0.0.1", side.port), timeout=3))
            except OSError as e:  # a full listen queue: the rest count as not answered
                refused = f"connection {len(socks) + 1} of {n} failed: {e}"
                break
        deadline = time.monotonic() + wait
        for i, s in enumerate(socks):
            try:
                expect(s, b"220", max(deadline - time.monotonic(), 0.01))
                s.sendall(b"EHLO client.bench.example\r\n")
                reply = expect(s, b"250", wait)
                if ctx:
                    if b"STARTTLS" not in reply:
                        continue
                    s.sendall(b"STARTTLS\r\n")
                    expect(s, b"220", wait)
                    t = ctx.wrap_socket(s, server_hostname="127.0.0.1")
                    socks[i] = t
                    t.sendall(b"EHLO client.bench.example\r\n")
                    expect(t, b"250", wait)
                answered += 1
            except (OSError, ssl.SSLError):
                pass
        time.sleep(1.0)
        held_kb, held_procs = tree_rss_kb(side.pid)
        held_pss = tree_pss_kb(side.pid)
    finally:
        for s in socks:
            try:
                s.settimeout(0.2)
                s.sendall(b"QUIT\r\n")
            except (OSError, ssl.SSLError):
                pass
            try:
                s.close()
            except OSError:
                pass
    time.sleep(1.0)
    return {"idle_kb": idle_kb, "idle_procs": idle_procs, "held_kb": held_kb, "held_procs": held_procs,
            "idle_pss": idle_pss, "held_pss": held_pss, "answered": answered, "n": n,
            "refused": refused, "note": note}


# ---- the run ----------------------------------------------------------------------------
def commit_of(tree: Path) -> str:
    def git(*args):
        return subprocess.run(["git", "-C", str(tree), *args], capture_output=True, text=True,
                              env=CLEAN_ENV).stdout.strip()
    head = git("rev-parse", "--short=12", "HEAD") or "?"
    dirty = git("status", "--porcelain", "--untracked-files=no")
    return head + (" (tree has uncommitted changes)" if dirty else "")


def fmt(v, digits):
    return "-" if v is None else f"{v:.{digits}f}"


def ratio(x, y):
    return None if x is None or y is None or y == 0 else x / y


def table(a, bin_dir: Path, work: Path, pair, held: list, cert_note: str, commands) -> str:
    mr, pf = pair if pair else (None, None)
    out = [f"SMTP: mailroom mta -d vs Postfix {postfix_version()} smtpd, smtp-source into 127.0.0.1, Maildir",
           f"date: {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}   host: {os.uname().nodename}, "
           f"{os.cpu_count()} CPUs, {os.uname().release}   work folder: {fs_of(work)}",
           (f"mailroom: {bin_dir}, built from commit {a.commit}" if a.commit else
            f"mailroom: {bin_dir}; HEAD of {TOP} when this ran: {commit_of(TOP)}"),
           "both servers run as root with nss_wrapper users; both fsync the queue file before the 250 "
           "and the Maildir file on delivery"]
    for name, text in commands:
        out.append(f"{name}: {text}")
    if "throughput" in a.parts and mr:
        out += ["", f"1-2. Throughput: {a.messages} messages of {a.length} payload bytes, "
                f"{a.sessions} sessions, one connection per message; {a.runs} runs each, interleaved, "
                f"after a {min(WARMUP, a.messages)}-message warm-up; median shown",
                "     timed from smtp-source's start until the last message is in the Maildir"]
        head = f"{'':<30}{'mailroom':>12}{'Postfix':>12}{'mailroom/Postfix':>18}"
        out.append(head)
        rows = (("messages/s (delivered)", "rates", 1), ("  messages/s (queued)", "accept_rates", 1),
                ("CPU ms per message (tree)", "cpu_ms", 2), ("peak tree RSS (MB)", "peaks", 1))
        for label, attr, digits in rows:
            vals = []
            for s in (mr, pf):
                v = median(getattr(s, attr)) if not s.failed else None
                if v is not None and attr == "peaks":
                    v /= 1024
                vals.append(v)
            cells = "".join(f"{('FAILED' if s.failed else fmt(v, digits)):>12}" for s, v in zip((mr, pf), vals))
            r = ratio(vals[0], vals[1])
            out.append(f"{label:<30}{cells}{fmt(r, 2):>18}")
        r = ratio(median(mr.rates) if not mr.failed else None, median(pf.rates) if not pf.failed else None)
        out.append(f"target mailroom >= {TARGET}x Postfix (messages/s delivered): "
                   + ("no result" if r is None else ("yes" if r >= TARGET else "NO") + f" ({r:.2f}x)"))
        if mr.rates and pf.rates and not mr.failed and not pf.failed:
            pairs = [x / y for x, y in zip(mr.rates, pf.rates)]
            out.append("  per interleaved run pair: " + " ".join(f"{p:.2f}" for p in pairs)
                       + f" (median {median(pairs):.2f})")
        for s in (mr, pf):
            if s.failed:
                out.append(f"  {s.name}: {s.failed}")
            for line in s.runs:
                out.append("  " + line)
    if "tls" in a.parts and mr and a.tls_handshakes:
        out += ["", f"3. STARTTLS: {a.tls_handshakes} sessions per run by {a.tls_workers} Python workers "
                f"(connect, EHLO, STARTTLS, full TLS 1.3 handshake, QUIT, close); {a.runs} runs each, "
                f"interleaved, after a warm-up of {TLS_WARMUP}; median shown",
                f"   certificate: {cert_note}"]
        out.append(f"{'':<30}{'mailroom':>12}{'Postfix':>12}{'mailroom/Postfix':>18}")
        for label, key, digits in (("handshakes/s", "rate", 1), ("server CPU ms per handshake", "cpu", 2),
                                   ("client CPU ms per handshake", "client", 2)):
            vals = [median(s.tls[key]) if not s.tls_failed else None for s in (mr, pf)]
            cells = "".join(f"{('FAILED' if s.tls_failed else fmt(v, digits)):>12}" for s, v in zip((mr, pf), vals))
            out.append(f"{label:<30}{cells}{fmt(ratio(vals[0], vals[1]), 2):>18}")
        per_core = [1000 / median(s.tls["cpu"]) if not s.tls_failed and median(s.tls["cpu"]) else None
                    for s in (mr, pf)]
        cells = "".join(f"{fmt(v, 0):>12}" for v in per_core)
        out.append(f"{'handshakes/s per server core':<30}{cells}{fmt(ratio(per_core[0], per_core[1]), 2):>18}")
        out.append(f"   (the client shares the {os.cpu_count()} CPUs: handshakes/s is bounded by client + server CPU; "
                   "per server core = 1000 / server CPU ms, mailroom's sessions process is one thread)")
        for s in (mr, pf):
            if s.tls_failed:
                out.append(f"  {s.name}: {s.tls_failed}")
            for line in s.tls["runs"]:
                out.append("  " + line)
    if held:
        out += ["", "4. Sessions held at once, fresh servers for each row: tree memory before (idle) and "
                "while held (sum of VmRSS; PSS divides shared pages among their processes)"]
        out.append(f"{'':<38}{'answered':>10}{'idle MB':>9}{'procs':>6}{'held MB':>9}{'procs':>6}"
                   f"{'KB/sess':>9}{'PSS idle':>9}{'PSS held':>9}{'PSS KB/sess':>12}")
        for label, h in held:
            if isinstance(h, str):
                out.append(f"{label:<38}{h}")
                continue
            per = (h["held_kb"] - h["idle_kb"]) / max(1, h["answered"])
            per_pss = (h["held_pss"] - h["idle_pss"]) / max(1, h["answered"])
            out.append(f"{label:<38}{h['answered']:>6}/{h['n']:<4}{h['idle_kb'] / 1024:>8.1f}{h['idle_procs']:>6}"
                       f"{h['held_kb'] / 1024:>9.1f}{h['held_procs']:>6}{per:>9.0f}"
                       f"{h['idle_pss'] / 1024:>9.1f}{h['held_pss'] / 1024:>9.1f}{per_pss:>12.0f}")
        for label, h in held:
            if isinstance(h, dict):
                extra = f"; {h['refused']}" if h["refused"] else ""
                out.append(f"  {label.strip()}: [{h['note']}]{extra}")
        out.append(f"  Postfix's plain and TLS rows run with default_process_limit = N + 100 in its main.cf "
                   f"(its default is {POSTFIX_DEFAULT_LIMIT}); the '(default)' row shows what its default does")
    return "\n".join(out) + "\n"


def main() -> int:
    a = parse_args()
    if os.geteuid() != 0:
        log("bench_smtp: must run as root (mta -d binds and switches users, a private Postfix)")
        return 1
    for need, package in ((SMTP_SOURCE, "postfix"), ("/usr/sbin/postfix", "postfix"),
                          (NSS_WRAPPER, "libnss-wrapper"), ("/usr/bin/openssl", "openssl")):
        if not os.path.exists(need):
            log(f"bench_smtp: no {need} (Debian package {package})")
            return 1
    bin_dir = Path(a.bin_dir).resolve()
    if not (bin_dir / "mta").is_file():
        log(f"bench_smtp: no {bin_dir / 'mta'} (build first)")
        return 1
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    work = Path(tempfile.mkdtemp(prefix="smtp-bench.", dir=os.environ.get("TMPDIR", "/tmp")))
    work.chmod(0o755)
    live = []
    pair, held = None, []
    commands = [("smtp-source", " ".join(smtp_source_argv(a, "PORT", a.messages)))]

    def start(side):
        live.append(side)
        side.start()
        return side

    def stop_all():
        while live:
            side = live.pop()
            try:
                side.stop()
            except Exception as e:  # noqa: BLE001 - keep stopping the others
                log(f"bench_smtp: stopping {side.name}: {e}")

    try:
        cert, key = make_certificate(work)
        cert_note = f"self-signed RSA 2048, CN bench.example, the same files for both ({cert}, {key})"
        log(f"bench_smtp: work folder {work}; mailroom from {bin_dir}; {busy_note()}")
        if "throughput" in a.parts or ("tls" in a.parts and a.tls_handshakes):
            mr = MailroomSide(bin_dir, work / "rate" / "mailroom", cert, key)
            pf = PostfixSide(work / "rate" / "postfix", cert, key)
            pair = (mr, pf)
            for s in pair:
                try:
                    start(s)
                except (RuntimeError, OSError) as e:
                    s.failed = s.tls_failed = f"cannot start: {e}"
                    log(f"  {s.name}: {s.failed}")
            commands += [("mailroom", mr.describe()), ("Postfix", pf.describe())]
            ok = [s for s in pair if not s.failed]
            if "throughput" in a.parts:
                for s in ok:
                    try:
                        throughput_run(a, s, min(WARMUP, a.messages), timed=False)
                    except (Failed, RuntimeError, OSError) as e:
                        s.failed = f"warm-up failed: {e}"
                        log(f"  {s.name}: {s.failed}")
                for r in range(a.runs):
                    for s in (ok if r % 2 == 0 else ok[::-1]):
                        if s.failed:
                            continue
                        try:
                            throughput_run(a, s, a.messages)
                        except (Failed, RuntimeError, OSError) as e:
                            s.failed = f"run {r + 1} failed: {e}"
                            log(f"  {s.name}: {s.failed}")
            if "tls" in a.parts and a.tls_handshakes:
                ok = [s for s in pair if not s.tls_failed]
                for s in ok:
                    try:
                        tls_run(a, s, cert, min(TLS_WARMUP, a.tls_handshakes), timed=False)
                    except (Failed, RuntimeError, OSError) as e:
                        s.tls_failed = f"warm-up failed: {e}"
                        log(f"  {s.name}: {s.tls_failed}")
                for r in range(a.runs):
                    for s in (ok if r % 2 == 0 else ok[::-1]):
                        if s.tls_failed:
                            continue
                        try:
                            tls_run(a, s, cert, a.tls_handshakes)
                        except (Failed, RuntimeError, OSError) as e:
                            s.tls_failed = f"run {r + 1} failed: {e}"
                            log(f"  {s.name}: {s.tls_failed}")
            stop_all()

        rows = []
        if "held" in a.parts and a.sessions_held:
            n = a.sessions_held
            rows.append((f"mailroom, {n} plain", lambda d, n=n: MailroomSide(bin_dir, d, cert, key), n, None))
            rows.append((f"Postfix, {n} plain (limit {n + 100})",
                         lambda d, n=n: PostfixSide(d, cert, key, process_limit=n + 100), n, None))
            if not a.no_postfix_default:
                rows.append((f"Postfix, {n} plain (default {POSTFIX_DEFAULT_LIMIT})",
                             lambda d: PostfixSide(d, cert, key), n, None))
        if "tlsheld" in a.parts and a.tls_held:
            n = a.tls_held
            rows.append((f"mailroom, {n} TLS", lambda d: MailroomSide(bin_dir, d, cert, key), n, cert))
            rows.append((f"Postfix, {n} TLS (limit {n + 100})",
                         lambda d, n=n: PostfixSide(d, cert, key, process_limit=n + 100), n, cert))
        for i, (label, make, n, with_tls) in enumerate(rows):
            side = make(work / "held" / str(i))
            try:
                start(side)
                h = hold_sessions(side, n, with_tls, a.held_wait)
                held.append((label, h))
                log(f"  {label}: {h['answered']}/{n} held, tree RSS {h['idle_kb'] / 1024:.1f} MB idle -> "
                    f"{h['held_kb'] / 1024:.1f} MB held ({h['idle_procs']} -> {h['held_procs']} processes), "
                    f"PSS {h['idle_pss'] / 1024:.1f} -> {h['held_pss'] / 1024:.1f} MB [{h['note']}]")
            except (RuntimeError, OSError) as e:
                held.append((label, f"failed: {e}"))
                log(f"  {label}: failed: {e}")
            finally:
                stop_all()

        text = table(a, bin_dir, work, pair, held, cert_note, commands)
        print(text, end="")
        out = Path(a.out)
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(text)
        log(f"(also in {out})")
        failed = pair and any(s.failed or s.tls_failed for s in pair)
        return 1 if failed else 0
    finally:
        stop_all()
        if a.keep:
            log(f"bench_smtp: kept {work}")
        else:
            shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
