"""Shared pieces of the queue benchmark (queue_bench.py): the test message, mailbox
counting, the CPU of a daemon's process tree, and the timed submission run.

Invariants: nothing here writes outside the folders it is given; counting a mailbox
only reads it; every process started here is waited for.
It must never signal a process it did not start.
"""
import os
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
PYTHON = "/usr/bin/python3"
SUBMIT_LOOP = HERE / "submit_loop.py"
CLK_TCK = os.sysconf("SC_CLK_TCK")
# The environment of every program under test: small and the same for both systems.
CLEAN_ENV = {"PATH": "/usr/sbin:/usr/bin:/sbin:/bin", "LANG": "C"}


def log(text: str) -> None:
    print(text, file=sys.stderr, flush=True)


def set_aside(mailbox: Path) -> None:
    """Moves a mailbox of an earlier run (an mbox file or a Maildir) out of the way,
    into old-mailboxes/ beside its folder, instead of deleting it; the work folder
    goes at the end, after the runs. Deleting thousands of files right before a run
    makes ext4 without a journal pass over every inode freed in the last minutes each
    time it allocates one (__ext4_new_inode -> recently_deleted, seen with perf): it
    doubled the CPU of every delivery of the next run, a cost of the benchmark's own,
    not of the system under test, and the larger the faster that system is."""
    if not mailbox.exists() and not mailbox.is_symlink():
        return
    aside = mailbox.parent.parent / "old-mailboxes"
    aside.mkdir(exist_ok=True)
    mailbox.rename(aside / f"{mailbox.parent.name}-{mailbox.name}-{time.monotonic_ns()}")


