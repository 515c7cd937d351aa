#!/usr/bin/python3
"""Alias benchmark: mailroom's sendmail + mta daemon side by side with Postfix, in one run.

usage: bench_alias.py [--quick] [--members K] [--messages N] [--pipe-messages M]
                      [--runs R] [--out FILE] [--keep] [BIN_DIR]

(a) Fan-out. N (20) messages of 4096 bytes, each `sendmail -i list` to an alias of K
    (100) local users, each with a Maildir: timed from the first submission until all
    N x K files are in the K Maildirs (new/ and cur/). Deliveries per second.
    Target: mailroom at least 2x Postfix.
(b) Pipe. M (500) messages, each `sendmail -i pipe` to an alias `pipe: |SCRIPT`, where
    SCRIPT is a tiny /bin/sh script that reads the message (cat > /dev/null) and then
    appends one line to a counter file: timed from the first submission until the
    counter has M lines. Messages per second. Target: mailroom at least Postfix's.
    The command has no shell metacharacters, as a real pipe alias (procmail, a list
    manager) rarely has: Postfix's local(8) then execs it directly, mailroom always
    runs `/bin/sh -c COMMAND` (docs/targets.md); both then run the script's sh + cat.
One submitter (tests/bench/submit_loop.py), RUNS (3) runs per system and workload,
mailroom and Postfix interleaved (order alternating), one warm-up run each; medians.

The K users: no real account is made. Both systems see them through nss_wrapper
(LD_PRELOAD of libnss_wrapper.so, NSS_WRAPPER_PASSWD/GROUP files in the temp folder):
mailroom's `mta -d` gets the three variables in its environment, Postfix's master and
every daemon get them through main.cf's import_environment (NAME=VALUE entries, which
the postfix command puts in the environment it starts master with). Each user has
a uid of its own (40000 + i) and nobody's group, as the members of a real list do, so
every delivery switches to another user on both sides (a per-user delivery process
cannot serve two members); their homes are empty folders under the temp folder owned
by their users (both systems look for a .forward there). default_privs (nobody, in the same passwd file)
runs the pipe command on both sides: both aliases databases are owned by root.
The sendmail submissions run without nss_wrapper on both sides (the submitter, root,
is in the real passwd file; recipients are resolved by the daemons).

CPU: the daemon's process tree (Postfix's master, mailroom's mta -d, exited children
included, bench_common.tree_cpu_seconds) sampled before the first submission and 1 s
after the last delivery, per delivery (a) or per message (b); the submission side
(sendmail, and Postfix's postdrop) from the submission driver's getrusage; and this
process's own polling of the Maildirs.

Runs as root; everything lives in one mktemp -d folder (removed at the end unless
--keep); /etc/postfix is only read; nothing listens on a network address. Exit 1
only when the benchmark cannot be set up (not root, Postfix or nss_wrapper missing,
Postfix's warm-up failing: the users or the alias are not seen); a missed target or
a mailroom failure is reported in the table. The table goes to stdout and to FILE
(build/bench/alias.txt).
"""
import argparse
import datetime
import grp
import os
import platform
import pwd
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from bench_common import (CLEAN_ENV, RunFailed, log, make_message, median, set_aside, tail,
                          timed_submission)
from bench_mailroom import Mailroom, missing_programs
from bench_postfix import Postfix, postfix_version

TOP = Path(__file__).resolve().parent.parent.parent
NSS_WRAPPER = "/usr/lib/x86_64-linux-gnu/libnss_wrapper.so"
POSTALIAS = "/usr/sbin/postalias"
NOBODY = 65534
FIRST_UID = 40000  # the K users' uids: FIRST_UID, FIRST_UID + 1, ...
FANOUT_TARGET = 2.0
PIPE_TARGET = 1.0
SETTLE = 1.0
WORKLOADS = ("fanout", "pipe")


