#!/usr/bin/env python3
"""Crash safety of alias expansion in the queue (SPEC section 3; docs/spool.md
"Expansion groups"), modelled on test_queue_crash.py: messages to a 20-member
alias (19 users and a pipe) are submitted, then the runner (`mta -q`) is
SIGKILLed at random moments (seeded by MAILROOM_SEED; the seed is printed) and
started again until the queue is empty, then a clean `mta -q` runs. Every other
kill hits the runner alone (its delivery children must then be gone within 5 s),
the others the runner with every process it started, whatever its session.

Every member must get every message. A member may get a second copy only in the
documented window (the leaves of the batch in flight, written but not yet
recorded at the kill: at most WRITES_IN_FLIGHT a kill; docs/spool.md "Recording"), and
no leaf is ever logged sent twice (a recorded delivery is never repeated). A
recipient's expansion is recorded once: after every kill, each queued entry has
at most one closed expansion group for its recipient (a torn one is cut off)."""
import collections
import os
import random
import re
import time

import aliastest
import mrtest
import queuetest

D = aliastest.DOMAIN
# lib/queue/queue_runner.cpp's writes_in_flight: leaves begun before their outcomes are recorded.
WRITES_IN_FLIGHT = 8
MEMBERS = [f"m{n:02d}" for n in range(1, 20)]
MESSAGES = 6
MAX_RUNS = 60


