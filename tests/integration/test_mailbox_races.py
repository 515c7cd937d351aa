#!/usr/bin/env python3
"""A hostile user who races deliveries in a shared mail folder (1777) gains nothing
(SPEC section 4, docs/mbox.md "Refusals", docs/security.md).

While mda delivers to bob again and again, another user (alice) keeps putting
things at bob's mailbox path: a symlink to a file bob owns elsewhere, a hard link
to a file of her own, a file of her own, a FIFO, a folder. Every delivery either
lands in a regular, single-linked file that bob owns, or is deferred (exit 75); no
byte of bob's mail reaches a file alice can read, and the file behind the symlink
is never written. The same for a Maildir whose folder alice swaps for a symlink.
Before each round bob's mailbox is taken away (as a reader does that removes an
emptied mbox), so that every round races the creation of a new one.

Root only: the attacker is a real, different uid."""
import os
import random
import shutil
import signal
import stat
import time
import unittest

import mrtest
from mrtest import message

ROUNDS = 60


def attacker(uid, gid, moves, seed):
    """Forks a process that runs as uid and applies moves in a loop until killed, each
    move's result left in place for up to 2 ms so that deliveries meet it."""
    pid = os.fork()
    if pid == 0:
        try:
            os.setgroups([])
            os.setresgid(gid, gid, gid)
            os.setresuid(uid, uid, uid)
            rng = random.Random(seed)
            while True:
                rng.choice(moves)()
                time.sleep(rng.uniform(0, 0.002))
        except BaseException:
            pass
        finally:
            os._exit(0)
    return pid


def quietly(action, *args):
    try:
        action(*args)
    except OSError:
        pass


@unittest.skipUnless(mrtest.IS_ROOT, "needs root: the attacker must be another uid than the victim")
class MailboxRaces(mrtest.TestCase):
    def setUp(self):
        super().setUp()
        self.seed = int(os.environ.get("MAILROOM_SEED", random.randrange(1 << 30)))
        print(f"seed {self.seed} (set MAILROOM_SEED to repeat)")
        self.alice = self.box.uids["alice"]
        self.bob = self.box.uids["bob"]
        # What the attacker wants written: a file bob owns elsewhere, and her own file.
        self.bobs_file = os.path.join(self.box.home, "bob", "notes")
        with open(self.bobs_file, "wb") as f:
            f.write(b"bob's notes\n")
        os.chown(self.bobs_file, self.bob, self.bob)
        self.alices_file = os.path.join(self.box.home, "alice", "loot")
        with open(self.alices_file, "wb") as f:
            f.write(b"")
        os.chown(self.alices_file, self.alice, self.alice)
        os.chmod(self.alices_file, 0o666)

    def stop(self, pid):
        os.kill(pid, signal.SIGKILL)
        os.waitpid(pid, 0)

    def assertTargetsUntouched(self):
        with open(self.bobs_file, "rb") as f:
            self.assertEqual(f.read(), b"bob's notes\n")
        self.assertEqual(os.path.getsize(self.alices_file), 0, "bob's mail reached alice's file")

    def test_an_mbox_path_raced_with_links_and_foreign_files_is_never_written_through(self):
        path = self.box.mbox_path("bob")

        def clear():
            quietly(os.unlink, path)
            quietly(os.rmdir, path)

        def plant(make):
            def move():
                clear()
                quietly(make)
            return move

        def own_file():
            fd = os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o666)
            os.close(fd)

        moves = [plant(lambda: os.symlink(self.bobs_file, path)),
                 plant(lambda: os.link(self.alices_file, path)),
                 plant(own_file),
                 plant(lambda: os.mkfifo(path, 0o666)),
                 plant(lambda: os.mkdir(path, 0o777)),
                 clear]
        pid = attacker(self.alice, self.alice, moves, self.seed)
        delivered = deferred = 0
        try:
            for i in range(ROUNDS):
                result = self.box.mda(["bob"], message(f"round {i}"), timeout=60)
                self.assertIn(result.returncode, (0, 75), result.stderr)
                if result.returncode == 0:
                    delivered += 1
                    # alice cannot remove bob's file from the sticky folder: it is his.
                    st = os.lstat(path)
                    self.assertTrue(stat.S_ISREG(st.st_mode))
                    self.assertEqual((st.st_uid, st.st_nlink), (self.bob, 1))
                    with open(path, "rb") as f:
                        self.assertIn(f"Subject: round {i}\n".encode(), f.read())
                    os.unlink(path)
                else:
                    deferred += 1
        finally:
            self.stop(pid)
        print(f"{delivered} delivered, {deferred} deferred")
        self.assertTargetsUntouched()
        self.assertGreater(deferred, 0, "the attacker never got in the way: the test tested nothing")

    def test_a_maildir_whose_folders_are_raced_with_symlinks_is_never_written_through(self):
        maildir = os.path.join(self.box.mail, "bob")
        elsewhere = os.path.join(self.box.home, "alice", "fake")
        for sub in ("", "tmp", "new", "cur"):
            os.mkdir(os.path.join(elsewhere, sub), 0o777)
            os.chmod(os.path.join(elsewhere, sub), 0o777)
        os.chown(elsewhere, self.alice, self.alice)

        def swap():
            quietly(os.rmdir, maildir)
            quietly(os.unlink, maildir)
            quietly(os.symlink, elsewhere, maildir)

        def clear():
            quietly(os.unlink, maildir)

        pid = attacker(self.alice, self.alice, [swap, clear], self.seed)
        delivered = deferred = 0
        try:
            for i in range(ROUNDS):
                result = self.box.mda(["-m", "maildir", "bob"], message(f"round {i}"), timeout=60)
                self.assertIn(result.returncode, (0, 75), result.stderr)
                if result.returncode == 0:
                    delivered += 1
                    st = os.lstat(maildir)
                    self.assertTrue(stat.S_ISDIR(st.st_mode))
                    self.assertEqual(st.st_uid, self.bob)
                    self.assertEqual(len(os.listdir(os.path.join(maildir, "new"))), 1)
                    shutil.rmtree(maildir)
                else:
                    deferred += 1
        finally:
            self.stop(pid)
        print(f"{delivered} delivered, {deferred} deferred")
        for sub in ("tmp", "new", "cur"):
            self.assertEqual(os.listdir(os.path.join(elsewhere, sub)), [], f"bob's mail reached alice's {sub}/")
        self.assertGreater(deferred, 0, "the attacker never got in the way: the test tested nothing")


if __name__ == "__main__":
    mrtest.main()
