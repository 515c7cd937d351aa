#!/usr/bin/python3
"""LMTP benchmark: an LMTP server (mailroom's lmtpd by default) side by side with
Dovecot's LMTP, driven by Postfix's smtp-source.

usage: bench_lmtp.py [--sessions S] [--messages M] [--length L] [--runs R]
                     [--reuse-connection] [--server CMD] [--server-name NAME]
                     [--sessions-held N] [--no-throughput] [--no-dovecot]
                     [--out FILE] [--keep] [BIN_DIR]

  sudo python3 tests/bench/bench_lmtp.py                      # lmtpd vs Dovecot, 3 runs
  sudo python3 tests/bench/bench_lmtp.py --sessions-held 100  # also 100 idle sessions
  sudo python3 tests/bench/bench_lmtp.py --runs 1 --messages 1000 \
      --server "/usr/sbin/dovecot -F -c {dovecot_conf}" --server-name "Dovecot again"

1. Throughput. `smtp-source -L -s S -m M -l L -M localhost -f sender@bench.example
   -t bench@localhost unix:SOCKET` (defaults S=8, M=5000, L=4096: BASELINE.md's
   command, one connection per message; --reuse-connection adds -d, one connection
   per session for all its messages) into (A) a private Dovecot LMTP (DovecotLmtp of
   tests/integration/peers.py: Maildir in ~/Maildir, mail_fsync = always) and (B) the
   server of --server. Messages/s = M / wall time of smtp-source until it exits
   (LMTP answers each recipient only once the message is durable), then the Maildir
   (new/ + cur/) must hold exactly M files. RUNS (3) runs each, A and B interleaved
   (order alternating), after an untimed warm-up of 200 messages each; medians.
   The Maildir of the previous run is set aside (bench_common.set_aside), never
   deleted before a run.
2. CPU ms per message: user+system CPU of the server's whole process tree
   (bench_common.tree_cpu_seconds: Dovecot's master with its log, auth, config,
   anvil, stats and lmtp processes; lmtpd and its children), from just before
   smtp-source starts to 1 s after it exits, divided by M.
3. Peak RSS: the largest sum of VmRSS over the server's process tree, sampled every
   0.1 s during the timed runs.
4. --sessions-held N (after the throughput runs, on freshly started servers): N unix
   connections opened to each server at once (Python sockets), each greeted and
   past LHLO, held; then the tree's total RSS (sum of VmRSS over its processes),
   its PSS (shared pages divided among the processes sharing them) and process
   count, next to the same figures just before (idle).
   Dovecot serves each LMTP session with its own process, at most process_limit
   (default_process_limit, 100) at a time: past it, sessions wait for their greeting
   and are counted as not answered (10 s per session at most).

The server of --server is a command line (split like a shell would, run without
one) in which these are replaced: {socket} the unix socket it must listen on,
{conf} a mailroom.conf written for it (mailbox_format = maildir, home_mailbox =
Maildir/, spool_dir, log = a file, mydestination with localhost), {bin} BIN_DIR,
{home} the recipient's home (the server must deliver into {home}/Maildir),
{passwd} / {group} nss_wrapper files with user bench, {work} its folder,
{dovecot_conf} a Dovecot configuration like A's but listening on {socket} with
{home} (a stand-in, to prove the script with Dovecot on both sides). Default:
`{bin}/lmtpd -C {conf} -l unix:{socket}`. It runs as root with LD_PRELOAD of
nss_wrapper on {passwd} and {group}; the recipient `bench` is uid/gid 60001 with no
system account (Dovecot reads it from its own passwd-file). The server must stop on
SIGTERM (SIGKILL after 20 s).

Runs as root. Everything lives in one mktemp -d folder, removed at the end unless
--keep; nothing listens on a network address; /etc/dovecot is never read. The table
goes to stdout and to FILE (build/bench/lmtp.txt); progress to stderr.
"""
import argparse
import os
import shlex
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
TOP = HERE.parent.parent
sys.path.insert(0, str(TOP / "tests" / "integration"))

