#!/usr/bin/env python3
"""Stopping the daemon (mta/daemon.hpp): SIGTERM while deliveries are in flight.
The daemon stops starting new ones, lets those in flight finish for its grace
time (10 s), then kills what is left, and exits. Nothing is lost and nothing is
delivered twice: after a restart every message is in its mailbox exactly once.

Deliveries are held in flight by a lock the test takes on bob's mailbox (the
writer waits for it up to lock_timeout)."""
import fcntl
import os
import re
import time

import aliastest
import mrtest
import queuetest
from mrtest import message

GRACE = 10  # DaemonSettings::shutdown_grace
WORKERS = 4
MESSAGES = 12


class DaemonStop(mrtest.TestCase):
    config = {"delivery_workers": str(WORKERS), "queue_run_delay": "1h", "lock_timeout": "60s"}

    def setUp(self):
        super().setUp()
        queuetest.become_subreaper()

    def hold_bobs_mailbox(self):
        """Creates bob's mailbox and takes its fcntl lock; returns the open file."""
        path = self.box.mbox_path("bob")
        with open(path, "w"):
            pass
        os.chown(path, self.box.uids["bob"], -1) if mrtest.IS_ROOT else None
        os.chmod(path, 0o600)
        held = open(path, "r+")
        fcntl.lockf(held, fcntl.LOCK_EX | fcntl.LOCK_NB)
        self.addCleanup(held.close)
        return held

    def start_with_deliveries_in_flight(self):
        for seq in range(MESSAGES):
            r = self.box.sendmail(["-odq", "-f", "alice", "bob"], message(f"m{seq}", extra_headers=f"X-Seq: {seq}\n"))
            self.assertExit(r, 0)
        held = self.hold_bobs_mailbox()
        daemon = queuetest.start(self.box, "mta", ["-d"])
        self.addCleanup(queuetest.reap, daemon)
        # Every worker has started its attempt and waits for the mailbox lock.
        queuetest.wait_until(lambda: sum("(queue active)" in l for l in queuetest.log_lines(self.box)) >= WORKERS,
                             20, what="deliveries in flight")
        time.sleep(0.3)
        return daemon, held

    def restart_and_check(self):
        daemon = queuetest.start(self.box, "mta", ["-d"])
        self.addCleanup(queuetest.reap, daemon)
        queuetest.wait_until(lambda: not self.box.queued(), 60, what="an empty queue after the restart")
        queuetest.stop_daemon(daemon)
        counts = queuetest.count_header(self.box, ["bob"])
        self.assertEqual(sorted(counts, key=int), [str(seq) for seq in range(MESSAGES)], "lost messages")
        self.assertEqual(set(counts.values()), {1}, f"delivered twice: {counts}")

    def test_sigterm_lets_deliveries_in_flight_finish_within_the_grace_time(self):
        daemon, held = self.start_with_deliveries_in_flight()
        daemon.send_signal(15)
        time.sleep(1)
        held.close()  # the deliveries in flight go through now
        took = queuetest.stop_daemon(daemon, timeout=GRACE + 20)
        self.assertLess(took, GRACE, "the daemon waited longer than its deliveries")
        log = queuetest.log_lines(self.box)
        self.assertTrue(any(f"stopping: waiting for {WORKERS} deliveries" in l for l in log), log)
        self.assertTrue(any(l.endswith("daemon stopped") for l in log), log)
        self.assertFalse(any("abandoned" in l for l in log), log)
        # Those in flight were finished, and no new one was started after SIGTERM.
        delivered = len(queuetest.read_mbox(self.box, "bob"))
        self.assertEqual(delivered, WORKERS)
        self.assertEqual(len(self.box.queued()), MESSAGES - WORKERS)
        self.restart_and_check()

    def test_sigterm_kills_deliveries_still_in_flight_after_the_grace_time(self):
        daemon, held = self.start_with_deliveries_in_flight()
        daemon.send_signal(15)
        took = queuetest.stop_daemon(daemon, timeout=GRACE + 40)
        self.assertGreaterEqual(took, GRACE - 1)
        # The deliveries in flight would wait for bob's lock for lock_timeout (60 s):
        # stopping well before that is the behaviour; the margin over the grace time
        # is for a loaded host.
        self.assertLess(took, GRACE + 20, "the daemon did not stop at the end of its grace time")
        log = queuetest.log_lines(self.box)
        self.assertTrue(any(f"stopping: {WORKERS} deliveries abandoned" in l for l in log), log)
        # No process of the daemon is left delivering behind its back.
        queuetest.wait_until(lambda: not queuetest.session_members(daemon.pid), 5,
                             what="the daemon's delivery processes to end")
        held.close()
        time.sleep(0.5)
        self.assertEqual(queuetest.read_mbox(self.box, "bob"), [], "a delivery went on after the daemon stopped")
        self.assertEqual(len(self.box.queued()), MESSAGES)
        self.restart_and_check()


