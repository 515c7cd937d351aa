#!/usr/bin/env python3
"""Crash safety of the queue (SPEC section 3): 1000 messages are submitted, then
the runner (`mta -q` or `mta -d`, with every delivery process it forked) is
SIGKILLed at random moments 30 times and restarted, then a clean `mta -q` runs.
Every message sendmail accepted must be delivered at least once. A duplicate is
allowed only in the window between the mailbox write and the state record, so at
most one per kill of `mta -q` and one per worker for a kill of `mta -d`; the test
prints how many there were. Every mailbox must
read back whole: a delivery cut short by a kill is repaired by the next one."""
import collections
import os
import random
import re
import time
from concurrent.futures import ThreadPoolExecutor

import mrtest
import queuetest

MESSAGES = 1000
KILLS = 30
USERS = ["alice", "bob", "carol", "dave"]


def body_of(seq):
    # Several lines, so that a message cut anywhere shows; every tenth message
    # is large (300 KB), so that some kills land in the middle of its write.
    if seq % 10 == 0:
        return "".join(f"line {n} of message {seq} " + "x" * 1000 + "\n" for n in range(300))
    return "".join(f"line {n} of message {seq}\n" for n in range(20))


def message_of(seq):
    return mrtest.message(f"message {seq}", body=body_of(seq), extra_headers=f"X-Seq: {seq}\n")


class Crash(mrtest.TestCase):
    config = {"queue_run_delay": "1s", "delivery_workers": "4"}

    def setUp(self):
        super().setUp()
        queuetest.become_subreaper()

    def describe_queue(self):
        lines = []
        for queue_id in self.box.queued():
            entry = queuetest.entry(self.box, queue_id)
            lines.append(f"{queue_id}: {entry.recipients} {entry.records}")
            lines += [l for l in queuetest.log_lines(self.box) if queue_id in l]
        return "\n".join(lines)

    def sent_since(self, offset):
        with open(self.box.log, "rb") as f:
            f.seek(offset)
            return f.read().count(b"status=sent")

    def test_runner_killed_30_times_loses_nothing(self):
        seed = int(os.environ.get("MAILROOM_SEED", time.time_ns() % 1_000_000))
        rng = random.Random(seed)
        print(f"\nseed {seed} (MAILROOM_SEED={seed} repeats this run)")

        def submit(seq):
            r = self.box.sendmail(["-odq", "-f", "postmaster", USERS[seq % len(USERS)]], message_of(seq))
            return seq, r.returncode

        with ThreadPoolExecutor(8) as pool:
            accepted = {seq for seq, code in pool.map(submit, range(MESSAGES)) if code == 0}
        # The spool is on an ordinary file system: every submission should get in.
        self.assertEqual(len(accepted), MESSAGES)

        # A random moment: after a random share of the work (1 to 24 deliveries
        # logged since the start, 12.5 on average, so that the kills spread over the
        # queue and never run out of it), then a random part of one more delivery.
        busy_kills = 0  # kills that found entries still queued
        log_size = 0
        for kill in range(KILLS):
            program = ["-d"] if kill % 3 == 2 else ["-q"]
            runner = queuetest.start(self.box, "mta", program)
            self.addCleanup(queuetest.reap, runner)
            wanted, deadline = rng.randint(1, 24), time.monotonic() + 2
            while time.monotonic() < deadline and self.sent_since(log_size) < wanted:
                time.sleep(0.002)
            # Short: a daemon's workers and their delivery agents get through tens
            # of messages in 30 ms.
            time.sleep(rng.uniform(0, 0.01))
            queuetest.kill_and_wait(runner)  # the runner and every process it forked
            busy_kills += bool(self.box.queued())
            log_size = os.path.getsize(self.box.log)
        left = len(self.box.queued())
        r = self.box.mta(["-q"])
        self.assertExit(r, 0)
        self.assertEqual(self.box.queued(), [], "a clean run leaves entries behind:\n" + self.describe_queue())
        self.assertEqual(self.box.queued("quarantine"), [], "a kill made an entry unreadable")

        counts = collections.Counter()
        queue_ids = {}
        for user in USERS:
            for msg in queuetest.read_mbox(self.box, user):
                seq = msg.get("X-Seq")
                self.assertIsNotNone(seq, f"a message in {user}'s mailbox without X-Seq (torn?):\n{msg}")
                seq = int(seq)
                self.assertEqual(msg["Subject"], f"message {seq}")
                self.assertEqual(msg["Delivered-To"], f"{user}@test.example")
                self.assertEqual(msg.get_payload(), body_of(seq), f"message {seq} in {user}'s mailbox is torn")
                self.assertEqual(USERS[seq % len(USERS)], user)
                counts[seq] += 1
                queue_ids[seq] = re.search(r"\bid ([0-9A-Za-z]+);", msg["Received"]).group(1)
        missing = sorted(accepted - set(counts))
        duplicates = sum(n - 1 for n in counts.values())
        print(f"{KILLS} kills ({busy_kills} with mail still queued), {left} entries left for the final run, "
              f"duplicates: {duplicates}")
        # A kill that found the queue empty tested nothing. The deliveries wanted
        # before the kills add up to 375 on average (standard deviation 38), plus those
        # made while a kill lands (a daemon's 4 workers with agents overshoot by 10 or
        # more; 1 to 40 wanted once emptied the queue before the last kills).
        self.assertEqual(busy_kills, KILLS, "some kills found the queue already empty")
        self.assertEqual(missing, [], "accepted but never delivered")
        # One window a runner: an `mta -q` runs one entry at a time, a daemon one
        # in each of its workers (docs/spool.md "Recording").
        daemon_kills = sum(1 for kill in range(KILLS) if kill % 3 == 2)
        window = (KILLS - daemon_kills) + daemon_kills * int(self.config["delivery_workers"])
        self.assertLessEqual(duplicates, window, "more duplicates than windows open at the kills")
        # A duplicate from the window is an attempt killed before its outcome was
        # recorded, and so before its log line: no message is logged sent twice.
        # (Once: a kill between the record and the log line leaves none.)
        sent = collections.Counter(m.group(1) for m in (
            re.search(r": ([0-9A-Za-z]+): to=<[^>]*>, relay=local, .*status=sent", l)
            for l in queuetest.log_lines(self.box)) if m)
        recorded_twice = sorted(seq for seq, queue_id in queue_ids.items() if sent[queue_id] > 1)
        self.assertEqual(recorded_twice, [], "delivered twice with both deliveries recorded")
        repaired = [l for l in queuetest.log_lines(self.box) if "interrupted delivery" in l]
        print(f"torn mailbox tails repaired: {len(repaired)}")


if __name__ == "__main__":
    mrtest.main()