from bench_common import CLEAN_ENV, log, median, set_aside, tree_cpu_seconds  # noqa: E402
from peers import (DOVECOT, DovecotLmtp, LmtpServer, PeerError, PeerUnavailable,  # noqa: E402
                   nss_wrapper_env, write_nss_files)

SMTP_SOURCE = "/usr/sbin/smtp-source"
USER, UID = "bench", 60001
RECIPIENT = f"{USER}@localhost"
SENDER = "sender@bench.example"
WARMUP = 200
SETTLE = 1.0
DEFAULT_SERVER = "{bin}/lmtpd -C {conf} -l unix:{socket}"


def parse_args():
    p = argparse.ArgumentParser(description="LMTP server vs Dovecot LMTP benchmark (smtp-source -L)")
    p.add_argument("bin_dir", nargs="?", default=str(TOP / "build" / "bin"))
    p.add_argument("--sessions", "-s", type=int, default=8, help="smtp-source -s (8)")
    p.add_argument("--messages", "-m", type=int, default=5000, help="smtp-source -m (5000)")
    p.add_argument("--length", "-l", type=int, default=4096, help="smtp-source -l, payload bytes (4096)")
    p.add_argument("--runs", type=int, default=3, help="runs per server, interleaved (3)")
    p.add_argument("--reuse-connection", action="store_true",
                   help="smtp-source -d: one connection per session for all its messages")
    p.add_argument("--server", default=DEFAULT_SERVER,
                   help=f"command line of server B (default: {DEFAULT_SERVER!r})")
    p.add_argument("--server-name", help="its name in the table (default: mailroom for lmtpd, else the program)")
    p.add_argument("--sessions-held", type=int, default=0, metavar="N",
                   help="also hold N LHLO'd sessions to each server and report RSS")
    p.add_argument("--no-throughput", action="store_true", help="skip the smtp-source runs")
    p.add_argument("--no-dovecot", action="store_true", help="measure server B alone")
    p.add_argument("--timeout", type=float, default=600, help="seconds per smtp-source run (600)")
    p.add_argument("--out", default=str(TOP / "build" / "bench" / "lmtp.txt"))
    p.add_argument("--keep", action="store_true", help="keep the work folder (logs, Maildirs)")
    a = p.parse_args()
    if not a.server_name:
        prog = os.path.basename(shlex.split(a.server)[0]) if a.server.strip() else "server"
        a.server_name = "mailroom" if prog == "lmtpd" else prog
    return a


# ---- process tree memory ----------------------------------------------------------
def _children_map():
    kids = {}
    for name in os.listdir("/proc"):
        if not name.isdigit():
            continue
        try:
            with open(f"/proc/{name}/stat", "rb") as f:
                text = f.read()
        except OSError:
            continue
        ppid = int(text[text.rindex(b")") + 2:].split()[1])
        kids.setdefault(ppid, []).append(int(name))
    return kids


def tree_pids(root: int):
    kids, out, todo = _children_map(), [], [root]
    while todo:
        pid = todo.pop()
        out.append(pid)
        todo.extend(kids.get(pid, []))
    return out


def vm_rss_kb(pid: int) -> int:
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1])
    except OSError:
        pass
    return 0  # gone, or a zombie / kernel thread without VmRSS


def tree_rss_kb(root: int):
    """(sum of VmRSS in KB over ROOT and its descendants, number of processes)."""
    pids = tree_pids(root)
    return sum(vm_rss_kb(p) for p in pids), len(pids)


def tree_pss_kb(root: int) -> int:
    """Sum of Pss (shared pages divided among their users) in KB over the tree."""
    total = 0
    for pid in tree_pids(root):
        try:
            with open(f"/proc/{pid}/smaps_rollup") as f:
                for line in f:
                    if line.startswith("Pss:"):
                        total += int(line.split()[1])
                        break
        except OSError:
            pass
    return total


