#!/usr/bin/env python3
"""`|command` and `/file` targets reached through aliases (SPEC sections 4, 5;
docs/targets.md, docs/aliases.md "Who targets run as"), delivered by the queue
runner after sendmail -odq:

- a command gets the message on stdin (Return-Path and Delivered-To first) and
  exactly the environment SENDER RECIPIENT ORIGINAL_RECIPIENT USER HOME LOCAL
  EXTENSION DOMAIN SHELL PATH; from a root-owned aliases database it runs as
  default_privs (nobody), from an :include: file as the file's owner;
- exit 0 delivered; 75 deferred and retried alone (the other members are not
  delivered again); other codes bounced with the command's output in the bounce;
  output starting `4.x.y text` / `5.x.y text` decides; a command still running at
  command_timeout is killed with its process group (its grandchild too) and bounced;
- uid 0 never runs a command; allow_mail_to_commands / allow_mail_to_files.
Each command leaves its proof of running in out/; each "never ran" looks for it."""
import mailbox
import os
import signal
import time
import unittest

import aliastest
import mrtest

D = aliastest.DOMAIN

RECORD = """id -u > $OUT/uid
id -g > $OUT/gid
pwd > $OUT/cwd
env > $OUT/env
cat > $OUT/stdin
"""

ENV_NAMES = {"SENDER", "RECIPIENT", "ORIGINAL_RECIPIENT", "USER", "HOME", "LOCAL", "EXTENSION", "DOMAIN",
             "SHELL", "PATH"}
SHELL_OWN = {"PWD", "OLDPWD", "SHLVL", "_"}  # set by /bin/sh itself, not inherited


def read_env(text):
    env = {}
    for line in text.splitlines():
        name, _, value = line.partition("=")
        env[name] = value
    return env


