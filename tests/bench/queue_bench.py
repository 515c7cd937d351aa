#!/usr/bin/python3
"""Queue benchmark: mailroom's sendmail + mta daemon side by side with Postfix.

usage: queue_bench.py [--quick] [--mailq] [--messages N] [--runs R]
                      [--mailq-messages M] [--out FILE] [--keep] [BIN_DIR]

1. Throughput. N (2000) messages of 4096 bytes submitted with `sendmail -i nobody`
   by 1 and by 4 parallel submitters (tests/bench/submit_loop.py), timed from the
   first submission until all N are in the mailbox (Maildir files in new/ and cur/,
   or "From " lines of the mbox, polled every 10 ms), mbox and Maildir. Postfix is a
   private instance (bench_postfix.py), mailroom is `mta -C CONF -d`
   (bench_mailroom.py); both fsync queue files and mailboxes. RUNS (3) runs per
   system, format and submitter count, mailroom and Postfix interleaved; medians.
2. CPU seconds per 1000 messages, two sides:
   submitting = getrusage(RUSAGE_CHILDREN) delta of the submission driver, i.e. every
     sendmail and what it waited for (Postfix: sendmail + postdrop);
   delivering = the daemon's process tree (Postfix's master, mailroom's mta -d) from
     /proc/PID/stat: utime+stime+cutime+cstime of the root and every live
     descendant, sampled before the first submission and 1 s after the last
     delivery; exited daemons are in their parent's cutime+cstime.
3. With --mailq: each system's queue filled with M (50,000) undelivered messages,
   `mailq | tail -1` timed (median of 3), and the peak RSS (GNU time %M) of mailroom's
   runner `mta -C CONF -q` over 1,000 and over M deferring messages (bench_mailq.py).
   The fill takes minutes, so it is not part of the default run.
--quick: 400 messages, 1 run (and a 5,000 message queue with --mailq): a smoke run.

Runs as root (Postfix's start and its set-gid postdrop; mailroom's programs run as
root and deliver as nobody). Everything lives in one mktemp -d folder, removed at
the end; /etc/postfix is only read. Nothing listens on a network address. The
mailroom half is skipped ("mailroom: not built") when BIN_DIR lacks sendmail, mta
or mailq. The table goes to stdout and to FILE (build/bench/queue.txt).
"""
import argparse
import os
import shutil
import signal
import sys
import tempfile
import time
from pathlib import Path

import bench_mailq
import bench_report
from bench_common import (MailboxCounter, RunFailed, log, make_message, timed_submission)
from bench_mailroom import Mailroom, missing_programs
from bench_postfix import Postfix

TOP = Path(__file__).resolve().parent.parent.parent
FORMATS = ("mbox", "maildir")
PARALLEL = (1, 4)
WARMUP = 50
SETTLE = 1.0


def parse_args():
    p = argparse.ArgumentParser(description="mailroom vs Postfix queue benchmark")
    p.add_argument("bin_dir", nargs="?", default=str(TOP / "build" / "bin"))
    p.add_argument("--quick", action="store_true", help="400 messages, 1 run")
    p.add_argument("--mailq", action="store_true", help="also the 50,000 message queue")
    p.add_argument("--messages", type=int, help="messages per run (2000)")
    p.add_argument("--runs", type=int, help="runs per measurement (3)")
    p.add_argument("--mailq-messages", type=int, help="queue size for --mailq (50000)")
    p.add_argument("--out", default=str(TOP / "build" / "bench" / "queue.txt"))
    p.add_argument("--keep", action="store_true", help="keep the work folder (logs)")
    p.add_argument("--deadline", type=float, default=1200,
                   help="seconds for the throughput part; later runs than the first "
                        "are skipped past it (1200)")
    a = p.parse_args()
    a.messages = a.messages or (400 if a.quick else 2000)
    a.runs = a.runs or (1 if a.quick else 3)
    a.mailq_messages = a.mailq_messages or (5000 if a.quick else 50000)
    a.messages -= a.messages % 4  # split evenly over 4 submitters
    return a


def one_run(inst, fmt: str, count: int, parallel: int, message: Path) -> dict:
    """Delivers COUNT messages through INST into an empty mailbox, returns figures."""
    inst.reset_mailbox()
    counter = MailboxCounter(inst.mailbox(), fmt, count)
    cpu0 = inst.cpu_seconds()
    own0 = time.process_time()
    secs, submit_cpu, orphans = timed_submission(
        count, parallel, message, inst.submit_argv(), probe=counter.count,
        timeout=60 + count / 10)
    time.sleep(SETTLE)  # trailing work after the last delivery (queue file removal)
    deliver_cpu = inst.cpu_seconds() - cpu0
    own = time.process_time() - own0  # this process: mailbox polling (sleep is free)
    if counter.count() != count:
        raise RunFailed(f"{counter.count()} messages in the mailbox for {count} submitted")
    return {"rate": count / secs, "secs": secs, "orphans": orphans,
            "submit": 1000 * submit_cpu / count, "deliver": 1000 * deliver_cpu / count,
            "poll": own}