def parse_args():
    p = argparse.ArgumentParser(description="mailroom vs Postfix alias benchmark")
    p.add_argument("bin_dir", nargs="?", default=str(TOP / "build" / "bin"))
    p.add_argument("--quick", action="store_true",
                   help="smoke run: 5 messages to the list, 100 to the pipe, 1 run")
    p.add_argument("--members", type=int, default=100, help="users in the list alias (100)")
    p.add_argument("--messages", type=int, help="messages to the list alias per run (20)")
    p.add_argument("--pipe-messages", type=int, help="messages to the pipe alias per run (500)")
    p.add_argument("--runs", type=int, help="runs per system and workload (3)")
    p.add_argument("--out", default=str(TOP / "build" / "bench" / "alias.txt"))
    p.add_argument("--keep", action="store_true", help="keep the work folder (logs)")
    a = p.parse_args()
    a.messages = a.messages or (5 if a.quick else 20)
    a.pipe_messages = a.pipe_messages or (100 if a.quick else 500)
    a.runs = a.runs or (1 if a.quick else 3)
    return a


# ---- the users, the aliases, the pipe script --------------------------------------
def user_names(k: int):
    return [f"user{i:03d}" for i in range(k)]


def write_users(work: Path, names) -> dict:
    """nss_wrapper's passwd and group files; returns the environment that uses them.
    nobody comes first, so a lookup of uid 65534 still answers nobody."""
    home = work / "home"
    home.mkdir(mode=0o755)
    passwd = ["nobody:x:65534:65534:nobody:/nonexistent:/usr/sbin/nologin",
              "root:x:0:0:root:/root:/bin/sh"]
    for uid, name in enumerate(names, FIRST_UID):
        h = home / name
        h.mkdir(mode=0o755)
        os.chown(h, uid, NOBODY)
        passwd.append(f"{name}:x:{uid}:{NOBODY}:Bench {name}:{h}:/bin/sh")
    group = ["root:x:0:", "nogroup:x:65534:"]
    # Postfix's own accounts (mail_owner postfix, setgid_group postdrop), copied from
    # the machine's: with nss_wrapper the files below are all its daemons can see.
    for user in ("postfix",):
        pw = pwd.getpwnam(user)
        passwd.append(f"{pw.pw_name}:x:{pw.pw_uid}:{pw.pw_gid}::{pw.pw_dir}:/usr/sbin/nologin")
    for name in ("postfix", "postdrop"):
        gr = grp.getgrnam(name)
        group.append(f"{gr.gr_name}:x:{gr.gr_gid}:")
    (work / "passwd").write_text("\n".join(passwd) + "\n")
    (work / "group").write_text("\n".join(group) + "\n")
    for f in ("passwd", "group"):
        (work / f).chmod(0o644)
    return {"LD_PRELOAD": NSS_WRAPPER, "NSS_WRAPPER_PASSWD": str(work / "passwd"),
            "NSS_WRAPPER_GROUP": str(work / "group")}


def check_nss(env: dict, name: str) -> None:
    """The fake users resolve through nss_wrapper (else nothing below can work)."""
    res = subprocess.run(["getent", "passwd", name], env={**CLEAN_ENV, **env},
                         capture_output=True, text=True)
    if res.returncode != 0 or f":{NOBODY}:Bench {name}:" not in res.stdout:
        raise SystemExit(f"bench_alias: nss_wrapper does not resolve {name}: "
                         f"{res.stdout.strip()} {res.stderr.strip()}")


def write_pipe_script(folder: Path) -> Path:
    """The pipe alias's command, and beside it its counter file (owned by nobody)."""
    folder.mkdir(mode=0o755)
    os.chown(folder, NOBODY, NOBODY)
    script = folder / "count.sh"
    script.write_text("#!/bin/sh\n"
                      "# Reads the message, then counts one run (one line, appended).\n"
                      "/bin/cat >/dev/null\n"
                      f"echo . >>{folder / 'count'}\n")
    script.chmod(0o755)
    return script