class Commands(aliastest.AliasCase):
    config = {"allow_mail_to_commands": "alias, forward, include"}

    def test_a_command_gets_the_message_and_its_environment_and_runs_as_default_privs(self):
        record = self.script("record.sh", RECORD)
        self.aliases(f"postmaster: root\nouter: rec+foo\nrec: \"|{record}\"\n")
        queue_id = self.send(["outer"], "p1")
        self.assertDone()
        self.assertTrue(os.path.exists(self.out_path("stdin")), "the command did not run")
        env = read_env(self.read_out("env"))
        self.assertEqual(set(env) - SHELL_OWN, ENV_NAMES, env)
        self.assertEqual(env["SENDER"], f"alice@{D}")
        self.assertEqual(env["RECIPIENT"], f"rec+foo@{D}")
        self.assertEqual(env["ORIGINAL_RECIPIENT"], f"outer@{D}")
        self.assertEqual(env["LOCAL"], "rec+foo")
        self.assertEqual(env["EXTENSION"], "foo")
        self.assertEqual(env["DOMAIN"], D)
        name, uid, home, shell = aliastest.aliases_runner()
        self.assertEqual(env["USER"], name)
        self.assertEqual(env["HOME"], home or self.home(name))
        self.assertEqual(env["SHELL"], shell)
        self.assertEqual(env["PATH"], "/usr/bin:/bin")
        self.assertEqual(self.read_out("uid").strip(), str(uid))
        if mrtest.IS_ROOT:
            self.assertEqual(self.read_out("gid").strip(), "65534")
            self.assertEqual(self.read_out("cwd").strip(), "/")  # nobody's home cannot be entered
        stdin = self.read_out("stdin")
        self.assertTrue(stdin.startswith(f"Return-Path: <alice@{D}>\nDelivered-To: rec+foo@{D}\n"), stdin[:300])
        self.assertIn("X-Seq: p1\n", stdin)
        self.assertTrue(stdin.endswith("\n\nhello\n"), stdin[-100:])
        self.assertNotIn("\nFrom ", "\n" + stdin)  # no mbox From line
        self.assertLogged(queue_id, f"rec+foo@{D}", orig_to=f"outer@{D}", dsn="2.")

    @unittest.skipUnless(mrtest.IS_ROOT, "needs root: the command must run with the include file owner's uid")
    def test_a_command_from_an_include_file_runs_as_the_files_owner(self):
        record = self.script("record.sh", RECORD)
        members = os.path.join(self.box.dir, "members")
        with open(members, "w") as f:
            f.write(f"bob\n\"|{record}\"\n")
        os.chown(members, self.box.uids["carol"], self.box.uids["carol"])
        self.aliases(f"postmaster: root\nlist: :include:{members}\n")
        self.send(["list"], "p2")
        self.assertDone()
        self.assertEqual(self.read_out("uid").strip(), str(self.box.uids["carol"]))
        self.assertEqual(read_env(self.read_out("env"))["USER"], "carol")
        self.assertEqual(self.seqs("bob"), ["p2"])

    @unittest.skipUnless(mrtest.IS_ROOT, "needs root: the file must belong to root and the command run as nobody")
    def test_a_command_from_a_root_owned_include_file_runs_as_nobody_not_root(self):
        record = self.script("record.sh", RECORD)
        members = os.path.join(self.box.dir, "members")
        with open(members, "w") as f:
            f.write(f"\"|{record}\"\n")
        self.assertEqual(os.stat(members).st_uid, 0)
        self.aliases(f"postmaster: root\nlist: :include:{members}\n")
        self.send(["list"], "p3")
        self.assertDone()
        self.assertEqual(self.read_out("uid").strip(), "65534")
        self.assertEqual(read_env(self.read_out("env"))["USER"], "nobody")

    def test_exit_75_defers_and_only_the_command_is_tried_again(self):
        flaky = self.script("flaky.sh", """echo run >> $OUT/runs
if [ ! -e $OUT/once ]; then : > $OUT/once; echo "mailbox busy"; exit 75; fi
cat > $OUT/delivered
""")
        self.aliases(f"postmaster: root\nflaky: bob, \"|{flaky}\", carol\n")
        queue_id = self.send(["flaky"], "f1")
        self.assertEqual(self.box.queued(), [queue_id], "the deferred command should keep the entry")
        self.assertEqual(self.read_out("runs"), "run\n")
        self.assertCopies(["bob", "carol"], "f1", 1)
        self.assertLogged(queue_id, f"flaky@{D}", orig_to=f"flaky@{D}", status="deferred", dsn="4.")
        self.run_queue()
        self.assertDone()
        self.assertEqual(self.read_out("runs"), "run\nrun\n")
        self.assertIn("X-Seq: f1", self.read_out("delivered"))
        self.assertCopies(["bob", "carol"], "f1", 1)  # not delivered again
        self.assertLogged(queue_id, f"bob@{D}", orig_to=f"flaky@{D}", status="sent", count=1)
        self.assertLogged(queue_id, f"flaky@{D}", orig_to=f"flaky@{D}", status="sent", count=1)
        self.assertEqual(self.notices("alice"), [])

    def test_exit_1_bounces_with_the_commands_output(self):
        failing = self.script("failing.sh", "echo ran > $OUT/ran\necho 'no such list: quux-7781' >&2\nexit 1\n")
        self.aliases(f"postmaster: root\nfailing: \"|{failing}\", bob\n")
        queue_id = self.send(["failing"], "x1")
        self.assertDone()
        self.assertTrue(os.path.exists(self.out_path("ran")))
        self.assertEqual(self.seqs("bob"), ["x1"])
        self.assertNotice("alice", "5.3.0", r"no such list: quux-7781")
        self.assertLogged(queue_id, f"failing@{D}", orig_to=f"failing@{D}", status="bounced", dsn="5.3.0")

    def test_only_the_first_4_kb_of_the_output_go_into_the_bounce(self):
        chatty = self.script("chatty.sh", "echo start-of-output\nhead -c 20000 /dev/zero | tr '\\0' x\n"
                                          "echo; echo end-of-output\nexit 2\n")
        self.aliases(f"postmaster: root\nchatty: \"|{chatty}\"\n")
        self.send(["chatty"], "c1")
        self.assertDone()
        notice = self.assertNotice("alice", "5.3.0")
        # The human-readable part (long lines may be folded there).
        text = next(part for part in notice.walk() if part.get_content_type() == "text/plain")
        text = text.get_payload(decode=True).decode(errors="replace")
        self.assertIn("start-of-output", text)
        self.assertNotIn("end-of-output", text)
        self.assertGreater(text.count("x"), 3000, "the output is not in the bounce")
        self.assertLessEqual(text.count("x"), 4096, "more than 4 KB of output in the bounce")

    def test_output_4_2_1_defers_whatever_the_exit_code_and_shows_in_mailq(self):
        later = self.script("later.sh", "echo run >> $OUT/runs\necho '4.2.1 try later'\nexit 1\n")
        self.aliases(f"postmaster: root\nlater: \"|{later}\"\n")
        queue_id = self.send(["later"], "t1")
        self.assertEqual(self.box.queued(), [queue_id])
        self.assertLogged(queue_id, f"later@{D}", status="deferred", dsn="4.2.1")
        self.assertEqual(self.notices("alice"), [])
        self.assertEqual(self.read_out("runs"), "run\n")
        # SPEC 1 mailq: a deferred recipient shows its last reason in parentheses.
        listing = self.box.run("mailq", []).stdout.decode()
        self.assertIn(queue_id, listing)
        self.assertRegex(listing, r"\(4\.2\.1 try later\)|\(try later\)")

    def test_output_5_x_y_bounces_even_with_exit_0(self):
        nope = self.script("nope.sh", "echo run >> $OUT/runs\necho '5.1.2 nope, not here'\nexit 0\n")
        self.aliases(f"postmaster: root\nnope: \"|{nope}\"\n")
        queue_id = self.send(["nope"], "t2")
        self.assertDone()
        self.assertLogged(queue_id, f"nope@{D}", status="bounced", dsn="5.1.2")
        self.assertNotice("alice", "5.1.2", r"nope, not here")

    def test_a_file_target_is_appended_in_mbox_format_as_default_privs(self):
        archive = self.out_path("archive")
        self.aliases(f"postmaster: root\narchive: {archive}, bob\n")
        queue_id = self.send(["archive"], "a1")
        self.send(["archive"], "a2")
        self.assertDone()
        stored = mailbox.mbox(archive, create=False)
        try:
            seqs = [stored.get_message(k)["X-Seq"] for k in stored.keys()]
        finally:
            stored.close()
        self.assertEqual(seqs, ["a1", "a2"])
        if mrtest.IS_ROOT:
            self.assertEqual(os.stat(archive).st_uid, 65534)
        self.assertEqual(os.stat(archive).st_mode & 0o777, 0o600)
        self.assertLogged(queue_id, f"archive@{D}", orig_to=f"archive@{D}", status="sent")


