#!/usr/bin/env python3
"""Bad input to mda: each case gets the SPEC exit code, one clear stderr line,
and leaves every mailbox as it was."""
import fcntl
import mailbox
import os
import subprocess
import time
import unittest

import mrtest
from mrtest import message


class MdaErrors(mrtest.TestCase):
    def one_line(self, result):
        lines = result.stderr.decode(errors="replace").splitlines()
        self.assertEqual(len(lines), 1, lines)
        self.assertTrue(lines[0].startswith("mda: error: "), lines[0])
        return lines[0]

    def test_unknown_user_exits_67(self):
        r = self.box.mda(["nosuchuser"], message())
        self.assertExit(r, 67, r"unknown user nosuchuser")
        self.one_line(r)

    def test_unknown_and_known_user_together(self):
        r = self.box.mda(["alice", "nosuchuser"], message())
        self.assertExit(r, 67)
        self.assertEqual(len(self.box.mbox("alice")), 1)

    def test_usage(self):
        self.assertExit(self.box.mda([], message()), 64, r"no USER given")
        self.assertExit(self.box.mda(["-x", "alice"], message()), 64, r"bad option -x")
        self.assertExit(self.box.mda(["-m", "mh", "alice"], message()), 64, r"unknown mailbox format")
        self.assertExit(self.box.mda(["-o", "/tmp/x", "alice", "bob"], message()), 64)
        self.assertExit(self.box.mda(["alice", "-m"], message()), 67)  # options end at the first USER
        self.assertExit(self.box.mda(["-m"], message()), 64, r"option -m needs a value")

    def test_help_and_version(self):
        r = self.box.mda(["--help"], b"")
        self.assertExit(r, 0)
        self.assertIn(b"usage: mda", r.stdout)
        r = self.box.mda(["--version"], b"")
        self.assertExit(r, 0)
        self.assertIn(b"mailroom", r.stdout)

    def test_bad_sender_address_exits_65(self):
        r = self.box.mda(["-f", "a..b@@x", "alice"], message())
        self.assertExit(r, 65, r"bad sender address")
        self.assertFalse(os.path.exists(self.box.mbox_path("alice")))

    def test_missing_mail_folder_defers(self):
        self.box.write("mailroom.conf", f"mail_spool_dir = {self.box.dir}/nonexistent\n", mode="a")
        r = self.box.mda(["alice"], message())
        self.assertExit(r, 75, r"cannot deliver to alice \(4\.")
        self.one_line(r)

    def test_symlinked_mailbox_is_refused(self):
        target = self.box.write("target", "untouched\n")
        os.symlink(target, self.box.mbox_path("alice"))
        r = self.box.mda(["alice"], message())
        self.assertExit(r, 75, r"symbolic link")
        with open(target) as f:
            self.assertEqual(f.read(), "untouched\n")

    def test_hard_linked_mailbox_is_refused(self):
        path = self.box.mbox_path("alice")
        self.assertExit(self.box.mda(["alice"], message()), 0)
        os.link(path, os.path.join(self.box.dir, "other-link"))
        size = os.path.getsize(path)
        self.assertExit(self.box.mda(["alice"], message()), 75, r"hard link")
        self.assertEqual(os.path.getsize(path), size)

    @unittest.skipUnless(mrtest.IS_ROOT, "needs root to give a mailbox to another user")
    def test_mailbox_owned_by_someone_else_is_refused(self):
        path = self.box.mbox_path("alice")
        with open(path, "w") as f:
            f.write("")
        # Writable by all, so only the ownership check can refuse it.
        os.chmod(path, 0o666)
        os.chown(path, self.box.uids["bob"], self.box.uids["bob"])
        self.assertExit(self.box.mda(["alice"], message()), 75, r"owned by uid")
        self.assertEqual(os.path.getsize(path), 0)

    def test_lock_held_past_lock_timeout_defers(self):
        self.box.write("mailroom.conf", "lock_timeout = 1s\n", mode="a")
        self.assertExit(self.box.mda(["alice"], message()), 0)
        path = self.box.mbox_path("alice")
        size = os.path.getsize(path)
        with open(path, "r+") as held:
            fcntl.lockf(held, fcntl.LOCK_EX)
            start = time.monotonic()
            r = self.box.mda(["alice"], message())
            elapsed = time.monotonic() - start
        self.assertExit(r, 75, r"lock")
        # It waited for the lock_timeout, then gave up although the lock is still held
        # (the holder never lets go): the upper bound only tells giving up from waiting
        # for the holder, so it is generous enough for a loaded host.
        self.assertGreaterEqual(elapsed, 0.9)
        self.assertLess(elapsed, 60)
        self.assertEqual(os.path.getsize(path), size)

    def test_held_dotlock_defers(self):
        self.box.write("mailroom.conf", "lock_timeout = 1s\n", mode="a")
        self.box.write("mail/alice.lock", "%d 0\n" % os.getpid())
        self.assertExit(self.box.mda(["alice"], message()), 75, r"lock")
        self.assertFalse(os.path.exists(self.box.mbox_path("alice")) and
                         os.path.getsize(self.box.mbox_path("alice")))

    def test_stale_dotlock_is_removed(self):
        lock = self.box.write("mail/alice.lock", "")
        # Alice's own leftover: in a sticky mail folder she may remove only hers.
        os.chown(lock, self.box.uids["alice"], -1)
        old = time.time() - 600
        os.utime(lock, (old, old))
        self.assertExit(self.box.mda(["alice"], message()), 0)
        self.assertFalse(os.path.exists(lock))

    def test_garbage_configuration_exits_78_naming_file_and_line(self):
        self.box.write("mailroom.conf", "lock_timeout = 1s\nno equals sign here\n", mode="w")
        r = self.box.mda(["alice"], message())
        self.assertExit(r, 78, r"mailroom\.conf:2:")
        self.box.write("mailroom.conf", "bogus_key = 1\n", mode="w")
        self.assertExit(self.box.mda(["alice"], message()), 78, r"mailroom\.conf:1: unknown key 'bogus_key'")
        self.box.write("mailroom.conf", "lock_timeout = soon\n", mode="w")
        self.assertExit(self.box.mda(["alice"], message()), 78, r"lock_timeout")
        self.box.write("mailroom.conf", b"\0\xff\xfe garbage \0\n", mode="wb")
        r = self.box.mda(["alice"], message())
        self.assertExit(r, 78)
        self.one_line(r)
        self.assertFalse(os.path.exists(self.box.mbox_path("alice")))

    def test_missing_configuration_file_given_with_C(self):
        r = self.box.mda(["-C", "/nonexistent/mailroom.conf", "alice"], message())
        self.assertExit(r, 78, r"/nonexistent/mailroom\.conf")

    def test_mail_loop_is_bounced_5_4_6(self):
        text = "Delivered-To: alice@test.example\n" + message()
        r = self.box.mda(["alice"], text)
        self.assertExit(r, 65, r"5\.4\.6")
        self.assertFalse(os.path.exists(self.box.mbox_path("alice")))

    def test_message_over_message_size_limit_exits_73(self):
        self.box.write("mailroom.conf", "message_size_limit = 10K\n", mode="a")
        r = self.box.mda(["alice"], message(body="x" * 20000 + "\n"))
        self.assertExit(r, 73, r"message_size_limit")
        self.assertFalse(os.path.exists(self.box.mbox_path("alice")))

    @unittest.skipUnless(mrtest.IS_ROOT, "needs root to mount a small tmpfs (skipped: not root)")
    def test_full_disk_defers_and_truncates_back(self):
        small = os.path.join(self.box.dir, "small")
        os.mkdir(small)
        subprocess.run(["mount", "-t", "tmpfs", "-o", "size=512k,mode=1777", "tmpfs", small], check=True)
        self.addCleanup(subprocess.run, ["umount", small])
        self.box.write("mailroom.conf", f"mail_spool_dir = {small}\n", mode="a")
        for fmt in ("mbox", "maildir"):
            self.assertExit(self.box.mda(["-m", fmt, "alice" if fmt == "mbox" else "bob"], message()), 0)
        path = os.path.join(small, "alice")
        size = os.path.getsize(path)
        big = message(body="y" * 1024 * 1024 + "\n")
        r = self.box.mda(["alice"], big)
        self.assertExit(r, 75, r"4\.3\.1")
        self.one_line(r)
        self.assertEqual(os.path.getsize(path), size, "mbox must be truncated back")
        box = mailbox.mbox(path)
        self.addCleanup(box.close)
        self.assertEqual(len(box), 1)
        r = self.box.mda(["-m", "maildir", "bob"], big)
        self.assertExit(r, 75, r"4\.3\.1")
        self.assertEqual(os.listdir(os.path.join(small, "bob", "tmp")), [])
        self.assertEqual(len(os.listdir(os.path.join(small, "bob", "new"))), 1)



