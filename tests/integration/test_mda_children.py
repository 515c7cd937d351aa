#!/usr/bin/env python3
"""mda's delivery children (several USERs): each runs as its user in its own process
group, with none of the descriptors mda got from its caller, and is killed at
command_timeout (docs/targets.md "The process model").

We hold the fcntl lock of bob's mailbox, so bob's delivery child waits there while
we look at it through /proc; then we let it go (or let the timeout take it)."""
import fcntl
import os
import subprocess
import time

import mrtest
import queuetest
from mrtest import message


def children_of(pid):
    found = []
    for child, fields in queuetest.proc_stats():
        if int(fields[1]) == pid:
            found.append(child)
    return found


def open_files(pid):
    """{fd: what it points to} of a live process."""
    files = {}
    folder = f"/proc/{pid}/fd"
    try:
        for fd in os.listdir(folder):
            try:
                files[int(fd)] = os.readlink(os.path.join(folder, fd))
            except OSError:
                pass
    except OSError:
        pass
    return files


class DeliveryChildren(mrtest.TestCase):
    config = {"mailbox_lock": "fcntl", "lock_timeout": "30s"}

    def hold_bobs_mailbox(self):
        path = self.box.mbox_path("bob")
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
        self.addCleanup(os.close, fd)
        if mrtest.IS_ROOT:
            os.fchown(fd, self.box.uids["bob"], self.box.uids["bob"])
        fcntl.lockf(fd, fcntl.LOCK_EX)
        return path, fd

    def start_mda(self, pass_fds=()):
        mda = subprocess.Popen([os.path.join(mrtest.BIN, "mda"), "alice", "bob"], env=self.box.env(),
                               stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                               pass_fds=pass_fds)
        self.addCleanup(lambda: mda.poll() is None and mda.kill())
        mda.stdin.write(message(subject="children").encode())
        mda.stdin.close()
        mda.stdin = None  # communicate() must not flush it again
        return mda

    def waiting_child(self, mda, mailbox):
        """The child of mda that holds bob's mailbox open (waiting for our lock)."""
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            for child in children_of(mda.pid):
                files = open_files(child)
                if mailbox in files.values():
                    return child, files
            time.sleep(0.02)
        self.fail("no delivery child of mda opened bob's mailbox")

    def test_a_delivery_child_has_its_own_group_its_user_and_none_of_the_callers_descriptors(self):
        mailbox, lock_fd = self.hold_bobs_mailbox()
        secret_path = self.box.write("secret", "the caller's file\n")
        secret = os.open(secret_path, os.O_RDONLY)
        self.addCleanup(os.close, secret)
        mda = self.start_mda(pass_fds=(secret,))
        child, files = self.waiting_child(mda, mailbox)

        self.assertEqual(os.getpgid(child), child, "the child leads its own process group")
        self.assertEqual(os.getsid(child), child, "the child leads its own session")
        if mrtest.IS_ROOT:
            with open(f"/proc/{child}/status") as f:
                uids = next(line for line in f if line.startswith("Uid:")).split()[1:]
            self.assertEqual(set(uids), {str(self.box.uids["bob"])})
        self.assertNotIn(secret_path, files.values(), f"inherited the caller's file: {files}")
        extra = {fd: what for fd, what in files.items() if fd > 2 and what != mailbox}
        self.assertEqual(extra, {}, "descriptors beyond 0-2 other than the mailbox")

        fcntl.lockf(lock_fd, fcntl.LOCK_UN)
        out, err = mda.communicate(timeout=60)
        self.assertEqual(mda.returncode, 0, err.decode(errors="replace"))
        self.assertEqual(len(self.box.mbox("bob")), 1)
        self.assertEqual(len(self.box.mbox("alice")), 1)

    def test_a_delivery_child_running_past_command_timeout_is_killed_and_deferred(self):
        with open(self.box.conf, "a") as f:
            f.write("command_timeout = 1s\n")
        mailbox, _ = self.hold_bobs_mailbox()
        started = time.monotonic()
        mda = self.start_mda()
        child, _ = self.waiting_child(mda, mailbox)
        out, err = mda.communicate(timeout=60)
        self.assertLess(time.monotonic() - started, 20, "killed at command_timeout, not at lock_timeout")
        self.assertEqual(mda.returncode, 75, err.decode(errors="replace"))
        self.assertIn(b"cannot deliver to bob (4.3.0 delivery process timed out after 1 s)", err)
        self.assertFalse(os.path.exists(f"/proc/{child}"), "the child was killed and reaped")
        self.assertEqual(len(self.box.mbox("alice")), 1)
        self.assertEqual(os.path.getsize(mailbox), 0, "bob's mailbox untouched")


if __name__ == "__main__":
    mrtest.main()