class RssSampler:
    """Largest tree_rss_kb(ROOT) seen, sampled every INTERVAL seconds in a thread."""

    def __init__(self, root: int, interval: float = 0.1):
        self.root, self.interval = root, interval
        self.peak_kb, self.peak_procs = 0, 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self):
        while not self._stop.is_set():
            kb, n = tree_rss_kb(self.root)
            if kb > self.peak_kb:
                self.peak_kb, self.peak_procs = kb, n
            self._stop.wait(self.interval)

    def __enter__(self):
        self._thread.start()
        return self

    def __exit__(self, *exc):
        self._stop.set()
        self._thread.join()
        return False


# ---- the servers ------------------------------------------------------------------
class Side:
    """One server under test: its name, socket, root pid, Maildir, log."""

    def __init__(self, name, server, maildir: Path):
        self.name, self.server, self.maildir = name, server, maildir
        self.rates, self.cpu_ms, self.peaks, self.failed = [], [], [], None

    @property
    def socket(self):
        return self.server.socket

    @property
    def pid(self):
        return self.server.pid

    def log_tail(self, lines=5):
        return " | ".join(self.server.log().splitlines()[-lines:])


def count_maildir(maildir: Path) -> int:
    total = 0
    for sub in ("new", "cur"):
        try:
            total += sum(1 for n in os.listdir(maildir / sub) if not n.startswith("."))
        except FileNotFoundError:
            pass
    return total


def smtp_source_argv(a, sock: str, messages: int):
    argv = [SMTP_SOURCE, "-L", "-s", str(a.sessions), "-m", str(messages), "-l", str(a.length)]
    if a.reuse_connection:
        argv.append("-d")
    return argv + ["-M", "localhost", "-f", SENDER, "-t", RECIPIENT, f"unix:{sock}"]


def one_run(a, side: Side, messages: int, timed: bool = True) -> None:
    set_aside(side.maildir)
    argv = smtp_source_argv(a, side.socket, messages)
    cpu0 = tree_cpu_seconds(side.pid)
    with RssSampler(side.pid) as rss:
        t0 = time.monotonic()
        res = subprocess.run(argv, env=CLEAN_ENV, capture_output=True, text=True, timeout=a.timeout)
        seconds = time.monotonic() - t0
        time.sleep(SETTLE)
    cpu1 = tree_cpu_seconds(side.pid)
    if res.returncode != 0:
        raise PeerError(f"smtp-source exit {res.returncode}: {(res.stderr or res.stdout).strip()[-300:]}"
                        f"; server log: {side.log_tail()}")
    got = count_maildir(side.maildir)
    if got != messages:
        raise PeerError(f"smtp-source sent {messages} but the Maildir holds {got}; "
                        f"server log: {side.log_tail()}")
    if cpu1 != cpu1 or cpu0 != cpu0:
        raise PeerError("the server's process is gone")
    if timed:
        side.rates.append(messages / seconds)
        side.cpu_ms.append(1000.0 * (cpu1 - cpu0) / messages)
        side.peaks.append(rss.peak_kb)
        log(f"  {side.name:<14} {seconds:7.2f} s  {messages / seconds:7.1f} msg/s  "
            f"{1000.0 * (cpu1 - cpu0) / messages:5.2f} ms CPU/msg  peak RSS {rss.peak_kb / 1024:6.1f} MB "
            f"({rss.peak_procs} processes)")


def read_reply(sock, timeout_at: float) -> bytes:
    """Reads one complete (possibly multi-line) SMTP reply."""
    data = b""
    while True:
        left = timeout_at - time.monotonic()
        if left <= 0:
            raise socket.timeout("reply timeout")
        sock.settimeout(left)
        chunk = sock.recv(4096)
        if not chunk:
            raise ConnectionError("closed")
        data += chunk
        lines = data.split(b"\r\n")
        for line in lines[:-1]:
            if len(line) >= 4 and line[3:4] == b" ":
                return data