def aliases_text(names, script: Path) -> str:
    """postmaster, the list (ten members per continuation line, as a hand-kept list
    looks) and the pipe alias."""
    lines = ["# bench_alias.py", "postmaster: root"]
    chunks = [", ".join(names[i:i + 10]) for i in range(0, len(names), 10)]
    for i, chunk in enumerate(chunks):
        lead = "list: " if i == 0 else "    "
        lines.append(lead + chunk + ("," if i + 1 < len(chunks) else ""))
    lines.append(f"pipe: |{script}")
    return "\n".join(lines) + "\n"


# ---- counting what arrived ---------------------------------------------------------
class MaildirSetCounter:
    """Messages in K Maildirs (files in new/ and cur/), each of which is to get
    PER_BOX. A full scan is 2 x K listdirs, about 4 ms at K = 100 with 20 files each:
    polled every 10 ms while a run waits, that would take a good part of a core
    from the systems under test. So a box that holds PER_BOX is not scanned again,
    and until 95% of all have been seen the boxes are rescanned only every 250 ms
    (only the end of a run is timed), then at every call, so the last delivery is
    still seen within 10 ms."""

    SCAN_INTERVAL = 0.25

    def __init__(self, boxes, per_box: int):
        self.counts = {box: 0 for box in boxes}
        self.per_box = per_box
        self.expected = per_box * len(self.counts)
        self.seen = 0
        self.last_scan = 0.0

    def count(self) -> int:
        now = time.monotonic()
        if self.seen < 0.95 * self.expected and now - self.last_scan < self.SCAN_INTERVAL:
            return self.seen
        self.last_scan = now
        for box, got in self.counts.items():
            if got >= self.per_box:
                continue
            total = 0
            for sub in ("new", "cur"):
                try:
                    total += sum(1 for n in os.listdir(box / sub) if not n.startswith("."))
                except FileNotFoundError:
                    pass
            self.counts[box] = total
        self.seen = sum(self.counts.values())
        return self.seen

    def recount(self) -> int:
        """Every box scanned again: the check after a run, which sees a duplicate
        delivery into a box that was already complete."""
        self.counts = dict.fromkeys(self.counts, 0)
        self.last_scan = 0.0
        self.seen = 0
        return self.count()


class LineCounter:
    """Lines in the pipe script's counter file: its size over 2 ("." and a newline)."""

    def __init__(self, path: Path):
        self.path = path

    def count(self) -> int:
        try:
            return os.stat(self.path).st_size // 2
        except FileNotFoundError:
            return 0

    recount = count


# ---- one system under test ---------------------------------------------------------
class Side:
    """One system with its folders: the instance (bench_postfix.Postfix or
    bench_mailroom.Mailroom), its aliases file, its pipe script and its mail folder."""

    def __init__(self, inst, folder: Path, names, aliases_argv):
        self.inst = inst
        self.name = inst.name
        self.folder = folder
        self.names = names
        self.aliases_argv = aliases_argv
        self.script = write_pipe_script(folder / "pipe")
        self.counter = folder / "pipe" / "count"
        self.aliases = folder / "aliases"

    def compile_aliases(self) -> None:
        self.aliases.write_text(aliases_text(self.names, self.script))
        res = subprocess.run(self.aliases_argv, env=CLEAN_ENV, capture_output=True, text=True)
        if res.returncode != 0:
            raise RuntimeError(f"{' '.join(self.aliases_argv)} exited {res.returncode}: "
                               f"{res.stderr.strip()}")

    def boxes(self):
        return [self.inst.spool / n for n in self.names]

    def reset(self) -> None:
        for box in self.boxes():
            set_aside(box)
        if self.counter.exists():
            self.counter.unlink()

    def log_tail(self) -> str:
        return self.inst.log_tail()


