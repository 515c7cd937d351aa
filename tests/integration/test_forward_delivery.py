#!/usr/bin/env python3
"""`.forward` files read by the queue runner (SPEC section 5; docs/forward.md):
a .forward to another user, to a pipe (run as the user), with `\\user` in it,
`.forward+ext` before `.forward`; and the ones that must be ignored, the mail
going to the user's mailbox with a log line saying why: group-writable (unless
the group is the user's private group), a symbolic link, owned by another user,
in a world-writable home. The checks need real uids: these tests run as root
and skip otherwise."""
import os
import unittest

import aliastest
import mrtest

D = aliastest.DOMAIN


@unittest.skipUnless(mrtest.IS_ROOT, "needs root: .forward ownership and the user's rights need real uids")
class Forward(aliastest.AliasCase):
    def setUp(self):
        super().setUp()
        self.aliases("postmaster: root\n")

    def test_a_forward_to_another_user(self):
        self.write_forward("bob", "carol\n")
        queue_id = self.send(["bob"], "f1")
        self.assertDone()
        self.assertEqual(self.seqs("bob"), [])
        self.assertDeliveredTo("carol", "f1", f"carol@{D}")
        self.assertLogged(queue_id, f"carol@{D}", orig_to=f"bob@{D}")

    def test_a_forward_to_a_pipe_runs_as_the_user(self):
        record = self.script("record.sh", "id -u > $OUT/uid\nid -g > $OUT/gid\npwd > $OUT/cwd\nenv > $OUT/env\n"
                                          "cat > $OUT/stdin\n")
        self.write_forward("bob", f"\"|{record}\"\n")
        queue_id = self.send(["bob"], "f2")
        self.assertDone()
        self.assertEqual(self.read_out("uid").strip(), str(self.box.uids["bob"]))
        self.assertEqual(self.read_out("gid").strip(), str(self.box.uids["bob"]))
        self.assertEqual(self.read_out("cwd").strip(), self.home("bob"))
        env = dict(line.partition("=")[::2] for line in self.read_out("env").splitlines())
        self.assertEqual((env["USER"], env["HOME"], env["RECIPIENT"]), ("bob", self.home("bob"), f"bob@{D}"))
        self.assertIn("X-Seq: f2", self.read_out("stdin"))
        self.assertEqual(self.seqs("bob"), [])
        self.assertLogged(queue_id, f"bob@{D}", orig_to=f"bob@{D}")

    def test_backslash_user_in_a_forward_keeps_a_copy(self):
        self.write_forward("bob", "\\bob, carol\n")
        self.send(["bob"], "f3")
        self.assertDone()
        self.assertDeliveredTo("bob", "f3", f"bob@{D}")
        self.assertDeliveredTo("carol", "f3", f"carol@{D}")
        self.assertEqual(self.notices("alice"), [], "\\bob in bob's .forward is no loop")

    def test_forward_plus_extension_comes_before_forward(self):
        self.write_forward("bob", "dave\n", name=".forward+lists")
        self.write_forward("bob", "carol\n")
        q1 = self.send(["bob+lists"], "e1")
        q2 = self.send(["bob+other"], "e2")
        self.assertDone()
        self.assertEqual(self.seqs("dave"), ["e1"])
        self.assertEqual(self.seqs("carol"), ["e2"])
        self.assertEqual(self.seqs("bob"), [])
        self.assertLogged(q1, f"dave@{D}", orig_to=f"bob+lists@{D}")
        self.assertLogged(q2, f"carol@{D}", orig_to=f"bob+other@{D}")

    def test_group_writable_in_the_users_private_group_is_used(self):
        path = self.write_forward("bob", "carol\n", mode=0o664)  # group bob: bob's own private group
        self.assertEqual(os.stat(path).st_gid, self.box.uids["bob"])
        self.send(["bob"], "g0")
        self.assertEqual(self.seqs("carol"), ["g0"])
        self.assertEqual(self.seqs("bob"), [])

    # ---- ignored: the mailbox, and the log says why

    def assertIgnored(self, seq, why):
        queue_id = self.send(["bob"], seq)
        self.assertDone()
        self.assertDeliveredTo("bob", seq, f"bob@{D}")
        self.assertEqual(self.seqs("carol"), [], "the ignored .forward was followed")
        self.assertFalse(os.path.exists(self.out_path("ran")), "a command of the ignored .forward ran")
        self.assertLogged(queue_id, f"bob@{D}", orig_to=None)
        trace = self.box.run("mailctl", ["trace", "bob"]).stdout.decode()
        self.assertIn(f"~bob/.forward ignored: {why}", trace)
        # SPEC 5: "ignored with a log line" (docs/forward.md: ForwardResult::describe()).
        reasons = [l for l in self.log() if "~bob/.forward ignored: " in l]
        self.assertTrue(any(why in l for l in reasons), f"no log line saying '{why}':\n" + "\n".join(self.log()))

    def test_group_writable_is_ignored(self):
        path = self.write_forward("bob", f"carol, \"|touch {self.out_path('ran')}\"\n", mode=0o664)
        os.chown(path, self.box.uids["bob"], 100)  # group "users": others can write it
        self.assertIgnored("g1", "group-writable (gid 100 is not bob's private group)")

    def test_a_symlink_is_ignored(self):
        target = os.path.join(self.box.dir, "bob-forward")
        with open(target, "w") as f:
            f.write(f"carol, \"|touch {self.out_path('ran')}\"\n")
        os.chown(target, self.box.uids["bob"], self.box.uids["bob"])
        link = os.path.join(self.home("bob"), ".forward")
        os.symlink(target, link)
        os.lchown(link, self.box.uids["bob"], self.box.uids["bob"])
        self.assertIgnored("g2", "a symbolic link")

    def test_owned_by_another_user_is_ignored(self):
        self.write_forward("bob", f"carol, \"|touch {self.out_path('ran')}\"\n", owner="dave")
        self.assertIgnored("g3", f"owned by uid {self.box.uids['dave']}")

    def test_in_a_world_writable_home_is_ignored(self):
        self.write_forward("bob", f"carol, \"|touch {self.out_path('ran')}\"\n")
        os.chmod(self.home("bob"), 0o777)
        self.assertIgnored("g4", "in a world-writable folder")


if __name__ == "__main__":
    mrtest.main()
