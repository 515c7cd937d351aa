#!/usr/bin/env python3
"""Crash safety of the SMTP listener (SPEC 7: "250 only once queued on stable
storage"): four clients send messages over SMTP while the listener's sessions
process is SIGKILLed at random moments (the daemon starts it again), and then the
whole `mta -d` with everything under it (started again by the test). Every
message the listener answered 250 must be delivered; one that got no 250 may be
delivered or not (the window between the queue commit and the reply) — the test
prints how many were. Every mailbox reads back whole. A duplicate comes only from a kill of the whole daemon, whose delivery
workers may have written a mailbox and not yet recorded it (docs/spool.md
"Recording": at most one batch of 8 a worker): a kill of the sessions process
never makes one. The same again into a Maildir (CrashMaildir)."""
import os
import random
import signal
import smtplib
import socket
import threading
import time

import mrtest
import queuetest
import smtptest
from test_smtpd import listener_processes

CLIENTS = 4
MESSAGES_EACH = 150
SESSION_KILLS = 8
DAEMON_KILLS = 3


def message_of(seq):
    body = "".join(f"line {n} of message {seq}\r\n" for n in range(30))
    return f"From: a@example.org\r\nTo: bob@test.example\r\nSubject: m{seq}\r\nX-Seq: {seq}\r\n\r\n{body}"


class Crash(smtptest.SmtpCase):
    config = {"queue_run_delay": "1s", "smtpd_timeout": "20s", "delivery_workers": "2"}
    box_options = {"submission": False, "smtps": False}

    def setUp(self):
        if not mrtest.IS_ROOT:
            self.skipTest("needs root: the listener's process split")
        super().setUp()
        queuetest.become_subreaper()

    def client(self, index, acked, unacked, stop):
        for n in range(MESSAGES_EACH):
            seq = index * 100000 + n
            while not stop.is_set():
                try:
                    with smtplib.SMTP("127.0.0.1", self.box.smtp_port, local_hostname="c.example", timeout=20) as s:
                        s.sendmail("a@example.org", ["bob@test.example"], message_of(seq))
                    acked.append(seq)
                    break
                except (smtplib.SMTPException, OSError):
                    # No 250 for it: it may still have been queued. A fresh number
                    # for the next try, so a duplicate is never hidden.
                    unacked.append(seq)
                    seq += 50000
                    time.sleep(0.05)

    def delivered(self, user):
        return list(self.box.mbox(user))

    def restart_daemon(self):
        deadline = time.time() + 60
        while time.time() < deadline:
            self.box.daemon = self.box.popen("mta", ["-d"])
            try:
                smtptest.wait_port(self.box.smtp_port, timeout=5)
                if self.box.daemon.poll() is None:
                    return
            except AssertionError:
                pass
            self.box.daemon.kill()
            self.box.daemon.communicate()
            time.sleep(0.5)  # the old sessions process still finishing: the port is busy
        self.fail("mta -d did not start again")

    def test_every_acknowledged_message_arrives_once(self):
        seed = int(os.environ.get("MAILROOM_SEED", time.time_ns() % 1_000_000))
        rng = random.Random(seed)
        print(f"\nseed {seed} (MAILROOM_SEED={seed} repeats this run)")
        acked, unacked = [], []
        stop = threading.Event()
        threads = [threading.Thread(target=self.client, args=(i, acked, unacked, stop)) for i in range(CLIENTS)]
        for t in threads:
            t.start()
        kills = [("sessions", i) for i in range(SESSION_KILLS)] + [("daemon", i) for i in range(DAEMON_KILLS)]
        rng.shuffle(kills)
        try:
            for kind, _ in kills:
                time.sleep(rng.uniform(0.2, 1.2))
                if kind == "sessions":
                    try:
                        _, sessions = listener_processes(self.box.daemon.pid, timeout=10)
                        os.kill(sessions, signal.SIGKILL)
                    except (AssertionError, ProcessLookupError):
                        pass
                else:
                    self.box.daemon.kill()
                    self.box.daemon.communicate()
                    self.restart_daemon()
            for t in threads:
                t.join(600)
        finally:
            stop.set()
        self.assertEqual(len(acked), CLIENTS * MESSAGES_EACH)
        # As test_queue_crash ends: the daemon stopped, a clean `mta -q` (due or not:
        # a delivery cut by a kill may have left a dotlock that deferred it).
        self.box.stop()
        for _ in range(3):
            if not self.box.queued():
                break
            self.box.mta(["-q"], timeout=300)
        self.assertEqual(self.box.queued(), [])
        seen = {}
        for msg in self.delivered("bob"):
            seq = int(msg["X-Seq"])
            self.assertEqual(msg.get_payload().count("line "), 30, f"message {seq} not whole")
            seen[seq] = seen.get(seq, 0) + 1
        missing = sorted(set(acked) - set(seen))
        duplicates = {seq: n for seq, n in seen.items() if n > 1}
        unacked_delivered = sorted(set(unacked) & set(seen))
        print(f"{len(acked)} acknowledged, all {'delivered' if not missing else 'NOT delivered'}; "
              f"{len(unacked)} tries without a 250, {len(unacked_delivered)} of them delivered anyway; "
              f"{len(duplicates)} duplicates")
        self.assertEqual(missing, [], "acknowledged but not delivered")
        self.assertLessEqual(sum(n - 1 for n in duplicates.values()), DAEMON_KILLS * 2 * 8)
        self.assertLessEqual(set(seen), set(acked) | set(unacked))


class CrashMaildir(Crash):
    """The same into a Maildir: the user's delivery agent makes the writes waiting on
    it durable together (delivery/maildir_batch.hpp), and the whole-daemon kills land
    in its batches as well as in the queue's commits."""
    config = {**Crash.config, "mailbox_format": "maildir"}

    def delivered(self, user):
        box = self.box.maildir(self.box.mbox_path(user))
        return [box.get_message(key) for key in box.keys()]


if __name__ == "__main__":
    mrtest.main()
