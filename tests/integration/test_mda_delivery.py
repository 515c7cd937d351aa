#!/usr/bin/env python3
"""mda delivers into mbox and Maildir; read back with Python's mailbox module."""
import email
import os
import stat

import mrtest
from mrtest import message, mboxrd_unescape

HEAD = b"Return-Path: <sender@example.org>\nDelivered-To: %s@test.example\n"


class MboxDelivery(mrtest.TestCase):
    config = {"message_size_limit": "100M"}
    def test_body_is_byte_identical_and_headers_prepended(self):
        text = message(body="line one\n\nline three\n").encode()
        self.assertExit(self.box.mda(["-f", "sender@example.org", "alice"], text), 0)
        box = self.box.mbox("alice")
        self.assertEqual(len(box), 1)
        self.assertEqual(box.get_bytes(0), HEAD % b"alice" + text)
        from_line = box[0].get_from()
        self.assertTrue(from_line.startswith("sender@example.org "), from_line)

    def test_mailbox_is_created_0600_owned_by_the_user(self):
        self.assertExit(self.box.mda(["alice"], message()), 0)
        st = os.stat(self.box.mbox_path("alice"))
        self.assertEqual(stat.S_IMODE(st.st_mode), 0o600)
        self.assertEqual(st.st_uid, self.box.uids["alice"])

    def test_from_lines_in_the_body_round_trip(self):
        body = "From the start\n>From quoted\n>>From twice\nFrom\nFromage\n From indented\n"
        text = message(body=body).encode()
        self.assertExit(self.box.mda(["-f", "sender@example.org", "alice"], text), 0)
        self.assertExit(self.box.mda(["-f", "sender@example.org", "alice"], text), 0)
        box = self.box.mbox("alice")
        self.assertEqual(len(box), 2, "a body From line must not split a message")
        for key in box.keys():
            self.assertEqual(mboxrd_unescape(box.get_bytes(key)), HEAD % b"alice" + text)

    def test_crlf_input_is_stored_as_lf(self):
        text = message(body="a\nb\n").replace("\n", "\r\n").encode()
        self.assertExit(self.box.mda(["-f", "sender@example.org", "alice"], text), 0)
        stored = self.box.mbox("alice").get_bytes(0)
        self.assertNotIn(b"\r", stored)
        self.assertEqual(stored, HEAD % b"alice" + text.replace(b"\r\n", b"\n"))

    def test_a_leading_from_line_is_the_sender(self):
        text = "From carol@elsewhere.example Sat Nov 21 20:23:34 2026\n" + message()
        self.assertExit(self.box.mda(["alice"], text), 0)
        msg = self.box.mbox("alice")[0]
        self.assertEqual(msg["Return-Path"], "<carol@elsewhere.example>")
        self.assertEqual(msg["Subject"], "test")

    def test_null_sender(self):
        self.assertExit(self.box.mda(["-f", "<>", "alice"], message()), 0)
        msg = self.box.mbox("alice")[0]
        self.assertEqual(msg["Return-Path"], "<>")
        self.assertTrue(msg.get_from().startswith("MAILER-DAEMON "))

    def test_a_message_without_final_newline_is_completed(self):
        self.assertExit(self.box.mda(["alice"], "Subject: x\n\nno newline"), 0)
        self.assertExit(self.box.mda(["alice"], "Subject: y\n\nsecond\n"), 0)
        box = self.box.mbox("alice")
        self.assertEqual([m["Subject"] for m in box], ["x", "y"])

    def test_several_users_each_get_the_message(self):
        self.assertExit(self.box.mda(["alice", "bob", "carol"], message()), 0)
        for user in ("alice", "bob", "carol"):
            box = self.box.mbox(user)
            self.assertEqual(len(box), 1)
            self.assertEqual(box[0]["Delivered-To"], f"{user}@test.example")
            self.assertEqual(os.stat(self.box.mbox_path(user)).st_uid, self.box.uids[user])

    def test_user_plus_extension_and_user_at_domain(self):
        self.assertExit(self.box.mda(["alice+lists", "bob@test.example"], message()), 0)
        self.assertEqual(len(self.box.mbox("alice")), 1)
        self.assertEqual(len(self.box.mbox("bob")), 1)

    def test_nul_bytes_and_a_1mb_line_are_delivered_intact(self):
        text = message().encode() + b"nul\0byte\n" + b"x" * (1024 * 1024) + b"\n"
        self.assertExit(self.box.mda(["-f", "sender@example.org", "alice"], text), 0)
        self.assertEqual(self.box.mbox("alice").get_bytes(0), HEAD % b"alice" + text)

    def test_1000_messages_in_a_row(self):
        for i in range(1000):
            r = self.box.mda(["-f", "sender@example.org", "alice"], message(subject=f"n{i}"))
            self.assertEqual(r.returncode, 0, r.stderr)
        box = self.box.mbox("alice")
        self.assertEqual([m["Subject"] for m in box], [f"n{i}" for i in range(1000)])

    def test_one_50mb_message(self):
        line = b"0123456789abcdefghijklmnopqrstuvwxyz From here to there\n"
        body = line * (50 * 1024 * 1024 // len(line))
        text = message().encode() + body
        self.assertExit(self.box.mda(["-f", "sender@example.org", "alice"], text, timeout=300), 0)
        box = self.box.mbox("alice")
        self.assertEqual(len(box), 1)
        self.assertEqual(box.get_bytes(0), HEAD % b"alice" + text)


class MaildirDelivery(mrtest.TestCase):
    config = {"mailbox_format": "maildir"}

    def maildir_of(self, user):
        return self.box.maildir(os.path.join(self.box.mail, user))

    def test_body_is_byte_identical_and_folders_are_0700(self):
        text = message(body="From here\nline\n").encode()
        self.assertExit(self.box.mda(["-f", "sender@example.org", "alice"], text), 0)
        md = self.maildir_of("alice")
        keys = md.keys()
        self.assertEqual(len(keys), 1)
        self.assertEqual(md.get_bytes(keys[0]), HEAD % b"alice" + text)
        for sub in ("", "tmp", "new", "cur"):
            st = os.stat(os.path.join(self.box.mail, "alice", sub))
            self.assertEqual(stat.S_IMODE(st.st_mode), 0o700, sub)
            self.assertEqual(st.st_uid, self.box.uids["alice"], sub)
        self.assertEqual(os.listdir(os.path.join(self.box.mail, "alice", "tmp")), [])

    def test_size_in_the_file_name_matches(self):
        self.assertExit(self.box.mda(["alice"], message()), 0)
        new = os.path.join(self.box.mail, "alice", "new")
        (name,) = os.listdir(new)
        size = int(name.split(",S=")[1].split(",")[0].split(":")[0])
        self.assertEqual(size, os.path.getsize(os.path.join(new, name)))

    def test_m_and_o_override_format_and_path(self):
        target = os.path.join(self.box.home, "alice", "Maildir") + "/"
        self.assertExit(self.box.mda(["-o", target, "alice"], message()), 0)
        self.assertEqual(len(self.box.maildir(target)), 1)
        self.assertExit(self.box.mda(["-m", "mbox", "bob"], message()), 0)
        self.assertEqual(len(self.box.mbox("bob")), 1)

    def test_home_mailbox(self):
        self.box.write("mailroom.conf", "home_mailbox = Maildir/\n", mode="a")
        self.assertExit(self.box.mda(["alice"], message()), 0)
        self.assertEqual(len(self.box.maildir(os.path.join(self.box.home, "alice", "Maildir"))), 1)

    def test_crlf_and_1000_messages(self):
        for i in range(1000):
            r = self.box.mda(["alice"], message(subject=f"n{i}").replace("\n", "\r\n"))
            self.assertEqual(r.returncode, 0, r.stderr)
        md = self.maildir_of("alice")
        subjects = sorted(email.message_from_bytes(md.get_bytes(k))["Subject"] for k in md.keys())
        self.assertEqual(subjects, sorted(f"n{i}" for i in range(1000)))
        self.assertFalse(any(b"\r" in md.get_bytes(k) for k in md.keys()))


if __name__ == "__main__":
    mrtest.main()
