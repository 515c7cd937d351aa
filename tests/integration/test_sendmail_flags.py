#!/usr/bin/env python3
"""sendmail's options, end to end: -t, -f/-r, --, the command lines of the real
callers (cron, mutt, git send-email, PHP), the delivery modes -odi/-odb/-odq
with and without a running `mta -d`, and the modes handed to other programs."""
import os
import re
import signal
import subprocess
import time

import mrtest
from sendmail_case import SendmailCase, split_message, field_names, value_of

SIMPLE = b"Subject: s\n\nbody\n"


class RecipientsFromHeaders(SendmailCase):
    def test_dash_t_sends_to_to_cc_and_bcc_and_the_command_line_and_removes_bcc(self):
        given = (b"To: Bob <bob@test.example>\nCc: carol\nBcc: dave@test.example\n"
                 b"Subject: t\n\nbody\n")
        self.deliver(["-t", "alice"], given)
        for user in ("alice", "bob", "carol", "dave"):
            with self.subTest(user=user):
                raw, _ = self.only(user)
                head, body = split_message(raw)
                self.assertNotIn("bcc", field_names(head))
                self.assertNotIn(b"dave", head.split(b"\tid ", 1)[1])
                self.assertEqual(value_of(head, "To"), [b"Bob <bob@test.example>"])
                self.assertEqual(value_of(head, "Cc"), [b"carol"])
                self.assertEqual(body, b"body\n")

    def test_a_folded_bcc_is_removed_with_its_continuation_lines(self):
        given = b"To: bob\nBcc: carol,\n  dave\nSubject: folded\n\nbody\n"
        self.deliver(["-t"], given)
        for user in ("bob", "carol", "dave"):
            with self.subTest(user=user):
                _, rest = self.strip_trace(self.only(user)[0], user)
                self.assertTrue(rest.startswith(b"To: bob\nSubject: folded\n"), rest[:100])

    def test_a_recipient_named_twice_gets_one_copy(self):
        self.deliver(["-t", "bob", "bob@test.example"], b"To: bob@test.example, Bob <bob>\nCc: bob\n\nb\n")
        self.only("bob")

    def test_dash_t_with_resent_fields_uses_only_the_resent_set(self):
        given = (b"To: bob\nCc: alice\nSubject: original\n"
                 b"Resent-From: carol@test.example\nResent-To: carol\nResent-Bcc: dave\n\nbody\n")
        self.deliver(["-t"], given)
        self.assertEqual(self.stored("bob"), [], "To: is not a recipient when Resent- fields exist")
        self.assertEqual(self.stored("alice"), [])
        for user in ("carol", "dave"):
            with self.subTest(user=user):
                head = split_message(self.only(user)[0])[0]
                self.assertNotIn("resent-bcc", field_names(head))
                self.assertEqual(value_of(head, "To"), [b"bob"])
                self.assertEqual(value_of(head, "Resent-To"), [b"carol"])

    def test_without_dash_t_the_headers_are_not_recipients_and_bcc_stays(self):
        self.deliver(["bob"], b"To: carol\nBcc: dave\n\nbody\n")
        head = split_message(self.only("bob")[0])[0]
        self.assertEqual(value_of(head, "Bcc"), [b"dave"])
        self.assertEqual(self.stored("carol") + self.stored("dave"), [])


class Sender(SendmailCase):
    def assertSender(self, args, return_path, from_line):
        self.deliver(args + ["bob"], SIMPLE)
        raw, got_from = self.only("bob")
        self.assertTrue(raw.startswith(b"Return-Path: <" + return_path.encode() + b">\n"), raw[:60])
        self.assertTrue(got_from.startswith(from_line + " "), got_from)

    def test_dash_f_with_a_separate_value_sets_the_envelope_sender(self):
        self.assertSender(["-f", "alice@test.example"], "alice@test.example", "alice@test.example")

    def test_dash_f_with_an_attached_value_sets_the_envelope_sender(self):
        self.assertSender(["-falice@test.example"], "alice@test.example", "alice@test.example")

    def test_dash_r_sets_the_envelope_sender(self):
        self.assertSender(["-r", "alice@test.example"], "alice@test.example", "alice@test.example")

    def test_dash_f_in_angle_brackets(self):
        self.assertSender(["-f", "<alice@test.example>"], "alice@test.example", "alice@test.example")

    def test_dash_f_without_a_domain_gets_myhostname(self):
        self.assertSender(["-f", "alice"], "alice@test.example", "alice@test.example")

    def test_dash_f_angle_brackets_gives_the_null_sender(self):
        self.assertSender(["-f", "<>"], "", "MAILER-DAEMON")

    def test_dash_f_empty_gives_the_null_sender(self):
        self.assertSender(["-f", ""], "", "MAILER-DAEMON")

    def test_dash_f_attached_angle_brackets_gives_the_null_sender(self):
        self.assertSender(["-f<>"], "", "MAILER-DAEMON")

    def test_without_dash_f_the_sender_is_the_login_at_myhostname(self):
        self.assertSender([], "root@test.example", "root@test.example")


