#!/usr/bin/python3
"""Submission loop: run COMMAND COUNT times, at most PARALLEL at once, stdin from MESSAGE.

usage: submit_loop.py COUNT PARALLEL MESSAGE -- COMMAND [ARG...]

The same driver submits to every mail system under test, so the overhead it adds
(one posix_spawn, one open of MESSAGE as fd 0, one wait4 per message) is the same
for all. It keeps PARALLEL submissions running until COUNT have been started.

Prints "<count> <t_start> <seconds> <cpu-seconds> <orphans>" on stdout:
  t_start      time.monotonic() just before the first spawn (CLOCK_MONOTONIC is
               system-wide, so the caller compares it with its own clock),
  seconds      wall time until the last submission exited,
  cpu-seconds  getrusage(RUSAGE_CHILDREN) user+system delta over the loop: every
               submission process and everything it waited for (Postfix's
               sendmail waits for postdrop, so both count),
  orphans      processes a submission left behind (a background child it did not
               wait for). This process is a child subreaper, so they are re-parented
               here, reaped, and their CPU is in cpu-seconds too rather than lost.
Exits 1 at the first submission that fails, with its exit status on stderr. It never
kills anything: orphans still running after ORPHAN_WAIT seconds are left alone and
reported on stderr.
"""
import ctypes
import os
import resource
import sys
import time

PR_SET_CHILD_SUBREAPER = 36
ORPHAN_WAIT = 60.0


def become_subreaper() -> None:
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) != 0:
        err = ctypes.get_errno()
        print(f"submit_loop: prctl(PR_SET_CHILD_SUBREAPER): {os.strerror(err)}", file=sys.stderr)


def children_cpu() -> float:
    ru = resource.getrusage(resource.RUSAGE_CHILDREN)
    return ru.ru_utime + ru.ru_stime


def reap_orphans(deadline: float) -> int:
    """Reaps whatever is left (orphans only by now) until none or the deadline."""
    reaped = 0
    while True:
        try:
            pid, _ = os.waitpid(-1, os.WNOHANG)
        except ChildProcessError:
            return reaped
        if pid:
            reaped += 1
        elif time.monotonic() > deadline:
            print("submit_loop: orphans still running after "
                  f"{ORPHAN_WAIT:.0f} s; left alone", file=sys.stderr)
            return reaped
        else:
            time.sleep(0.01)


def main() -> int:
    if len(sys.argv) < 6 or sys.argv[4] != "--":
        print(__doc__, file=sys.stderr)
        return 2
    count = int(sys.argv[1])
    parallel = max(1, int(sys.argv[2]))
    message = sys.argv[3]
    argv = sys.argv[5:]
    prog = argv[0]
    env = dict(os.environ)
    actions = [(os.POSIX_SPAWN_OPEN, 0, message, os.O_RDONLY, 0)]
    become_subreaper()

    running = set()
    started = done = orphans = 0
    cpu0 = children_cpu()
    t_start = time.monotonic()
    while done < count:
        while len(running) < parallel and started < count:
            running.add(os.posix_spawn(prog, argv, env, file_actions=actions))
            started += 1
        pid, status = os.waitpid(-1, 0)
        if pid not in running:
            orphans += 1
            continue
        running.discard(pid)
        done += 1
        if status != 0:
            code = os.waitstatus_to_exitcode(status)
            print(f"submit_loop: submission {done} of {count}: {prog} exited {code}",
                  file=sys.stderr)
            for other in running:
                os.waitpid(other, 0)
            return 1
    elapsed = time.monotonic() - t_start
    orphans += reap_orphans(time.monotonic() + ORPHAN_WAIT)
    cpu = children_cpu() - cpu0
    print(f"{count} {t_start:.6f} {elapsed:.6f} {cpu:.6f} {orphans}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
