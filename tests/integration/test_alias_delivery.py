#!/usr/bin/env python3
"""Alias expansion by the queue runner (SPEC sections 3, 5, 9; docs/aliases.md):
mail submitted with the real sendmail to an alias is expanded at the first
attempt (aliases.cdb, :include:), each leaf is delivered once and logged as
`to=<leaf>, orig_to=<recipient>, relay=local, ... status=...`; loops and a too
deep chain bounce 5.4.6 naming the chain; duplicates are delivered once; an
alias naming itself is the user's own mailbox; owner-NAME gets the bounces of
list NAME; `error:` bounces with its code; `\\user` is the mailbox without
.forward; `user+ext` tries the alias `user+ext`, then `user`; the leaves are
recorded once (a retry does not read the edited aliases again; `mailctl requeue`
does, for what is not done); -odi, Maildir, remote members and null senders.
Also `mailctl trace` and `sendmail -bv` on an alias with a command, a .forward
and an unknown user (text and --json)."""
import json
import os
import re

import aliastest
import mrtest
import queuetest

D = aliastest.DOMAIN
TEN = [f"user{n:02d}" for n in range(1, 11)]


class AliasDelivery(aliastest.AliasCase):
    extra_users = TEN

    def test_an_alias_to_ten_users_delivers_one_copy_to_each(self):
        self.aliases("postmaster: root\nten: " + ", ".join(TEN[:6]) + ",\n  " + ", ".join(TEN[6:]) + "\n")
        queue_id = self.send(["ten"], "a1")
        self.assertDone()
        for user in TEN:
            self.assertDeliveredTo(user, "a1", f"{user}@{D}")
            self.assertLogged(queue_id, f"{user}@{D}", orig_to=f"ten@{D}", dsn="2.")
        self.assertEqual(self.notices("alice"), [])
        self.run_queue()  # nothing is delivered twice
        self.assertCopies(TEN, "a1")

    def test_nested_aliases_three_deep(self):
        self.aliases("postmaster: root\ntop: mid, alice\nmid: low, bob\nlow: carol, dave\n")
        queue_id = self.send(["top@" + D], "n1", sender="postmaster")
        self.assertDone()
        for user in ("alice", "bob", "carol", "dave"):
            self.assertDeliveredTo(user, "n1", f"{user}@{D}")
            self.assertLogged(queue_id, f"{user}@{D}", orig_to=f"top@{D}")

    def test_an_include_list(self):
        members = os.path.join(self.box.dir, "list.members")
        with open(members, "w") as f:
            f.write("# the list\nbob\ncarol, dave\n")
        self.aliases(f"postmaster: root\nlist: :include:{members}\n")
        queue_id = self.send(["list"], "i1")
        self.assertDone()
        for user in ("bob", "carol", "dave"):
            self.assertDeliveredTo(user, "i1", f"{user}@{D}")
            self.assertLogged(queue_id, f"{user}@{D}", orig_to=f"list@{D}")
        self.assertEqual(self.seqs("alice"), [])

    def test_a_loop_bounces_5_4_6_naming_the_chain_and_the_rest_is_delivered(self):
        self.aliases("postmaster: root\nloop1: loop2, bob\nloop2: loop3\nloop3: loop1\n")
        queue_id = self.send(["loop1"], "l1")
        self.assertDone()
        self.assertDeliveredTo("bob", "l1", f"bob@{D}")
        self.assertNotice("alice", "5.4.6", r"loop1 -> loop2 -> loop3 -> loop1")
        bounced = [l for l in self.log() if queue_id in l and "status=bounced" in l]
        self.assertEqual(len(bounced), 1, bounced)
        self.assertRegex(bounced[0], r"to=<loop1@test\.example>(, orig_to=<loop1@test\.example>)?, relay=local, .*dsn=5\.4\.6, status=bounced "
                                     r"\(.*loop1 -> loop2 -> loop3 -> loop1")

    def test_a_chain_deeper_than_ten_bounces_5_4_6(self):
        chain = [f"hop{n}" for n in range(1, 13)]
        lines = [f"{a}: {b}" for a, b in zip(chain, chain[1:] + ["bob"])]
        self.aliases("postmaster: root\n" + "\n".join(lines) + "\nshort: hop9\n")
        deep = self.send(["hop1"], "d1")
        short = self.send(["short"], "d2")  # short -> hop9 .. hop12 -> bob: 5 levels
        self.assertDone()
        self.assertEqual(self.seqs("bob"), ["d2"])
        self.assertNotice("alice", "5.4.6", r"deeper than 10")
        self.assertEqual(len([l for l in self.log() if deep in l and "dsn=5.4.6, status=bounced" in l]), 1)
        self.assertLogged(short, f"bob@{D}", orig_to=f"short@{D}")

    def test_duplicates_are_delivered_once(self):
        self.aliases("postmaster: root\ndup: bob, BOB, g1, g2, bob@test.example, carol\n"
                     "g1: bob, carol\ng2: Carol@Test.Example, g1, dave\n")
        queue_id = self.send(["dup"], "u1")
        self.assertDone()
        self.assertCopies(["bob", "carol", "dave"], "u1", 1)
        self.assertLogged(queue_id, f"bob@{D}", orig_to=f"dup@{D}")
        self.assertEqual(len([l for l in self.log() if queue_id in l and "status=sent" in l]), 3, self.log())

    def test_an_alias_naming_itself_is_the_users_own_mailbox(self):
        self.aliases("postmaster: root\ncarol: carol, dave\n")
        queue_id = self.send(["carol"], "s1")
        self.assertDone()
        self.assertDeliveredTo("carol", "s1", f"carol@{D}")
        self.assertDeliveredTo("dave", "s1", f"dave@{D}")
        self.assertEqual(self.notices("alice"), [])
        self.assertLogged(queue_id, f"carol@{D}", orig_to=f"carol@{D}")

    def test_owner_of_a_list_gets_its_bounces_instead_of_the_sender(self):
        self.aliases("postmaster: root\nteam: bob, nosuchuser, gone\nowner-team: dave\n"
                     "gone: error:5.1.6 moved away\n")
        queue_id = self.send(["team"], "o1")
        self.assertDone()
        self.assertDeliveredTo("bob", "o1", f"bob@{D}")
        self.assertEqual(self.notices("alice"), [], "the sender got the list's bounces")
        notice = self.assertNotice("dave", "5.1.1", recipient="nosuchuser")
        self.assertTrue(any(b.get("status", "").startswith("5.1.6") for b in aliastest.report_blocks(notice)),
                        notice.as_string())
        self.assertIn("o1", notice.as_string())  # the original message (headers) goes along
        self.assertEqual(len([l for l in self.log() if queue_id in l and "status=bounced" in l]), 2)
        # The notice's envelope recipient is owner-team, which the runner expands in turn.
        self.assertTrue([l for l in self.log() if f"to=<dave@{D}>, orig_to=<owner-team@{D}>" in l
                         and "status=sent" in l], "\n".join(self.log()))
        self.assertEqual(self.seqs("dave"), [])  # dave got the notice, not the message

    def test_error_target_bounces_with_its_code_and_text(self):
        self.aliases("postmaster: root\nformer: error:5.1.6 left the company in May\n")
        queue_id = self.send(["former"], "e1")
        self.assertDone()
        self.assertNotice("alice", "5.1.6", r"left the company in May")
        bounced = [l for l in self.log() if queue_id in l and "status=bounced" in l]
        self.assertEqual(len(bounced), 1, self.log())
        self.assertRegex(bounced[0], r"to=<former@test\.example>(, orig_to=<former@test\.example>)?, relay=local, .*dsn=5\.1\.6, "
                                     r"status=bounced \(.*left the company in May")

    def test_backslash_user_is_the_mailbox_without_forward(self):
        self.aliases("postmaster: root\nbob: \\bob, carol\n")
        # bob's .forward would send everything to dave: \bob must not read it.
        self.write_forward("bob", "dave\n")
        queue_id = self.send(["bob"], "b1")
        self.assertDone()
        self.assertDeliveredTo("bob", "b1", f"bob@{D}")
        self.assertDeliveredTo("carol", "b1", f"carol@{D}")
        self.assertEqual(self.seqs("dave"), [])
        self.assertLogged(queue_id, f"bob@{D}", orig_to=f"bob@{D}")

    def test_user_plus_ext_tries_the_alias_with_the_extension_then_without(self):
        self.aliases("postmaster: root\nbob+lists: carol\nalice: dave\n")
        q1 = self.send(["bob+lists"], "x1")   # the alias bob+lists
        q2 = self.send(["bob+other"], "x2")   # no alias: bob's own mailbox
        q3 = self.send(["alice+foo"], "x3")   # no alias alice+foo: the alias alice
        self.assertDone()
        self.assertEqual(self.seqs("carol"), ["x1"])
        self.assertEqual(self.seqs("bob"), ["x2"])
        self.assertEqual(self.seqs("dave"), ["x3"])
        self.assertEqual(self.seqs("alice"), [])
        self.assertLogged(q1, f"carol@{D}", orig_to=f"bob+lists@{D}")
        self.assertLogged(q2, f"bob+other@{D}")
        self.assertLogged(q3, f"dave@{D}", orig_to=f"alice+foo@{D}")

    def test_sendmail_odi_expands_before_it_exits(self):
        self.aliases("postmaster: root\npair: bob, carol\n")
        result = self.box.sendmail(["-odi", "-f", "alice", "pair"],
                                   mrtest.message("at once", extra_headers="X-Seq: i1\n"))
        self.assertExit(result, 0)
        self.assertDone()
        self.assertDeliveredTo("bob", "i1", f"bob@{D}")
        self.assertDeliveredTo("carol", "i1", f"carol@{D}")

    def test_a_syntax_error_keeps_the_old_database_for_delivery(self):
        # newaliases itself: test_newaliases.py::NewaliasesTest::test_syntax_error_keeps_the_old_database
        self.aliases("postmaster: root\npair: bob, carol\n")
        with open(self.box.aliases, "w") as f:
            f.write("postmaster: root\npair: dave\nbroken line\n")
        self.assertExit(self.box.run("newaliases", []), 65, r"aliases:3: error: ")
        queue_id = self.send(["pair"], "k1")
        self.assertDone()
        self.assertCopies(["bob", "carol"], "k1", 1)
        self.assertEqual(self.seqs("dave"), [])
        self.assertLogged(queue_id, f"carol@{D}", orig_to=f"pair@{D}")

    def test_leaves_are_recorded_in_the_entry_before_delivery(self):
        # dave's mailbox is a folder: his leaf is deferred, so the entry stays to be read.
        os.mkdir(self.box.mbox_path("dave"))
        self.aliases("postmaster: root\ngroup: bob, carol, dave\n")
        queue_id = self.send(["group"], "r1")
        self.assertEqual(self.box.queued(), [queue_id], "dave's leaf should be deferred")
        entry = queuetest.entry(self.box, queue_id)
        leaves = entry.kinds("leaf")
        self.assertEqual(sorted(l[7] for l in leaves), ["bob", "carol", "dave"], entry.records)
        self.assertTrue(all(l[2] == "0" and l[3] == "mailbox" for l in leaves), leaves)
        self.assertEqual(len(entry.kinds("expanded")), 1, entry.records)
        # Each leaf has its own state: the deferred one only is tried again.
        os.rmdir(self.box.mbox_path("dave"))
        self.run_queue()
        self.assertDone()
        self.assertCopies(["bob", "carol", "dave"], "r1", 1)
        self.assertLogged(queue_id, f"dave@{D}", orig_to=f"group@{D}", status="deferred")
        self.assertLogged(queue_id, f"dave@{D}", orig_to=f"group@{D}", status="sent")
        self.assertLogged(queue_id, f"bob@{D}", orig_to=f"group@{D}", status="sent")

    def test_a_retry_uses_the_recorded_leaves_not_the_edited_aliases(self):
        os.mkdir(self.box.mbox_path("dave"))
        self.aliases("postmaster: root\ngroup: bob, dave\n")
        queue_id = self.send(["group"], "w1")
        self.assertEqual(self.box.queued(), [queue_id])
        self.aliases("postmaster: root\ngroup: carol\n")
        os.rmdir(self.box.mbox_path("dave"))
        self.run_queue()
        self.assertDone()
        self.assertEqual(self.seqs("dave"), ["w1"])
        self.assertEqual(self.seqs("bob"), ["w1"])
        self.assertEqual(self.seqs("carol"), [], "the retry expanded the alias again")

    def test_mailctl_requeue_expands_again_what_is_not_done(self):
        os.mkdir(self.box.mbox_path("dave"))
        self.aliases("postmaster: root\ngroup: bob, dave\n")
        queue_id = self.send(["group"], "w2")
        self.assertEqual(self.box.queued(), [queue_id])
        self.aliases("postmaster: root\ngroup: bob, carol\n")
        self.assertExit(self.box.run("mailctl", ["requeue", queue_id]), 0)
        self.run_queue()
        self.assertEqual(self.seqs("carol"), ["w2"], "mailctl requeue did not expand the recipient again "
                                                     "(a requeue in the same second as the expansion?)")
        self.assertEqual(self.seqs("bob"), ["w2"], "bob's delivered leaf was delivered again")
        self.assertDone()
        self.assertEqual(os.listdir(self.box.mbox_path("dave")), [])  # superseded, not tried
        self.assertLogged(queue_id, f"carol@{D}", orig_to=f"group@{D}")

    def test_a_remote_member_is_deferred_and_the_local_ones_delivered(self):
        self.aliases("postmaster: root\nmixed: bob, someone@elsewhere.example\n")
        queue_id = self.send(["mixed"], "m1")
        self.assertEqual(self.box.queued(), [queue_id])
        self.assertEqual(self.seqs("bob"), ["m1"])
        self.run_queue()
        self.assertEqual(self.seqs("bob"), ["m1"])
        lines = [l for l in self.log() if f"{queue_id}: to=<someone@elsewhere.example>, orig_to=<mixed@{D}>" in l]
        self.assertEqual(len(lines), 2, self.log())
        # Deferred by the SMTP transport: the sandbox's DNS servers answer nothing.
        self.assertTrue(all(re.search(r"dsn=4\.\d\.\d, status=deferred", l) for l in lines), lines)

    def test_a_failure_of_a_null_sender_message_goes_to_postmaster(self):
        self.aliases("postmaster: carol\nteam: bob, nosuchuser\n")
        self.send(["team"], "z1", sender="<>")
        self.assertDone()
        self.assertEqual(self.seqs("bob"), ["z1"])
        self.assertNotice("carol", "5.1.1", recipient="nosuchuser")


