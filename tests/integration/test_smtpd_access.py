#!/usr/bin/env python3
"""The SMTP listener's access rules (SPEC 7, docs/access.md, docs/smtpd.md) from
the network: `smtpd_access_file` lines for client (at connect: a 554 or 421
greeting and the connection closes), helo, sender and recipient (554 5.7.1 /
450 4.7.1 with the line's TEXT), the first matching line deciding; `client ... OK`
as the only rule that lets a client outside mynetworks relay; a file with an
error refusing the start of `mta -d` (exit 78, naming FILE:LINE); SIGHUP
rereading the file (a broken one keeps the rules in force). Every refusal is
logged as Postfix does (`NOQUEUE: reject: STAGE from NAME[ADDR]: ...`)."""
import os
import re
import signal
import smtplib
import socket
import subprocess
import time

import mrtest
import smtp_probes
import smtptest
from smtp_probes import text

PEER = "localhost[127.0.0.1]"


class AccessCase(smtp_probes.ProbeCase):
    """A box whose smtpd_access_file holds `rules` when mta -d starts."""
    box_options = {"submission": False, "smtps": False}
    rules = ""

    def prepare(self):
        self.access = self.box.write("access", self.rules)
        self.box.add_config(smtpd_access_file=self.access)

    def rewrite(self, rules):
        """Replaces the access file whole (a new inode, as an editor saving it would)."""
        temporary = self.access + ".new"
        with open(temporary, "w") as f:
            f.write(rules)
        os.rename(temporary, self.access)

    def reload(self, needle, count):
        self.box.daemon.send_signal(signal.SIGHUP)
        self.wait_for_log(needle, count)

    def reply_to(self, c, line, expected_code, expected_text=None):
        code, reply = c.cmd(line)
        self.assertEqual(code, expected_code, f"{line!r}" + self.why(c.transcript))
        if expected_text is not None:
            self.assertEqual(reply.decode(errors="replace"), f"{expected_code} {expected_text}\r\n",
                             f"{line!r}" + self.why(c.transcript))
        return reply

    def assertLogged(self, line):
        self.assertIn(line, self.log(), "not logged" + self.why())


# --- client ---

class ClientReject(AccessCase):
    box_options = {"submission": True, "smtps": True}
    rules = "client 127.0.0.1 REJECT no mail from you\n"

    def test_the_greeting_is_554_and_the_connection_closes(self):
        for port in (self.box.smtp_port, self.box.submission_port):
            c = self.client(port)
            # A client that talks anyway is not heard.
            c.send(b"EHLO client.example\r\nMAIL FROM:<s@example.org>\r\nRCPT TO:<alice@test.example>\r\n")
            answer = c.until_close()
            self.assertEqual(answer, f"554 5.7.1 <{PEER}>: no mail from you\r\n".encode(), self.why(answer))
        # Implicit TLS: the refusal comes under TLS, as the greeting would.
        with socket_tls(self.box) as tls:
            self.assertEqual(smtp_probes.read_until_close_or_quiet(tls, quiet=10),
                             f"554 5.7.1 <{PEER}>: no mail from you\r\n".encode(), self.why())
        with self.assertRaises(smtplib.SMTPConnectError) as raised:
            self.box.smtp()
        self.assertEqual(raised.exception.smtp_code, 554)
        self.assertLogged(f"NOQUEUE: reject: CONNECT from {PEER}: 554 5.7.1 <{PEER}>: no mail from you; proto=SMTP")
        self.assertNotIn("helo=", "".join(line for line in self.log().splitlines() if "CONNECT" in line))
        self.assertQueueEmpty("after refused clients")


def socket_tls(box):
    context = box.client_context()
    raw = socket.create_connection(("127.0.0.1", box.smtps_port), timeout=10)
    return context.wrap_socket(raw, server_hostname="test.example")


class ClientDefer(AccessCase):
    rules = "client 127.0.0.0/8 DEFER come back later\nclient 127.0.0.1 REJECT never read\n"

    def test_the_greeting_is_421_and_the_connection_closes(self):
        c = self.client()
        answer = c.until_close()
        # 450 4.7.1 for the other kinds; a greeting can only be 220, 554 or 421.
        self.assertEqual(answer, f"421 4.7.1 <{PEER}>: come back later\r\n".encode(), self.why(answer))
        self.assertLogged(f"NOQUEUE: reject: CONNECT from {PEER}: 421 4.7.1 <{PEER}>: come back later; proto=SMTP")
        self.assertNotIn("never read", self.log())


