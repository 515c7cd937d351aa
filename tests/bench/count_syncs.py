#!/usr/bin/python3
"""Syncs per message: how many fsync/fdatasync/sync_file_range calls one message costs,
submitted with `sendmail -odq` and delivered with `mta -q`, mbox and Maildir.

usage: count_syncs.py [BIN_DIR]

For each format, in a temporary folder of its own (nothing else is written): one
message is submitted and delivered first without strace, so that the mailbox and
its folders exist (their creation syncs once, not per message); then a second one
is submitted under `strace -f -e trace=fsync,fdatasync,sync_file_range,syncfs,sync`
and delivered by `mta -q` under the same strace. Each sync line of the trace is
printed (program, call, what it synced) with the count per side and the total.
Run as root, the recipient is `nobody` (the runner switches to it, as the daemon
does); otherwise the caller's own account. Needs strace (Debian package strace):
without it the script says so and exits 0. Postfix is not measured here
(BASELINE.md: 2-3 per message).
"""
import getpass
import os
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
from bench_common import CLEAN_ENV, make_message  # noqa: E402

TOP = HERE.parent.parent
SYNCS = "fsync,fdatasync,sync_file_range,syncfs,sync"
SYNC_LINE = re.compile(r"^(\d+)\s+(fsync|fdatasync|sync_file_range|syncfs|sync)\((\d+)")


def traced(argv, trace: Path, stdin=None):
    """Runs ARGV under strace -f (syncs only, with the paths of descriptors)."""
    cmd = ["strace", "-f", "-y", "-e", f"trace={SYNCS}", "-o", str(trace)] + argv
    r = subprocess.run(cmd, stdin=stdin, env=CLEAN_ENV, capture_output=True, text=True)
    if r.returncode != 0:
        raise RuntimeError(f"{' '.join(argv)} exited {r.returncode}: {r.stderr.strip()[-300:]}")
    return [line for line in trace.read_text().splitlines() if SYNC_LINE.match(line)]


def one_format(bin_dir: Path, fmt: str, work: Path, message: Path, user: str):
    root = work / fmt
    root.mkdir()
    mail = root / "mail"
    mail.mkdir()
    mail.chmod(0o1777)
    conf = root / "mailroom.conf"
    conf.write_text(f"myhostname = bench.example\nspool_dir = {root}/spool\nmail_spool_dir = {mail}\n"
                    f"mailbox_format = {fmt}\nlog = {root}/mailroom.log\n")
    sendmail = [str(bin_dir / "sendmail"), "-C", str(conf), "-odq", "-i", user]
    runner = [str(bin_dir / "mta"), "-C", str(conf), "-q"]
    # Warm-up: the mailbox, its folders and the spool exist before the counted message.
    with open(message, "rb") as f:
        subprocess.run(sendmail, stdin=f, env=CLEAN_ENV, check=True)
    subprocess.run(runner, env=CLEAN_ENV, check=True)
    with open(message, "rb") as f:
        submit = traced(sendmail, root / "submit.trace", stdin=f)
    deliver = traced(runner, root / "deliver.trace")
    if list((root / "spool" / "queue").iterdir()):
        raise RuntimeError(f"{fmt}: the message is still queued: {(root / 'mailroom.log').read_text()[-300:]}")
    return submit, deliver


def main() -> int:
    bin_dir = Path(sys.argv[1] if len(sys.argv) > 1 else TOP / "build" / "bin").resolve()
    if not shutil.which("strace"):
        print("count_syncs: strace is not installed (Debian package strace): nothing measured")
        return 0
    for program in ("sendmail", "mta"):
        if not (bin_dir / program).is_file():
            print(f"count_syncs: no {bin_dir / program}: build first", file=sys.stderr)
            return 1
    user = "nobody" if os.geteuid() == 0 else getpass.getuser()
    work = Path(tempfile.mkdtemp(prefix="count-syncs."))
    work.chmod(0o755)
    try:
        message = work / "msg-4k"
        make_message(message, 4096)
        message.chmod(0o644)
        totals = {}
        for fmt in ("mbox", "maildir"):
            submit, deliver = one_format(bin_dir, fmt, work, message, user)
            totals[fmt] = (len(submit), len(deliver))
            print(f"{fmt}: one 4 KB message to {user}")
            for side, lines in (("sendmail -odq", submit), ("mta -q", deliver)):
                for line in lines:
                    # "PID fdatasync(3</path>) = 0": the call and what it synced.
                    print(f"  {side:14} {line.split(None, 1)[1]}")
        print()
        print("syncs per message   sendmail   mta -q   total")
        for fmt, (s, d) in totals.items():
            print(f"{fmt:18} {s:9} {d:8} {s + d:7}")
        print("(Postfix 3.7, BASELINE.md: 2-3 per message)")
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