def hold_sessions(side: Side, n: int, per_session_timeout: float = 10.0) -> dict:
    """Opens N connections, greets each with LHLO, measures the tree while held."""
    idle_kb, idle_procs = tree_rss_kb(side.pid)
    idle_pss = tree_pss_kb(side.pid)
    socks, answered = [], 0
    try:
        refused = None
        for _ in range(n):
            s = socket.socket(socket.AF_UNIX)
            try:
                s.settimeout(per_session_timeout)
                s.connect(side.socket)
            except OSError as e:  # a full listen queue: counted as not answered
                s.close()
                refused = str(e)
                break
            socks.append(s)
        if refused:
            log(f"  {side.name}: connection {len(socks) + 1} of {n} failed: {refused}")
        deadline = time.monotonic() + per_session_timeout
        for s in socks:
            try:
                greeting = read_reply(s, max(deadline, time.monotonic() + 0.05))
                if not greeting.startswith(b"220"):
                    continue
                s.sendall(b"LHLO bench.example\r\n")
                if read_reply(s, time.monotonic() + per_session_timeout).startswith(b"250"):
                    answered += 1
            except (OSError, socket.timeout):
                pass
        time.sleep(0.5)
        held_kb, held_procs = tree_rss_kb(side.pid)
        held_pss = tree_pss_kb(side.pid)
    finally:
        for s in socks:
            try:
                s.setblocking(False)
                s.send(b"QUIT\r\n")
            except OSError:
                pass
            s.close()
    time.sleep(1.0)  # let the sessions end before anything else is measured
    return {"idle_kb": idle_kb, "idle_procs": idle_procs, "held_kb": held_kb,
            "held_procs": held_procs, "answered": answered, "n": n,
            "idle_pss": idle_pss, "held_pss": held_pss}


# ---- setup ------------------------------------------------------------------------
def start_server_b(a, work: Path, stack):
    """Starts server B from --server; returns its Side."""
    b = work / "b"
    home = b / "home" / USER
    users = {USER: (UID, UID, str(home))}
    for d in (b, b / "spool", b / "mail", b / "tmp"):
        d.mkdir(parents=True, exist_ok=True)
        d.chmod(0o755)
    home.mkdir(parents=True, mode=0o700)
    os.chown(home, UID, UID)
    passwd, group = write_nss_files(b, users)
    sock = b / "lmtp"
    conf = b / "mailroom.conf"
    conf.write_text(f"""# bench_lmtp.py: server B's mailroom configuration
myhostname = bench.example
mydestination = $myhostname, localhost
spool_dir = {b / 'spool'}
mail_spool_dir = {b / 'mail'}
aliases = {b / 'aliases'}
mailbox_format = maildir
home_mailbox = Maildir/
log = {b / 'server.log'}
""")
    fields = {"socket": str(sock), "conf": str(conf), "bin": os.path.abspath(a.bin_dir),
              "home": str(home), "passwd": str(passwd), "group": str(group), "work": str(b),
              "dovecot_conf": ""}
    if "{dovecot_conf}" in a.server:
        standin = DovecotLmtp(b / "dovecot", users, socket_path=sock)
        standin.write_config()
        fields["dovecot_conf"] = str(standin.conf)
    argv = [word.format(**fields) for word in shlex.split(a.server)]
    env = nss_wrapper_env(passwd, group, dict(CLEAN_ENV, TMPDIR=str(b / "tmp")))
    logfile = b / "server.log"
    if fields["dovecot_conf"]:
        logfile = b / "dovecot" / "dovecot.log"
    server = LmtpServer(argv, sock, env=env, stderr_file=b / "server.stderr", logfile=logfile)
    stack.append(server)
    server.__enter__()
    return Side(a.server_name, server, home / "Maildir")


def start_dovecot(work: Path, stack):
    home = work / "a" / "home" / USER
    server = DovecotLmtp(work / "a" / "dovecot", {USER: (UID, UID, str(home))})
    stack.append(server)
    server.__enter__()
    return Side("Dovecot", server, home / "Maildir")


def fmt_ratio(x, y, digits=2):
    if x is None or y is None or y == 0:
        return "-"
    return f"{x / y:.{digits}f}"