class OptionSyntax(SendmailCase):
    def test_an_address_after_double_dash_that_starts_with_a_dash_is_an_address(self):
        self.deliver(["-f", "alice@test.example", "--", "-x@test.example", "bob"], SIMPLE)
        self.only("bob")
        # -x has no mailbox here: the bounce to alice names it as a recipient.
        bounce, _ = self.only("alice")
        self.assertIn(b"Final-Recipient: rfc822; -x@test.example", bounce)

    def test_the_first_operand_ends_the_options(self):
        # getopt as Postfix builds it: "bob -i" is two recipients, so -i is not set.
        self.deliver(["-f", "alice@test.example", "bob", "-i"], b"Subject: s\n\na\n.\nb\n")
        self.assertEqual(split_message(self.only("bob")[0])[1], b"a\n")
        self.assertIn(b"Final-Recipient: rfc822; -i@test.example", self.only("alice")[0])

    def test_clustered_flags(self):
        self.deliver(["-ti"], b"To: bob\n\na\n.\nb\n")
        self.assertEqual(split_message(self.only("bob")[0])[1], b"a\n.\nb\n")

    def test_compatibility_options_are_accepted_and_ignored(self):
        args = ["-B8BITMIME", "-B", "7BIT", "-oem", "-oee", "-om", "-ob", "-Ooption=x", "-U", "-G",
                "-L", "tag", "-N", "never", "-R", "hdrs", "-V", "envid", "-X", "/dev/null", "-h", "30",
                "-odq", "bob"]
        self.deliver(args, SIMPLE)
        self.only("bob")


class RealCallers(SendmailCase):
    def test_cron_command_line(self):
        given = b"To: bob\nSubject: Cron <root@test> ls\n\nfile1\n.\nfile2\n"
        self.submit(["-FCronDaemon", "-i", "-odi", "-oem", "-oi", "-t", "-f", "root"], given)
        raw, from_line = self.only("bob")  # -odi: there before sendmail returned
        self.assertEqual(self.box.queued(), [])
        head, body = split_message(raw)
        self.assertTrue(raw.startswith(b"Return-Path: <root@test.example>\n"), raw[:60])
        self.assertEqual(value_of(head, "From"), [b"CronDaemon <root@test.example>"])
        self.assertEqual(body, b"file1\n.\nfile2\n")

    def test_cron_with_dash_b8bitmime(self):
        given = "To: bob\nSubject: Cron ü\nContent-Type: text/plain; charset=UTF-8\n\nÜmlaut\n".encode()
        self.submit(["-FCronDaemon", "-B8BITMIME", "-i", "-odi", "-oem", "-oi", "-t", "-f", "root"], given)
        self.assertEqual(split_message(self.only("bob")[0])[1], "Ümlaut\n".encode())

    def test_mutt_command_line(self):
        given = b"From: Alice <alice@test.example>\nTo: bob@test.example\nSubject: mutt\n\na\n.\nb\n"
        self.submit(["-oem", "-oi", "-odq", "--", "bob@test.example"], given)
        self.run_queue()
        _, rest = self.strip_trace(self.only("bob")[0])
        head, body = split_message(rest)
        self.assertTrue(head.startswith(given.split(b"\n\n")[0] + b"\n"), head)
        self.assertEqual(body, b"a\n.\nb\n")

    def test_git_send_email_command_line(self):
        given = (b"From: Alice <alice@test.example>\nTo: bob@test.example\nCc: carol@test.example\n"
                 b"Subject: [PATCH] fix\nDate: Mon, 01 Jan 2024 12:00:00 +0000\n"
                 b"Message-ID: <patch.1@test.example>\n\n---\n.\n-- \n2.39.2\n\n")
        self.submit(["-odq", "-i", "-f", "alice@test.example", "bob@test.example", "carol@test.example"], given)
        self.run_queue()
        for user in ("bob", "carol"):
            raw, _ = self.only(user)
            self.assertTrue(raw.startswith(b"Return-Path: <alice@test.example>\n"))
            _, rest = self.strip_trace(raw, user)
            self.assertEqual(rest, given)

    def test_php_mail_command_line(self):
        given = b"To: bob@test.example\nSubject: php\nX-PHP-Originating-Script: 0:x.php\n\nhello\n"
        self.submit(["-odq", "-t", "-i", "-falice@test.example"], given)
        self.run_queue()
        raw, _ = self.only("bob")
        self.assertTrue(raw.startswith(b"Return-Path: <alice@test.example>\n"))
        self.assertEqual(split_message(raw)[1], b"hello\n")