def make_message(path: Path, size: int) -> None:
    """An RFC 5322 message of exactly SIZE bytes whose body lines never start with
    "From " (same text as run.sh's make_message)."""
    head = ("From: Bench Sender <sender@bench.example>\n"
            "To: nobody@bench.example\n"
            "Subject: mailroom bench, %d bytes\n"
            "Date: Sat, 21 Nov 2026 12:00:00 +0000\n"
            "Message-ID: <bench-%d@bench.example>\n"
            "MIME-Version: 1.0\n"
            "Content-Type: text/plain; charset=us-ascii\n\n" % (size, size)).encode()
    line = b"abcdefghijklmnopqrstuvwxyz0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ-_.,;:!?+=*"[:71] + b"\n"
    body_len = size - len(head)
    body = line * (body_len // len(line))
    rest = body_len - len(body)
    if rest:
        body += b"x" * (rest - 1) + b"\n"
    path.write_bytes(head + body)
    assert path.stat().st_size == size


class MailboxCounter:
    """Messages in one mailbox: files in a Maildir's new/ and cur/, or "From " lines
    of an mbox. Polled every 10 ms while a run waits, so it must stay cheap next to
    the programs under test on a 2-core machine: the mbox is read incrementally
    (only bytes added since the last call), and a Maildir (a full directory scan,
    about 1 ms at 2000 files) is rescanned at most every 50 ms until it holds 95% of
    EXPECTED, then at every call, so the last message is still seen within 10 ms."""

    SCAN_INTERVAL = 0.05

    def __init__(self, path: Path, mailbox_format: str, expected: int = 0):
        self.path = path
        self.maildir = mailbox_format == "maildir"
        self.expected = expected
        self.offset = 0
        self.carry = b""
        self.seen = 0
        self.last_scan = 0.0

    def count(self) -> int:
        return self._count_maildir() if self.maildir else self._count_mbox()

    def _count_maildir(self) -> int:
        now = time.monotonic()
        if self.seen < 0.95 * self.expected and now - self.last_scan < self.SCAN_INTERVAL:
            return self.seen
        self.last_scan = now
        total = 0
        for sub in ("new", "cur"):
            try:
                total += sum(1 for name in os.listdir(self.path / sub) if not name.startswith("."))
            except FileNotFoundError:
                pass
        self.seen = total
        return total

    def _count_mbox(self) -> int:
        try:
            with open(self.path, "rb") as f:
                f.seek(self.offset)
                chunk = f.read()
        except FileNotFoundError:
            return self.seen
        self.offset += len(chunk)
        data = self.carry + chunk
        # Only whole lines are counted; the tail after the last newline waits for
        # the next call, so a "From " split across two reads is still seen once.
        cut = data.rfind(b"\n") + 1
        self.carry = data[cut:]
        self.seen += (b"\n" + data[:cut]).count(b"\nFrom ")
        return self.seen


def _proc_stat(pid: str):
    """(ppid, own CPU ticks + reaped children's CPU ticks) of one process, or None."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            text = f.read()
    except OSError:
        return None
    fields = text[text.rindex(b")") + 2:].split()
    # fields[0] is field 3 (state) of proc(5): ppid is 4, utime..cstime are 14..17.
    ppid = int(fields[1])
    ticks = int(fields[11]) + int(fields[12]) + int(fields[13]) + int(fields[14])
    return ppid, ticks


def tree_cpu_seconds(root_pid: int) -> float:
    """User+system CPU seconds of ROOT_PID and all its descendants, dead or alive.

    Each live process counts utime+stime (its own) + cutime+cstime (its children
    that it has reaped, recursively). A child that exits and is reaped moves its
    whole total into its parent's cutime+cstime, so the sum over the live tree
    counts every process of the tree once, whether it lives through the whole
    measurement or not. Processes re-parented out of the tree (double fork) are
    not counted. Resolution: one clock tick (10 ms) per process."""
    stats = {}
    for name in os.listdir("/proc"):
        if name.isdigit():
            st = _proc_stat(name)
            if st:
                stats[int(name)] = st
    if root_pid not in stats:
        return float("nan")
    children = {}
    for pid, (ppid, _) in stats.items():
        children.setdefault(ppid, []).append(pid)
    total, todo = 0, [root_pid]
    while todo:
        pid = todo.pop()
        total += stats[pid][1]
        todo.extend(children.get(pid, []))
    return total / CLK_TCK


def median(values):
    v = sorted(x for x in values if x is not None)
    if not v:
        return None
    n = len(v)
    return v[n // 2] if n % 2 else (v[n // 2 - 1] + v[n // 2]) / 2


class RunFailed(Exception):
    """A measurement that did not produce a figure; its text goes into the table."""


def timed_submission(count: int, parallel: int, message: Path, argv, probe=None,
                     timeout: float = 600.0):
    """Submits COUNT messages with PARALLEL submitters (ARGV once per message) and
    waits until PROBE() (messages arrived: in the mailbox, or in the queue when
    filling one) returns COUNT. Without PROBE a message has arrived when its
    submission exited 0 (sendmail -odq: queued durably).

    Returns (seconds from the first spawn until all arrived, CPU seconds of the
    submission processes, orphans they left). Raises RunFailed on a failed
    submission, a timeout, or more messages arriving than were submitted."""
    cmd = [PYTHON, str(SUBMIT_LOOP), str(count), str(parallel), str(message), "--", *argv]
    proc = subprocess.Popen(cmd, env=CLEAN_ENV, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + timeout
    t_done = None
    try:
        while True:
            state = proc.poll()
            got = probe() if probe else (count if state == 0 else 0)
            if got >= count:
                t_done = time.monotonic()
                break
            if state not in (None, 0):
                break
            if time.monotonic() > deadline:
                raise RunFailed(f"timed out after {timeout:.0f} s with {got} of {count} arrived")
            time.sleep(0.01)
        out, err = proc.communicate(timeout=max(5.0, deadline - time.monotonic()))
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    if proc.returncode != 0 or t_done is None:
        raise RunFailed(f"submission failed (exit {proc.returncode}): {err.strip()[-300:]}")
    _, t_start, seconds, cpu, orphans = out.split()
    if probe is None:
        return float(seconds), float(cpu), int(orphans)
    got = probe()
    if got != count:
        raise RunFailed(f"{got} messages arrived for {count} submitted")
    return t_done - float(t_start), float(cpu), int(orphans)


def wait_until(predicate, timeout: float, step: float = 0.05) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(step)
    return predicate()


def tail(path: Path, lines: int = 5) -> str:
    try:
        return " | ".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return "(no log)"