def table(a, sides, held, work: Path) -> str:
    dv = next((s for s in sides if s.name == "Dovecot" and isinstance(s.server, DovecotLmtp)), None)
    mr = next((s for s in sides if s is not dv), None)
    cmd = " ".join(smtp_source_argv(a, "SOCKET", a.messages))
    title = f"{mr.name} vs Dovecot LMTP" if mr and dv else (mr.name if mr else "Dovecot LMTP")
    out = [f"LMTP: {title} ({dovecot_version()}), smtp-source -L",
           f"date: {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}   host: {os.uname().nodename}, "
           f"{os.cpu_count()} CPUs, {os.uname().release}",
           f"work folder: {fs_of(work)}   Maildir, fsync on both (Dovecot mail_fsync = always)"]
    if mr:
        out.append(f"server B: {a.server}")
    out.append(f"command: {cmd}")
    if not a.no_throughput:
        out.append(f"{a.messages} messages of {a.length} payload bytes per run; {a.runs} runs each, "
                   f"interleaved; median shown")
        out.append("")
        names = [s.name for s in (mr, dv) if s]
        head = f"{'':<22}" + "".join(f"{n:>16}" for n in names)
        if mr and dv:
            head += f"{'ratio ' + mr.name + '/Dovecot':>26}"
        out.append(head)
        rows = (("messages/s", "rates", 1), ("CPU ms per message", "cpu_ms", 2),
                ("peak tree RSS (MB)", "peaks", 1))
        for label, attr, digits in rows:
            vals = {}
            line = f"{label:<22}"
            for s in (mr, dv):
                if not s:
                    continue
                v = median(getattr(s, attr)) if not s.failed else None
                if v is not None and attr == "peaks":
                    v = v / 1024
                vals[s.name] = v
                line += f"{'FAILED' if s.failed else ('-' if v is None else f'{v:.{digits}f}'):>16}"
            if mr and dv:
                line += f"{fmt_ratio(vals.get(mr.name), vals.get(dv.name)):>26}"
            out.append(line)
        for s in (mr, dv):
            if not s:
                continue
            if s.failed:
                out.append(f"  {s.name}: {s.failed}")
            else:
                out.append(f"  {s.name} runs (msg/s): " + " ".join(f"{r:.1f}" for r in s.rates)
                           + "   CPU ms/msg: " + " ".join(f"{c:.2f}" for c in s.cpu_ms))
    if held:
        out.append("")
        out.append(f"Sessions held: {a.sessions_held} connections, each past LHLO; "
                   f"sum of VmRSS over the server's process tree")
        out.append(f"{'':<14}{'answered':>10}{'idle MB':>10}{'procs':>7}{'held MB':>10}{'procs':>7}"
                   f"{'KB/session':>12}{'PSS idle':>10}{'PSS held':>10}")
        for name, h in held.items():
            if isinstance(h, str):
                out.append(f"{name:<14}{h}")
                continue
            per = (h["held_kb"] - h["idle_kb"]) / max(1, h["answered"])
            out.append(f"{name:<14}{h['answered']:>6}/{h['n']:<3}{h['idle_kb'] / 1024:>10.1f}{h['idle_procs']:>7}"
                       f"{h['held_kb'] / 1024:>10.1f}{h['held_procs']:>7}{per:>12.0f}"
                       f"{h['idle_pss'] / 1024:>10.1f}{h['held_pss'] / 1024:>10.1f}")
        if mr and dv and isinstance(held.get(mr.name), dict) and isinstance(held.get(dv.name), dict):
            out.append(f"  held RSS ratio {mr.name}/Dovecot: "
                       f"{fmt_ratio(held[mr.name]['held_kb'], held[dv.name]['held_kb'])} (VmRSS sum), "
                       f"{fmt_ratio(held[mr.name]['held_pss'], held[dv.name]['held_pss'])} (PSS sum)")
        out.append("  (MB: sum of VmRSS; PSS divides shared pages among the processes sharing them;"
                   " idle = the freshly started server, before the sessions)")
    return "\n".join(out) + "\n"