class DeliveryModes(SendmailCase):
    def test_dash_odi_delivers_before_sendmail_exits(self):
        self.submit(["-odi", "bob"], SIMPLE)
        self.only("bob")
        self.assertEqual(self.box.queued(), [])

    def test_dash_odq_only_queues(self):
        self.submit(["-odq", "bob"], SIMPLE)
        time.sleep(0.5)
        self.assertEqual(len(self.box.queued()), 1)
        self.assertEqual(self.stored("bob"), [])
        self.run_queue()
        self.only("bob")

    def test_the_default_without_a_daemon_delivers_in_the_background_soon(self):
        self.submit(["bob"], SIMPLE)
        self.wait_for(lambda: len(self.stored("bob")) == 1, 10, "background delivery")
        self.wait_for(lambda: self.box.queued() == [], 10, "the entry's removal")

    def test_dash_odb_without_a_daemon_delivers_in_the_background_soon(self):
        self.submit(["-odb", "bob"], SIMPLE)
        self.wait_for(lambda: len(self.stored("bob")) == 1, 10, "background delivery")
        self.wait_for(lambda: self.box.queued() == [], 10, "the entry's removal")


class DaemonDelivery(SendmailCase):
    # A scan would come only after an hour: a delivery now is the submission's wake-up.
    config = {"queue_run_delay": "1h"}

    def start_daemon(self):
        daemon = self.box.popen("mta", ["-d"])

        def stop():
            if daemon.poll() is None:
                daemon.send_signal(signal.SIGTERM)
            try:
                daemon.communicate(timeout=30)
            except subprocess.TimeoutExpired:
                daemon.kill()
                daemon.communicate()
        self.addCleanup(stop)
        self.wait_for(lambda: os.path.exists(self.box.log) and
                      any("daemon started" in line for line in self.log_lines()), 10, "mta -d start")
        return daemon

    def test_with_a_running_daemon_a_submission_is_delivered_at_once_not_at_the_next_scan(self):
        daemon = self.start_daemon()
        for user in ("bob", "carol"):
            self.submit([user], SIMPLE)
            returned = time.monotonic()
            # The next scan is an hour away (queue_run_delay): a delivery within the
            # generous 30 s can only come from the submission's wake-up through the
            # trigger. How fast it comes on a loaded host is not this test's business.
            self.wait_for(lambda: len(self.stored(user)) == 1, 30, f"delivery to {user} by mta -d")
            print(f"\ndelivery to {user} {time.monotonic() - returned:.2f} s after the submission")
        self.wait_for(lambda: self.box.queued() == [], 5, "the entries' removal")
        self.assertIsNone(daemon.poll(), "the daemon still runs")
        daemon.send_signal(signal.SIGTERM)
        self.assertEqual(daemon.wait(timeout=30), 0)


class OtherModes(SendmailCase):
    def test_dash_v_reports_the_delivery_steps_on_stderr(self):
        result = self.submit(["-v", "-odi", "bob"], SIMPLE)
        err = result.stderr.decode()
        queue_id = re.search(r"queued as (\w+)", err)
        self.assertIsNotNone(queue_id, err)
        self.assertRegex(err, rf"{queue_id.group(1)}: to=<bob@test\.example>.*status=sent")
        self.only("bob")

    def test_dash_v_with_dash_odq_reports_the_queue_id(self):
        result = self.submit(["-v", "-odq", "bob"], SIMPLE)
        self.assertIn(f"queued as {self.box.queued()[0]}", result.stderr.decode())

    def test_without_dash_v_sendmail_is_silent(self):
        result = self.submit(["-odi", "bob"], SIMPLE)
        self.assertEqual((result.stdout, result.stderr), (b"", b""))

    def test_dash_bp_lists_the_queue(self):
        if not os.path.exists(os.path.join(mrtest.BIN, "mailq")):
            self.skipTest("mailq is not built in this tree")
        self.submit(["-odq", "bob"], SIMPLE)
        result = self.submit(["-bp"], b"")
        self.assertIn(self.box.queued()[0].encode(), result.stdout)
        self.assertIn(b"bob@test.example", result.stdout)

    def test_dash_bs_speaks_smtp_on_stdin_and_queues(self):
        dialogue = (b"EHLO client.example\r\nMAIL FROM:<alice@test.example>\r\nRCPT TO:<bob>\r\n"
                    b"RCPT TO:<nosuchuser@test.example>\r\nDATA\r\nSubject: by -bs\r\n\r\nhello\r\n.\r\nQUIT\r\n")
        result = self.box.sendmail(["-bs"], dialogue)
        self.assertExit(result, 0)
        replies = result.stdout.decode().split("\r\n")
        self.assertTrue(replies[0].startswith("220 test.example ESMTP"), replies)
        self.assertTrue(any(r.startswith("550 5.1.1 <nosuchuser@test.example>") for r in replies), replies)
        queued = [r for r in replies if r.startswith("250 2.0.0 Ok: queued as ")]
        self.assertEqual(len(queued), 1, replies)
        self.assertIn("221 2.0.0", replies[-2])
        self.assertEqual(self.box.queued(), [queued[0].rsplit(" ", 1)[1]])

    def test_dash_q_runs_the_queue(self):
        self.submit(["-odq", "bob"], SIMPLE)
        self.submit(["-odq", "carol"], SIMPLE)
        self.submit(["-q"], b"")
        self.only("bob")
        self.only("carol")
        self.assertEqual(self.box.queued(), [])


if __name__ == "__main__":
    mrtest.main()
