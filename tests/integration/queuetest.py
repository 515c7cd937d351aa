"""Helpers shared by the queue runner's integration tests (test_queue_*.py).

They read the spool and the mailboxes the way an administrator would: the
queue entry as the text docs/spool.md describes (lib/queue/queue_entry.hpp),
mailboxes with Python's mailbox module, the log as lines. Nothing here knows
how mailroom works inside beyond those formats.
"""
import collections
import ctypes
import mailbox
import os
import re
import signal
import subprocess
import time

import mrtest

HEADER_RE = re.compile(rb"^mailroom-queue (\d+) message (\d{20})\n")


def split_recipient_line(rest):
    """`ADDRESS> [notify=N] [orcpt=O]` (docs/spool.md): the address ends at the first
    `>` outside a quoted string; returns (address, {name: value})."""
    quoted = False
    for i, c in enumerate(rest):
        if c == '"' and (i == 0 or rest[i - 1] != "\\"):
            quoted = not quoted
        elif c == ">" and not quoted:
            params = dict(p.split("=", 1) for p in rest[i + 1:].split())
            return rest[:i], params
    raise ValueError(f"a recipient line without its '>': {rest!r}")


class Entry:
    """One queue file: its envelope and its state log, folded per recipient."""

    def __init__(self, path):
        with open(path, "rb") as f:
            data = f.read()
        m = HEADER_RE.match(data)
        if not m:
            raise ValueError(f"{path}: not a queue entry")
        start = m.end()
        size = int(m.group(2))
        self.message = data[start:start + size]
        tail = data[start + size:].decode(errors="replace")
        self.arrival = None
        self.sender = None
        self.recipients = []
        self.recipient_params = []  # {"notify": ..., "orcpt": ...} of each recipient
        self.records = []
        in_envelope = True
        for line in tail.split("\n")[:-1]:  # the last piece is empty or a torn line
            if in_envelope:
                if line == "end":
                    in_envelope = False
                elif line.startswith("arrival "):
                    self.arrival = float(line.split(" ")[1])
                elif line.startswith("sender <"):
                    self.sender = line[len("sender <"):-1]
                elif line.startswith("recipient <"):
                    address, params = split_recipient_line(line[len("recipient <"):])
                    self.recipients.append(address)
                    self.recipient_params.append(params)
                continue
            self.records.append(line.split(" "))

    def state(self, index):
        """(phase, code, text, next_try) of recipient `index` after the whole log."""
        phase, code, text, next_try = "pending", None, None, None
        for rec in self.records:
            if rec[0] in ("delivered", "failed") and int(rec[1]) == index:
                phase, code, text, next_try = rec[0], rec[3], " ".join(rec[4:]), None
            elif rec[0] == "deferred" and int(rec[1]) == index:
                phase, code, text, next_try = "deferred", rec[4], " ".join(rec[5:]), int(rec[3])
        return phase, code, text, next_try

    def kinds(self, kind):
        return [rec for rec in self.records if rec[0] == kind]


def entry(box, queue_id, folder="queue"):
    return Entry(os.path.join(box.spool, folder, queue_id))


def wait_until(predicate, timeout, interval=0.05, what="condition"):
    """Polls predicate() until it returns something true; fails after timeout seconds."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        time.sleep(interval)


def log_lines(box):
    if not os.path.exists(box.log):
        return []
    with open(box.log, errors="replace") as f:
        return f.read().splitlines()


def read_mbox(box, user):
    """Every message of USER's mbox, read by Python's mailbox (a list; empty when
    there is no mailbox). Raises when a message is not a message (torn)."""
    path = box.mbox_path(user)
    if not os.path.exists(path):
        return []
    box_ = mailbox.mbox(path, create=False)
    try:
        return [box_.get_message(key) for key in box_.keys()]
    finally:
        box_.close()


def count_header(box, users, header="X-Seq"):
    """Counter of the values of `header` over the mailboxes of `users`."""
    counts = collections.Counter()
    for user in users:
        for msg in read_mbox(box, user):
            value = msg.get(header)
            if value is not None:
                counts[value.strip()] += 1
    return counts


def start(box, program, args):
    """Starts a built program in a session of its own, so that the test can kill
    it together with every process it forks (the daemon's workers lead process
    groups of their own, inside that session)."""
    return subprocess.Popen([os.path.join(mrtest.BIN, program)] + list(args), env=box.env(),
                            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE, start_new_session=True)


def become_subreaper():
    """Makes the test adopt the orphans of the processes it kills. Some container
    init processes never reap orphans; a killed delivery process left a zombie
    would keep its PID alive, and its dotlock would look held by a live writer."""
    PR_SET_CHILD_SUBREAPER = 36
    libc = ctypes.CDLL(None, use_errno=True)
    libc.prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0)


def proc_stats():
    """Every process now, from /proc: (pid, fields of its stat after the command
    name: state, ppid, pgrp, session, ...)."""
    for name in os.listdir("/proc"):
        if not name.isdigit():
            continue
        try:
            with open(f"/proc/{name}/stat") as f:
                stat = f.read()
        except OSError:
            continue
        yield int(name), stat[stat.rfind(")") + 2:].split()


def session_members(sid, zombies=False):
    """Processes of a session (live ones only, unless zombies), from /proc:
    a list of (pid, state, parent pid)."""
    members = []
    for pid, fields in proc_stats():
        if (zombies or fields[0] != "Z") and int(fields[3]) == sid:
            members.append((pid, fields[0], int(fields[1])))
    return members


def kill_session(proc, sig=signal.SIGKILL):
    """Sends sig to every process of proc's session, again until none is left
    that could still fork (once for another signal than SIGKILL)."""
    while True:
        members = session_members(proc.pid)
        for pid, _, _ in members:
            try:
                os.kill(pid, sig)
            except ProcessLookupError:
                pass
        if not members or sig != signal.SIGKILL:
            return
        time.sleep(0.001)


def reap_orphans(sid):
    """Reaps the zombies of a session that were handed to this process (the
    subreaper), so that their PIDs are free again."""
    for pid, state, parent in session_members(sid, zombies=True):
        if state == "Z" and parent == os.getpid() and pid != sid:
            try:
                os.waitpid(pid, os.WNOHANG)
            except ChildProcessError:
                pass


def kill_and_wait(proc, timeout=10):
    """SIGKILL to all of proc's session, then wait until none of it lives: a
    killed process lets go of its locks only once it is gone, not when the
    signal is sent."""
    kill_session(proc)
    proc.wait()
    if proc.stderr and not proc.stderr.closed:
        proc.stderr.close()
    wait_until(lambda: not session_members(proc.pid), timeout, interval=0.01,
               what=f"the processes of session {proc.pid} to die")
    reap_orphans(proc.pid)


def stop_daemon(proc, timeout=30):
    """SIGTERM to the daemon (only: it stops its workers itself); returns the
    seconds it took to exit. Kills its whole session if it does not exit in time."""
    started = time.monotonic()
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
    try:
        proc.wait(timeout)
    except subprocess.TimeoutExpired:
        kill_and_wait(proc)
        raise AssertionError(f"mta -d did not exit {timeout}s after SIGTERM")
    finally:
        if proc.stderr:
            proc.stderr.close()
    return time.monotonic() - started


def reap(proc):
    """Cleanup for a started process: kill it and its session if still there."""
    if proc.poll() is None or session_members(proc.pid):
        kill_and_wait(proc)
    if proc.stderr and not proc.stderr.closed:
        proc.stderr.close()
