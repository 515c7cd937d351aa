#!/usr/bin/env bash
# make demo: deliver one message with the built mda into an mbox and a Maildir
# under ./var, then print both back. Touches nothing outside ./var.
set -euo pipefail
bin=${1:-build/bin}
top=$(pwd)
var=$top/var
user=$(id -un)
rm -rf "$var/demo"
mkdir -p "$var/demo/mail"
chmod 1777 "$var/demo/mail"
conf=$var/demo/mailroom.conf
cat > "$conf" <<CONF
# The demo's configuration: every other key keeps its default (etc/mailroom.conf).
myhostname = demo.example
mail_spool_dir = $var/demo/mail
log = $var/demo/mailroom.log
CONF

message() {
  cat <<MSG
From: Cron Daemon <root@demo.example>
To: $user@demo.example
Subject: hello from mailroom ($1)
Date: $(LC_ALL=C date -R)

This message went through mda into a $1 mailbox.
From here on, a body line starting with "From " is quoted in mbox.
MSG
}

echo "==> mda -f root@demo.example $user   (mbox, $var/demo/mail/$user)"
message mbox | "$bin/mda" -C "$conf" -f root@demo.example "$user"
echo "==> mda -m maildir -f root@demo.example $user   (Maildir, $var/demo/mail/$user.maildir/)"
message Maildir | "$bin/mda" -C "$conf" -m maildir -o "$var/demo/mail/$user.maildir/" -f root@demo.example "$user"

echo
echo "==> the mbox, as stored:"
cat "$var/demo/mail/$user"
echo "==> the Maildir message, as stored:"
cat "$var/demo/mail/$user.maildir/new/"*
echo "==> read back with Python's mailbox module:"
python3 - "$var/demo/mail/$user" "$var/demo/mail/$user.maildir" <<'PY'
import mailbox, sys
for kind, box in (("mbox", mailbox.mbox(sys.argv[1])), ("Maildir", mailbox.Maildir(sys.argv[2], create=False))):
    for msg in box:
        print(f"  {kind}: Subject: {msg['Subject']} | Delivered-To: {msg['Delivered-To']} | Return-Path: {msg['Return-Path']}")
PY
echo "==> the log ($var/demo/mailroom.log):"
cat "$var/demo/mailroom.log"