class ClientRejectByName(AccessCase):
    # The loopback client is named "localhost" (docs/smtpd.md); no TEXT: the default wording.
    rules = "# the loopback client by name\nclient 10.0.0.0/8 OK\nclient LocalHost REJECT\n"

    def test_a_name_pattern_matches_and_the_default_text_is_postfixs(self):
        answer = self.client().until_close()
        self.assertEqual(answer, f"554 5.7.1 <{PEER}>: Client host rejected: Access denied\r\n".encode(),
                         self.why(answer))


class ClientFirstMatchDecides(AccessCase):
    rules = "client 127.0.0.1 OK\nclient 127.0.0.0/8 REJECT\nclient localhost DEFER\n"

    def test_ok_before_reject_lets_the_client_in(self):
        c = self.greeted()
        self.good_transaction(c, b"first match")
        self.settle("alice", 1)
        self.assertNotIn("NOQUEUE", self.log())


# --- helo ---

class HeloRules(AccessCase):
    rules = ("helo bad.example REJECT that is not you\n"
             "helo .dialup.example DEFER try later\n"
             "helo [192.0.2.1] REJECT\n"
             "helo [IPv6:2001:db8::1] REJECT v6 literal\n")

    def test_helo_and_ehlo_names_and_literals(self):
        c = self.client()
        c.reply()
        refused = [
            (b"EHLO bad.example", 554, "5.7.1 <bad.example>: that is not you"),
            (b"HELO bad.example", 554, "5.7.1 <bad.example>: that is not you"),
            (b"EHLO mx.BAD.example", 554, "5.7.1 <mx.BAD.example>: that is not you"),
            (b"EHLO host.dialup.example", 450, "4.7.1 <host.dialup.example>: try later"),
            (b"EHLO [192.0.2.1]", 554, "5.7.1 <[192.0.2.1]>: Helo command rejected: Access denied"),
            (b"EHLO [IPv6:::ffff:192.0.2.1]", 554, "5.7.1 <[IPv6:::ffff:192.0.2.1]>: Helo command rejected: "
                                                  "Access denied"),
            (b"EHLO [IPv6:2001:DB8:0::1]", 554, "5.7.1 <[IPv6:2001:DB8:0::1]>: v6 literal"),
        ]
        for line, code, reply in refused:
            self.reply_to(c, line, code, reply)
            # Refused: not greeted.
            self.reply_to(c, b"MAIL FROM:<s@example.org>", 503)
        for name in (b"notbad.example", b"dialup.example", b"bad.example.org", b"[192.0.2.2]"):
            self.reply_to(c, b"EHLO " + name, 250)
        self.good_transaction(c, b"after the helo refusals")
        self.settle("alice", 1)
        log = self.log()
        self.assertRegex(log, rf"NOQUEUE: reject: HELO from {re.escape(PEER)}: 554 5\.7\.1 <bad\.example>: that is "
                              rf"not you; proto=E?SMTP helo=<bad\.example>")
        self.assertRegex(log, rf"NOQUEUE: reject: HELO from {re.escape(PEER)}: 450 4\.7\.1 <host\.dialup\.example>: "
                              rf"try later; proto=E?SMTP helo=<host\.dialup\.example>")
        self.assertEqual(log.count("NOQUEUE: reject: HELO"), len(refused), self.why())


# --- sender ---

