#!/usr/bin/env python3
"""The runner's LMTP transport (local_transport = lmtp:unix:PATH): queued mail for
local users handed to a real Dovecot LMTP server (read back with doveadm) and to
lmtpd; per-recipient replies become leaf states (5xx bounced with the server's
reply in the DSN, no server deferred); one connection carries several messages."""
import os
import shutil
import unittest

import lmtptest
import mrtest
import peers


def queue(box, recipients, subject, sender="alice@test.example"):
    result = box.sendmail(["-odq", "-i", "-f", sender] + recipients, mrtest.message(subject=subject))
    if result.returncode != 0:
        raise AssertionError(result.stderr.decode(errors="replace"))


@unittest.skipUnless(mrtest.IS_ROOT and shutil.which("dovecot"), "needs root and dovecot-lmtpd")
class ToDovecot(mrtest.TestCase):
    def setUp(self):
        super().setUp()
        # carol is a user here but not Dovecot's: its mail is refused by the server.
        users = {name: (self.box.uids[name], self.box.uids[name], os.path.join(self.box.home, name))
                 for name in ("alice", "bob", "dave")}
        self.dovecot = peers.DovecotLmtp(os.path.join(self.box.dir, "dovecot"), users)
        self.dovecot.__enter__()
        self.addCleanup(self.dovecot.__exit__, None, None, None)
        with open(self.box.conf, "a") as conf:
            conf.write(f"local_transport = lmtp:unix:{self.dovecot.socket}\n")

    def subjects(self, user):
        return sorted(m["hdr.subject"] for m in self.dovecot.doveadm_fetch(user, "hdr.subject"))

    def log(self):
        with open(self.box.log, errors="replace") as f:
            return f.read()

    def test_mail_for_two_users_lands_in_dovecot_in_one_transaction(self):
        queue(self.box, ["bob@test.example", "dave"], "to dovecot")
        self.assertExit(self.box.mta(["-q"]), 0)
        self.assertEqual(self.subjects("bob"), ["to dovecot"], self.dovecot.log())
        self.assertEqual(self.subjects("dave"), ["to dovecot"])
        log = self.log()
        self.assertIn(f"relay={self.dovecot.socket}", log)
        self.assertEqual(log.count("status=sent"), 2, log)
        self.assertIn("mailroom/lmtp[", log)
        self.assertEqual(self.box.queued(), [])
        # Nothing was written by mailroom itself.
        self.assertFalse(os.path.exists(self.box.mbox_path("bob")))

    def test_a_recipient_the_server_refuses_is_bounced_with_its_reply(self):
        queue(self.box, ["carol@test.example", "bob@test.example"], "half refused")
        self.assertExit(self.box.mta(["-q"]), 0)
        self.assertEqual(self.subjects("bob"), ["half refused"])
        log = self.log()
        self.assertRegex(log, r"to=<carol@test.example>.*status=bounced \(host \S+ said: 550 ")
        # The bounce goes back to alice, through the same transport.
        bounces = [m for m in self.dovecot.doveadm_fetch("alice", "hdr.subject body")]
        self.assertEqual(len(bounces), 1, log)
        self.assertIn("550", bounces[0]["body"])
        self.assertIn("carol@test.example", bounces[0]["body"])

    def test_several_messages_share_one_connection(self):
        for i in range(3):
            queue(self.box, ["bob@test.example"], f"m{i}")
        self.assertExit(self.box.mta(["-q"]), 0)
        self.assertEqual(self.subjects("bob"), ["m0", "m1", "m2"])
        # The fixture's own readiness probe logs out at the greeting; the runner's
        # one connection carried the three messages (Dovecot's T2, T3 transactions).
        log = self.dovecot.log()
        self.assertEqual(log.count("Connect from local") - log.count("(state=GREETING)"), 1, log)
        self.assertIn(":T3>", log)


class Unreachable(mrtest.TestCase):
    def test_no_server_defers_every_recipient_and_keeps_the_message(self):
        with open(self.box.conf, "a") as conf:
            conf.write(f"local_transport = lmtp:unix:{self.box.dir}/nothing-listens-here\n")
        queue(self.box, ["bob@test.example", "dave@test.example"], "deferred")
        self.assertExit(self.box.mta(["-q"]), 0)
        with open(self.box.log, errors="replace") as f:
            log = f.read()
        self.assertEqual(log.count("status=deferred (connect to"), 2, log)
        self.assertEqual(len(self.box.queued()), 1)
        listing = self.box.run("mailq", []).stdout.decode()
        self.assertIn("connect to", listing)


class ToLmtpd(lmtptest.LmtpdCase):
    config = {"mailbox_format": "maildir"}

    def test_the_runner_hands_mail_to_lmtpd_and_reuses_the_connection(self):
        with open(self.box.conf, "a") as conf:
            conf.write(f"local_transport = lmtp:unix:{self.socket}\n")
        for i in range(3):
            queue(self.box, ["bob@test.example", "carol@test.example"], f"via lmtpd {i}")
        self.assertExit(self.box.mta(["-q"]), 0)
        for user in ("bob", "carol"):
            subjects = sorted(m["Subject"] for m in self.maildir_messages(user))
            self.assertEqual(subjects, [f"via lmtpd {i}" for i in range(3)], self.log())
        log = self.log()
        self.assertEqual(log.count("]: connect from localhost"), 1, log)
        self.assertEqual(self.box.queued(), [])

    def test_sendmail_odi_delivers_through_the_transport_before_it_exits(self):
        with open(self.box.conf, "a") as conf:
            conf.write(f"local_transport = lmtp:unix:{self.socket}\n")
        result = self.box.sendmail(["-odi", "-i", "-f", "alice@test.example", "dave@test.example"],
                                   mrtest.message(subject="odi"))
        self.assertExit(result, 0)
        self.assertEqual([m["Subject"] for m in self.maildir_messages("dave")], ["odi"], self.log())
        self.assertEqual(self.box.queued(), [])


if __name__ == "__main__":
    mrtest.main()
