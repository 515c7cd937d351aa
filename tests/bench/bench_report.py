"""The queue benchmark's table (queue_bench.py): figures in, text out.

Ratios are always mailroom / Postfix. Throughput target: mailroom >= 3.0x Postfix's
messages per second; mailq target: mailroom's time <= 0.5x Postfix's; runner RSS
target: flat in queue size (the large queue costs less than 1 MB more than the
small one, the same threshold as run.sh's mda RSS check).
It must never invent a figure: a missing measurement prints its reason.
"""
import datetime
import os
import platform
import subprocess

from bench_common import median
from bench_postfix import postfix_version

THROUGHPUT_TARGET = 3.0
MAILQ_TARGET = 0.5
RSS_FLAT_KB = 1024


def _fmt(v, spec=".1f"):
    return "-" if v is None else format(v, spec)


def _ratio(a, b):
    return None if a is None or b is None or b == 0 else a / b


def _fs(work):
    res = subprocess.run(["df", "-T", str(work)], capture_output=True, text=True)
    lines = res.stdout.splitlines()
    if len(lines) < 2:
        return "?"
    f = lines[1].split()
    return f"{f[1]} on {f[0]}"


def _cell(results, failed, key, field):
    """Median of KEY's runs; None when it failed before any run."""
    if key in failed and key not in results:
        return None
    return median(r[field] for r in results.get(key, []))


def _throughput(args, results, failed, mailroom_ok):
    out = [f"Throughput (messages/s from the first submission until all {args.messages} are "
           f"in the mailbox, median of {args.runs})",
           "%-8s %10s %10s %10s %8s %9s" % ("format", "submitters", "mailroom", "Postfix",
                                           "ratio", f"≥ {THROUGHPUT_TARGET:.1f}x?")]
    for fmt in ("mbox", "maildir"):
        for par in (1, 4):
            m = _cell(results, failed, ("mailroom", fmt, par), "rate") if mailroom_ok else None
            p = _cell(results, failed, ("Postfix", fmt, par), "rate")
            r = _ratio(m, p)
            verdict = "-" if r is None else ("yes" if r >= THROUGHPUT_TARGET else "NO")
            out.append("%-8s %10d %10s %10s %7sx %9s" % (
                "Maildir" if fmt == "maildir" else fmt, par, _fmt(m), _fmt(p), _fmt(r, ".2f"),
                verdict))
    out.append("")
    out.append("CPU seconds per 1000 messages (median): submitting side = sendmail and "
               "everything it waits for;")
    out.append("delivering side = the daemon's process tree (Postfix master, mailroom mta -d), "
               "exited children included")
    out.append("%-8s %4s | %9s %9s %7s | %9s %9s %7s" % (
        "format", "subm", "submit mr", "Postfix", "ratio", "deliv mr", "Postfix", "ratio"))
    for fmt in ("mbox", "maildir"):
        for par in (1, 4):
            row = ["Maildir" if fmt == "maildir" else fmt, str(par)]
            for field in ("submit", "deliver"):
                m = _cell(results, failed, ("mailroom", fmt, par), field) if mailroom_ok else None
                p = _cell(results, failed, ("Postfix", fmt, par), field)
                row += [_fmt(m, ".2f"), _fmt(p, ".2f"), _fmt(_ratio(m, p), ".2f")]
            out.append("%-8s %4s | %9s %9s %6sx | %9s %9s %6sx" % tuple(row))
    out.append("")
    out.append("Runs (messages/s):")
    for (name, fmt, par), figs in sorted(results.items()):
        orphans = sum(f["orphans"] for f in figs)
        note = f"  ({orphans} background processes left by sendmail, reaped, CPU counted " \
               "as submitting)" if orphans else ""
        poll = max(f["poll"] for f in figs)
        out.append(f"  {name:8} {fmt:7} x{par}: " +
                   " ".join(f"{f['rate']:.1f}" for f in figs) +
                   f"  (mailbox polling: at most {poll:.2f} CPU s per run)" + note)
    for fmt in ("mbox", "maildir"):
        for par in (1, 4):
            m = {f["run"]: f["rate"] for f in results.get(("mailroom", fmt, par), [])}
            p = {f["run"]: f["rate"] for f in results.get(("Postfix", fmt, par), [])}
            pairs = [m[r] / p[r] for r in sorted(m) if r in p and p[r]]
            if pairs:
                # Same run number = run back to back, so slow drift of the shared
                # machine's load cancels out of each pair.
                out.append(f"  {'Maildir' if fmt == 'maildir' else fmt:7} x{par}: mailroom/Postfix "
                           "per interleaved run pair: " + " ".join(f"{x:.2f}" for x in pairs) +
                           f" (median {median(pairs):.2f})")
    skipped = failed.get(("skipped",))
    for key, why in sorted((k, v) for k, v in failed.items() if len(k) == 3):
        name, fmt, par = key
        out.append(f"  {name:8} {fmt:7} x{par}: FAILED: {why}")
    if skipped:
        out.append(f"  {skipped} later round(s) of runs (one format, both submitter counts, "
                   f"both systems) skipped past --deadline ({args.deadline:.0f} s); "
                   "medians of the runs made")
    return out


