"""mailroom under test for the queue benchmark, entirely under one folder.

Owns ROOT/{mailroom.conf,spool,mail,mailroom.log,mta.out}. The configuration holds
the keys spool_dir, mail_spool_dir, mailbox_format, log and myhostname of SPEC
section 2, plus what the caller adds (relayhost for the deferring runs); everything
else is mailroom's default. The daemon is `mta -C CONF -d`,
a child of this process in the foreground, stopped with SIGTERM.

Invariants: nothing outside ROOT is written; the daemon started here is always
stopped and waited for by stop() (queue_bench.py calls it in a finally). It must
never signal any process but the daemon it started.
"""
import os
import signal
import subprocess
import time
from pathlib import Path

from bench_common import CLEAN_ENV, set_aside, tail, tree_cpu_seconds

# The throughput half needs sendmail and mta; --mailq needs mailq as well.
PROGRAMS = ("sendmail", "mta")


def missing_programs(bin_dir: Path, programs=PROGRAMS):
    return [p for p in programs if not (bin_dir / p).is_file()]


class Mailroom:
    name = "mailroom"

    def __init__(self, bin_dir: Path, root: Path, mailbox_format: str, extra_conf: str = "",
                 env: dict = None):
        self.bin = bin_dir
        # Added to the daemon's environment (bench_alias.py: nss_wrapper's users).
        self.env = {**CLEAN_ENV, **(env or {})}
        self.extra_conf = extra_conf
        self.root = root
        self.format = mailbox_format
        self.conf = root / "mailroom.conf"
        self.spool = root / "mail"
        self.logfile = root / "mailroom.log"
        self.daemon = None
        self.daemon_out = None

    def configure(self) -> None:
        self.root.mkdir(parents=True, exist_ok=True)
        self.root.chmod(0o755)
        # Same mail folder mode as the Postfix side (see bench_postfix.py): 1777, so
        # the runner, delivering as nobody, can create nobody's mailbox itself.
        self.spool.mkdir(exist_ok=True)
        self.spool.chmod(0o1777)
        self.conf.write_text(
            f"# Benchmark instance: nothing outside {self.root}.\n"
            f"myhostname = bench.example\n"
            f"spool_dir = {self.root}/spool\n"
            f"mail_spool_dir = {self.spool}\n"
            f"mailbox_format = {self.format}\n"
            f"log = {self.logfile}\n"
            + self.extra_conf
            # BENCH_MAILROOM_CONF: extra "key = value" lines, to try a setting (delivery_workers = 4).
            + os.environ.get("BENCH_MAILROOM_CONF", "").replace("\\n", "\n"))

    # ---- process control -------------------------------------------------------
    def start_argv(self):
        return [str(self.bin / "mta"), "-C", str(self.conf), "-d"]

    def start(self) -> None:
        self.daemon_out = open(self.root / "mta.out", "ab")
        self.daemon = subprocess.Popen(self.start_argv(), env=self.env,
                                       stdin=subprocess.DEVNULL, stdout=self.daemon_out,
                                       stderr=subprocess.STDOUT)
        # No readiness signal in SPEC: a submission made before the daemon watches
        # the queue is still queued durably, so a short settle is enough; a daemon
        # that refuses its configuration exits at once and is reported here.
        time.sleep(0.5)
        if self.daemon.poll() is not None:
            code = self.daemon.returncode
            self.daemon = None
            raise RuntimeError(f"mta -d exited {code}: {tail(self.root / 'mta.out', 3)} "
                               f"{tail(self.logfile, 3)}")

    def stop(self) -> None:
        if self.daemon is not None:
            if self.daemon.poll() is None:
                self.daemon.send_signal(signal.SIGTERM)
                try:
                    self.daemon.wait(timeout=15)
                except subprocess.TimeoutExpired:
                    self.daemon.kill()
                    self.daemon.wait()
            self.daemon = None
        if self.daemon_out:
            self.daemon_out.close()
            self.daemon_out = None

    def cpu_seconds(self) -> float:
        """CPU of `mta -d` and every process it started, exited ones included."""
        if self.daemon is None or self.daemon.poll() is not None:
            raise RuntimeError(f"mta -d is not running: {tail(self.root / 'mta.out', 3)}")
        return tree_cpu_seconds(self.daemon.pid)

    # ---- mail ------------------------------------------------------------------
    def submit_argv(self, recipient: str = "nobody", queue_only: bool = False):
        argv = [str(self.bin / "sendmail"), "-C", str(self.conf)]
        if queue_only:
            argv.append("-odq")
        return argv + ["-i", recipient]

    def mailbox(self) -> Path:
        return self.spool / "nobody"

    def reset_mailbox(self) -> None:
        set_aside(self.mailbox())

    def mailq_shell(self) -> str:
        return f"{self.bin / 'mailq'} -C {self.conf} | tail -1"

    def runner_argv(self):
        return [str(self.bin / "mta"), "-C", str(self.conf), "-q"]

    def log_tail(self) -> str:
        return f"{tail(self.logfile, 3)} {tail(self.root / 'mta.out', 2)}"
