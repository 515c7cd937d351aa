#!/usr/bin/env python3
"""The real-peer fixtures of peers.py, proven against Dovecot: Python's smtplib.LMTP
into a private Dovecot LMTP, and Postfix's sendmail -> a private Postfix -> its lmtp
client -> Dovecot LMTP; doveadm reads every message back. The same fixtures serve
lmtpd (DovecotLmtp as the reader of its Maildirs, PostfixLmtpClient as its client).

Needs root, Dovecot (dovecot-core) and Postfix; skipped (exit 77) without them.
Users are uids 60001 and 60002 of a Dovecot passwd-file, no system accounts."""
import os
import pwd
import shutil
import smtplib
import socket
import tempfile
import unittest

import mrtest
from peers import DovecotLmtp, Lmtpd, PeerUnavailable, PostfixLmtpClient, unreachable_by

USERS = {"alice": 60001, "bob": 60002}


class PeersCase(unittest.TestCase):
    def setUp(self):
        self.dir = tempfile.mkdtemp(prefix="mailroom-peers-")
        self.addCleanup(shutil.rmtree, self.dir, ignore_errors=True)
        os.chmod(self.dir, 0o755)
        self.users = {name: (uid, uid, os.path.join(self.dir, "home", name))
                      for name, uid in USERS.items()}

    def enter(self, fixture):
        """Enters a fixture for the rest of the test; skips the test when the peer
        is not installed here (PeerUnavailable is a unittest.SkipTest)."""
        value = fixture.__enter__()
        self.addCleanup(fixture.__exit__, None, None, None)
        return value

    def dovecot(self):
        return self.enter(DovecotLmtp(os.path.join(self.dir, "dovecot"), self.users))

    def subjects(self, dv, user):
        return [m["hdr.subject"] for m in dv.doveadm_fetch(user, "hdr.subject body")]


class DovecotLmtpPeer(PeersCase):
    def test_smtplib_lmtp_to_two_users(self):
        dv = self.dovecot()
        client = smtplib.LMTP(dv.socket)
        self.addCleanup(client.close)
        refused = client.sendmail("sender@example.org", ["alice@localhost", "bob"],
                                  mrtest.message(subject="to both", body="one\n").replace("\n", "\r\n").encode())
        self.assertEqual(refused, {})
        # smtplib reads one reply after the data; LMTP sends one per recipient.
        self.assertEqual(client.getreply()[0], 250)
        refused = client.sendmail("sender@example.org", ["bob@localhost"],
                                  mrtest.message(subject="to bob", body="two\n").replace("\n", "\r\n").encode())
        self.assertEqual(refused, {})
        client.quit()
        self.assertEqual(self.subjects(dv, "alice"), ["to both"], dv.log())
        self.assertEqual(self.subjects(dv, "bob"), ["to both", "to bob"], dv.log())
        bodies = [m["body"] for m in dv.doveadm_fetch("bob", ["body"])]
        self.assertEqual(bodies, ["one\n", "two\n"])
        # Delivered with fsync, into the user's own Maildir, owned by the user.
        new = dv.maildir("alice") / "new"
        self.assertEqual(len(os.listdir(new)), 1)
        self.assertEqual(os.stat(next(new.iterdir())).st_uid, USERS["alice"])

    def test_unknown_user_is_refused(self):
        dv = self.dovecot()
        client = smtplib.LMTP(dv.socket)
        self.addCleanup(client.close)
        client.ehlo_or_helo_if_needed()
        self.assertEqual(client.mail("sender@example.org")[0], 250)
        code, text = client.rcpt("nosuchuser@localhost")
        self.assertEqual(code, 550, text)