def one_run(side: Side, workload: str, messages: int, members: int, message: Path) -> dict:
    """MESSAGES submissions to the list (fan-out) or the pipe alias, into empty
    Maildirs / an empty counter; returns the figures of the run."""
    side.reset()
    if workload == "fanout":
        expected = messages * members
        counter = MaildirSetCounter(side.boxes(), messages)
        recipient = "list"
    else:
        expected = messages
        counter = LineCounter(side.counter)
        recipient = "pipe"
    cpu0 = side.inst.cpu_seconds()
    own0 = time.process_time()

    def probe() -> int:
        # timed_submission waits for MESSAGES; a message has arrived when all its
        # deliveries have (more than expected reads as more than MESSAGES: an error).
        got = counter.count()
        return messages + 1 if got > expected else got * messages // expected

    secs, submit_cpu, orphans = timed_submission(
        messages, 1, message, side.inst.submit_argv(recipient), probe=probe,
        timeout=60 + expected / 10)
    # ...trailing work after the last delivery (state records, queue file removal).
    time.sleep(SETTLE)
    deliver_cpu = side.inst.cpu_seconds() - cpu0
    own = time.process_time() - own0
    got = counter.recount()
    if got != expected:
        raise RunFailed(f"{got} arrived for {expected} expected")
    return {"secs": secs, "rate": expected / secs, "units": expected, "messages": messages,
            "submit_ms": 1000 * submit_cpu / messages, "deliver_ms": 1000 * deliver_cpu / expected,
            "poll": own, "orphans": orphans}


def _fmt(v, spec=".1f"):
    return "-" if v is None else format(v, spec)


def _cell(results, key, field):
    return median(r[field] for r in results.get(key, []))


