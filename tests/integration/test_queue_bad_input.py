#!/usr/bin/env python3
"""Bad input to the queue (SPEC sections 1 and 3): corrupt entries in the spool
(truncated, garbage, unknown version, empty, a bad state line) are moved to
quarantine/ with a warning each and never stop the rest of the queue; files
that are not queue entries by name are left alone; a torn last state line is a
crash's leftover, not corruption. Addresses that do not parse make sendmail exit
65 with nothing queued."""
import os
import re

import mrtest
import queuetest
from mrtest import message


class CorruptEntries(mrtest.TestCase):
    config = {"queue_run_delay": "1s"}

    def queue_path(self, queue_id):
        return os.path.join(self.box.spool, "queue", queue_id)

    def queue_some(self, n, first_seq):
        ids = []
        for seq in range(first_seq, first_seq + n):
            before = set(self.box.queued())
            r = self.box.sendmail(["-odq", "-f", "alice", "bob"], message(f"m{seq}", extra_headers=f"X-Seq: {seq}\n"))
            self.assertExit(r, 0)
            (new,) = set(self.box.queued()) - before
            ids.append(new)
        return ids

    def corrupt(self):
        """Queues 4 good messages and 7 that are then damaged; returns (good ids,
        {corrupt id: how}, names of non-entries)."""
        good = self.queue_some(4, 0)
        victims = self.queue_some(7, 100)
        how = {}

        def rewrite(queue_id, change, name):
            path = self.queue_path(queue_id)
            with open(path, "rb") as f:
                data = f.read()
            with open(path, "wb") as f:
                f.write(change(data))
            how[queue_id] = name

        rewrite(victims[0], lambda d: d[:len(d) // 3], "truncated inside the message")
        rewrite(victims[1], lambda d: os.urandom(len(d)), "garbage")
        rewrite(victims[2], lambda d: b"mailroom-queue 7 " + d[17:], "unknown version")
        rewrite(victims[3], lambda d: b"", "zero length")
        rewrite(victims[4], lambda d: d[:d.rindex(b"end\n")], "envelope without end")
        rewrite(victims[5], lambda d: d + b"bogus 0 1795303304 2.0.0 what\n", "a state line that does not parse")
        rewrite(victims[6], lambda d: d + b"delivered 7 1795303304 2.0.0 no such recipient\n",
                "a state line for a recipient that does not exist")

        # A torn last state line (no newline) is what a crash leaves: not corrupt.
        with open(self.queue_path(good[0]), "ab") as f:
            f.write(b"delivered 0 17953")
        # Files whose names are not queue IDs are not entries: left alone.
        strangers = {"README": b"not an entry\n", "0123456789abcdefXYZ": b"",
                     "8DnK-xnIKc02Q30": b"", ".hidden": b"x"}
        for name, data in strangers.items():
            with open(self.queue_path(name), "wb") as f:
                f.write(data)
        return good, how, strangers

    def check(self, good, how, strangers):
        self.assertEqual(sorted(self.box.queued("quarantine")), sorted(how), how)
        self.assertEqual(sorted(self.box.queued()), sorted(strangers))
        self.assertEqual(queuetest.count_header(self.box, ["bob"]), {str(seq): 1 for seq in range(4)})
        log = queuetest.log_lines(self.box)
        for queue_id, what in how.items():
            warnings = [l for l in log if re.search(rf"mailroom/qmgr\[\d+\]: warning: {queue_id}: quarantined: ", l)]
            self.assertEqual(len(warnings), 1, f"{what}: {warnings}")
        for name in strangers:
            self.assertFalse(any(name in l for l in log), f"{name} was looked at")
        # Nothing quarantined is tried again.
        self.assertExit(self.box.mta(["-q"]), 0)
        self.assertEqual(sorted(self.box.queued("quarantine")), sorted(how))
        self.assertEqual(len(queuetest.log_lines(self.box)), len(log))

    def test_corrupt_entries_are_quarantined_and_the_rest_is_delivered_by_mta_q(self):
        good, how, strangers = self.corrupt()
        self.assertExit(self.box.mta(["-q"]), 0)
        self.check(good, how, strangers)

    def test_corrupt_entries_are_quarantined_and_the_rest_is_delivered_by_mta_d(self):
        good, how, strangers = self.corrupt()
        daemon = queuetest.start(self.box, "mta", ["-d"])
        self.addCleanup(queuetest.reap, daemon)
        queuetest.wait_until(lambda: len(self.box.queued("quarantine")) == len(how)
                             and len(self.box.queued()) == len(strangers), 20, what="the daemon's scan")
        queuetest.stop_daemon(daemon)
        self.check(good, how, strangers)

    def test_mta_q_I_quarantines_a_corrupt_entry_it_is_given(self):
        (queue_id,) = self.queue_some(1, 0)
        with open(self.queue_path(queue_id), "wb") as f:
            f.write(b"mailroom-queue 1 message 99999999999999999999\n")
        self.assertExit(self.box.mta(["-q", "-I", queue_id]), 0)
        self.assertEqual(self.box.queued("quarantine"), [queue_id])
        self.assertEqual(self.box.queued(), [])


class BadAddresses(mrtest.TestCase):
    BAD = ["a..b@@x", "<bob@test.example", "bob@", "@test.example", "bob@exa mple.com", "bo\tb", "bob@[1.2.3"]

    def assertNothingQueued(self):
        self.assertEqual(self.box.queued(), [])
        self.assertEqual(self.box.queued("tmp"), [])

    def one_line(self, result, pattern):
        lines = result.stderr.decode(errors="replace").splitlines()
        self.assertEqual(len(lines), 1, lines)
        self.assertRegex(lines[0], r"^sendmail: error: " + pattern)

    def test_each_bad_recipient_gives_65_and_nothing_queued(self):
        for bad in self.BAD:
            with self.subTest(recipient=bad):
                r = self.box.sendmail(["-odq", "bob", bad, "carol"], message())
                self.assertExit(r, 65)
                self.one_line(r, r"bad recipient address")
                self.assertNothingQueued()

    def test_several_bad_recipients_give_65_and_nothing_queued(self):
        r = self.box.sendmail(["-odq"] + self.BAD, message())
        self.assertExit(r, 65)
        self.one_line(r, r"bad recipient address")
        self.assertNothingQueued()

    def test_a_bad_sender_gives_65_and_nothing_queued(self):
        for bad in self.BAD:
            with self.subTest(sender=bad):
                r = self.box.sendmail(["-odq", "-f", bad, "bob"], message())
                self.assertExit(r, 65)
                self.one_line(r, r"bad sender address")
                self.assertNothingQueued()

    def test_a_bad_header_recipient_with_t_gives_65_and_nothing_queued(self):
        r = self.box.sendmail(["-odq", "-t"], "To: bob@test.example, a..b@@x\nSubject: t\n\nbody\n")
        self.assertExit(r, 65)
        self.assertNothingQueued()

    def test_no_recipient_at_all_gives_64(self):
        r = self.box.sendmail(["-odq"], message())
        self.assertExit(r, 64, r"^sendmail: error: no recipients")
        self.assertNothingQueued()


if __name__ == "__main__":
    mrtest.main()