@unittest.skipUnless(mrtest.IS_ROOT, "needs root to switch to a user without write access to the mail folder")
class DebianMailFolder(mrtest.TestCase):
    """Debian's /var/mail is root:mail 2775: users may not write there, the mail group may."""

    def test_a_group_writable_mail_folder_lends_its_group_to_the_delivery(self):
        mail_gid = 20999
        with open(self.box.group, "a") as f:
            f.write(f"mail:x:{mail_gid}:\n")
        os.chown(self.box.mail, 0, mail_gid)
        os.chmod(self.box.mail, 0o2775)
        self.assertExit(self.box.mda(["alice"], message()), 0)
        st = os.stat(self.box.mbox_path("alice"))
        self.assertEqual(st.st_uid, self.box.uids["alice"])
        self.assertEqual(len(self.box.mbox("alice")), 1)
        self.assertFalse(os.path.exists(self.box.mbox_path("alice") + ".lock"))

    def test_without_the_group_the_user_cannot_create_the_mailbox(self):
        os.chown(self.box.mail, 0, 0)
        os.chmod(self.box.mail, 0o755)
        self.assertExit(self.box.mda(["alice"], message()), 75, r"Permission denied")
        self.assertFalse(os.path.exists(self.box.mbox_path("alice")))


if __name__ == "__main__":
    mrtest.main()
