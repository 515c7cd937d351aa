#!/usr/bin/python3
"""Sequential delivery loop: start COMMAND once per message, stdin from MESSAGE.

usage: deliver_loop.py COUNT MESSAGE -- COMMAND [ARG...]

The same driver runs every program under test, so the per-process overhead it
adds (one posix_spawn, one open of MESSAGE as fd 0, one wait4) is identical
for all of them. Prints "<count> <seconds> <cpu-seconds>" on stdout: the wall
time of the whole loop, and the user+system CPU time of the delivery processes
(wait4 rusage), which the machine's disk noise does not inflate. Exits 1 at
the first delivery that fails, with its exit status.
"""
import os
import sys
import time


def main() -> int:
    if len(sys.argv) < 5 or sys.argv[3] != "--":
        print(__doc__, file=sys.stderr)
        return 2
    count = int(sys.argv[1])
    message = sys.argv[2]
    argv = sys.argv[4:]
    prog = argv[0]
    env = dict(os.environ)
    actions = [(os.POSIX_SPAWN_OPEN, 0, message, os.O_RDONLY, 0)]
    spawn = os.posix_spawn
    wait4 = os.wait4
    cpu = 0.0
    start = time.perf_counter()
    for i in range(count):
        pid = spawn(prog, argv, env, file_actions=actions)
        _, status, ru = wait4(pid, 0)
        cpu += ru.ru_utime + ru.ru_stime
        if status != 0:
            code = os.waitstatus_to_exitcode(status)
            print(f"deliver_loop: delivery {i + 1} of {count}: {prog} exited {code}",
                  file=sys.stderr)
            return 1
    elapsed = time.perf_counter() - start
    print(f"{count} {elapsed:.6f} {cpu:.6f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