def table(args, bin_dir, missing, work, results, failed, commands, elapsed) -> str:
    now = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    fan_units = args.messages * args.members
    out = [
        "mailroom vs Postfix — alias expansion: a list of local users, and a pipe alias",
        f"date: {now}   host: {platform.node()}, {os.cpu_count()} CPUs, {platform.release()}",
        f"mailroom: {bin_dir} (sendmail, mta -d daemon)" if not missing else
        f"mailroom: not built (no {', '.join(missing)} in {bin_dir})",
        f"Postfix: {postfix_version()}, private instance (Debian master.cf, no chroot, no "
        "smtp listener, alias_maps = hash:)",
        f"users: {args.members} nss_wrapper users, uids {FIRST_UID}.. (one each), nobody's group, "
        "Maildirs in a mode 1777 "
        "folder (mail_spool_dir / mail_spool_directory ending in /)",
        f"(a) {args.messages} x `sendmail -i list` (4096 bytes) to {args.members} members "
        f"= {fan_units} Maildir deliveries per run",
        f"(b) {args.pipe_messages} x `sendmail -i pipe`, pipe: |count.sh (sh: cat >/dev/null; "
        "echo . >>count), run as nobody (default_privs)",
        f"one submitter; {args.runs} run(s) per system and workload, interleaved; medians",
        "",
        "%-22s %11s %11s %8s %9s" % ("workload", "mailroom", "Postfix", "ratio", "target"),
    ]
    labels = {"fanout": "(a) deliveries/s", "pipe": "(b) messages/s"}
    targets = {"fanout": FANOUT_TARGET, "pipe": PIPE_TARGET}
    verdicts = []
    for w in WORKLOADS:
        m = _cell(results, ("mailroom", w), "rate")
        p = _cell(results, ("Postfix", w), "rate")
        r = None if m is None or not p else m / p
        verdict = "-" if r is None else ("met" if r >= targets[w] else "NOT met")
        verdicts.append(verdict)
        out.append("%-22s %11s %11s %7sx %9s" % (labels[w], _fmt(m), _fmt(p), _fmt(r, ".2f"),
                                                  f"≥{targets[w]:.0f}x {verdict}"))
    out.append("")
    out.append("CPU ms (median): daemon tree per delivery (a) / per message (b); "
               "submission (sendmail [+ postdrop]) per message;")
    out.append("total = both per delivery (a) / per message (b): what bounds the rate "
               "on a busy 2-core machine")
    out.append("%-18s %9s %9s %7s | %9s %9s | %9s %9s %7s" % (
        "", "daemon mr", "Postfix", "ratio", "submit mr", "Postfix", "total mr", "Postfix",
        "ratio"))
    for w in WORKLOADS:
        row = [labels[w].split()[0] + (" per delivery" if w == "fanout" else " per message")]
        per = args.members if w == "fanout" else 1  # submissions are per message
        d = {n: _cell(results, (n, w), "deliver_ms") for n in ("mailroom", "Postfix")}
        sub = {n: _cell(results, (n, w), "submit_ms") for n in ("mailroom", "Postfix")}
        tot = {n: None if d[n] is None or sub[n] is None else d[n] + sub[n] / per for n in d}
        ratio = lambda x: None if x["mailroom"] is None or not x["Postfix"] else \
            x["mailroom"] / x["Postfix"]
        out.append("%-18s %9s %9s %6sx | %9s %9s | %9s %9s %6sx" % (
            row[0], _fmt(d["mailroom"], ".2f"), _fmt(d["Postfix"], ".2f"),
            _fmt(ratio(d), ".2f"), _fmt(sub["mailroom"], ".2f"), _fmt(sub["Postfix"], ".2f"),
            _fmt(tot["mailroom"], ".2f"), _fmt(tot["Postfix"], ".2f"), _fmt(ratio(tot), ".2f")))
    out.append("")
    out.append("Runs (rate; wall s; daemon CPU s in all):")
    for key in sorted(results):
        figs = results[key]
        out.append(f"  {key[0]:8} {key[1]:6}: " + "  ".join(
            f"{f['rate']:.1f} ({f['secs']:.2f} s, {f['deliver_ms'] * f['units'] / 1000:.2f} cpu)"
            for f in figs) + f"  polling ≤ {max(f['poll'] for f in figs):.2f} CPU s/run")
    for w in WORKLOADS:
        m = {f["run"]: f["rate"] for f in results.get(("mailroom", w), [])}
        p = {f["run"]: f["rate"] for f in results.get(("Postfix", w), [])}
        pairs = [m[r] / p[r] for r in sorted(m) if r in p and p[r]]
        if pairs:
            out.append(f"  {w:6} mailroom/Postfix per interleaved run pair: " +
                       " ".join(f"{x:.2f}" for x in pairs) + f" (median {median(pairs):.2f})")
    for key, why in sorted(failed.items()):
        out.append(f"  {key[0]:8} {key[1]:6}: FAILED: {why}")
    out.append("")
    out.append("Command lines (folders under the temp folder):")
    for what, cmd in commands:
        out.append(f"  {what}: {cmd}")
    out.append(f"targets: (a) {'met' if verdicts[0] == 'met' else 'not met'}; "
               f"(b) {'met' if verdicts[1] == 'met' else 'not met'}   whole run: "
               f"{elapsed / 60:.1f} min")
    return "\n".join(out) + "\n"


