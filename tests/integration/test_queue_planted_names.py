#!/usr/bin/env python3
"""Things in queue/ that are named like queue IDs but are not files (docs/spool.md,
"Not an entry"): a folder, a symbolic link (to a valid entry outside the spool, so
that following it would deliver it) and a FIFO. The runner and the daemon's scan
move each of them to quarantine/ once, as itself (the link is moved, never
followed: its target stays untouched), with one warning; the real entries are
delivered; a second run says nothing more about them. mailq lists them as
unreadable without hanging on the FIFO, and nothing once they are quarantined."""
import os
import signal
import stat
import time

import mrtest
import queuetest
from mrtest import message

# Valid queue IDs (15 base-62 digits) that no submission of this test can get.
PLANTED = {"folder": "000000000Dir001", "link": "000000000Lnk001", "fifo": "000000000Fif001"}


class PlantedNames(mrtest.TestCase):
    config = {"queue_run_delay": "1s"}

    def queue_path(self, name, folder="queue"):
        return os.path.join(self.box.spool, folder, name)

    def plant(self):
        """Queues two real messages to bob and plants the three odd things; returns
        (real ids, path of the link's target, the target's bytes)."""
        real = []
        for seq in range(2):
            before = set(self.box.queued())
            r = self.box.sendmail(["-odq", "-f", "alice", "bob"], message(f"m{seq}", extra_headers=f"X-Seq: {seq}\n"))
            self.assertExit(r, 0)
            (new,) = set(self.box.queued()) - before
            real.append(new)
        # The link's target: a valid queue entry (to carol) outside the spool.
        target = os.path.join(self.box.dir, "elsewhere")
        r = self.box.sendmail(["-odq", "-f", "alice", "carol"], message("followed", extra_headers="X-Seq: link\n"))
        self.assertExit(r, 0)
        (carols,) = set(self.box.queued()) - set(real)
        os.rename(self.queue_path(carols), target)
        with open(target, "rb") as f:
            target_bytes = f.read()
        os.mkdir(self.queue_path(PLANTED["folder"]))
        with open(os.path.join(self.queue_path(PLANTED["folder"]), "inside"), "w") as f:
            f.write("x\n")
        os.symlink(target, self.queue_path(PLANTED["link"]))
        os.mkfifo(self.queue_path(PLANTED["fifo"]), 0o600)
        self.assertEqual(sorted(self.box.queued()), sorted(real + list(PLANTED.values())))
        return real, target, target_bytes

    def planted_lines(self):
        return [l for l in queuetest.log_lines(self.box) if any(name in l for name in PLANTED.values())]

    def check_quarantined(self, target, target_bytes):
        self.assertEqual(self.box.queued(), [])
        self.assertEqual(sorted(self.box.queued("quarantine")), sorted(PLANTED.values()))
        self.assertTrue(os.path.isdir(self.queue_path(PLANTED["folder"], "quarantine")))
        self.assertTrue(os.path.exists(os.path.join(self.queue_path(PLANTED["folder"], "quarantine"), "inside")))
        link = self.queue_path(PLANTED["link"], "quarantine")
        self.assertTrue(os.path.islink(link))
        self.assertEqual(os.readlink(link), target)
        self.assertTrue(stat.S_ISFIFO(os.lstat(self.queue_path(PLANTED["fifo"], "quarantine")).st_mode))
        with open(target, "rb") as f:
            self.assertEqual(f.read(), target_bytes, "the link's target was changed")
        self.assertEqual(queuetest.count_header(self.box, ["bob"]), {"0": 1, "1": 1})
        self.assertEqual(queuetest.read_mbox(self.box, "carol"), [], "the link was followed")
        lines = self.planted_lines()
        for what, name in PLANTED.items():
            mine = [l for l in lines if name in l]
            self.assertEqual(len(mine), 1, f"{what}: {mine}")
            self.assertRegex(mine[0], rf"mailroom/qmgr\[\d+\]: warning: {name}: quarantined: .*not a queue entry")

    def test_mta_q_quarantines_them_once_and_delivers_the_rest(self):
        real, target, target_bytes = self.plant()
        r = self.box.mta(["-q"])
        self.assertExit(r, 0)
        self.check_quarantined(target, target_bytes)
        log_after_first = queuetest.log_lines(self.box)
        self.assertExit(self.box.mta(["-q"]), 0)
        self.assertEqual(self.planted_lines(), [l for l in log_after_first if any(n in l for n in PLANTED.values())])
        self.check_quarantined(target, target_bytes)

    def test_the_daemons_scan_quarantines_them_once(self):
        real, target, target_bytes = self.plant()
        daemon = queuetest.start(self.box, "mta", ["-d"])
        self.addCleanup(queuetest.reap, daemon)
        queuetest.wait_until(lambda: len(self.box.queued("quarantine")) == len(PLANTED) and not self.box.queued()
                             and len(queuetest.count_header(self.box, ["bob"])) == 2, 20, what="the daemon's scan")
        # Later scans (queue_run_delay 1s, and one asked for by SIGHUP) say nothing more about them.
        lines = self.planted_lines()
        os.kill(daemon.pid, signal.SIGHUP)
        time.sleep(2.5)
        self.assertEqual(self.planted_lines(), lines)
        queuetest.stop_daemon(daemon)
        self.check_quarantined(target, target_bytes)

    def test_mailq_lists_them_as_unreadable_without_hanging_then_nothing(self):
        self.plant()
        r = self.box.run("mailq", [], timeout=20)
        self.assertExit(r, 0)
        out = r.stdout.decode()
        for what, name in PLANTED.items():
            self.assertRegex(out, rf"(?m)^{name} +\(unreadable: .*not a queue entry\)$", what)
        self.assertExit(self.box.mta(["-q"]), 0)
        r = self.box.run("mailq", [], timeout=20)
        self.assertExit(r, 0)
        self.assertEqual(r.stdout.decode(), "Mail queue is empty\n")
        self.assertEqual(r.stderr.decode(), "mailq: warning: 3 entries in quarantine\n")

    def test_mta_q_I_quarantines_a_planted_name_it_is_given(self):
        real, target, target_bytes = self.plant()
        self.assertExit(self.box.mta(["-q", "-I", PLANTED["link"]]), 0)
        self.assertEqual(self.box.queued("quarantine"), [PLANTED["link"]])
        self.assertTrue(os.path.islink(self.queue_path(PLANTED["link"], "quarantine")))
        with open(target, "rb") as f:
            self.assertEqual(f.read(), target_bytes)
        self.assertEqual(queuetest.read_mbox(self.box, "carol"), [])


if __name__ == "__main__":
    mrtest.main()
