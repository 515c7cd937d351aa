#!/usr/bin/env python3
"""Concurrency and crash safety of mbox delivery through the real mda."""
import mailbox
import os
import random
import signal
import subprocess
import threading
import time

import mrtest
from mrtest import message


class Concurrency(mrtest.TestCase):
    def test_8_processes_200_messages_each_into_one_mbox(self):
        failures = []

        def submitter(n):
            for i in range(200):
                r = self.box.mda(["alice"], message(subject=f"w{n}-{i}", body=f"body {n} {i}\n" * 20))
                if r.returncode != 0:
                    failures.append(r.stderr)

        threads = [threading.Thread(target=submitter, args=(n,)) for n in range(8)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        self.assertEqual(failures, [])
        box = self.box.mbox("alice")
        subjects = sorted(m["Subject"] for m in box)
        self.assertEqual(subjects, sorted(f"w{n}-{i}" for n in range(8) for i in range(200)))
        for m in box:
            n, i = m["Subject"][1:].split("-")
            self.assertEqual(m.get_payload(), f"body {n} {i}\n" * 20)


class Crash(mrtest.TestCase):
    def deliver_and_kill(self, text, delay):
        p = self.box.popen_mda(["alice"])
        # Feed the message from a thread so the kill can land while mda is writing.
        feeder = threading.Thread(target=self.feed, args=(p, text))
        feeder.start()
        time.sleep(delay)
        p.send_signal(signal.SIGKILL)
        feeder.join()
        p.wait()
        p.stderr.close()
        return p.returncode

    @staticmethod
    def feed(p, text):
        try:
            p.stdin.write(text)
        except (BrokenPipeError, OSError):
            pass
        try:
            p.stdin.close()
        except (BrokenPipeError, OSError):
            pass

    def test_sigkill_during_a_large_append_leaves_no_torn_message(self):
        rng = random.Random(20261121)
        acknowledged = []
        big_body = ("z" * 70 + "\n") * (8 * 1024 * 1024 // 71)  # about 8 MB
        # One whole delivery tells how long a kill has to land inside one.
        start = time.monotonic()
        r = self.box.mda(["alice"], message(subject="big-timed", body=big_body))
        self.assertEqual(r.returncode, 0, r.stderr)
        acknowledged.append("big-timed")
        whole = time.monotonic() - start
        for round_no in range(50):
            subject = f"big{round_no}"
            code = self.deliver_and_kill(message(subject=subject, body=big_body).encode(),
                                         rng.uniform(0.0, whole * 1.1))
            if code == 0:
                acknowledged.append(subject)
            small = f"small{round_no}"
            r = self.box.mda(["alice"], message(subject=small))
            self.assertEqual(r.returncode, 0, r.stderr)
            acknowledged.append(small)
        box = self.box.mbox("alice")
        found = []
        for m in box:
            subject = m["Subject"]
            found.append(subject)
            if subject.startswith("big"):
                self.assertEqual(m.get_payload(), big_body, f"{subject} is torn")
            else:
                self.assertEqual(m.get_payload(), "hello\n", f"{subject} is damaged")
        for subject in acknowledged:
            self.assertIn(subject, found)
        self.assertEqual(len(found), len(set(found)), "a message appears twice")
        completed = sum(1 for s in found if s.startswith("big")) - 1
        with open(self.box.log) as log:
            repaired = sum(1 for line in log if "left by an interrupted delivery" in line)
        print(f"\n50 SIGKILLs (a whole delivery takes {whole:.3f}s): {completed} large messages "
              f"completed before the kill, {50 - completed} killed before the end, of which "
              f"{repaired} left a torn tail that the next delivery cut off; "
              f"{len(found)} intact messages, 0 duplicates", flush=True)


if __name__ == "__main__":
    mrtest.main()