class SenderRules(AccessCase):
    rules = ("sender vip@spam.example OK\n"
             "sender @spam.example REJECT spam source\n"
             "sender x@spam.example OK  never read: the line before decides\n"
             "sender spammer@bad.example REJECT go away\n"
             "sender postmaster@ DEFER try later\n"
             "sender <> REJECT no bounces here\n"
             "sender @.sub.example REJECT\n")

    def test_user_at_domain_at_domain_user_at_and_the_null_sender(self):
        c = self.greeted()
        refused = [
            (b"a@spam.example", 554, "5.7.1 <a@spam.example>: spam source"),
            (b"A@SPAM.Example", 554, "5.7.1 <A@SPAM.Example>: spam source"),
            (b"x@spam.example", 554, "5.7.1 <x@spam.example>: spam source"),
            (b"spammer@bad.example", 554, "5.7.1 <spammer@bad.example>: go away"),
            (b"Spammer@Bad.Example", 554, "5.7.1 <Spammer@Bad.Example>: go away"),
            (b"postmaster@anywhere.example", 450, "4.7.1 <postmaster@anywhere.example>: try later"),
            (b"postmaster", 450, "4.7.1 <postmaster>: try later"),
            (b"", 554, "5.7.1 <>: no bounces here"),
            (b"a@mail.sub.example", 554, "5.7.1 <a@mail.sub.example>: Sender address rejected: Access denied"),
        ]
        for sender, code, reply in refused:
            self.reply_to(c, b"MAIL FROM:<" + sender + b">", code, reply)
            # No transaction was opened.
            self.reply_to(c, b"RCPT TO:<alice@test.example>", 503)
        for sender in (b"vip@spam.example", b"a@sub.spam.example", b"other@bad.example", b"spammer@bad.example.org",
                       b"a@sub.example", b"postmaster2@x.example"):
            self.reply_to(c, b"MAIL FROM:<" + sender + b">", 250)
            self.reply_to(c, b"RSET", 250)
        c2 = self.greeted()
        self.reply_to(c2, b"MAIL FROM:<vip@spam.example>", 250)
        self.reply_to(c2, b"RCPT TO:<alice@test.example>", 250)
        self.reply_to(c2, b"DATA", 354)
        self.reply_to(c2, text(b"from vip") + b".", 250)
        found = self.settle("alice", 1)
        self.assertIn(b"Subject: from vip", found[0])
        self.assertLogged(f"NOQUEUE: reject: MAIL from {PEER}: 554 5.7.1 <a@spam.example>: spam source; "
                          f"from=<a@spam.example> proto=ESMTP helo=<client.example>")
        self.assertLogged(f"NOQUEUE: reject: MAIL from {PEER}: 450 4.7.1 <postmaster>: try later; "
                          f"from=<postmaster> proto=ESMTP helo=<client.example>")
        self.assertLogged(f"NOQUEUE: reject: MAIL from {PEER}: 554 5.7.1 <>: no bounces here; "
                          f"from=<> proto=ESMTP helo=<client.example>")
        self.assertEqual(self.log().count("NOQUEUE: reject: MAIL"), len(refused), self.why())


# --- recipient ---

class RecipientRules(AccessCase):
    config = {"relayhost": "[127.0.0.1]:1", "queue_run_delay": "1h"}
    rules = ("recipient postmaster@ OK\n"
             "recipient bob@test.example REJECT bob has left: write to alice@test.example\n"
             "recipient carol@ REJECT\n"
             "recipient @far.example DEFER far is down\n"
             "recipient dave@localhost DEFER\n")

    def test_recipient_rules_and_what_they_leave_alone(self):
        c = self.greeted()
        self.reply_to(c, b"MAIL FROM:<s@example.org>", 250)
        refused = [
            (b"bob@test.example", 554, "5.7.1 <bob@test.example>: bob has left: write to alice@test.example"),
            (b"BOB@Test.Example", 554, "5.7.1 <BOB@Test.Example>: bob has left: write to alice@test.example"),
            (b"carol@test.example", 554, "5.7.1 <carol@test.example>: Recipient address rejected: Access denied"),
            (b"carol@localhost", 554, "5.7.1 <carol@localhost>: Recipient address rejected: Access denied"),
            (b"carol", 554, "5.7.1 <carol>: Recipient address rejected: Access denied"),
            (b"x@far.example", 450, "4.7.1 <x@far.example>: far is down"),
            (b"dave@localhost", 450, "4.7.1 <dave@localhost>: Recipient address rejected: Access denied"),
        ]
        for rcpt, code, reply in refused:
            self.reply_to(c, b"RCPT TO:<" + rcpt + b">", code, reply)
        # Not matched: the local part is compared whole (no recipient_delimiter),
        # @far.example is that domain only, dave@localhost that address only.
        for rcpt in (b"bob+list@test.example", b"alice@test.example", b"postmaster@test.example", b"x@sub.far.example",
                     b"dave@test.example"):
            self.reply_to(c, b"RCPT TO:<" + rcpt + b">", 250)
        self.reply_to(c, b"DATA", 354)
        self.reply_to(c, text(b"to the rest") + b".", 250)
        for user in ("alice", "bob", "dave", "postmaster"):
            found = self.settle(user, 1) if user != "postmaster" else None
            if found:
                self.assertIn(b"Subject: to the rest", found[-1])
        self.assertEqual(self.mails("carol"), [], self.why())
        self.assertLogged(f"NOQUEUE: reject: RCPT from {PEER}: 554 5.7.1 <bob@test.example>: bob has left: write to "
                          f"alice@test.example; from=<s@example.org> to=<bob@test.example> proto=ESMTP "
                          f"helo=<client.example>")
        self.assertLogged(f"NOQUEUE: reject: RCPT from {PEER}: 450 4.7.1 <x@far.example>: far is down; "
                          f"from=<s@example.org> to=<x@far.example> proto=ESMTP helo=<client.example>")
        self.assertEqual(self.log().count("NOQUEUE: reject: RCPT"), len(refused), self.why())

    def settle(self, user, count, timeout=60):
        # The message to x@sub.far.example stays in the queue (deferred): wait for the mailbox only.
        deadline = time.time() + timeout
        while True:
            found = self.mails(user)
            if len(found) >= count:
                return found
            if time.time() > deadline:
                self.fail(f"{user} has {len(found)} messages, not {count}" + self.why())
            time.sleep(0.1)


