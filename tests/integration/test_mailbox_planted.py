#!/usr/bin/env python3
"""Files another user plants beside a mailbox in a shared mail folder never decide
what a delivery cuts (issue 7, docs/mbox.md "Who may write a record").

In a folder users can write (1777 as on many systems, 0777, or Debian's root:mail
2775 where deliveries run with group mail), an attacker (bob) can create
alice.mailroom-append or alice.lock. A delivery that believed such a file "repaired"
alice's mailbox by cutting her last message, again at every delivery. The table below
plants every kind of file in every kind of folder, for every mailbox_lock setting,
through mda and through the queue runner: alice keeps every message, and a planted
dotlock never holds her mail back for good.

The attacker's files belong to another uid, so the cases need root (distinct uids).
"""
import os
import subprocess
import unittest

import mrtest
from mrtest import message

# Not a sandbox user's group: the folder's group, added to deliveries as Debian's "mail".
MAIL_GID = 20100

FOLDERS = {
    "sticky_1777": (0o1777, None),
    "open_0777": (0o777, None),
    "debian_2775": (0o2775, MAIL_GID),
}
LOCKS = ["fcntl", "dotlock", "fcntl, dotlock", "dotlock, fcntl"]
# What bob plants; every record points at the start of alice's last message, which is
# exactly what a cut would take away.
PLANTS = [
    "sidecar",          # alice.mailroom-append, the current format, bound to her mailbox
    "sidecar_old",      # alice.mailroom-append as `PID OFFSET` (the format before issue 7)
    "dotlock_offset",   # alice.lock naming a dead PID and the offset, current format
    "dotlock_old",      # alice.lock as `DEADPID OFFSET`
    "dotlock_plain",    # alice.lock naming a dead PID only
    "dotlock_live",     # alice.lock naming a live PID (PID 1): would hold mail until stale
    "sidecar_symlink",  # alice.mailroom-append -> alice
    "dotlock_symlink",  # alice.lock -> alice
]
ROUTES = ["mda", "runner"]


def dead_pid():
    child = subprocess.Popen(["true"])
    child.wait()
    return child.pid


def plant(path, data, uid, gid):
    """Creates path as the attacker would: a file of their own (uid, gid)."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
    try:
        os.write(fd, data)
        os.fchown(fd, uid, gid)
    finally:
        os.close(fd)


def plant_symlink(path, target, uid, gid):
    os.symlink(target, path)
    os.lchown(path, uid, gid)


def defers(folder, locks, kind):
    """True where the delivery must defer rather than deliver: dotlock is the only
    lock and bob's dotlock cannot be removed (the sticky bit keeps alice from it)."""
    return locks == "dotlock" and kind.startswith("dotlock") and folder == "sticky_1777"


@unittest.skipUnless(mrtest.IS_ROOT, "planted files need another user's uid (run as root)")
class PlantedFiles(unittest.TestCase):
    def deliver(self, box, route, subject):
        if route == "mda":
            return box.mda(["-f", "sender@example.org", "alice"], message(subject=subject))
        r = box.sendmail(["-odq", "-f", "sender@example.org", "alice@test.example"], message(subject=subject))
        self.assertEqual(r.returncode, 0, r.stderr)
        return box.mta(["-q"])

    def subjects(self, box):
        return [m["Subject"] for m in box.mbox("alice")]

    def make_box(self, folder, locks):
        box = mrtest.Sandbox(mailbox_lock=locks, lock_timeout="2s")
        self.addCleanup(box.cleanup)
        mode, gid = FOLDERS[folder]
        if gid is not None:
            os.chown(box.mail, 0, gid)
        os.chmod(box.mail, mode)
        return box

    def plant_kind(self, box, kind, offset):
        victim = box.mbox_path("alice")
        uid = gid = box.uids["bob"]
        if os.stat(box.mail).st_mode & 0o2000:
            gid = os.stat(box.mail).st_gid  # a set-gid folder gives its group
        st = os.stat(victim)
        bound = f"{offset} {st.st_dev} {st.st_ino}"
        records = {
            "sidecar": (".mailroom-append", f"{dead_pid()} {bound}\n"),
            "sidecar_old": (".mailroom-append", f"{dead_pid()} {offset}\n"),
            "dotlock_offset": (".lock", f"{dead_pid()} {bound}\n"),
            "dotlock_old": (".lock", f"{dead_pid()} {offset}\n"),
            "dotlock_plain": (".lock", f"{dead_pid()}\n"),
            "dotlock_live": (".lock", "1\n"),
        }
        if kind in records:
            suffix, text = records[kind]
            plant(victim + suffix, text.encode(), uid, gid)
        elif kind == "sidecar_symlink":
            plant_symlink(victim + ".mailroom-append", victim, uid, gid)
        else:
            plant_symlink(victim + ".lock", victim, uid, gid)

    def check_case(self, folder, locks, kind, route):
        box = self.make_box(folder, locks)
        for subject in ("one", "two"):
            self.assertEqual(self.deliver(box, route, subject).returncode, 0)
        victim = box.mbox_path("alice")
        with open(victim, "rb") as f:
            data = f.read()
        offset = data.index(b"\nFrom ", 1) + 1  # where "two" starts
        self.plant_kind(box, kind, offset)
        expected = ["one", "two"]
        for subject in ("three", "four"):
            r = self.deliver(box, route, subject)
            if defers(folder, locks, kind):
                if route == "mda":
                    self.assertEqual(r.returncode, 75, r.stderr)
                    self.assertRegex(r.stderr.decode(), r"cannot be removed")
                else:
                    self.assertEqual(r.returncode, 0, r.stderr)
                    with open(box.log) as f:
                        self.assertRegex(f.read(), r"status=deferred .*cannot be removed")
            else:
                self.assertEqual(r.returncode, 0, r.stderr)
                expected.append(subject)
            self.assertEqual(self.subjects(box), expected)
        if defers(folder, locks, kind) and route == "runner":
            self.assertEqual(len(box.queued()), 2, "the deferred messages stay queued")
        # Nothing planted was followed: the mailbox is still alice's own regular file.
        st = os.lstat(victim)
        self.assertEqual(st.st_uid, box.uids["alice"])
        self.assertEqual(st.st_nlink, 1)


