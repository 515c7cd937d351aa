#!/usr/bin/env python3
"""Crash safety of a submission (SPEC sections 1 and 3): sendmail is SIGKILLed
while it reads a message, and while it commits one after the end of its input,
for messages of every size. An entry appears in queue/ whole or not at all:
every sendmail that exited 0 has its message delivered exactly once, every entry
in queue/ reads back whole before any runner touches it, the runner quarantines
nothing, a killed sendmail leaves at most its own file in tmp/, which no runner
delivers and `mta -q` removes once it is a day old (docs/spool.md).

The run is random; it prints its seed, and MAILROOM_SEED=N repeats it."""
import collections
import fcntl
import os
import random
import re
import signal
import subprocess
import termios
import time

import mrtest
import queuetest

ROUNDS = 60
# Lines per message: about 150 bytes, 50 KB, 1 MB and 5 MB, so that the commit of
# the larger ones (write, fdatasync, rename, folder fsync) takes measurable time.
SIZES = [5, 2000, 40000, 200000]
CALIBRATIONS = 3  # unkilled submissions per size that time the commit
SEQ_RE = re.compile(rb"\nX-Seq: (\d+)\n")


def body_of(seq, lines):
    return "".join(f"line {n} of message {seq}\n" for n in range(lines))


def message_of(seq, lines):
    return mrtest.message(f"m{seq}", body=body_of(seq, lines), extra_headers=f"X-Seq: {seq}\n").encode()


def unread_bytes(pipe):
    """Bytes written to a pipe that its reader has not read yet."""
    buf = bytearray(4)
    fcntl.ioctl(pipe.fileno(), termios.FIONREAD, buf)
    return int.from_bytes(buf, "little")