def throughput(insts_for, args, message: Path, results: dict, failed: dict) -> None:
    """Every format, run and submitter count, the systems interleaved (the order
    alternates). Past args.deadline only first runs are made; skipped ones are
    counted in failed[("skipped",)]."""
    deadline = time.monotonic() + args.deadline
    for fmt in FORMATS:
        insts = insts_for(fmt)
        try:
            live = []
            for inst in insts:
                try:
                    inst.configure()
                    inst.start()
                    live.append(inst)
                    one_run(inst, fmt, WARMUP, 1, message)  # warm-up, not counted
                except (RunFailed, RuntimeError, OSError) as e:
                    for par in PARALLEL:
                        failed[(inst.name, fmt, par)] = f"{e} [{inst.log_tail()}]"
                    log(f"  {inst.name} {fmt}: {e} [{inst.log_tail()}]")
            for r in range(args.runs):
                if r and time.monotonic() > deadline:
                    failed[("skipped",)] = failed.get(("skipped",), 0) + args.runs - r
                    break
                for i, par in enumerate(PARALLEL):
                    order = live if (r + i) % 2 == 0 else live[::-1]
                    for inst in order:
                        key = (inst.name, fmt, par)
                        if key in failed:
                            continue
                        try:
                            fig = one_run(inst, fmt, args.messages, par, message)
                        except (RunFailed, RuntimeError, OSError) as e:
                            failed[key] = f"{e} [{inst.log_tail()}]"
                            log(f"  {inst.name} {fmt} x{par}: {failed[key]}")
                            continue
                        fig["run"] = r
                        results.setdefault(key, []).append(fig)
                        log(f"  {inst.name:8} {fmt:7} x{par} run {r + 1}: {fig['secs']:6.2f} s "
                            f"{fig['rate']:7.1f} msg/s  cpu/1000: submit {fig['submit']:.2f} s, "
                            f"deliver {fig['deliver']:.2f} s; polling {fig['poll']:.2f} s")
        finally:
            for inst in insts:
                inst.stop()


def main() -> int:
    args = parse_args()
    if os.geteuid() != 0:
        print("queue_bench: must run as root (private Postfix instance, set-gid postdrop)",
              file=sys.stderr)
        return 1
    for need in ("/usr/sbin/postfix", "/usr/sbin/sendmail", "/usr/bin/mailq", "/usr/bin/time"):
        if not os.path.exists(need):
            print(f"queue_bench: no {need} (Debian packages postfix, time)", file=sys.stderr)
            return 1
    # SIGTERM unwinds like ^C, so every finally (postfix stop, mta SIGTERM) runs.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    bin_dir = Path(args.bin_dir).resolve()
    missing = missing_programs(bin_dir)
    mailroom_ok = not missing
    work = Path(tempfile.mkdtemp(prefix="queue-bench.", dir=os.environ.get("TMPDIR", "/tmp")))
    work.chmod(0o755)  # nobody delivers below it
    results, failed, commands = {}, {}, []
    try:
        message = work / "msg-4k"
        make_message(message, 4096)
        message.chmod(0o644)
        log(f"queue bench: work folder {work}, {args.messages} messages x 4096 bytes, "
            f"{args.runs} runs; mailroom {'at ' + str(bin_dir) if mailroom_ok else 'not built'}")

        def insts_for(fmt):
            insts = [Postfix(work / f"postfix-{fmt}", fmt)]
            if mailroom_ok:
                insts.append(Mailroom(bin_dir, work / f"mailroom-{fmt}", fmt))
            return insts

        for inst in insts_for("mbox"):  # Maildir: the same with its own folder
            commands.append((f"{inst.name} daemon", " ".join(inst.start_argv())))
            commands.append((f"{inst.name} submission", " ".join(inst.submit_argv())))
            if isinstance(inst, Postfix):
                commands.append(("Postfix stop", " ".join(inst.stop_argv())))
        started = time.monotonic()
        throughput(insts_for, args, message, results, failed)
        mailq = None
        if args.mailq:
            mailq = bench_mailq.measure(bin_dir, mailroom_ok, work, message,
                                        args.mailq_messages, min(1000, args.mailq_messages),
                                        commands)
        table = bench_report.table(args, bin_dir, missing, work, results, failed, mailq,
                                   commands, time.monotonic() - started)
    finally:
        if args.keep:
            log(f"queue bench: work folder kept: {work}")
        else:
            # Slow after --mailq: one unlink per queue file, each a discard on some disks.
            log(f"queue bench: removing {work}")
            shutil.rmtree(work, ignore_errors=True)
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(table)
    print()
    print(table, end="")
    print(f"(also in {out})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