def pid_of(line):
    """The process id of a log line `... mailroom/ROLE[PID]: ...`."""
    return int(re.search(r"\[(\d+)\]: ", line).group(1))


class WorkerReuse(mrtest.TestCase):
    """A worker runs one entry after another (mta/daemon.cpp: forking one per entry
    cost about as much CPU as the delivery itself); each delivery is still a child
    of its own, as the recipient."""
    config = {"delivery_workers": "1", "queue_run_delay": "1h"}

    def test_one_worker_runs_every_entry_in_turn(self):
        for seq in range(4):
            self.assertExit(self.box.sendmail(["-odq", "-f", "alice", "bob"], message(f"m{seq}")), 0)
        daemon = queuetest.start(self.box, "mta", ["-d"])
        self.addCleanup(queuetest.reap, daemon)
        queuetest.wait_until(lambda: not self.box.queued(), 30, what="an empty queue")
        queuetest.stop_daemon(daemon)
        log = queuetest.log_lines(self.box)
        started = [pid_of(l) for l in log if "daemon started" in l]
        runs = [pid_of(l) for l in log if "(queue active)" in l]
        self.assertEqual(len(runs), 4, log)
        self.assertEqual(len(set(runs)), 1, f"one worker per entry: {runs}")
        self.assertNotIn(runs[0], started, "the daemon's loop delivered itself")
        self.assertEqual(len(queuetest.read_mbox(self.box, "bob")), 4)

    def test_entries_met_while_the_worker_retires_wait_for_the_next_one_not_the_next_scan(self):
        # A worker retires after 100 entries (mta/daemon.cpp worker_max_runs); until it
        # is reaped it holds its place. The entries of the scan met meanwhile once
        # waited for the next scan, queue_run_delay (here 1 h) later.
        total = 110
        for seq in range(total):
            self.assertExit(self.box.sendmail(["-odq", "-f", "alice", "bob"], message(f"m{seq}")), 0)
        daemon = queuetest.start(self.box, "mta", ["-d"])
        self.addCleanup(queuetest.reap, daemon)
        queuetest.wait_until(lambda: not self.box.queued(), 60, what="an empty queue, the retired worker replaced")
        queuetest.stop_daemon(daemon)
        runs = [pid_of(l) for l in queuetest.log_lines(self.box) if "(queue active)" in l]
        self.assertEqual(len(set(runs)), 2, "a second worker after the first retired")
        self.assertEqual(len(queuetest.read_mbox(self.box, "bob")), total)


def uid_of(pid):
    """The real uid of a process, from /proc (None once it has gone)."""
    try:
        with open(f"/proc/{pid}/status") as f:
            return int(next(l for l in f if l.startswith("Uid:")).split()[1])
    except (OSError, StopIteration):
        return None


class SharedAgents(aliastest.AliasCase):
    """The daemon's workers write mailboxes through the daemon's delivery agents
    (delivery/agent_handoff.hpp): each user's agent is started once per daemon, as
    a child of the daemon, whichever worker runs the entry; the daemon ends them
    when it stops."""
    extra_users = [f"member{n}" for n in range(5)]
    config = {"delivery_workers": str(WORKERS), "queue_run_delay": "1h"}

    def agents(self):
        """{member: [pid, ...]} of the processes running as each member."""
        uids = {self.box.uids[name]: name for name in self.extra_users}
        found = {}
        for pid, fields in queuetest.proc_stats():
            if fields[0] != "Z" and uid_of(pid) in uids:
                found.setdefault(uids[uid_of(pid)], []).append((pid, int(fields[1])))
        return found

    def test_each_user_has_one_agent_started_by_the_daemon_for_every_worker(self):
        if not mrtest.IS_ROOT:
            self.skipTest("one uid per user needs root (every fake user is the caller otherwise)")
        queuetest.become_subreaper()
        self.aliases("postmaster: root\ncrew: " + ", ".join(self.extra_users) + "\n")
        for seq in range(MESSAGES):
            self.submit(["crew"], seq=f"s{seq}")
        daemon = queuetest.start(self.box, "mta", ["-d"])
        self.addCleanup(queuetest.reap, daemon)
        queuetest.wait_until(lambda: not self.box.queued(), 60, what="an empty queue")
        log = queuetest.log_lines(self.box)
        workers = {pid_of(l) for l in log if "(queue active)" in l}
        self.assertGreater(len(workers), 1, "the test needs entries run by several workers")
        agents = self.agents()
        self.assertEqual(sorted(agents), sorted(self.extra_users), agents)
        for member, processes in agents.items():
            self.assertEqual(len(processes), 1, f"{member} has an agent per worker: {processes}")
            self.assertEqual(processes[0][1], daemon.pid, f"{member}'s agent is not the daemon's")
            self.assertEqual(len(self.mails(member)), MESSAGES)
        queuetest.stop_daemon(daemon)
        queuetest.wait_until(lambda: not self.agents(), 5, what="the agents gone with the daemon")


if __name__ == "__main__":
    mrtest.main()