class Timeout(aliastest.AliasCase):
    config = {"command_timeout": "2s"}

    def kill_leftovers(self):
        """Should the runner leave the command or its sleep running, end them (by
        the pids they wrote), so that a failed test leaves nothing behind."""
        for name in ("child", "grandchild"):
            try:
                pid = int(self.read_out(name))
            except (OSError, ValueError):
                continue
            if not aliastest.process_gone(pid):
                try:
                    os.kill(pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass

    def test_a_command_past_command_timeout_is_killed_with_its_group_and_bounced(self):
        slow = self.script("slow.sh", "sleep 60 &\necho $! > $OUT/grandchild\necho $$ > $OUT/child\n"
                                      "echo started\nsleep 60\necho finished > $OUT/finished\n")
        self.aliases(f"postmaster: root\nslow: \"|{slow}\", bob\n")
        self.addCleanup(self.kill_leftovers)
        started = time.monotonic()
        queue_id = self.send(["slow"], "k1")
        took = time.monotonic() - started
        self.assertLess(took, 30, "the runner waited for the command instead of killing it")
        self.assertDone()
        for name in ("child", "grandchild"):
            pid = int(self.read_out(name))
            self.assertTrue(aliastest.process_gone(pid), f"the command's {name} {pid} still runs")
        self.assertFalse(os.path.exists(self.out_path("finished")))
        self.assertEqual(self.seqs("bob"), ["k1"])
        self.assertNotice("alice", "5.3.0", r"timed out")
        self.assertLogged(queue_id, f"slow@{D}", status="bounced", dsn="5.3.0")


@unittest.skipUnless(mrtest.IS_ROOT, "needs root: only a root-owned aliases database runs commands as default_privs")
class NeverRoot(aliastest.AliasCase):
    config = {"default_privs": "root"}

    def test_a_command_that_would_run_as_root_is_refused(self):
        marker = self.out_path("ran-as-root")
        self.aliases(f"postmaster: root\nevil: \"|touch {marker}\", bob\n")
        queue_id = self.send(["evil"], "r1")
        self.assertDone()
        self.assertFalse(os.path.exists(marker), "a command ran as root")
        self.assertEqual(self.seqs("bob"), ["r1"])
        self.assertLogged(queue_id, f"evil@{D}", status="bounced", dsn="5.7.1")
        self.assertNotice("alice", "5.7.1")


class NotAllowed(aliastest.AliasCase):
    config = {"allow_mail_to_commands": "forward", "allow_mail_to_files": "forward"}

    def test_commands_and_files_in_aliases_bounce_when_only_forward_may_name_them(self):
        marker = self.out_path("alias-command")
        path = self.out_path("alias-file")
        self.aliases(f"postmaster: root\nlocked: \"|touch {marker}\", {path}, bob\n")
        # A .forward may still name a command.
        self.write_forward("carol", f"\"|touch {self.out_path('forward-command')}\"\n")
        queue_id = self.send(["locked"], "n1")
        self.send(["carol"], "n2")
        self.assertDone()
        self.assertFalse(os.path.exists(marker), "a command named in aliases ran")
        self.assertFalse(os.path.exists(path), "a file named in aliases was written")
        self.assertTrue(os.path.exists(self.out_path("forward-command")), "the .forward's command did not run")
        self.assertEqual(self.seqs("bob"), ["n1"])
        self.assertEqual(len(self.leaf_lines(queue_id, f"locked@{D}", status="bounced")), 2, self.log())
        self.assertNotice("alice", "5.7.1", r"allow_mail_to_(commands|files)")


class IncludeCommandsByDefault(aliastest.AliasCase):
    def test_a_command_in_an_include_file_is_refused_by_default(self):
        marker = self.out_path("include-command")
        members = os.path.join(self.box.dir, "members")
        with open(members, "w") as f:
            f.write(f"bob\n\"|touch {marker}\"\n")
        self.aliases(f"postmaster: root\nlist: :include:{members}\n")
        self.send(["list"], "d1")
        self.assertDone()
        self.assertFalse(os.path.exists(marker), "allow_mail_to_commands (alias, forward) let an :include: command run")
        self.assertEqual(self.seqs("bob"), ["d1"])
        self.assertNotice("alice", "5.7.1")


if __name__ == "__main__":
    mrtest.main()