# --- relay ---

RELAY = {"mynetworks": "192.0.2.0/24", "relayhost": "[127.0.0.1]:1", "queue_run_delay": "1h"}


class ClientOkRelays(AccessCase):
    config = RELAY
    rules = "client 10.0.0.0/8 REJECT\nclient 127.0.0.1 OK a trusted partner\n"

    def test_client_ok_lets_a_client_outside_mynetworks_relay(self):
        c = self.greeted()
        self.assertNotIn(b"trusted partner", c.transcript)
        self.reply_to(c, b"MAIL FROM:<s@example.org>", 250)
        self.reply_to(c, b"RCPT TO:<someone@far.example>", 250)
        self.reply_to(c, b"DATA", 354)
        code, reply = c.cmd(text(b"relayed") + b".")
        self.assertEqual(code, 250, self.why(c.transcript))
        queue_id = re.search(rb"queued as (\w+)", reply).group(1).decode()
        self.wait_for_log(re.compile(rf"{queue_id}: to=<someone@far\.example>.*status=deferred"), 1, timeout=30)
        self.assertNotIn("Relay access denied", self.log())


class ClientOkByNameRelays(ClientOkRelays):
    rules = "client localhost OK\n"


class NoRelayWithoutClientOk(AccessCase):
    """Only `client ... OK` opens the relay (SPEC 7): an OK for the HELO name, the
    sender or the recipient does not, though Postfix's check_recipient_access would."""
    config = RELAY
    rules = ("client 127.0.0.2 OK\n"
             "client other.localhost OK\n"
             "helo client.example OK\n"
             "sender @test.example OK\n"
             "sender <> OK\n"
             "recipient @far.example OK\n"
             "recipient victim@elsewhere.example OK\n")

    def test_helo_sender_and_recipient_ok_do_not_open_the_relay(self):
        c = self.greeted()
        for sender in (b"alice@test.example", b""):
            self.reply_to(c, b"MAIL FROM:<" + sender + b">", 250)
            for rcpt in (b"someone@far.example", b"victim@elsewhere.example", b"x@sub.far.example"):
                self.reply_to(c, b"RCPT TO:<" + rcpt + b">", 554, f"5.7.1 <{rcpt.decode()}>: Relay access denied")
            # Local recipients still go in.
            self.reply_to(c, b"RCPT TO:<alice@test.example>", 250)
            self.reply_to(c, b"RSET", 250)
        self.assertEqual(self.log().count("Relay access denied"), 6, self.why())