class SubmissionKilled(mrtest.TestCase):
    def start(self):
        return subprocess.Popen([os.path.join(mrtest.BIN, "sendmail"), "-odq", "-i", "bob"],
                                stdin=subprocess.PIPE, stdout=subprocess.DEVNULL,
                                stderr=subprocess.DEVNULL, env=self.box.env())

    def feed_all(self, proc, data):
        """Writes all of data, waits until sendmail has read it, then closes its
        input: from the moment this returns, sendmail has all of the message and
        is committing it."""
        proc.stdin.write(data)
        proc.stdin.flush()
        deadline = time.monotonic() + 60
        while unread_bytes(proc.stdin) and time.monotonic() < deadline:
            time.sleep(0.0002)
        proc.stdin.close()

    def test_a_killed_sendmail_leaves_no_partial_entry_and_loses_no_accepted_message(self):
        seed = int(os.environ.get("MAILROOM_SEED", time.time_ns() % 1_000_000))
        rng = random.Random(seed)
        print(f"\nseed {seed} (MAILROOM_SEED={seed} repeats this run)")
        accepted, killed = set(), set()
        lines_of = {}  # message number: its number of body lines
        commit_kills = 0  # kills that reached a sendmail after the end of its input

        # How long, per size, sendmail takes from the end of its input to its exit.
        commit_time = {}
        seq = 0
        for lines in SIZES:
            durations = []
            for _ in range(CALIBRATIONS):
                proc = self.start()
                lines_of[seq] = lines
                self.feed_all(proc, message_of(seq, lines))
                start = time.monotonic()
                self.assertEqual(proc.wait(timeout=60), 0)
                durations.append(time.monotonic() - start)
                accepted.add(seq)
                seq += 1
            commit_time[lines] = max(durations)
        print("end of input to exit, per size: " +
              ", ".join(f"{lines} lines {t * 1000:.1f} ms" for lines, t in commit_time.items()))

        # At least ROUNDS submissions, and more (up to 4 x ROUNDS) until 5 kills have
        # landed after the end of the input: a kill may come after a fast commit.
        rounds = 0
        while rounds < ROUNDS or (commit_kills < 5 and rounds < 4 * ROUNDS):
            rounds += 1
            lines = lines_of[seq] = rng.choice(SIZES)
            data = message_of(seq, lines)
            proc = self.start()
            how = rng.choice(["input", "commit", "commit", "none"])
            try:
                if how == "input":
                    # Somewhere in the input: the message is not accepted.
                    proc.stdin.write(data[:rng.randrange(len(data))])
                    proc.stdin.flush()
                    time.sleep(rng.random() * 0.01)
                    proc.send_signal(signal.SIGKILL)
                    proc.stdin.close()
                elif how == "commit":
                    # After the end of the input, in the time the commit takes.
                    self.feed_all(proc, data)
                    time.sleep(rng.uniform(0, 1.5 * commit_time[lines]))
                    proc.send_signal(signal.SIGKILL)
                else:
                    self.feed_all(proc, data)
            except BrokenPipeError:
                pass
            code = proc.wait(timeout=60)
            if code == 0:
                accepted.add(seq)
            else:
                self.assertEqual(code, -signal.SIGKILL, f"message {seq}: sendmail exited {code}")
                killed.add(seq)
                commit_kills += how == "commit"
            seq += 1

        # Before any runner: every entry in queue/ is whole, and it is either an
        # accepted message or one whose sendmail was killed after the rename.
        queued = {}
        for queue_id in self.box.queued():
            path = os.path.join(self.box.spool, "queue", queue_id)
            with open(path, "rb") as f:
                data = f.read()
            entry = queuetest.Entry(path)
            self.assertIn(b"\nend\n", data[len(data) - len(b"\nend\n") - 200:], f"{queue_id}: envelope cut short")
            self.assertEqual(entry.recipients, ["bob@test.example"], queue_id)
            match = SEQ_RE.search(entry.message)
            self.assertIsNotNone(match, f"{queue_id}: no X-Seq")
            n = int(match.group(1))
            self.assertTrue(entry.message.endswith(b"\n\n" + body_of(n, lines_of[n]).encode()),
                            f"{queue_id}: message {n} is cut")
            queued[n] = queue_id
        self.assertLessEqual(accepted, set(queued), "an accepted message is not in queue/")
        killed_but_committed = set(queued) - accepted
        self.assertLessEqual(killed_but_committed, killed)

        # Leftovers in tmp/: only sendmails killed before their rename leave one, one each at most.
        leftovers = self.box.queued("tmp")
        self.assertLessEqual(len(leftovers), len(killed - killed_but_committed))
        for queue_id in leftovers:
            self.assertRegex(queue_id, r"^[0-9A-Za-z]{15}$")
            with open(os.path.join(self.box.spool, "tmp", queue_id), "rb") as f:
                match = SEQ_RE.search(f.read())
            if match:  # a small message is still in sendmail's buffer when killed
                self.assertIn(int(match.group(1)), killed, f"tmp/{queue_id} is not a killed submission's")

        print(f"{len(accepted)} accepted, {len(killed)} killed ({commit_kills} after the end of their input, "
              f"{len(killed_but_committed)} of them after the rename), {len(leftovers)} left in tmp/")
        # The kills must reach the commit, or the promises below were not tested.
        self.assertGreaterEqual(commit_kills, 5, "too few kills landed after the end of the input")

        # The runner delivers every whole entry exactly once and nothing from tmp/.
        self.assertExit(self.box.mta(["-q"]), 0)
        self.assertEqual(self.box.queued("quarantine"), [])
        self.assertEqual(self.box.queued(), [])
        delivered = collections.Counter()
        for msg in self.box.mbox("bob"):
            n = int(msg["X-Seq"])
            delivered[n] += 1
            self.assertEqual(msg.get_payload(), body_of(n, lines_of[n]), f"message {n} is cut")
        self.assertEqual({n for n in accepted if delivered[n] != 1}, set(),
                         "accepted messages not delivered exactly once")
        self.assertEqual(set(delivered), accepted | killed_but_committed)
        self.assertEqual(max(delivered.values()), 1)

        # docs/spool.md: tmp/ files are swept by `mta -q` once older than a day.
        self.assertEqual(self.box.queued("tmp"), leftovers, "a fresh tmp/ file was removed")
        old = time.time() - 86400 - 3600
        for queue_id in leftovers:
            os.utime(os.path.join(self.box.spool, "tmp", queue_id), (old, old))
        self.assertExit(self.box.mta(["-q"]), 0)
        self.assertEqual(self.box.queued("tmp"), [], "tmp/ files older than a day are left")
        self.assertEqual(len(self.box.mbox("bob")), sum(delivered.values()))


if __name__ == "__main__":
    mrtest.main()
