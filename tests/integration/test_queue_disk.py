#!/usr/bin/env python3
"""A full disk (SPEC sections 1, 3, 4): in the spool, sendmail exits 75 with one
clear line and leaves nothing partial behind; in the mail folder, the delivery
is deferred (4.3.1) and made once space returns. Each full disk is a small tmpfs,
so these tests need root (mount); they are skipped otherwise."""
import errno
import os
import subprocess
import unittest

import mrtest
import queuetest
from mrtest import message


def fill(folder):
    """Writes a file into folder until the file system is full; returns its path."""
    path = os.path.join(folder, "filler")
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        size = 65536
        while size:  # smaller and smaller writes, down to one byte that does not fit
            try:
                os.write(fd, b"\0" * size)
            except OSError as e:
                if e.errno != errno.ENOSPC:
                    raise
                size //= 2
    finally:
        os.close(fd)
    return path


def read_bytes(path):
    with open(path, "rb") as f:
        return f.read()


@unittest.skipUnless(mrtest.IS_ROOT, "needs root to mount a small tmpfs as a full disk")
class FullDisk(mrtest.TestCase):
    def mount_tmpfs(self, folder, size="1m", mode="0700"):
        os.makedirs(folder, exist_ok=True)
        r = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size},mode={mode}", "tmpfs", folder],
                           capture_output=True)
        if r.returncode != 0:
            self.skipTest(f"cannot mount a tmpfs here: {r.stderr.decode(errors='replace').strip()}")
        self.addCleanup(subprocess.run, ["umount", "-l", folder], capture_output=True)

    def one_error_line(self, result):
        lines = result.stderr.decode(errors="replace").splitlines()
        self.assertEqual(len(lines), 1, lines)
        self.assertTrue(lines[0].startswith("sendmail: error: "), lines[0])
        return lines[0]

    def test_full_spool_sendmail_exits_75_with_a_clear_line_and_nothing_partial_left(self):
        self.mount_tmpfs(self.box.spool)
        self.assertExit(self.box.sendmail(["-odq", "bob"], message("before")), 0)
        before = self.box.queued()
        filler = fill(self.box.spool)

        r = self.box.sendmail(["-odq", "bob"], message("while full"))
        self.assertExit(r, 75)
        line = self.one_error_line(r)
        self.assertRegex(line, r"No space left on device")
        self.assertRegex(line, r"nothing was queued")
        self.assertEqual(self.box.queued("tmp"), [])
        self.assertEqual(self.box.queued(), before)

        # Space back: the next submission goes through, and both are delivered.
        os.unlink(filler)
        self.assertExit(self.box.sendmail(["-odq", "bob"], message("after")), 0)
        self.assertExit(self.box.mta(["-q"]), 0)
        self.assertEqual(self.box.queued(), [])
        self.assertEqual(sorted(m["Subject"] for m in queuetest.read_mbox(self.box, "bob")), ["after", "before"])

    def test_a_message_larger_than_the_free_space_exits_75_and_leaves_nothing(self):
        self.mount_tmpfs(self.box.spool)
        big = message("too big", body=("x" * 999 + "\n") * 2048)  # 2 MB on a 1 MB file system
        r = self.box.sendmail(["-odq", "bob"], big)
        self.assertExit(r, 75)
        self.assertRegex(self.one_error_line(r), r"No space left on device")
        self.assertEqual(self.box.queued("tmp"), [])
        self.assertEqual(self.box.queued(), [])

    def test_full_mail_folder_defers_4_3_1_and_delivers_once_space_returns(self):
        self.mount_tmpfs(self.box.mail, mode="1777")
        filler = fill(self.box.mail)
        self.assertExit(self.box.sendmail(["-odq", "-f", "alice", "bob"], message("wait for space")), 0)
        self.assertExit(self.box.mta(["-q"]), 0)
        queued = self.box.queued()
        self.assertEqual(len(queued), 1)
        phase, code, text, _ = queuetest.entry(self.box, queued[0]).state(0)
        self.assertEqual((phase, code), ("deferred", "4.3.1"), text)
        self.assertRegex(text, r"No space left on device")
        self.assertEqual(queuetest.read_mbox(self.box, "bob"), [])
        self.assertEqual(queuetest.read_mbox(self.box, "alice"), [])  # no notice for a deferral

        os.unlink(filler)
        self.assertExit(self.box.mta(["-q"]), 0)
        self.assertEqual(self.box.queued(), [])
        self.assertExit(self.box.mta(["-q"]), 0)
        self.assertEqual([m["Subject"] for m in queuetest.read_mbox(self.box, "bob")], ["wait for space"])

    def test_a_mailbox_write_cut_by_a_full_disk_is_undone_deferred_and_delivered_later(self):
        self.mount_tmpfs(self.box.mail, mode="1777")
        self.assertExit(self.box.sendmail(["-odq", "-f", "alice", "bob"], message("first")), 0)
        self.assertExit(self.box.mta(["-q"]), 0)
        before = read_bytes(self.box.mbox_path("bob"))
        # Room for the lock, not for the message: the append itself fails half-way.
        filler = fill(self.box.mail)
        os.truncate(filler, os.path.getsize(filler) - 16384)
        big = message("second", body=("y" * 99 + "\n") * 1000)  # 100 KB
        self.assertExit(self.box.sendmail(["-odq", "-f", "alice", "bob"], big), 0)
        self.assertExit(self.box.mta(["-q"]), 0)
        queued = self.box.queued()
        self.assertEqual(len(queued), 1)
        phase, code, text, _ = queuetest.entry(self.box, queued[0]).state(0)
        self.assertEqual((phase, code), ("deferred", "4.3.1"), text)
        self.assertNotIn("lock", text)  # the lock was taken: the append itself failed
        self.assertEqual(read_bytes(self.box.mbox_path("bob")), before, "the mailbox was not truncated back")

        os.unlink(filler)
        self.assertExit(self.box.mta(["-q"]), 0)
        self.assertEqual(self.box.queued(), [])
        messages = queuetest.read_mbox(self.box, "bob")
        self.assertEqual([m["Subject"] for m in messages], ["first", "second"])
        self.assertEqual(messages[1].get_payload(), ("y" * 99 + "\n") * 1000)


if __name__ == "__main__":
    mrtest.main()
