#!/usr/bin/env python3
"""Crash safety of a submission (SPEC sections 1 and 3): sendmail is SIGKILLed at
random moments while it reads and queues messages of every size. An entry appears
in queue/ whole or not at all: every entry there reads back complete (mailq and
the runner find no corrupt one), every sendmail that exited 0 has its message
delivered, a killed one leaves at most a file in tmp/, and the runner delivers
only whole messages."""
import os
import random
import signal
import subprocess
import time

import mrtest

ROUNDS = 40


class SubmissionKilled(mrtest.TestCase):
    def test_a_killed_sendmail_leaves_no_partial_entry_and_loses_no_accepted_message(self):
        rng = random.Random(int(os.environ.get("MAILROOM_SEED", "0")) or None)
        accepted, killed = [], 0
        for seq in range(ROUNDS):
            body = "".join(f"line {n} of message {seq}\n" for n in range(rng.choice([5, 2000, 40000])))
            data = mrtest.message(f"m{seq}", body=body, extra_headers=f"X-Seq: {seq}\n").encode()
            proc = subprocess.Popen([os.path.join(mrtest.BIN, "sendmail"), "-odq", "-i", "bob"],
                                    stdin=subprocess.PIPE, stdout=subprocess.DEVNULL,
                                    stderr=subprocess.DEVNULL, env=self.box.env())
            cut = rng.randrange(len(data) + 1)
            try:
                proc.stdin.write(data[:cut])
                proc.stdin.flush()
                if rng.random() < 0.5:
                    time.sleep(rng.random() * 0.01)
                    proc.send_signal(signal.SIGKILL)  # in the middle of reading or committing
                    killed += 1
                else:
                    proc.stdin.write(data[cut:])
                proc.stdin.close()
            except BrokenPipeError:
                pass
            if proc.wait(timeout=60) == 0:
                accepted.append(seq)
        self.assertGreater(killed, 0)

        # Every entry in queue/ is whole: the runner quarantines none and delivers all.
        self.assertExit(self.box.mta(["-q"]), 0)
        self.assertEqual(self.box.queued("quarantine"), [])
        self.assertEqual(self.box.queued(), [])
        delivered = []
        for msg in self.box.mbox("bob"):
            seq = int(msg["X-Seq"])
            delivered.append(seq)
            lines = msg.get_payload().splitlines()
            self.assertEqual(lines[-1], f"line {len(lines) - 1} of message {seq}", f"message {seq} is cut")
        for seq in accepted:
            self.assertIn(seq, delivered, f"accepted message {seq} was lost")
        print(f"{len(accepted)} accepted, {killed} killed, {len(delivered)} delivered, "
              f"{len(self.box.queued('tmp'))} temporary files left for the sweep")


if __name__ == "__main__":
    mrtest.main()
