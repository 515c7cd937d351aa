"""The queue-size half of the queue benchmark (queue_bench.py --mailq): `mailq` over
a large queue on both systems, and the peak RSS of mailroom's runner (`mta -q`)
with a small and a large queue.

The queues are filled without delivering anything:
- Postfix: a private instance whose master.cf has no qmgr. pickup and cleanup file
  every submission complete into incoming/, where it stays untried. That is the
  Postfix state nearest to mailroom's `sendmail -odq` entries (complete, durable,
  never tried), and showq lists it like any other queue. A deferred queue would
  make Postfix's showq read one defer log per message as well. (cleanup logs
  "unable to look up public/qmgr" once per message: harmless, and not timed.)
- mailroom: `sendmail -odq` with no daemon running.
Both queues hold the same message (4096 bytes) for the same recipient,
user@remote.example, from root, submitted by 4 parallel submitters.

mailroom's deferring instances set relayhost = [127.0.0.1]:9, a closed loopback
port: a non-local recipient is then deferred (connection refused, or "remote
delivery not configured" before mailroom has an SMTP client) without any DNS query
leaving the host.

Invariants: every instance started here is stopped in a finally; nothing outside
the work folder is written. It must never run the mailroom daemon during a fill.
"""
import statistics
import subprocess
import time
from pathlib import Path

from bench_common import (CLEAN_ENV, RunFailed, log, timed_submission, wait_until)
from bench_mailroom import Mailroom, missing_programs
from bench_postfix import Postfix

RECIPIENT = "user@remote.example"
FILL_PARALLEL = 4
MAILQ_RUNS = 3
GNU_TIME = "/usr/bin/time"
DEFERRING_CONF = "relayhost = [127.0.0.1]:9\n"


def time_mailq(shell: str, expected: int):
    """One untimed warm-up (both systems get it: page cache), then MAILQ_RUNS timed
    runs of SHELL. Returns (median seconds, all seconds, last line)."""
    times, last = [], ""
    for i in range(MAILQ_RUNS + 1):
        t0 = time.monotonic()
        res = subprocess.run(["/bin/sh", "-c", shell], env=CLEAN_ENV, capture_output=True,
                             text=True, timeout=600)
        elapsed = time.monotonic() - t0
        last = res.stdout.strip()
        if res.returncode != 0 or f"in {expected} Request" not in last:
            raise RunFailed(f"`{shell}` printed {last!r} (exit {res.returncode}, "
                            f"{res.stderr.strip()[:200]}), expected {expected} requests")
        if i:
            times.append(elapsed)
    return statistics.median(times), times, last


def fill_postfix(work: Path, message: Path, count: int, res: dict, commands: list):
    pf = Postfix(work / "postfix-queue", "mbox", queue_only=True)
    pf.configure()
    commands.append(("Postfix queue fill (no qmgr in master.cf)",
                     " ".join(pf.submit_argv(RECIPIENT))))
    commands.append(("Postfix mailq", pf.mailq_shell()))
    try:
        pf.start()
        log(f"  mailq: filling Postfix with {count} messages ...")
        t0 = time.monotonic()
        timed_submission(count, FILL_PARALLEL, message, pf.submit_argv(RECIPIENT),
                         timeout=count / 10 + 600)
        # Polled slowly: listing 50,000 names takes about 15 ms.
        if not wait_until(lambda: pf.maildrop_empty() and pf.queued() >= count, 300, 0.5):
            raise RunFailed(f"{pf.queued()} of {count} messages reached incoming/")
        secs = time.monotonic() - t0
        log(f"  mailq: Postfix filled in {secs:.0f} s ({count / secs:.0f} msg/s)")
        res["postfix_fill"] = secs
        res["postfix"] = time_mailq(pf.mailq_shell(), count)
        log(f"  mailq: Postfix {res['postfix'][0]:.3f} s")
    except (RunFailed, RuntimeError) as e:
        res["postfix_error"] = f"{e} [{pf.log_tail()}]"
        log(f"  mailq: Postfix: {res['postfix_error']}")
    finally:
        pf.stop()


def fill_mailroom(mr: Mailroom, message: Path, count: int):
    mr.configure()
    secs, _, _ = timed_submission(count, FILL_PARALLEL, message,
                                  mr.submit_argv(RECIPIENT, queue_only=True),
                                  timeout=count / 10 + 600)
    return secs


def runner_rss(mr: Mailroom, work: Path):
    """Peak RSS (KB) and wall seconds of one `mta -q` over the whole queue."""
    out = work / f"time-{mr.root.name}"
    argv = [GNU_TIME, "-o", str(out), "-f", "%M %e", *mr.runner_argv()]
    res = subprocess.run(argv, env=CLEAN_ENV, capture_output=True, text=True, timeout=7200)
    if res.returncode != 0:
        raise RunFailed(f"mta -q exited {res.returncode}: {res.stderr.strip()[:200]} "
                        f"[{mr.log_tail()}]")
    kb, secs = out.read_text().split()[-2:]
    return int(kb), float(secs)


def deferred_lines(mr: Mailroom) -> int:
    try:
        return mr.logfile.read_text(errors="replace").count("status=deferred")
    except OSError:
        return 0


def measure(bin_dir: Path, mailroom_ok: bool, work: Path, message: Path,
            count: int, small: int, commands: list) -> dict:
    """Returns the figures; a failure is recorded under KEY_error, never raised."""
    res = {"count": count, "small": small}
    fill_postfix(work, message, count, res, commands)
    if not mailroom_ok:
        return res
    big = Mailroom(bin_dir, work / "mailroom-queue", "mbox", DEFERRING_CONF)
    few = Mailroom(bin_dir, work / "mailroom-rss", "mbox", DEFERRING_CONF)
    commands.append(("mailroom queue fill (no daemon)",
                     " ".join(big.submit_argv(RECIPIENT, queue_only=True))))
    commands.append(("mailroom mailq", big.mailq_shell()))
    commands.append(("mailroom runner RSS",
                     " ".join([GNU_TIME, "-f", "%M", *big.runner_argv()])))
    try:
        log(f"  mailq: filling mailroom with {count} messages ...")
        secs = fill_mailroom(big, message, count)
        res["mailroom_fill"] = secs
        log(f"  mailq: mailroom filled in {secs:.0f} s ({count / secs:.0f} msg/s)")
        if missing_programs(bin_dir, ("mailq",)):
            res["mailroom_error"] = f"mailq not built (no {bin_dir / 'mailq'})"
        else:
            res["mailroom"] = time_mailq(big.mailq_shell(), count)
            log(f"  mailq: mailroom {res['mailroom'][0]:.3f} s")
    except (RunFailed, subprocess.TimeoutExpired) as e:
        res["mailroom_error"] = f"{e} [{big.log_tail()}]"
        log(f"  mailq: mailroom: {res['mailroom_error']}")
        return res
    try:
        fill_mailroom(few, message, small)
        res["rss_small"] = runner_rss(few, work)
        res["deferred_small"] = deferred_lines(few)
        log(f"  rss: mta -q over {small}: {res['rss_small'][0]} KB")
        res["rss_big"] = runner_rss(big, work)
        res["deferred_big"] = deferred_lines(big)
        log(f"  rss: mta -q over {count}: {res['rss_big'][0]} KB")
    except (RunFailed, subprocess.TimeoutExpired) as e:
        res["rss_error"] = str(e)
        log(f"  rss: {e}")
    return res