def add_cases():
    for folder in FOLDERS:
        for locks in LOCKS:
            for kind in PLANTS:
                for route in ROUTES:
                    name = f"test_{folder}_{locks.replace(', ', '_then_')}_{kind}_{route}"
                    setattr(PlantedFiles, name,
                            lambda self, f=folder, l=locks, k=kind, r=route: self.check_case(f, l, k, r))


add_cases()


@unittest.skipUnless(mrtest.IS_ROOT, "planted files need another user's uid (run as root)")
class PlantedFileReasons(unittest.TestCase):
    """The log says why a planted file was not used."""

    def setUp(self):
        self.box = mrtest.Sandbox(lock_timeout="2s")
        self.addCleanup(self.box.cleanup)

    def deliver(self, subject):
        return self.box.mda(["-f", "sender@example.org", "alice"], message(subject=subject))

    def log(self):
        with open(self.box.log) as f:
            return f.read()

    def test_a_planted_sidecar_is_ignored_naming_its_owner(self):
        self.box.write("mailroom.conf", "mailbox_lock = fcntl\n", mode="a")
        self.assertEqual(self.deliver("one").returncode, 0)
        victim = self.box.mbox_path("alice")
        st = os.stat(victim)
        plant(victim + ".mailroom-append", f"{dead_pid()} 0 {st.st_dev} {st.st_ino}\n".encode(),
              self.box.uids["bob"], self.box.uids["bob"])
        self.assertEqual(self.deliver("two").returncode, 0)
        self.assertIn(f"ignored crash-repair record {victim}.mailroom-append: owned by uid {self.box.uids['bob']}",
                      self.log())
        self.assertEqual([m["Subject"] for m in self.box.mbox("alice")], ["one", "two"])

    def test_a_planted_dotlock_in_a_sticky_folder_is_bypassed_under_the_fcntl_lock(self):
        self.assertEqual(self.deliver("one").returncode, 0)
        victim = self.box.mbox_path("alice")
        plant(victim + ".lock", b"1\n", self.box.uids["bob"], self.box.uids["bob"])
        r = self.deliver("two")
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertIn(f"status=sent (delivered to mailbox (under the fcntl lock alone: lock {victim}.lock "
                      f"(uid {self.box.uids['bob']}, not the mailbox owner's) cannot be removed", self.log())
        self.assertEqual([m["Subject"] for m in self.box.mbox("alice")], ["one", "two"])

    def test_a_planted_dotlock_in_an_open_folder_is_removed_and_its_record_ignored(self):
        os.chmod(self.box.mail, 0o777)
        self.assertEqual(self.deliver("one").returncode, 0)
        victim = self.box.mbox_path("alice")
        st = os.stat(victim)
        plant(victim + ".lock", f"{dead_pid()} 0 {st.st_dev} {st.st_ino}\n".encode(),
              self.box.uids["bob"], self.box.uids["bob"])
        self.assertEqual(self.deliver("two").returncode, 0)
        self.assertIn(f"ignored crash-repair record {victim}.lock: owned by uid {self.box.uids['bob']}", self.log())
        self.assertFalse(os.path.lexists(victim + ".lock"))
        self.assertEqual([m["Subject"] for m in self.box.mbox("alice")], ["one", "two"])


if __name__ == "__main__":
    mrtest.main()