def _mailq(mq):
    n = mq["count"]
    out = [f"mailq over {n} queued 4096-byte messages (wall seconds of `mailq | tail -1`, "
           "median of 3 after one warm-up)"]
    m = mq.get("mailroom")
    p = mq.get("postfix")
    r = _ratio(m and m[0], p and p[0])
    verdict = "-" if r is None else ("yes" if r <= MAILQ_TARGET else "NO")
    out.append("  mailroom %s s   Postfix %s s   ratio %sx   ≤ %.1fx? %s" % (
        _fmt(m and m[0], ".3f"), _fmt(p and p[0], ".3f"), _fmt(r, ".2f"), MAILQ_TARGET, verdict))
    for name, key in (("mailroom", "mailroom"), ("Postfix", "postfix")):
        if mq.get(key):
            out.append(f"  {name} runs: " + " ".join(f"{t:.3f}" for t in mq[key][1]) +
                       f"; last line: {mq[key][2]}")
        if mq.get(f"{key}_fill"):
            out.append(f"  {name} fill: {n} messages in {mq[key + '_fill']:.0f} s")
        if mq.get(f"{key}_error"):
            out.append(f"  {name}: FAILED: {mq[key + '_error']}")
    out.append("  queues: Postfix incoming/ (pickup + cleanup ran, no qmgr: complete, never "
               "tried); mailroom sendmail -odq, no daemon")
    small, big = mq.get("rss_small"), mq.get("rss_big")
    out.append("")
    out.append("Runner peak RSS (GNU time %M of mta -q; recipient user@remote.example deferred)")
    if small and big:
        grow = big[0] - small[0]
        out.append(f"  {mq['small']} queued: {small[0] / 1024:.1f} MB ({small[1]:.1f} s, "
                   f"{mq.get('deferred_small', 0)} status=deferred log lines)")
        out.append(f"  {n} queued: {big[0] / 1024:.1f} MB ({big[1]:.1f} s, "
                   f"{mq.get('deferred_big', 0)} status=deferred log lines)")
        out.append(f"  flat in queue size (< {RSS_FLAT_KB // 1024} MB more): "
                   f"{'yes' if grow < RSS_FLAT_KB else 'NO'} ({grow:+d} KB)")
    else:
        out.append("  " + mq.get("rss_error", mq.get("mailroom_error", "not measured")))
    return out


def table(args, bin_dir, missing, work, results, failed, mq, commands, elapsed) -> str:
    mailroom_ok = not missing
    now = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    lines = [
        "mailroom queue vs Postfix — sendmail submission until every message is in the mailbox",
        f"date: {now}   host: {platform.node()}, {os.cpu_count()} CPUs, {platform.release()}",
        f"work folder: {_fs(work)}; mail folders mode 1777; recipient nobody; "
        "both log to a file",
        (f"mailroom: {bin_dir} (sendmail, mta -d daemon)" if mailroom_ok else
         f"mailroom: not built (no {', '.join(missing)} in {bin_dir})"),
        f"Postfix: {postfix_version()}, private instance (Debian master.cf, no chroot, no "
        "smtp listener, Debian defaults otherwise)",
        "durability (seen with strace when this benchmark was written): mailroom fdatasyncs "
        "each queue file and fsyncs",
        "  the queue folder, fsyncs the mailbox; Postfix fsyncs each queue file (postdrop, "
        "cleanup) and the mailbox",
        f"messages: {args.messages} x 4096 bytes per run, 1 and 4 parallel submitters; "
        f"{args.runs} run(s) each, interleaved",
        "",
    ]
    lines += _throughput(args, results, failed, mailroom_ok)
    lines.append("")
    if mq:
        lines += _mailq(mq)
    else:
        lines.append("mailq over 50,000 queued messages and runner peak RSS: not measured "
                     "(queue_bench.py --mailq; BENCH_MAILQ=1 for make bench)")
    lines.append("")
    lines.append("Command lines (mbox instances shown; the Maildir ones differ only in "
                 "their folder, under the temp folder):")
    for what, cmd in commands:
        lines.append(f"  {what}: {cmd}")
    lines.append(f"whole run: {elapsed / 60:.1f} min")
    return "\n".join(lines) + "\n"
