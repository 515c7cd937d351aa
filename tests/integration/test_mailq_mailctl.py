"""mailq and mailctl against a real spool (SPEC section 1, docs/mailq.md).

Messages are queued with `sendmail -odq`, deferred with `mta -q` (a remote
recipient, for a relayhost on a loopback port where nothing listens), and the listing is read back
column by column as Postfix's mailq lays it out, and as JSON by Python's json.
"""
import json
import os
import re
import signal
import stat
import subprocess
import time

import mrtest

HEADING = "-Queue ID-  --Size-- ----Arrival Time---- -Sender/Recipient-------"
# The relayhost every test here has: a loopback port where nothing listens.
RELAYHOST = "[127.0.0.1]:1"
REMOTE_REASON = "connect to 127.0.0.1[127.0.0.1]:1: Connection refused"
# What mailctl trace says of a remote address (the route, not the attempt).
TRACE_REMOTE = f"-> remote: SMTP to the relayhost {RELAYHOST}"


def postfix_sender_line(id_mark, size, arrival, sender):
    """The sender line as SPEC's example lays it out: Postfix's printf with the size
    in the 8 columns of "--Size--", the arrival cut from asctime() as %20.20s does."""
    return "%-11s %8d %20.20s %s" % (id_mark, size, time.asctime(time.localtime(arrival)) + "\n", sender)


def queued_size(box, queue_id, folder="queue"):
    with open(os.path.join(box.spool, folder, queue_id), "rb") as f:
        return int(re.match(rb"mailroom-queue [12] message (\d{20})\n", f.read(46)).group(1))


def wait_until(predicate, timeout, what):
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        time.sleep(0.05)


