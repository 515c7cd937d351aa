#!/usr/bin/env python3
"""mailq over a big queue: fills a scratch spool with N queued 4 KB messages (the
queue entry format of docs/spool.md, written directly, one deferred recipient each)
and times `mailq` and `mailq --json` listing them (best of 3 runs, page cache warm).

    tests/bench/mailq_50k.py [--count 50000] [--bin build/bin] [--keep DIR]

This is mailroom alone, for profiling the listing: it prints seconds, compares with
nothing. The comparison with Postfix, measured in the same run on the same machine,
is tests/bench/bench_mailq.py (`BENCH_MAILQ=1 make bench`).
"""
import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time

ALPHABET = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"


def queue_id(n):
    """15 characters of base 62, in ASCII order: IDs sort as n does."""
    digits = []
    for _ in range(15):
        n, r = divmod(n, 62)
        digits.append(ALPHABET[r])
    return "".join(reversed(digits))


def fill(spool, count, size=4096):
    for folder in ("tmp", "queue", "hold", "quarantine"):
        os.makedirs(os.path.join(spool, folder), mode=0o700, exist_ok=True)
    body = ("Subject: bench\n\n" + "x" * 75 + "\n") * (size // 92)
    body = body[:size - 1] + "\n"
    header = "mailroom-queue 1 message %020d\n" % len(body)
    base = 0x8D00000000000000 >> 20
    now = int(time.time())
    queue = os.path.join(spool, "queue")
    for i in range(count):
        arrival = now - count + i
        tail = (f"arrival {arrival}.000000\nuid 1000\nsender <alice@test.example>\n"
                f"recipient <user{i}@elsewhere.example>\nend\n"
                f"deferred 0 {arrival + 1} {now + 300} 4.3.5 remote delivery not configured\n")
        path = os.path.join(queue, queue_id(base + i * 7919))
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        os.write(fd, (header + body + tail).encode())
        os.close(fd)


def best_of(runs, argv, env):
    best = None
    for _ in range(runs):
        start = time.perf_counter()
        done = subprocess.run(argv, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, env=env)
        elapsed = time.perf_counter() - start
        if done.returncode != 0:
            sys.exit(f"{argv} failed: {done.stderr.decode(errors='replace')}")
        best = elapsed if best is None else min(best, elapsed)
    return best


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--count", type=int, default=50000)
    parser.add_argument("--bin", default=os.path.join(os.path.dirname(__file__), "..", "..", "build", "bin"))
    parser.add_argument("--keep", help="fill this folder and leave it (default: a temporary one)")
    args = parser.parse_args()
    top = args.keep or tempfile.mkdtemp(prefix="mailroom-mailq-bench-")
    try:
        spool = os.path.join(top, "spool")
        conf = os.path.join(top, "mailroom.conf")
        with open(conf, "w") as f:
            f.write(f"myhostname = test.example\nspool_dir = {spool}\nlog = {top}/log\n")
        start = time.perf_counter()
        fill(spool, args.count)
        print(f"filled {args.count} entries in {time.perf_counter() - start:.2f} s")
        env = dict(os.environ, MAILROOM_CONF=conf)
        mailq = os.path.join(args.bin, "mailq")
        listing = subprocess.run([mailq], capture_output=True, env=env).stdout.decode()
        print("trailer:", listing.rstrip().splitlines()[-1])
        print(f"mailq:        {best_of(3, [mailq], env):.3f} s")
        print(f"mailq --json: {best_of(3, [mailq, '--json'], env):.3f} s")
    finally:
        if not args.keep:
            shutil.rmtree(top, ignore_errors=True)


if __name__ == "__main__":
    main()
