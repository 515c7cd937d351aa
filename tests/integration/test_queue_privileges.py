#!/usr/bin/env python3
"""Unprivileged submission (SPEC sections 1 and 3, docs/spool.md, docs/security.md):
with sendmail set-uid to the spool's owner (never root), any user can queue mail;
the entry belongs to the spool owner with mode 0600 in a 0700 folder, so the
submitter can neither read nor change it, nor anyone else's; mailctl check finds the
spool sound, and finds a queue file with the wrong owner or mode.

Root only: it installs a set-uid copy of sendmail and runs it as another uid."""
import os
import shutil
import stat
import subprocess
import unittest

import mrtest
from mrtest import message

SPOOL_OWNER = 20002  # bob in the sandbox
SUBMITTER = 20001    # alice


@unittest.skipUnless(mrtest.IS_ROOT, "needs root to install a set-uid sendmail and switch uids")
class SetuidSubmission(mrtest.TestCase):
    def setUp(self):
        super().setUp()
        if shutil.which("setpriv") is None:
            self.skipTest("setpriv (util-linux) is missing")
        os.chmod(self.box.dir, 0o755)
        os.mkdir(self.box.spool, 0o755)
        os.chown(self.box.spool, SPOOL_OWNER, SPOOL_OWNER)
        # The set-uid copy: a file the submitter can run but not change.
        self.bin = os.path.join(self.box.dir, "sbin")
        os.mkdir(self.bin, 0o755)
        for program in ("sendmail", "mta"):
            shutil.copy(os.path.join(mrtest.BIN, program), self.bin)
        self.sendmail = os.path.join(self.bin, "sendmail")
        os.chown(self.sendmail, SPOOL_OWNER, SPOOL_OWNER)
        os.chmod(self.sendmail, 0o4755)
        os.chmod(self.box.conf, 0o644)

    def as_user(self, uid, argv, data=b""):
        env = {"PATH": "/usr/bin:/bin", "MAILROOM_CONF": self.box.conf}
        return subprocess.run(["setpriv", f"--reuid={uid}", f"--regid={uid}", "--clear-groups", "--"] + argv,
                              input=data.encode() if isinstance(data, str) else data,
                              capture_output=True, env=env, timeout=60)

    def test_any_user_queues_and_the_entry_belongs_to_the_spool_owner(self):
        r = self.as_user(SUBMITTER, [self.sendmail, "-odq", "-C", self.box.conf, "carol"], message("private"))
        self.assertEqual(r.returncode, 0, r.stderr)
        (queue_id,) = self.box.queued()
        path = os.path.join(self.box.spool, "queue", queue_id)
        st = os.stat(path)
        self.assertEqual(st.st_uid, SPOOL_OWNER)
        self.assertEqual(stat.S_IMODE(st.st_mode), 0o600)
        for folder in ("tmp", "queue", "hold", "quarantine"):
            st = os.stat(os.path.join(self.box.spool, folder))
            self.assertEqual((st.st_uid, stat.S_IMODE(st.st_mode)), (SPOOL_OWNER, 0o700), folder)
        # The submitter is recorded from the real uid, which the set-uid bit does not change.
        with open(path, "rb") as f:
            self.assertIn(f"\nuid {SUBMITTER}\n".encode(), f.read())

        # Neither the submitter nor another user can read or change it.
        for uid in (SUBMITTER, 20003):
            for probe in (["cat", path], ["sh", "-c", f"echo x >> {path}"], ["ls", os.path.dirname(path)]):
                r = self.as_user(uid, probe)
                self.assertNotEqual(r.returncode, 0, f"uid {uid} could run {probe}")

        # Root's runner delivers it to carol as usual.
        self.assertExit(self.box.mta(["-q"]), 0)
        self.assertIn("private", self.box.mbox("carol")[0]["Subject"])
        self.assertEqual(self.box.queued(), [])

    def test_mailctl_check_finds_the_spool_sound_then_a_queue_file_with_a_wrong_mode(self):
        r = self.as_user(SUBMITTER, [self.sendmail, "-odq", "-C", self.box.conf, "carol"], message("one"))
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertExit(self.box.run("mailctl", ["check"]), 0)
        (queue_id,) = self.box.queued()
        os.chmod(os.path.join(self.box.spool, "queue", queue_id), 0o644)
        r = self.box.run("mailctl", ["check"])
        self.assertNotEqual(r.returncode, 0)
        self.assertIn(queue_id, (r.stdout + r.stderr).decode())


if __name__ == "__main__":
    mrtest.main()
