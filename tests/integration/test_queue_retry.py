#!/usr/bin/env python3
"""The queue runner's retry and bounce rules (SPEC sections 3, 4, 8): a deferred
recipient keeps its reason and is delivered once the cause is fixed; past
maximal_queue_lifetime it bounces with one RFC 3464 report; notices about a
null-sender message go to postmaster and never loop; an unknown user bounces
5.1.1; one delay notice; the daemon honours minimal_backoff_time."""
import email
import email.policy
import os
import time
import unittest

import mrtest
import queuetest
from mrtest import message


def parse(msg):
    """A mailbox message as an email.message.EmailMessage (the modern parser)."""
    return email.message_from_bytes(msg.as_bytes(), policy=email.policy.default)


class QueueCase(mrtest.TestCase):
    def submit(self, args, msg=None, code=0):
        r = self.box.sendmail(["-odq"] + args, msg if msg is not None else message())
        self.assertExit(r, code)
        return r

    def run_queue(self):
        r = self.box.mta(["-q"])
        self.assertExit(r, 0)
        return r

    def only_entry(self):
        queued = self.box.queued()
        self.assertEqual(len(queued), 1, queued)
        return queued[0]

    def notices(self, user):
        return [parse(m) for m in queuetest.read_mbox(self.box, user)]

    def assertReport(self, notice, action, status_prefix, recipient, original_subject):
        """notice is an RFC 3464 report about `recipient` with this action and status."""
        self.assertEqual(notice.get_content_type(), "multipart/report")
        self.assertEqual(notice.get_param("report-type"), "delivery-status")
        self.assertIn("MAILER-DAEMON@test.example", notice["From"])
        self.assertEqual(notice["Return-Path"].strip(), "<>")
        parts = list(notice.iter_parts())
        self.assertGreaterEqual(len(parts), 3, [p.get_content_type() for p in parts])
        self.assertEqual(parts[0].get_content_type(), "text/plain")
        self.assertEqual(parts[1].get_content_type(), "message/delivery-status")
        self.assertIn(parts[2].get_content_type(), ("text/rfc822-headers", "message/rfc822"))
        # message/delivery-status: the per-message block, then one per recipient.
        blocks = parts[1].get_payload()
        self.assertGreaterEqual(len(blocks), 2)
        self.assertIn("test.example", blocks[0]["Reporting-MTA"])
        per_recipient = blocks[1]
        self.assertEqual(per_recipient["Final-Recipient"].split(";")[1].strip().lower(), recipient)
        self.assertEqual(per_recipient["Action"].strip(), action)
        self.assertRegex(per_recipient["Status"].strip(), r"^" + status_prefix.replace(".", r"\."))
        original = parts[2].get_payload(decode=True) if parts[2].get_content_type() == "text/rfc822-headers" \
            else parts[2].get_payload()[0].as_bytes()
        self.assertIn(f"Subject: {original_subject}".encode(), original)
        return per_recipient


