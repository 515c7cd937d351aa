#!/usr/bin/env bash
# make demo: a message travels from sendmail through the queue (spool under ./var)
# to a mailbox, delivered by the queue runner; then mda delivers one straight into
# a Maildir. Prints the queue entry, the mailboxes and the log. Touches nothing
# outside ./var.
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
spool_dir = $var/demo/spool
mail_spool_dir = $var/demo/mail
log = $var/demo/mailroom.log
CONF

message() {
  cat <<MSG
To: $user@demo.example
Subject: hello from mailroom ($1)

This message went through $1.
From here on, a body line starting with "From " is quoted in mbox.
MSG
}

echo "==> sendmail -odq -F 'Cron Daemon' $user   (queued only, in $var/demo/spool/queue)"
message "sendmail, the queue and mta -q" | "$bin/sendmail" -C "$conf" -odq -F "Cron Daemon" "$user"
echo "==> the queue entry, as stored (message, then envelope):"
cat "$var/demo/spool/queue/"*
echo
echo "==> mta -q   (the queue runner delivers it to $var/demo/mail/$user)"
"$bin/mta" -C "$conf" -q
echo "==> mda -m maildir -f root@demo.example $user   (Maildir, $var/demo/mail/$user.maildir/)"
message "mda into a Maildir" | "$bin/mda" -C "$conf" -m maildir -o "$var/demo/mail/$user.maildir/" -f root@demo.example "$user"

echo
echo "==> the mbox, as stored:"
cat "$var/demo/mail/$user"
echo "==> read back with Python's mailbox module:"
python3 - "$var/demo/mail/$user" "$var/demo/mail/$user.maildir" <<'PY'
import mailbox, sys
for kind, box in (("mbox", mailbox.mbox(sys.argv[1])), ("Maildir", mailbox.Maildir(sys.argv[2], create=False))):
    for msg in box:
        print(f"  {kind}: Subject: {msg['Subject']} | From: {msg['From']} | Delivered-To: {msg['Delivered-To']}")
PY
echo "==> the log ($var/demo/mailroom.log):"
cat "$var/demo/mailroom.log"