def dovecot_version() -> str:
    try:
        return subprocess.run([DOVECOT, "--version"], capture_output=True, text=True,
                              env=CLEAN_ENV).stdout.split()[0]
    except (OSError, IndexError):
        return "?"


def fs_of(path: Path) -> str:
    try:
        out = subprocess.run(["df", "-T", str(path)], capture_output=True, text=True).stdout.splitlines()[1].split()
        return f"{out[1]} on {out[0]}"
    except (OSError, IndexError):
        return "?"


def start_sides(a, work: Path, stack):
    """Starts server B (unless --server is empty) and Dovecot (unless --no-dovecot)
    with folders under WORK; returns their Sides, B first."""
    sides = []
    if a.server.strip():
        sides.append(start_server_b(a, work, stack))
    if not a.no_dovecot:
        sides.append(start_dovecot(work, stack))
    return sides


def stop_all(stack) -> None:
    errors = []
    while stack:
        server = stack.pop()
        try:
            server.stop()
        except Exception as e:  # noqa: BLE001 - report, keep stopping the others
            errors.append(str(e))
    for e in errors:
        log(f"bench_lmtp: stopping: {e}")


def throughput(a, sides) -> None:
    for s in sides:
        try:
            one_run(a, s, min(WARMUP, a.messages), timed=False)
        except (PeerError, subprocess.TimeoutExpired) as e:
            s.failed = f"warm-up failed: {e}"
            log(f"  {s.name}: {s.failed}")
    for r in range(a.runs):
        order = sides if r % 2 == 0 else list(reversed(sides))
        for s in order:
            if s.failed:
                continue
            try:
                one_run(a, s, a.messages)
            except (PeerError, subprocess.TimeoutExpired) as e:
                s.failed = f"run {r + 1} failed: {e}"
                log(f"  {s.name}: {s.failed}")


def held_sessions(a, sides) -> dict:
    held = {}
    for s in sides:
        try:
            h = held[s.name] = hold_sessions(s, a.sessions_held)
            log(f"  {s.name}: {h['answered']}/{h['n']} sessions held, tree RSS "
                f"{h['idle_kb'] / 1024:.1f} MB idle -> {h['held_kb'] / 1024:.1f} MB held "
                f"({h['idle_procs']} -> {h['held_procs']} processes)")
        except OSError as e:
            held[s.name] = f"failed: {e}"
    return held


def main() -> int:
    a = parse_args()
    if os.geteuid() != 0:
        log("bench_lmtp: must run as root (private Dovecot master, deliveries as uid 60001)")
        return 1
    if not os.access(SMTP_SOURCE, os.X_OK):
        log(f"bench_lmtp: no {SMTP_SOURCE} (Debian package postfix)")
        return 1
    work = Path(tempfile.mkdtemp(prefix="lmtp-bench-"))
    work.chmod(0o755)
    stack, sides, held = [], [], {}
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(130))
    try:
        log(f"bench_lmtp: work folder {work}")
        # Each part on freshly started servers: Dovecot keeps a process per session
        # it served idle for a minute, which would weigh on the other part's figures.
        parts = []
        if not a.no_throughput:
            parts.append("throughput")
        if a.sessions_held:
            parts.append("held")
        for part in parts:
            (work / part).mkdir()
            try:
                now = start_sides(a, work / part, stack)
            except (PeerUnavailable, PeerError) as e:
                log(f"bench_lmtp: cannot start: {e}")
                return 1
            try:
                if part == "throughput":
                    sides = now
                    throughput(a, sides)
                else:
                    sides = sides or now
                    held = held_sessions(a, now)
            finally:
                stop_all(stack)
        text = table(a, sides, held, work)
        print(text, end="")
        out = Path(a.out)
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(text)
        log(f"(also in {out})")
        return 0 if not any(s.failed for s in sides) else 1
    finally:
        stop_all(stack)
        if a.keep:
            log(f"bench_lmtp: kept {work}")
        else:
            shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