class NoOpenRelay(AccessCase):
    """The classic open-relay probes (percent hack, bang path, source route, quoted
    local parts, address literals, trailing dots, IDN) from a client outside
    mynetworks: each is a relay refusal or an unknown local user, never queued for
    another host; the local forms of a local user still go in."""
    config = {"mynetworks": "192.0.2.0/24", "relayhost": "[127.0.0.1]:1"}

    def test_relay_tricks_are_refused(self):
        refused = [b"bob%far.example@test.example", b"@test.example:bob@far.example", b'"bob@far.example"@test.example',
                   b"far.example!bob@test.example", b"bob@far.example@test.example", b"bob@test.example.far.example",
                   b"bob@[127.0.0.1]", b"bob@[IPv6:::1]", b"bob@[192.0.2.1]", b"bob@localhost.", b"bob@test.example.",
                   b"bob@localhost.localdomain", b"bob@xn--tst-bma.example", b"bob@t\xc3\xa9st.example",
                   b'"bob@far.example"', b"bob@far.example,alice@test.example", b"bob@far.example%test.example"]
        taken = [b"bob@TEST.EXAMPLE", b"bob", b'"bob"', b"bob@localhost", b"bob+far.example@test.example"]
        c = None
        for number, rcpt in enumerate(refused):
            if number % 10 == 0:
                # Each refusal counts toward the error limit (20): a new session now and then.
                if c:
                    self.reply_to(c, b"QUIT", 221)
                    c.close()
                c = self.greeted()
                self.reply_to(c, b"MAIL FROM:<s@example.org> SMTPUTF8", 250)
            code, reply = c.cmd(b"RCPT TO:<" + rcpt + b">")
            self.assertEqual(code // 100, 5, f"{rcpt!r}" + self.why(c.transcript))
        self.reply_to(c, b"QUIT", 221)
        c = self.greeted()
        self.reply_to(c, b"MAIL FROM:<s@example.org>", 250)
        for rcpt in taken:
            self.reply_to(c, b"RCPT TO:<" + rcpt + b">", 250)
        self.reply_to(c, b"DATA", 354)
        self.reply_to(c, text(b"local forms") + b".", 250)
        found = self.settle("bob", 1)
        self.assertTrue(all(b"Subject: local forms" in m for m in found), self.why())
        self.assertQueueEmpty("after relay probes")
        self.assertNotIn("relay=127.0.0.1", self.log())
        self.assertNotIn("status=deferred", self.log())


# --- files with errors ---

class BrokenFiles(smtp_probes.ProbeCase):
    box_options = {"submission": False, "smtps": False}

    def setUp(self):
        # No start: each case starts mta -d itself, and it must refuse.
        self.box = smtptest.SmtpBox(**self.box_options)
        self.addCleanup(self.box.cleanup)
        self.access = self.box.write("access", "")
        self.box.add_config(smtpd_access_file=self.access)

    def start_refused(self, label):
        daemon = self.box.popen("mta", ["-d"])
        try:
            out, err = daemon.communicate(timeout=20)
        except subprocess.TimeoutExpired:
            daemon.send_signal(signal.SIGTERM)
            daemon.communicate(timeout=30)
            self.fail(f"{label}: mta -d started with a broken access file")
        err = err.decode(errors="replace")
        self.assertEqual(daemon.returncode, 78, f"{label}: {err}")
        with self.assertRaises(OSError, msg=f"{label}: something listens"):
            smtp_probes.Client.tcp(self.box.smtp_port, timeout=2).close()
        return err

    def test_a_file_with_an_error_stops_the_start_naming_the_line(self):
        cases = [
            ("unknown kind", "client 127.0.0.1 REJECT\nfrob x OK\n", 2),
            ("unknown action", "# comment\n\nsender @x.example MAYBE\n", 3),
            ("missing action", "client 127.0.0.1\n", 1),
            ("missing pattern", "\n\n\nrecipient\n", 4),
            ("host bits", "client 192.0.2.0/24 OK\nclient 10.1.2.3/8 REJECT\n", 2),
            ("a bare address for helo", "helo 192.0.2.1 REJECT\n", 1),
            ("the name unknown", "client unknown REJECT\n", 1),
            ("a sender without @", "sender example.com REJECT\n", 1),
            ("a wildcard", "client *.example.com REJECT\n", 1),
            ("a control byte in TEXT", "recipient bob@x.example REJECT gone\x01\n", 1),
            ("UTF-8 in TEXT", "recipient bob@x.example REJECT parti \u00e0 Paris\n", 1),
            ("TEXT longer than 200", "sender a@b.example REJECT " + "x" * 201 + "\n", 1),
            ("a bare CR", "sender a@b.example REJECT t\rmore\n", 1),
            ("a NUL in a comment", "client 10.0.0.1 OK\n# \x00\n", 2),
            ("a line of 4097 octets", "client 10.0.0.1 OK\n#" + "x" * 4096 + "\n", 2),
            ("a bad network", "client 300.1.2.3 REJECT\n", 1),
            ("prefix inside brackets", "client [::1/128] REJECT\n", 1),
        ]
        for label, rules, line in cases:
            with self.subTest(label):
                with open(self.access, "w", newline="") as f:
                    f.write(rules)
                err = self.start_refused(label)
                self.assertIn(f"{self.access}:{line}:", err, label)
                self.assertEqual(len(err.strip().splitlines()), 1, f"{label}: one line: {err}")
                self.assertRegex(err, r"^mta: error: ", label)
        # CRLF line ends are fine, and TEXT may hold '#'.
        with open(self.access, "w", newline="") as f:
            f.write("client 10.0.0.1 REJECT see #5\r\nsender a@b.example OK\r\n")
        self.box.start()
        self.box.stop()

    def test_a_file_that_cannot_be_read_stops_the_start(self):
        os.unlink(self.access)
        err = self.start_refused("missing")
        self.assertIn(f"open {self.access}: No such file or directory", err)
        os.mkdir(self.access)
        self.start_refused("a folder")
        os.rmdir(self.access)
        with open(self.access, "w") as f:
            f.write(("# padding\n" * 420000)[:4 * 1024 * 1024 + 1])
        err = self.start_refused("over 4 MiB")
        self.assertIn("larger than", err)

    def test_a_bad_mynetworks_stops_the_start(self):
        self.box.add_config(mynetworks="10.1.2.3/8")
        err = self.start_refused("mynetworks")
        self.assertIn("mynetworks", err)
        self.assertIn("10.0.0.0/8", err)


# --- SIGHUP ---

class Reload(AccessCase):
    rules = "sender @spam.example REJECT spam\n"

    def test_sighup_rereads_the_file_and_a_broken_one_keeps_the_rules(self):
        before = self.greeted()  # a session from before the first SIGHUP
        self.reply_to(before, b"MAIL FROM:<a@other.example>", 250)
        self.reply_to(before, b"RSET", 250)
        self.reply_to(before, b"MAIL FROM:<a@spam.example>", 554, "5.7.1 <a@spam.example>: spam")

        self.rewrite(self.rules + "sender @other.example REJECT a new rule\n")
        self.reload("access rules reloaded", 1)
        c = self.greeted()
        self.reply_to(c, b"MAIL FROM:<a@other.example>", 554, "5.7.1 <a@other.example>: a new rule")
        self.reply_to(c, b"MAIL FROM:<a@spam.example>", 554, "5.7.1 <a@spam.example>: spam")
        # The session from before keeps the rules it began with.
        code, _ = before.cmd(b"MAIL FROM:<a@other.example>")
        kept_old_rules = code == 250
        before.cmd(b"RSET")

        # A broken file: logged, naming the line, and the rules in force stay.
        self.rewrite("sender @third.example REJECT\nfrob\n")
        self.reload(f"keeping the access rules in force: {self.access}:2:", 1)
        c = self.greeted()
        self.reply_to(c, b"MAIL FROM:<a@other.example>", 554, "5.7.1 <a@other.example>: a new rule")
        self.reply_to(c, b"MAIL FROM:<a@third.example>", 250)
        self.reply_to(c, b"RSET", 250)
        # A file gone: the same.
        os.unlink(self.access)
        self.reload(f"keeping the access rules in force: open {self.access}: No such file or directory", 1)
        c = self.greeted()
        self.reply_to(c, b"MAIL FROM:<a@other.example>", 554, "5.7.1 <a@other.example>: a new rule")
        self.assertIsNone(self.box.daemon.poll(), "mta -d ended on a broken access file" + self.why())
        self.assertListenerUp("after broken files on SIGHUP")

        # Fixed: a client rule takes effect for the next connection.
        self.rewrite("client 127.0.0.1 REJECT closed for now\n")
        self.reload("access rules reloaded", 2)
        answer = self.client().until_close()
        self.assertEqual(answer, f"554 5.7.1 <{PEER}>: closed for now\r\n".encode(), self.why(answer))
        # And an empty file: no rules at all.
        self.rewrite("")
        self.reload("access rules reloaded", 3)
        c = self.greeted()
        self.good_transaction(c, b"no rules")
        self.settle("alice", 1)
        self.assertListenerUp("after four SIGHUPs")
        print(f"\n  a session open across the SIGHUP kept its old rules: {kept_old_rules}", end=" ")


if __name__ == "__main__":
    mrtest.main()