class MailboxRetry(QueueCase):
    config = {"minimal_backoff_time": "2s"}

    def break_and_fix(self, make_unwritable, fix, reason_re):
        self.submit(["-f", "alice", "bob"], message("retry me", extra_headers="X-Seq: r1\n"))
        make_unwritable()
        self.run_queue()
        queue_id = self.only_entry()
        phase, code, text, _ = queuetest.entry(self.box, queue_id).state(0)
        self.assertEqual(phase, "deferred")
        self.assertRegex(code, r"^4\.")
        self.assertRegex(text, reason_re)
        mailq = os.path.join(mrtest.BIN, "mailq")
        if os.path.exists(mailq):
            listing = self.box.run("mailq", []).stdout.decode()
            self.assertIn(queue_id, listing)
            self.assertRegex(listing, r"\(" + reason_re)
        deferrals = [l for l in queuetest.log_lines(self.box) if "status=deferred" in l and "to=<bob@" in l]
        self.assertEqual(len(deferrals), 1, deferrals)
        self.assertRegex(deferrals[0], r"dsn=4\.\d+\.\d+, status=deferred \(" + reason_re)

        fix()
        self.run_queue()
        self.assertEqual(self.box.queued(), [])
        self.run_queue()  # nothing left to deliver twice
        self.assertEqual(queuetest.count_header(self.box, ["bob"]), {"r1": 1})
        # "-f alice" is alice@myhostname, as with Postfix's append_at_myorigin.
        self.assertEqual(queuetest.read_mbox(self.box, "bob")[0]["Return-Path"], "<alice@test.example>")

    def test_a_mailbox_that_is_a_folder_is_deferred_then_delivered_once_fixed(self):
        path = self.box.mbox_path("bob")
        self.break_and_fix(lambda: os.mkdir(path), lambda: os.rmdir(path), r"mailbox \S+/bob is not a regular file")

    def test_a_mailbox_of_mode_0_is_deferred_then_delivered_once_fixed(self):
        path = self.box.mbox_path("bob")

        def unwritable():
            with open(path, "w"):
                pass
            os.chown(path, self.box.uids["bob"], -1)
            os.chmod(path, 0)
        self.break_and_fix(unwritable, lambda: os.chmod(path, 0o600), r"cannot open mailbox \S+/bob: Permission denied")

    @unittest.skipUnless(mrtest.IS_ROOT, "needs root to give the mailbox to another user")
    def test_a_mailbox_owned_by_another_user_is_deferred_then_delivered_once_fixed(self):
        path = self.box.mbox_path("bob")

        def unwritable():
            with open(path, "w"):
                pass
            os.chmod(path, 0o666)  # only the ownership check can refuse it
            os.chown(path, self.box.uids["carol"], -1)
        self.break_and_fix(unwritable, lambda: os.chown(path, self.box.uids["bob"], -1), r"mailbox \S+/bob")

    def test_unknown_user_bounces_5_1_1_to_the_sender_and_the_rest_is_delivered(self):
        self.submit(["-f", "alice", "bob", "nosuchuser"], message("to two", extra_headers="X-Seq: u1\n"))
        self.run_queue()
        self.assertEqual(self.box.queued(), [])
        self.assertEqual(queuetest.count_header(self.box, ["bob"]), {"u1": 1})
        notices = self.notices("alice")
        self.assertEqual(len(notices), 1)
        block = self.assertReport(notices[0], "failed", "5.1.1", "nosuchuser@test.example", "to two")
        self.assertIn("nosuchuser", block.get("Diagnostic-Code", "") + notices[0].as_string())
        # Only the failed recipient is reported.
        self.assertNotIn("Final-Recipient: rfc822; bob@", notices[0].as_string())
        self.run_queue()
        self.assertEqual(len(self.notices("alice")), 1)

    def test_a_bounce_to_the_null_sender_goes_to_postmaster(self):
        self.submit(["-f", "<>", "nosuchuser"], message("from nobody"))
        self.run_queue()
        self.assertEqual(self.box.queued(), [])
        notices = self.notices("postmaster")
        self.assertEqual(len(notices), 1)
        self.assertReport(notices[0], "failed", "5.1.1", "nosuchuser@test.example", "from nobody")
        self.run_queue()
        self.assertEqual(len(self.notices("postmaster")), 1)
        bounces = [l for l in queuetest.log_lines(self.box) if "mailroom/bounce[" in l]
        self.assertEqual(len(bounces), 1, bounces)
        self.assertRegex(bounces[0], r": [0-9A-Za-z]{10,20}: postmaster non-delivery notification: [0-9A-Za-z]{10,20}$")

    def test_a_notice_postmaster_cannot_get_is_logged_and_dropped(self):
        # No postmaster alias and no postmaster or root account (postmaster falls
        # back to root): the notice about a null-sender message fails in turn.
        with open(self.box.passwd) as f:
            lines = [l for l in f if not l.startswith(("postmaster:", "root:"))]
        with open(self.box.passwd, "w") as f:
            f.writelines(lines)
        self.submit(["-f", "<>", "nosuchuser"], message("from nobody"))
        self.run_queue()
        self.assertEqual(self.box.queued(), [])
        log = queuetest.log_lines(self.box)
        self.assertEqual(len([l for l in log if "non-delivery notification dropped" in l]), 1, log)
        self.assertEqual(len([l for l in log if "(queue active)" in l]), 2, log)  # the message and one notice
        self.run_queue()
        self.assertEqual(len(queuetest.log_lines(self.box)), len(log))

    def test_a_bounce_to_an_unknown_sender_goes_to_postmaster_and_stops(self):
        self.submit(["-f", "ghost@test.example", "nosuchuser"], message("from a ghost"))
        self.run_queue()
        self.assertEqual(self.box.queued(), [])
        notices = self.notices("postmaster")
        self.assertEqual(len(notices), 1)
        self.assertReport(notices[0], "failed", "5.1.1", "ghost@test.example",
                           "Undelivered Mail Returned to Sender")