class MailqMailctlTest(mrtest.TestCase):
    config = {"relayhost": RELAYHOST}

    def queue(self, *recipients, sender=None, subject="test"):
        args = ["-odq"] + (["-f", sender] if sender is not None else []) + list(recipients)
        before = set(self.box.queued())
        result = self.box.sendmail(args, mrtest.message(subject))
        self.assertExit(result, 0)
        (new_id,) = set(self.box.queued()) - before
        return new_id

    def mailq(self, *args):
        result = self.box.run("mailq", list(args))
        self.assertExit(result, 0)
        return result.stdout.decode()

    def mailctl(self, *args, code=0, stderr_re=None, **kwargs):
        result = self.box.run("mailctl", list(args), **kwargs)
        self.assertExit(result, code, stderr_re)
        return result

    def json_entries(self):
        return {obj["queue_id"]: obj for obj in map(json.loads, self.mailq("--json").splitlines())}

    def log_lines(self, role):
        if not os.path.exists(self.box.log):
            return []
        with open(self.box.log) as f:
            return [line.split(": ", 1)[1].rstrip("\n") for line in f if f"mailroom/{role}[" in line]

    # ---- mailq

    def test_empty_queue(self):
        self.assertEqual(self.mailq(), "Mail queue is empty\n")
        self.assertEqual(self.mailq("--json"), "")
        self.assertEqual(self.box.sendmail(["-bp"], "").stdout.decode(), "Mail queue is empty\n")

    def test_queued_messages_in_postfix_columns(self):
        first = self.queue("bob", "carol@test.example", sender="alice@test.example")
        second = self.queue("dave", sender="")
        lines = self.mailq().split("\n")
        entries = self.json_entries()
        self.assertEqual(lines[0], HEADING)
        self.assertEqual(lines[1], postfix_sender_line(first, queued_size(self.box, first),
                                                       entries[first]["arrival_time"], "alice@test.example"))
        # Recipients start in column 43, under -Sender/Recipient-.
        self.assertEqual(lines[2], " " * 42 + "bob@test.example")
        self.assertEqual(lines[3], " " * 42 + "carol@test.example")
        self.assertEqual(lines[4], "")
        # The null sender shows as Postfix shows it.
        self.assertEqual(lines[5], postfix_sender_line(second, queued_size(self.box, second),
                                                       entries[second]["arrival_time"], "MAILER-DAEMON"))
        self.assertEqual(lines[6], " " * 42 + "dave@test.example")
        total = queued_size(self.box, first) + queued_size(self.box, second)
        self.assertEqual(lines[7:], ["", f"-- {(total + 1023) // 1024} Kbytes in 2 Requests.", ""])
        self.assertLess(first, second)  # oldest first

    def test_deferred_reason_right_aligned_to_column_76(self):
        queue_id = self.queue("x@elsewhere.example", "alice")
        self.assertExit(self.box.mta(["-q"]), 0)
        self.assertEqual(self.box.queued(), [queue_id])
        lines = self.mailq().split("\n")
        # alice was delivered: only the deferred recipient is left, under its reason.
        self.assertEqual(lines[2], " " * (76 - len(REMOTE_REASON)) + f"({REMOTE_REASON})")
        self.assertEqual(len(lines[2]), 78)
        self.assertEqual(lines[3], " " * 42 + "x@elsewhere.example")
        self.assertEqual(lines[4:], ["", "-- 1 Kbytes in 1 Request.", ""])

    def test_held_message_marked_with_bang(self):
        held = self.queue("bob")
        other = self.queue("carol")
        self.mailctl("hold", held)
        lines = self.mailq().splitlines()
        self.assertTrue(lines[1].startswith(held + "! "), lines[1])
        self.assertTrue(lines[4].startswith(other + " "), lines[4])

    def test_json_lines(self):
        deferred = self.queue("x@elsewhere.example", "bob", sender="alice@test.example")
        self.assertExit(self.box.mta(["-q"]), 0)
        held = self.queue("carol")
        self.mailctl("hold", held)
        fresh = self.queue("dave")
        entries = self.json_entries()
        self.assertEqual(set(entries), {deferred, held, fresh})
        d = entries[deferred]
        self.assertEqual((d["queue_name"], d["sender"], d["held"], d["attempts"]),
                         ("deferred", "alice@test.example", False, 1))
        self.assertEqual(d["message_size"], queued_size(self.box, deferred))
        self.assertIsInstance(d["arrival_time"], int)
        self.assertGreater(d["next_try"], time.time())
        by_address = {r["address"]: r for r in d["recipients"]}
        remote = by_address["x@elsewhere.example"]
        self.assertEqual((remote["status"], remote["reason"], remote["delay_reason"], remote["attempts"]),
                         ("deferred", REMOTE_REASON, REMOTE_REASON, 1))
        self.assertEqual(remote["next_try"], d["next_try"])
        self.assertEqual(by_address["bob@test.example"]["status"], "delivered")
        self.assertEqual((entries[held]["queue_name"], entries[held]["held"]), ("hold", True))
        self.assertEqual(entries[fresh]["queue_name"], "incoming")
        self.assertEqual(entries[fresh]["recipients"][0]["status"], "pending")
        self.assertIsNone(entries[fresh]["next_try"])

    def test_corrupt_entry_listed_and_quarantine_noted(self):
        good = self.queue("bob")
        bad = self.queue("carol")
        with open(os.path.join(self.box.spool, "queue", bad), "r+b") as f:
            f.write(b"garbage!")
        quarantined = self.queue("dave")
        os.rename(os.path.join(self.box.spool, "queue", quarantined),
                  os.path.join(self.box.spool, "quarantine", quarantined))
        result = self.box.run("mailq", [])
        self.assertExit(result, 0)
        out = result.stdout.decode()
        self.assertIn(good + " ", out)
        self.assertRegex(out, re.escape(bad) + r" +\(unreadable: not a mailroom queue entry\)")
        self.assertNotIn(quarantined, out)
        self.assertIn("2 Requests.", out)
        self.assertEqual(result.stderr.decode(), "mailq: warning: 1 entry in quarantine\n")

    # ---- mailctl hold / release / delete / requeue

    def test_hold_and_release(self):
        queue_id = self.queue("bob")
        result = self.mailctl("hold", queue_id)
        self.assertEqual(result.stderr.decode(), "mailctl: Placed on hold: 1 message\n")
        self.assertEqual(self.box.queued("hold"), [queue_id])
        self.assertExit(self.box.mta(["-q"]), 0)  # a held message is not delivered
        self.assertFalse(os.path.exists(self.box.mbox_path("bob")))
        self.mailctl("release", queue_id, stderr_re="Released from hold: 1 message")
        self.assertEqual(self.box.queued(), [queue_id])
        self.assertEqual(self.log_lines("postsuper"), [f"{queue_id}: placed on hold", f"{queue_id}: released from hold"])
        self.assertExit(self.box.mta(["-q"]), 0)
        self.assertEqual(len(self.box.mbox("bob")), 1)

    def test_delete(self):
        queue_id = self.queue("bob")
        self.mailctl("delete", queue_id, stderr_re="Deleted: 1 message")
        self.assertEqual(self.box.queued(), [])
        self.assertEqual(self.log_lines("postsuper"), [f"{queue_id}: removed"])
        self.assertEqual(self.mailq(), "Mail queue is empty\n")

    def test_requeue_makes_a_deferred_message_due_now(self):
        queue_id = self.queue("x@elsewhere.example")
        self.assertExit(self.box.mta(["-q"]), 0)
        path = os.path.join(self.box.spool, "queue", queue_id)
        self.assertGreater(os.stat(path).st_mtime, time.time() + 60)  # due after the backoff
        self.mailctl("requeue", queue_id, stderr_re="Requeued: 1 message")
        self.assertLessEqual(os.stat(path).st_mtime, time.time())
        self.assertLessEqual(self.json_entries()[queue_id]["next_try"], time.time())
        self.assertEqual(self.log_lines("postsuper"), [f"{queue_id}: requeued"])

    def test_unknown_id_is_an_error_and_the_others_are_done(self):
        known = self.queue("bob")
        result = self.mailctl("hold", "0000000000AAAAA", known, code=67)
        self.assertEqual(result.stderr.decode(),
                         "mailctl: error: 0000000000AAAAA: no such message in the queue\n"
                         "mailctl: Placed on hold: 1 message\n")
        self.assertEqual(self.box.queued("hold"), [known])
        self.mailctl("delete", "../../etc/passwd", code=64, stderr_re="is not a queue ID")

    def test_all(self):
        ids = [self.queue("bob"), self.queue("carol"), self.queue("dave")]
        self.mailctl("hold", "ALL", stderr_re="Placed on hold: 3 messages")
        self.assertEqual(self.box.queued("hold"), ids)
        self.assertEqual(self.box.queued(), [])
        self.mailctl("release", "ALL", stderr_re="Released from hold: 3 messages")
        self.assertEqual(self.box.queued(), ids)
        self.mailctl("requeue", "ALL", stderr_re="Requeued: 3 messages")
        self.mailctl("delete", "ALL", stderr_re="Deleted: 3 messages")
        self.assertEqual(self.mailq(), "Mail queue is empty\n")

    def test_ids_from_standard_input_as_mailq_prints_them(self):
        ids = [self.queue("bob"), self.queue("carol")]
        self.mailctl("hold", ids[0])
        listed = "\n".join(line.split()[0] for line in self.mailq().splitlines()[1:] if line[:1].isalnum())
        result = self.box.run("mailctl", ["delete", "-"], listed + "\n")
        self.assertExit(result, 0, "Deleted: 2 messages")
        self.assertEqual(self.box.queued() + self.box.queued("hold"), [])

    @mrtest.unittest.skipUnless(mrtest.IS_ROOT, "needs root to run as another user")
    def test_changes_refused_to_other_users(self):
        queue_id = self.queue("bob")
        env = self.box.env()
        result = subprocess.run([os.path.join(mrtest.BIN, "mailctl"), "hold", queue_id], capture_output=True,
                                env=env, user=self.box.uids["alice"], group=self.box.uids["alice"])
        self.assertExit(result, 77, r"mailctl: error: hold: only root or the spool owner \(uid 0\) may change")
        self.assertEqual(self.box.queued(), [queue_id])

    # ---- mailctl flush

    def test_flush_without_daemon_runs_the_queue(self):
        self.queue("bob")
        self.mailctl("flush", stderr_re="no daemon runs: ran the queue once")
        self.assertEqual(self.box.queued(), [])
        self.assertEqual(len(self.box.mbox("bob")), 1)

    def test_flush_wakes_the_daemon(self):
        daemon = self.box.popen("mta", ["-d"], start_new_session=True)
        self.addCleanup(self.stop, daemon)
        trigger = os.path.join(self.box.spool, "trigger")

        def daemon_listens():
            try:
                os.close(os.open(trigger, os.O_WRONLY | os.O_NONBLOCK))
                return True
            except OSError:
                return False
        wait_until(daemon_listens, 10, "mta -d to read the trigger")
        # Queued while the daemon runs and not announced (-odq): only a scan finds it.
        self.queue("carol")
        result = self.mailctl("flush")
        self.assertEqual(result.stderr.decode(), "")
        wait_until(lambda: not self.box.queued(), 20, "the daemon to deliver after the flush")
        self.assertEqual(len(self.box.mbox("carol")), 1)

    @staticmethod
    def stop(proc):
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(30)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()
        proc.stdout.close()
        proc.stderr.close()

    # ---- mailctl check

    def use_aliases(self, path):
        with open(self.box.conf, "a") as f:
            f.write(f"aliases = {path}\n")

    def test_check_sound_spool(self):
        self.use_aliases(os.path.join(self.box.dir, "aliases"))
        self.queue("bob")
        os.chmod(self.box.mail, 0o2775)  # the sandbox's 1777 would be warned about
        result = self.mailctl("check")
        self.assertEqual(result.stderr.decode(), "")

    def test_check_warns_about_a_world_writable_mail_folder(self):
        self.use_aliases(os.path.join(self.box.dir, "aliases"))
        self.queue("bob")
        # The sandbox's folder is 1777, like many a /var/mail: a warning, exit 0.
        result = self.mailctl("check")
        self.assertRegex(result.stderr.decode(),
                         rf"mailctl: warning: mail_spool_dir {re.escape(self.box.mail)} is world-writable "
                         r"\(mode 1777\): .*Debian uses root:mail 2775")
        os.chmod(self.box.mail, 0o777)
        result = self.mailctl("check")
        self.assertRegex(result.stderr.decode(), r"mode 0777\): .*without the sticky bit")

    def test_check_warns_about_a_world_writable_home_folder_holding_an_mbox(self):
        conf = self.box.write("home.conf", open(self.box.conf).read() + "home_mailbox = Mailbox\n")
        self.queue("bob")
        result = self.box.run("mailctl", ["-C", conf, "check"])
        self.assertNotRegex(result.stderr.decode(), r"world-writable", "the homes are 0755 and the 1777 "
                            "mail_spool_dir holds no mbox with home_mailbox set")
        bob_home = os.path.join(self.box.home, "bob")
        os.chmod(bob_home, 0o1777)
        result = self.box.run("mailctl", ["-C", conf, "check"])
        self.assertRegex(result.stderr.decode(), rf"mailctl: warning: the folder {re.escape(bob_home)} of bob's "
                         r"mailbox is world-writable \(mode 1777\)")

    def test_check_fails_on_a_wrongly_moded_folder(self):
        self.use_aliases(os.path.join(self.box.dir, "aliases"))
        self.queue("bob")
        os.chmod(os.path.join(self.box.spool, "hold"), 0o755)
        self.mailctl("check", code=77, stderr_re=r"mailctl: error: .*/hold has mode 0755, not 0700")
        os.rmdir(os.path.join(self.box.spool, "hold"))
        self.mailctl("check", code=73, stderr_re=r"mailctl: error: .*/hold is missing")

    def test_check_reports_a_stale_aliases_database(self):
        aliases = self.box.write("aliases", "postmaster: root\n")
        self.use_aliases(aliases)
        self.queue("bob")
        self.mailctl("check", stderr_re="mailctl: warning: aliases database .*aliases.cdb is missing")
        self.box.write("aliases.cdb", "old")
        old = time.time() - 600
        os.utime(aliases + ".cdb", (old, old))
        self.mailctl("check", code=78, stderr_re=r"aliases.cdb is older than .*aliases: run newaliases")

    def test_check_bad_configuration(self):
        self.box.write("mailroom.conf", "no_such_key = 1\n", mode="a")
        self.mailctl("check", code=78, stderr_re=r"^mailctl: error: .*no_such_key")

    # ---- mailctl trace / sendmail -bv

    def test_trace_and_sendmail_bv(self):
        result = self.mailctl("trace", "alice", "nosuch@test.example", code=67)
        self.assertEqual(result.stdout.decode().splitlines(), [
            "alice",
            "  local address alice@test.example: user alice",
            f"    -> mailbox {self.box.mbox_path('alice')} (mbox), written as alice (uid {self.box.uids['alice']})",
            "nosuch@test.example",
            "  local address nosuch@test.example: user nosuch",
            '    -> bounced: unknown user: "nosuch" (5.1.1)',
        ])
        verify = self.box.sendmail(["-bv", "bob+lists@test.example"], "")
        self.assertExit(verify, 0)
        self.assertIn(f"-> mailbox {self.box.mbox_path('bob')} (mbox)", verify.stdout.decode())
        remote = self.mailctl("trace", "x@elsewhere.example", code=0)
        self.assertIn(TRACE_REMOTE, remote.stdout.decode())
        self.mailctl("trace", "a b@", code=65)
        self.assertEqual(self.box.queued(), [])


if __name__ == "__main__":
    mrtest.main()
