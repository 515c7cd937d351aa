#!/usr/bin/env python3
"""An independent reader: Dovecot's doveadm reads what mda delivered, in mbox
and in Maildir, and finds every message with its subject and body."""
import os
import shutil
import subprocess
import unittest

import mrtest
from mrtest import message

DOVEADM = shutil.which("doveadm") or "/usr/bin/doveadm"


@unittest.skipUnless(os.path.exists(DOVEADM), "doveadm (dovecot-core) is not installed")
class DovecotReads(mrtest.TestCase):
    def doveadm_fetch(self, location):
        """Subject and body of every message in INBOX at location, as Dovecot sees them."""
        uid = self.box.uids["alice"]
        root = os.path.join(self.box.home, "alice", "dovecot")
        os.makedirs(root, exist_ok=True)
        if mrtest.IS_ROOT:
            os.chown(root, uid, uid)
        conf = self.box.write("dovecot.conf", f"""
mail_location = {location}
mail_home = {root}
mail_uid = {uid}
mail_gid = {uid if mrtest.IS_ROOT else os.getgid()}
first_valid_uid = 1
first_valid_gid = 1
ssl = no
log_path = {self.box.dir}/dovecot.log
userdb {{
  driver = static
  args = uid={uid} gid={uid if mrtest.IS_ROOT else os.getgid()} home={root}
}}
passdb {{
  driver = static
  args = nopassword
}}
""")
        env = dict(os.environ, USER="alice", HOME=root)
        out = subprocess.run([DOVEADM, "-c", conf, "-f", "pager", "fetch", "hdr.subject body",
                              "mailbox", "INBOX", "all"], env=env, capture_output=True, timeout=60)
        self.assertEqual(out.returncode, 0, out.stderr)
        found = []
        for record in out.stdout.decode().split("\f\n"):
            head, _, body = record.partition("\nbody:\n")
            found.append((head.split("hdr.subject: ", 1)[1], body.rstrip("\n")))
        return found

    def deliver_three(self, args):
        bodies = {f"m{i}": f"line one of {i}\n\nline three\n" for i in range(3)}
        for subject, body in bodies.items():
            self.assertExit(self.box.mda(args + ["alice"], message(subject=subject, body=body)), 0)
        return {s: b.rstrip("\n") for s, b in bodies.items()}

    def test_dovecot_reads_the_mbox(self):
        expected = self.deliver_three([])
        found = self.doveadm_fetch(f"mbox:{self.box.home}/alice/dovecot:INBOX={self.box.mbox_path('alice')}")
        self.assertEqual(dict(found), expected)
        self.assertEqual(len(found), 3)

    def test_dovecot_reads_the_maildir(self):
        expected = self.deliver_three(["-m", "maildir"])
        found = self.doveadm_fetch(f"maildir:{self.box.mail}/alice")
        self.assertEqual(dict(found), expected)
        self.assertEqual(len(found), 3)


if __name__ == "__main__":
    mrtest.main()