class AliasMaildir(aliastest.AliasCase):
    config = {"mailbox_format": "maildir"}

    def test_an_alias_delivers_into_maildirs(self):
        self.aliases("postmaster: root\npair: bob, carol\n")
        queue_id = self.send(["pair"], "md1")
        self.assertDone()
        for user in ("bob", "carol"):
            box = self.box.maildir(self.box.mbox_path(user))
            messages = [box.get_message(k) for k in box.keys()]
            self.assertEqual([m["X-Seq"] for m in messages], ["md1"], user)
            self.assertEqual(messages[0]["Delivered-To"], f"{user}@{D}")
            self.assertLogged(queue_id, f"{user}@{D}", orig_to=f"pair@{D}")


class Trace(aliastest.AliasCase):
    """`mailctl trace` and `sendmail -bv` on an alias with a command, a .forward
    (carol's, to a pipe) and an unknown user."""

    def setUp(self):
        super().setUp()
        self.marker = self.out_path("ran")
        self.aliases("postmaster: root\n"
                     f"team: bob, \"|touch {self.marker}\", carol, nosuchuser\n")
        self.forward = self.write_forward("carol", f"\\carol, \"|touch {self.marker}.forward\"\n")

    def check_lines(self, text):
        aliases = re.escape(self.box.aliases)
        self.assertRegex(text, rf"(?m)^\s*alias team \({aliases}:2\)")
        self.assertRegex(text, rf"(?m)^\s*-> mailbox {re.escape(self.box.mbox_path('bob'))} \(mbox\), written as bob "
                               rf"\(uid {self.box.uids['bob']}\)$")
        name, uid, _, _ = aliastest.aliases_runner()
        self.assertRegex(text, rf"(?m)^\s*-> command \|touch {re.escape(self.marker)}, run as {name} \(uid {uid}\), "
                               rf"named at {aliases}:2$")
        self.assertRegex(text, r"(?m)^\s*~carol/\.forward")
        self.assertRegex(text, rf"(?m)^\s*-> mailbox {re.escape(self.box.mbox_path('carol'))} \(mbox\), written as carol")
        carol = "carol" if mrtest.IS_ROOT else r"\S+"
        # docs/forward.md names the provenance ~carol/.forward:1; the full path says the same.
        forward = rf"(~carol|{re.escape(self.home('carol'))})/\.forward:1"
        self.assertRegex(text, rf"(?m)^\s*-> command \|touch {re.escape(self.marker)}\.forward, run as {carol} "
                               rf"\(uid \d+\), named at {forward}$")
        self.assertRegex(text, r'(?m)^\s*-> bounced: unknown user: "nosuchuser" \(5\.1\.1\)$')
        self.assertFalse(os.path.exists(self.marker), "trace ran the command")
        self.assertFalse(os.path.exists(self.marker + ".forward"), "trace ran the .forward's command")

    def test_mailctl_trace_prints_every_step(self):
        result = self.box.run("mailctl", ["trace", "team"])
        self.assertEqual(result.returncode, 67, result.stderr)  # the unknown user
        self.check_lines(result.stdout.decode())
        self.assertEqual(self.box.queued(), [])

    def test_sendmail_bv_prints_the_same(self):
        result = self.box.sendmail(["-bv", "team"], b"")
        self.check_lines(result.stdout.decode())
        self.assertEqual(result.stdout, self.box.run("mailctl", ["trace", "team"]).stdout)
        self.assertEqual(self.box.queued(), [])

    def test_json_is_the_same_tree(self):
        result = self.box.run("mailctl", ["trace", "--json", "team", "alice"])
        lines = result.stdout.decode().splitlines()
        self.assertEqual(len(lines), 2, lines)
        tree = json.loads(lines[0])
        self.assertEqual(tree["address"], "team")
        self.assertEqual(json.loads(lines[1])["address"], "alice")
        leaves = []

        def walk(node):
            if "leaf" in node:
                leaves.append(node["leaf"])
            for child in node.get("steps", []):
                walk(child)
        walk(tree["tree"])
        by_kind = {}
        for leaf in leaves:
            by_kind.setdefault(leaf["kind"], []).append(leaf)
        self.assertEqual(sorted(l["target"] for l in by_kind["mailbox"]), ["bob", "carol"])
        commands = {l["target"]: l for l in by_kind["command"]}
        name, uid, _, _ = aliastest.aliases_runner()
        self.assertEqual(commands[f"touch {self.marker}"]["user"], {"name": name, "uid": uid})
        self.assertEqual(commands[f"touch {self.marker}.forward"]["user"]["uid"], self.box.uids["carol"])
        self.assertEqual(by_kind["error"][0]["status"]["code"], "5.1.1")
        self.assertFalse(os.path.exists(self.marker))


if __name__ == "__main__":
    mrtest.main()