class AliasCrash(aliastest.AliasCase):
    extra_users = MEMBERS

    def setUp(self):
        super().setUp()
        queuetest.become_subreaper()
        # The pipe reads the whole message, then appends its X-Seq in one write. A
        # message cut short (its runner killed while feeding it) is not recorded: it
        # ends before the body, and the pipe then fails as a real one would.
        self.pipe = self.script("pipe.sh", 'msg=$(cat)\n'
                                           'case "$msg" in *hello) ;; *) exit 75 ;; esac\n'
                                           'seq=$(printf "%s\\n" "$msg" | sed -n "s/^X-Seq: //p" | head -n 1)\n'
                                           'echo "$seq" >> $OUT/pipe.log\n')
        self.aliases("postmaster: root\ncrew: " + ", ".join(MEMBERS[:9]) + f", \"|{self.pipe}\",\n  "
                     + ", ".join(MEMBERS[9:]) + "\n")

    def sent_since(self, offset):
        if not os.path.exists(self.box.log):
            return 0
        with open(self.box.log, "rb") as f:
            f.seek(offset)
            return f.read().count(b"status=sent")

    def check_expansions_recorded_once(self):
        for queue_id in self.box.queued():
            entry = queuetest.entry(self.box, queue_id)
            groups = [r for r in entry.kinds("expanded") if r[1] == "0"]
            self.assertLessEqual(len(groups), 1, f"{queue_id} expanded twice: {entry.records}")
            if groups:
                self.assertEqual(int(groups[0][3]), 20, f"{queue_id}: {entry.records}")

    def copies_on_disk(self, member, seq):
        """How many copies of message SEQ MEMBER holds (whole or torn), read raw."""
        if member == "|pipe":
            path = self.out_path("pipe.log")
            needle = f"{seq}\n".encode()
        else:
            path = self.box.mbox_path(member)
            needle = f"\nX-Seq: {seq}\n".encode()
        if not os.path.exists(path):
            return 0
        with open(path, "rb") as f:
            data = f.read()
        return data.split(b"\n").count(needle.strip()) if member == "|pipe" else data.count(needle)

    def unrecorded_deliveries(self):
        """The leaves of queued entries that are not recorded delivered although their
        member holds the message: deliveries caught in the window by a kill, as
        {(queue ID, member): copies on disk}. A leaf caught again at a later kill
        holds one copy more each time."""
        found = {}
        for queue_id in self.box.queued():
            entry = queuetest.entry(self.box, queue_id)
            seq = re.search(rb"\nX-Seq: (\S+)\n", entry.message).group(1).decode()
            for leaf in entry.kinds("leaf"):
                member = leaf[7] if leaf[3] == "mailbox" else "|pipe"
                copies = self.copies_on_disk(member, seq)
                if entry.state(int(leaf[1]))[0] != "delivered" and copies:
                    found[(queue_id, member)] = copies
        return found

    def survivors(self, timeout):
        """The processes still below this test after TIMEOUT seconds, with their commands."""
        deadline = time.monotonic() + timeout
        while True:
            left = aliastest.descendants(os.getpid())
            if not left or time.monotonic() > deadline:
                break
            time.sleep(0.01)
        named = []
        for pid in sorted(left):
            try:
                with open(f"/proc/{pid}/cmdline", "rb") as f:
                    command = f.read().replace(b"\0", b" ").decode(errors="replace")
                named.append(f"{pid} {command}")
            except OSError:
                pass
        return named

    def test_runner_killed_at_random_moments_delivers_every_member(self):
        seed = int(os.environ.get("MAILROOM_SEED", time.time_ns() % 1_000_000))
        rng = random.Random(seed)
        print(f"\nseed {seed} (MAILROOM_SEED={seed} repeats this run)")
        seqs = [f"c{n}" for n in range(MESSAGES)]
        for seq in seqs:
            self.submit(["crew"], seq=seq)

        kills = 0
        runs = 0
        in_window = {}  # (queue ID, member): copies written but not recorded at a kill
        log_size = 0
        while self.box.queued() and runs < MAX_RUNS:
            runs += 1
            runner = queuetest.start(self.box, "mta", ["-q"])
            self.addCleanup(queuetest.reap, runner)
            # A random moment: after 0 to 25 deliveries logged by this run (0: at
            # the expansion), then a random part of one more.
            wanted, deadline = rng.randint(0, 25), time.monotonic() + 3
            while time.monotonic() < deadline and runner.poll() is None and self.sent_since(log_size) < wanted:
                time.sleep(0.002)
            time.sleep(rng.uniform(0, 0.02))
            if runner.poll() is None:
                kills += 1
                if runs % 2:
                    # Every other kill hits the runner alone, as the OOM killer or
                    # `kill -9 PID` would: what it started must not write on.
                    runner.kill()
                    runner.wait()
                    self.assertEqual(self.survivors(5), [], "the runner's children outlived it")
            aliastest.kill_everything_below_us(runner)
            log_size = os.path.getsize(self.box.log) if os.path.exists(self.box.log) else 0
            self.check_expansions_recorded_once()
            # The runner delivers the leaves in batches of WRITES_IN_FLIGHT recorded
            # with one sync (docs/spool.md "Recording"): one kill leaves at most one
            # batch done (or torn) but not recorded.
            window = self.unrecorded_deliveries()
            new = {leaf: copies - in_window.get(leaf, 0) for leaf, copies in window.items()
                   if copies > in_window.get(leaf, 0)}
            self.assertLessEqual(sum(new.values()), WRITES_IN_FLIGHT, f"one kill left {new} unrecorded")
            in_window.update({leaf: window[leaf] for leaf in new})
        left = len(self.box.queued())
        self.assertExit(self.box.mta(["-q"]), 0)
        self.assertDone()
        self.assertEqual(self.box.queued("quarantine"), [], "a kill made an entry unreadable")

        counts = {}
        for user in MEMBERS:
            counts[user] = collections.Counter()
            for msg in self.mails(user):
                seq = msg.get("X-Seq")
                self.assertIsNotNone(seq, f"a message in {user}'s mailbox without X-Seq (torn?):\n{msg}")
                self.assertEqual(msg["Delivered-To"], f"{user}@{D}")
                self.assertEqual(msg.get_payload(), "hello\n", f"a torn copy in {user}'s mailbox")
                counts[user][seq.strip()] += 1
        with open(self.out_path("pipe.log")) as f:
            counts["|pipe"] = collections.Counter(line.strip() for line in f)
        missing = [(member, seq) for member, c in counts.items() for seq in seqs if c[seq] == 0]
        duplicates = sum(n - 1 for c in counts.values() for n in c.values() if n > 1)
        print(f"{runs} runs, {kills} killed in mid-run, {left} entries left for the final run, "
              f"duplicates: {duplicates}")
        self.assertGreater(kills, 0, "no run was killed: the test tested nothing")
        self.assertEqual(missing, [], "members that never got a message")
        self.assertEqual(sum(sum(c.values()) for c in counts.values()) - duplicates, 20 * MESSAGES)
        self.assertLessEqual(duplicates, kills * WRITES_IN_FLIGHT, f"more duplicates than one batch a kill: {counts}")
        # Each copy a kill left unrecorded is written once more by a later run.
        self.assertLessEqual(duplicates, sum(in_window.values()), "a duplicate that no kill caught in its window")
        # No delivery is recorded twice: each leaf (queue ID, to, orig_to) is logged sent once.
        sent = collections.Counter(m.groups() for m in (
            re.search(r": ([0-9A-Za-z]+): to=<([^>]*)>(?:, orig_to=<([^>]*)>)?, relay=local, .*status=sent", l)
            for l in self.log()) if m)
        # A kill between a batch's record and its log lines leaves it unlogged: at most one batch a kill.
        self.assertLessEqual(len(sent), 20 * MESSAGES)
        self.assertGreaterEqual(len(sent), 20 * MESSAGES - kills * WRITES_IN_FLIGHT,
                                "more unlogged deliveries than one batch a kill")
        self.assertEqual([k for k, n in sent.items() if n > 1], [], "a leaf delivered twice with both recorded")


if __name__ == "__main__":
    mrtest.main()