def main() -> int:
    args = parse_args()
    if os.geteuid() != 0:
        print("bench_alias: must run as root (private Postfix instance, deliveries as the "
              "users)", file=sys.stderr)
        return 1
    for need in ("/usr/sbin/postfix", "/usr/sbin/sendmail", POSTALIAS, NSS_WRAPPER):
        if not os.path.exists(need):
            print(f"bench_alias: no {need} (Debian packages postfix, libnss-wrapper)",
                  file=sys.stderr)
            return 1
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    bin_dir = Path(args.bin_dir).resolve()
    missing = missing_programs(bin_dir, ("sendmail", "mta", "newaliases"))
    work = Path(tempfile.mkdtemp(prefix="alias-bench.", dir=os.environ.get("TMPDIR", "/tmp")))
    work.chmod(0o755)
    results, failed, commands = {}, {}, []
    sides = []
    setup_error = None
    try:
        message = work / "msg-4k"
        make_message(message, 4096)
        message.chmod(0o644)
        names = user_names(args.members)
        nss = write_users(work, names)
        check_nss(nss, names[-1])
        log(f"alias bench: work folder {work}; {args.members} members, {args.messages} "
            f"messages to the list, {args.pipe_messages} to the pipe, {args.runs} runs")

        pf_root = work / "postfix"
        import_env = " ".join(["MAIL_CONFIG MAIL_DEBUG MAIL_LOGTAG TZ XAUTHORITY DISPLAY "
                               "LANG=C POSTLOG_SERVICE POSTLOG_HOSTNAME"] +
                              [f"{k}={v}" for k, v in nss.items()])
        pf = Postfix(pf_root, "maildir", main_cf={
            "alias_maps": f"hash:{pf_root}/aliases",
            "alias_database": f"hash:{pf_root}/aliases",
            "import_environment": import_env,
        })
        pf.configure()
        sides.append(Side(pf, pf_root, names,
                          [POSTALIAS, "-c", str(pf.etc), f"hash:{pf_root}/aliases"]))
        if not missing:
            mr_root = work / "mailroom"
            mr = Mailroom(bin_dir, mr_root, "maildir", extra_conf=f"aliases = {mr_root}/aliases\n",
                          env=nss)
            mr.configure()
            sides.append(Side(mr, mr_root, names,
                              [str(bin_dir / "newaliases"), "-C", str(mr.conf)]))
        for side in sides:
            side.compile_aliases()
            commands.append((f"{side.name} aliases", " ".join(side.aliases_argv)))
            commands.append((f"{side.name} daemon", " ".join(side.inst.start_argv())))
            commands.append((f"{side.name} submission", " ".join(side.inst.submit_argv("list"))))
        commands.append(("pipe alias", f"pipe: |{work}/SYSTEM/pipe/count.sh"))
        commands.append(("Postfix main.cf additions", f"alias_maps = hash:{pf_root}/aliases; "
                         f"import_environment = ... {' '.join(f'{k}=...' for k in nss)}"))

        live = []
        for side in sides:
            try:
                side.inst.start()
                live.append(side)
                # Warm-up and check: one message to the list, 20 to the pipe.
                one_run(side, "fanout", 1, args.members, message)
                one_run(side, "pipe", 20, args.members, message)
            except (RunFailed, RuntimeError, OSError) as e:
                why = f"{e} [{side.log_tail()}]"
                log(f"  {side.name} warm-up: {why}")
                if side.name == "Postfix":
                    setup_error = f"Postfix warm-up failed (users or alias not seen?): {why}"
                    return 1
                for w in WORKLOADS:
                    failed[(side.name, w)] = f"warm-up: {why}"
        started = time.monotonic()
        for r in range(args.runs):
            for i, w in enumerate(WORKLOADS):
                order = live if (r + i) % 2 == 0 else live[::-1]
                count = args.messages if w == "fanout" else args.pipe_messages
                for side in order:
                    key = (side.name, w)
                    if key in failed:
                        continue
                    try:
                        fig = one_run(side, w, count, args.members, message)
                    except (RunFailed, RuntimeError, OSError) as e:
                        failed[key] = f"{e} [{side.log_tail()}]"
                        log(f"  {side.name} {w}: {failed[key]}")
                        continue
                    fig["run"] = r
                    results.setdefault(key, []).append(fig)
                    log(f"  {side.name:8} {w:6} run {r + 1}: {fig['secs']:6.2f} s "
                        f"{fig['rate']:7.1f}/s  cpu ms: daemon {fig['deliver_ms']:.2f}/unit, "
                        f"submit {fig['submit_ms']:.2f}/msg; polling {fig['poll']:.2f} s")
        elapsed = time.monotonic() - started
        text = table(args, bin_dir, missing, work, results, failed, commands, elapsed)
    finally:
        for side in sides:
            side.inst.stop()
        if setup_error:
            print(f"bench_alias: {setup_error}", file=sys.stderr)
        if args.keep:
            log(f"alias bench: work folder kept: {work}")
        else:
            shutil.rmtree(work, ignore_errors=True)
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(text)
    print()
    print(text, end="")
    print(f"(also in {out})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
