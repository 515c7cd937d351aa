#!/usr/bin/env python3
"""sendmail → queue → mta -q → mbox: what a delivered message looks like.

Headers sendmail adds (Received: always; From:, Date:, Message-ID: when missing),
the "." line rule, and the content it must pass unchanged (8-bit bytes, long
lines, no header at all). Options and callers: test_sendmail_flags.py; exit
codes: test_sendmail_errors.py.
"""
import email.utils
import time

import mrtest
from sendmail_case import SendmailCase, split_message, field_names, value_of

GIVEN = (b"From: Alice Example <alice@example.org>\n"
         b"To: Bob <bob@test.example>\n"
         b"Subject: hello\n"
         b"Date: Mon, 01 Jan 2024 12:00:00 +0100\n"
         b"Message-ID: <given.1@example.org>\n"
         b"\n"
         b"line one\n\n  indented\ttab\nlast line\n")


class AddedHeaders(SendmailCase):
    def test_a_delivered_message_starts_with_return_path_delivered_to_and_received(self):
        self.deliver(["bob"], GIVEN)
        raw, from_line = self.only("bob")
        queue_id, rest = self.strip_trace(raw)
        self.assertTrue(raw.startswith(b"Return-Path: <root@test.example>\n"), raw[:80])
        self.assertTrue(from_line.startswith("root@test.example "), from_line)
        self.assertRegex(queue_id, r"^[0-9A-Za-z]{10,20}$")
        self.assertTrue(any(f"{queue_id}: uid=" in line for line in self.log_lines()))
        # The date in Received: is an RFC 5322 date of about now.
        received = value_of(split_message(raw)[0], "Received")[0].decode()
        when = email.utils.parsedate_to_datetime(received.rsplit(";", 1)[1].strip())
        self.assertLess(abs(when.timestamp() - time.time()), 300)

    def test_from_date_and_message_id_given_are_kept_as_they_are_and_not_duplicated(self):
        self.deliver(["bob"], GIVEN)
        raw, _ = self.only("bob")
        _, rest = self.strip_trace(raw)
        self.assertEqual(rest, GIVEN, "after Received: the message is exactly what was given")
        head = split_message(raw)[0]
        for name in ("from", "date", "message-id"):
            self.assertEqual(field_names(head).count(name), 1, name)

    def test_from_date_and_message_id_are_added_when_missing(self):
        given = b"To: bob@test.example\nSubject: bare\n\nbody\n"
        self.deliver(["bob"], given)
        raw, _ = self.only("bob")
        queue_id, rest = self.strip_trace(raw)
        head, body = split_message(rest)
        self.assertTrue(head.startswith(b"To: bob@test.example\nSubject: bare\n"), head)
        self.assertEqual(body, b"body\n")
        self.assertEqual(field_names(head), ["to", "subject", "from", "date", "message-id"])
        self.assertEqual(value_of(head, "From"), [b"root <root@test.example>"])
        date = email.utils.parsedate_to_datetime(value_of(head, "Date")[0].decode())
        self.assertLess(abs(date.timestamp() - time.time()), 300)
        self.assertRegex(value_of(head, "Message-ID")[0].decode(),
                         rf"^<[0-9A-Za-z.]*{queue_id}[0-9A-Za-z.]*@test\.example>$")

    def test_only_the_missing_ones_are_added(self):
        given = b"Date: Mon, 01 Jan 2024 12:00:00 +0100\nSubject: s\n\nbody\n"
        self.deliver(["bob"], given)
        head = split_message(self.only("bob")[0])[0]
        self.assertEqual(value_of(head, "Date"), [b"Mon, 01 Jan 2024 12:00:00 +0100"])
        self.assertEqual(field_names(head).count("from"), 1)
        self.assertEqual(field_names(head).count("message-id"), 1)

    def test_header_names_are_matched_without_regard_to_case(self):
        given = b"FROM: a@example.org\ndate: Mon, 01 Jan 2024 12:00:00 +0100\nMESSAGE-id: <x@y>\n\nb\n"
        self.deliver(["bob"], given)
        _, rest = self.strip_trace(self.only("bob")[0])
        self.assertEqual(rest, given)

    def test_the_generated_from_takes_the_full_name_from_gecos(self):
        with open(self.box.passwd) as f:
            passwd = f.read()
        with open(self.box.passwd, "w") as f:
            f.write(passwd.replace("root:x:0:0:root:", "root:x:0:0:Charlie Root,Room 1,,:"))
        self.deliver(["bob"], b"Subject: s\n\nb\n")
        head = split_message(self.only("bob")[0])[0]
        self.assertEqual(value_of(head, "From"), [b"Charlie Root <root@test.example>"])

    def test_the_full_name_from_dash_f_wins_over_gecos(self):
        self.deliver(["-F", "Cron Daemon", "bob"], b"Subject: s\n\nb\n")
        head = split_message(self.only("bob")[0])[0]
        self.assertEqual(value_of(head, "From"), [b"Cron Daemon <root@test.example>"])

    def test_a_full_name_with_special_characters_is_quoted(self):
        self.deliver(["-F", 'Smith, "J" Jr.', "bob"], b"Subject: s\n\nb\n")
        head = split_message(self.only("bob")[0])[0]
        self.assertEqual(value_of(head, "From"), [b'"Smith, \\"J\\" Jr." <root@test.example>'])

    def test_dash_f_does_not_change_a_given_from(self):
        self.deliver(["-F", "Cron Daemon", "bob"], GIVEN)
        head = split_message(self.only("bob")[0])[0]
        self.assertEqual(value_of(head, "From"), [b"Alice Example <alice@example.org>"])


