#!/usr/bin/env python3
"""Several runners over one spool (SPEC section 1, mta): four `mta -q` and one
`mta -d` at once over 500 queued messages deliver each message to each of its
recipients exactly once — the per-message lock keeps every message with one
runner at a time, and a runner never redelivers what another recorded."""
import collections
import re
import time
from concurrent.futures import ThreadPoolExecutor

import mrtest
import queuetest
from mrtest import message

MESSAGES = 500
USERS = ["alice", "bob", "carol", "dave"]


def recipients_of(seq):
    first = USERS[seq % len(USERS)]
    if seq % 5 == 0:  # some messages go to two users: one entry, two deliveries
        return [first, USERS[(seq + 1) % len(USERS)]]
    return [first]


class Concurrency(mrtest.TestCase):
    config = {"queue_run_delay": "1s", "delivery_workers": "4"}

    def test_four_mta_q_and_mta_d_at_once_deliver_each_message_exactly_once(self):
        def submit(seq):
            msg = message(f"message {seq}", extra_headers=f"X-Seq: {seq}\n")
            return self.box.sendmail(["-odq", "-f", "postmaster"] + recipients_of(seq), msg).returncode

        with ThreadPoolExecutor(8) as pool:
            codes = list(pool.map(submit, range(MESSAGES)))
        self.assertEqual(set(codes), {0})
        self.assertEqual(len(self.box.queued()), MESSAGES)

        started = time.monotonic()
        daemon = queuetest.start(self.box, "mta", ["-d"])
        self.addCleanup(queuetest.reap, daemon)
        runners = [queuetest.start(self.box, "mta", ["-q"]) for _ in range(4)]
        for runner in runners:
            self.addCleanup(queuetest.reap, runner)
        for runner in runners:
            self.assertEqual(runner.wait(timeout=300), 0, runner.stderr.read().decode(errors="replace"))
        queuetest.wait_until(lambda: not self.box.queued(), 120, interval=0.2, what="an empty queue")
        queuetest.stop_daemon(daemon)
        print(f"\n{MESSAGES} messages delivered by 4 mta -q and mta -d in {time.monotonic() - started:.1f}s")

        expected = collections.Counter()
        for seq in range(MESSAGES):
            for user in recipients_of(seq):
                expected[(user, str(seq))] = 1
        got = collections.Counter()
        for user in USERS:
            for value, n in queuetest.count_header(self.box, [user]).items():
                got[(user, value)] = n
        missing = sorted(set(expected) - set(got))
        twice = sorted(k for k, n in got.items() if n > 1)
        self.assertEqual(missing, [], "never delivered")
        self.assertEqual(twice, [], "delivered more than once")
        self.assertEqual(got, expected)

        # The log agrees: one status=sent line per message and recipient, no deferral.
        sent = collections.Counter()
        for line in queuetest.log_lines(self.box):
            m = re.search(r": ([0-9A-Za-z]+): to=<([^>]*)>, relay=local, .*status=(\w+)", line)
            if m:
                self.assertEqual(m.group(3), "sent", line)
                sent[(m.group(1), m.group(2))] += 1
        self.assertEqual(sum(sent.values()), sum(expected.values()))
        self.assertEqual(max(sent.values()), 1)
        self.assertEqual(self.box.queued("quarantine"), [])


if __name__ == "__main__":
    mrtest.main()