class Expiry(QueueCase):
    config = {"maximal_queue_lifetime": "2s"}

    def test_a_recipient_past_maximal_queue_lifetime_gets_one_rfc3464_bounce(self):
        self.submit(["-f", "alice", "x@elsewhere.example"], message("too late", extra_headers="X-Seq: e1\n"))
        queue_id = self.only_entry()
        arrival = queuetest.entry(self.box, queue_id).arrival
        self.run_queue()
        time.sleep(max(0, arrival + 2.2 - time.time()))
        self.run_queue()
        self.assertEqual(self.box.queued(), [])
        self.run_queue()
        notices = self.notices("alice")
        self.assertEqual(len(notices), 1)
        notice = notices[0]
        self.assertReport(notice, "failed", "5.4.7", "x@elsewhere.example", "too late")
        self.assertIn("X-Seq: e1", notice.as_string())
        log = queuetest.log_lines(self.box)
        self.assertTrue(any(f"{queue_id}: from=<alice" in l and "status=expired, returned to sender" in l
                            for l in log), log)
        self.assertEqual(len([l for l in log if f"{queue_id}: sender non-delivery notification:" in l]), 1)


class DelayNotice(QueueCase):
    config = {"delay_warning_time": "1s"}

    def test_one_delay_notice_after_delay_warning_time_across_several_runs(self):
        self.submit(["-f", "alice", "x@elsewhere.example"], message("slow one"))
        queue_id = self.only_entry()
        time.sleep(1.2)
        for _ in range(3):
            self.run_queue()
        self.assertEqual(self.box.queued(), [queue_id])  # still waiting for the remote recipient
        notices = self.notices("alice")
        self.assertEqual(len(notices), 1)
        self.assertReport(notices[0], "delayed", "4.", "x@elsewhere.example", "slow one")
        self.assertEqual(len(queuetest.entry(self.box, queue_id).kinds("warned")), 1)
        delays = [l for l in queuetest.log_lines(self.box) if "sender delay notification" in l]
        self.assertEqual(len(delays), 1, delays)

    def test_no_delay_notice_for_the_null_sender(self):
        self.submit(["-f", "<>", "x@elsewhere.example"], message("slow bounce"))
        time.sleep(1.2)
        self.run_queue()
        self.assertEqual(self.notices("postmaster"), [])
        self.assertEqual(self.notices("alice"), [])


class DaemonBackoff(QueueCase):
    config = {"minimal_backoff_time": "2s", "maximal_backoff_time": "1h", "queue_run_delay": "1s"}

    def test_a_deferred_entry_is_not_retried_before_minimal_backoff_time_and_is_after(self):
        path = self.box.mbox_path("bob")
        os.mkdir(path)
        daemon = queuetest.start(self.box, "mta", ["-d"])
        self.addCleanup(queuetest.reap, daemon)
        self.submit(["-f", "alice", "bob"], message("back off", extra_headers="X-Seq: b1\n"))
        queue_id = self.only_entry()

        def deferrals():
            return queuetest.entry(self.box, queue_id).kinds("deferred")
        first = queuetest.wait_until(lambda: deferrals(), 10, what="the first attempt")[0]
        time_1, next_1 = int(first[2]), int(first[3])
        self.assertEqual(next_1 - time_1, 2)  # minimal_backoff_time
        both = queuetest.wait_until(lambda: len(deferrals()) >= 2 and deferrals(), 10, what="the second attempt")
        time_2, next_2 = int(both[1][2]), int(both[1][3])
        self.assertGreaterEqual(time_2, next_1, "retried before its due time")
        self.assertEqual(next_2 - time_2, 4)  # the backoff doubles
        # Over the scans (every second) until it is due again, no further attempt.
        time.sleep(max(0, next_2 - 0.5 - time.time()))
        self.assertEqual(len(deferrals()), 2)
        os.rmdir(path)
        queuetest.wait_until(lambda: os.path.exists(path) and not self.box.queued(), 10, what="the delivery")
        self.assertGreaterEqual(time.time(), next_2)
        self.assertEqual(queuetest.count_header(self.box, ["bob"]), {"b1": 1})
        queuetest.stop_daemon(daemon)
        attempts = [l for l in queuetest.log_lines(self.box) if "to=<bob@" in l]
        self.assertEqual(len(attempts), 3, attempts)


if __name__ == "__main__":
    mrtest.main()