class Content(SendmailCase):
    def test_the_body_is_byte_identical(self):
        body = (b"  leading spaces\n\n\ttab\ntrailing spaces   \n>From quoted\n"
                b"From the start\n-- \nsig\n\n\n")
        given = b"Subject: body\n\n" + body
        self.deliver(["bob"], given)
        raw = mrtest.mboxrd_unescape(self.only("bob")[0])
        self.assertEqual(split_message(raw)[1], body)

    def test_a_message_without_a_header_gets_the_added_fields_and_keeps_its_body(self):
        self.deliver(["bob"], b"hello there\nsecond line\n")
        raw, _ = self.only("bob")
        _, rest = self.strip_trace(raw)
        head, body = split_message(rest)
        self.assertEqual(field_names(head), ["from", "date", "message-id"])
        self.assertEqual(body, b"hello there\nsecond line\n")

    def test_a_message_starting_with_an_empty_line_keeps_its_body(self):
        self.deliver(["bob"], b"\nSubject: not a header\n")
        _, rest = self.strip_trace(self.only("bob")[0])
        head, body = split_message(rest)
        self.assertEqual(field_names(head), ["from", "date", "message-id"])
        self.assertEqual(body, b"Subject: not a header\n")

    def test_an_empty_message_is_delivered_with_the_added_fields(self):
        self.deliver(["bob"], b"")
        _, rest = self.strip_trace(self.only("bob")[0])
        self.assertEqual(field_names(split_message(rest)[0]), ["from", "date", "message-id"])

    def test_eight_bit_headers_and_body_are_delivered_unchanged(self):
        given = ("Subject: Grüße aus Köln — 日本語\nFrom: Jürgen <jürgen@example.org>\n"
                 "\nUTF-8: ça marche, ß, €\n").encode() + b"Latin-1: \xe9\xe8\xff\n\x80\x81\n"
        self.deliver(["bob"], given)
        _, rest = self.strip_trace(self.only("bob")[0])
        head, body = split_message(rest)
        self.assertTrue(rest.startswith(given.split(b"\n\n")[0] + b"\n"), rest[:200])
        self.assertEqual(body, given.split(b"\n\n", 1)[1])

    def test_a_100_kb_header_line_is_delivered_whole(self):
        long_value = b"".join(b"%07d," % i for i in range(100 * 1024 // 8))
        given = b"Subject: long\nX-Long: " + long_value + b"\nX-After: yes\n\nbody\n"
        self.deliver(["bob"], given)
        head, body = split_message(self.only("bob")[0])
        self.assertEqual(value_of(head, "X-Long"), [long_value])
        self.assertEqual(value_of(head, "X-After"), [b"yes"])
        self.assertEqual(field_names(head).count("from"), 1)
        self.assertEqual(body, b"body\n")

    def test_a_long_body_line_is_delivered_whole(self):
        line = b"y" * (300 * 1024) + b"\n"
        self.deliver(["bob"], b"Subject: long\n\n" + line + line)
        self.assertEqual(split_message(self.only("bob")[0])[1], line + line)

    def test_crlf_input_is_stored_with_lf_line_ends(self):
        given = b"Subject: crlf\r\nX-A: 1\r\n\r\nline one\r\nline two\r\n\r\nend\r\n"
        self.deliver(["bob"], given)
        raw, _ = self.only("bob")
        self.assertNotIn(b"\r", raw)
        head, body = split_message(raw)
        self.assertEqual(value_of(head, "X-A"), [b"1"])
        self.assertEqual(body, b"line one\nline two\n\nend\n")

    def test_a_cr_that_is_not_before_a_lf_stays(self):
        self.deliver(["-i", "bob"], b"Subject: cr\n\na\rb\n")
        self.assertEqual(split_message(self.only("bob")[0])[1], b"a\rb\n")


class DotLine(SendmailCase):
    BODY = b"first\n.\nsecond\n"

    def test_without_dash_i_a_line_holding_a_single_dot_ends_the_message(self):
        self.deliver(["bob"], b"Subject: dot\n\n" + self.BODY)
        self.assertEqual(split_message(self.only("bob")[0])[1], b"first\n")

    def test_a_dot_line_with_crlf_ends_the_message_too(self):
        self.deliver(["bob"], b"Subject: dot\r\n\r\nfirst\r\n.\r\nsecond\r\n")
        self.assertEqual(split_message(self.only("bob")[0])[1], b"first\n")

    def test_with_dash_i_a_dot_line_is_kept(self):
        self.deliver(["-i", "bob"], b"Subject: dot\n\n" + self.BODY)
        self.assertEqual(split_message(self.only("bob")[0])[1], self.BODY)

    def test_with_dash_oi_a_dot_line_is_kept(self):
        self.deliver(["-oi", "bob"], b"Subject: dot\n\n" + self.BODY)
        self.assertEqual(split_message(self.only("bob")[0])[1], self.BODY)

    def test_double_dot_lines_are_not_unstuffed(self):
        body = b"..\n..two\n.x\n. \n"
        self.deliver(["bob"], b"Subject: dots\n\n" + body)
        self.assertEqual(split_message(self.only("bob")[0])[1], body)

    def test_double_dot_lines_are_not_unstuffed_with_dash_i(self):
        body = b"..\n..two\n.x\n. \n"
        self.deliver(["-i", "bob"], b"Subject: dots\n\n" + body)
        self.assertEqual(split_message(self.only("bob")[0])[1], body)

if __name__ == "__main__":
    mrtest.main()