class PostfixToDovecot(PeersCase):
    def test_postfix_sendmail_through_lmtp_into_dovecot(self):
        dv = self.dovecot()
        pf = self.enter(PostfixLmtpClient(os.path.join(self.dir, "postfix"), "unix:" + dv.socket))
        for subject, rcpts in (("via postfix 1", ["alice@localhost"]),
                               ("via postfix 2", ["alice", "bob@localhost"])):
            res = pf.sendmail(["-i", "-f", "sender@example.org", "--", *rcpts],
                              mrtest.message(subject=subject, body="through lmtp\n"))
            self.assertEqual(res.returncode, 0, res.stderr)
        pf.wait_queue_empty(60)
        self.assertEqual(sorted(self.subjects(dv, "alice")), ["via postfix 1", "via postfix 2"],
                         pf.log() + dv.log())
        self.assertEqual(self.subjects(dv, "bob"), ["via postfix 2"], pf.log() + dv.log())
        head = dv.doveadm_fetch("bob", "hdr")[0]["hdr"]
        self.assertIn("Return-Path: <sender@example.org>", head)
        # Postfix's lmtp client said LHLO and handed the recipient as it was addressed.
        self.assertRegex(pf.log(), r"to=<bob@localhost>, relay=.*lmtp.*status=sent")

    def test_unknown_user_bounces(self):
        dv = self.dovecot()
        pf = self.enter(PostfixLmtpClient(os.path.join(self.dir, "postfix"), "unix:" + dv.socket))
        res = pf.sendmail(["-i", "-f", "", "nosuchuser@localhost"], mrtest.message(subject="lost"))
        self.assertEqual(res.returncode, 0, res.stderr)
        pf.wait_queue_empty(60)
        self.assertRegex(pf.log(), r"to=<nosuchuser@localhost>.*status=bounced")


class PostfixToLmtpd(PeersCase):
    """The same fixtures pointed at mailroom's lmtpd: Postfix is its client, Dovecot
    reads the Maildirs it wrote (skipped when lmtpd is not built)."""

    def test_postfix_through_lmtpd_read_by_dovecot(self):
        lm = self.enter(Lmtpd(os.path.join(self.dir, "lmtpd"), self.users))
        pf = self.enter(PostfixLmtpClient(os.path.join(self.dir, "postfix"), "unix:" + lm.socket))
        res = pf.sendmail(["-i", "-f", "sender@example.org", "--", "alice", "bob@localhost"],
                          mrtest.message(subject="via lmtpd", body="through lmtp\n"))
        self.assertEqual(res.returncode, 0, res.stderr)
        pf.wait_queue_empty(60)
        self.assertRegex(pf.log(), r"to=<bob@localhost>, relay=.*status=sent")
        dv = self.dovecot()
        for user in USERS:
            found = dv.doveadm_fetch(user, "hdr.subject body")
            self.assertEqual([(m["hdr.subject"], m["body"]) for m in found],
                             [("via lmtpd", "through lmtp\n")], lm.log())


class Fixtures(unittest.TestCase):
    def test_unreachable_socket_is_reported(self):
        """PostfixLmtpClient names the folder its lmtp client (user postfix) cannot
        pass, instead of a delivery deferred later."""
        try:
            pf = pwd.getpwnam("postfix")
        except KeyError:
            raise PeerUnavailable("no postfix user")
        d = tempfile.mkdtemp(prefix="mailroom-peers-")
        self.addCleanup(shutil.rmtree, d, ignore_errors=True)
        s = socket.socket(socket.AF_UNIX)
        self.addCleanup(s.close)
        s.bind(os.path.join(d, "sock"))
        os.chmod(os.path.join(d, "sock"), 0o666)
        os.chmod(d, 0o700)
        if os.stat(d).st_uid == pf.pw_uid:
            self.skipTest("the temp folder belongs to postfix")
        self.assertIn("is not searchable", unreachable_by(os.path.join(d, "sock"), pf.pw_uid, pf.pw_gid))
        os.chmod(d, 0o755)
        self.assertEqual(unreachable_by(os.path.join(d, "sock"), pf.pw_uid, pf.pw_gid), "")


if __name__ == "__main__":
    mrtest.main()
