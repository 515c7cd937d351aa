#!/usr/bin/env bash
# make bench: mailroom's mda side by side with Dovecot's dovecot-lda, in one run.
#
#   bash tests/bench/run.sh [BIN_DIR]        (BIN_DIR defaults to build/bin)
#
# 1. Throughput: N (2000) messages of 4096 bytes, one process per message, started
#    sequentially by the same driver (tests/bench/deliver_loop.py, posix_spawn with
#    stdin opened on the message file), into a fresh mbox and a fresh Maildir. Both
#    programs fsync (mailroom always does; Dovecot gets mail_fsync = always). RUNS (3)
#    runs per program and format, mailroom and Dovecot interleaved; the median counts.
# 2. Peak RSS (GNU time %M) delivering one 1 MB and one 50 MB message, both formats.
# 3. A table on stdout and in build/bench/mda.txt.
# 4. Then the queue benchmark, sendmail + daemon against a private Postfix instance
#    (tests/bench/queue_bench.py, table in build/bench/queue.txt), with the same
#    BENCH_MESSAGES and BENCH_RUNS. BENCH_MAILQ=1 adds its 50,000-message mailq and
#    runner RSS part (several minutes of queue filling); BENCH_QUICK=1 makes it a
#    smoke run.
# 5. Then the alias benchmark against a private Postfix (tests/bench/bench_alias.py,
#    table in build/bench/alias.txt): one message to a 100-member list into 100
#    Maildirs, and a pipe alias; nss_wrapper users, BENCH_RUNS runs, BENCH_QUICK=1 a
#    smoke run.
# 6. Then lmtpd against Dovecot's LMTP (tests/bench/bench_lmtp.py, table in
#    build/bench/lmtp.txt): smtp-source -L -s 8 -m 5000 -l 4096 into each, Maildir,
#    fsync on both, BENCH_RUNS interleaved runs, then 200 sessions held.
# 7. Last, mta -d's SMTP listener against a private Postfix's smtpd
#    (tests/bench/bench_smtp.py, table in build/bench/smtp.txt): smtp-source -s 8
#    -m 5000 -l 4096 into 127.0.0.1 until all are in the Maildir, BENCH_RUNS
#    interleaved runs; STARTTLS handshakes/s; 500 plain and 500 TLS sessions held.
#
# Same conditions for both programs: both run as user nobody (setpriv, no user
# switch inside either program), into folders owned by nobody under one mktemp -d
# folder, each with its own private configuration and log file. dovecot-lda run as
# root refuses to work without -d USER (which needs the auth daemon), hence nobody.
# Dovecot is measured as it is deployed: a private Dovecot master (no protocols, no
# listeners but its UNIX sockets in the temp folder) serves the configuration over
# its config socket, which dovecot-lda reads with -c SOCKET. Without a master,
# dovecot-lda -c FILE execs doveconf and itself again on every delivery (3x slower).
# Nothing outside the temp folder and build/bench is written; no network is used.
#
# Environment knobs: BENCH_MESSAGES (2000), BENCH_RUNS (3), BENCH_DEADLINE (seconds
# for the mda part, 900; measurements that would pass it are reported as skipped),
# BENCH_MAILQ (0), BENCH_QUICK (0).
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
top=$(cd "$here/../.." && pwd)
bin=$(cd "${1:-$top/build/bin}" && pwd)
mda=$bin/mda
lda=/usr/lib/dovecot/dovecot-lda
driver=$here/deliver_loop.py
python=/usr/bin/python3
gnutime=/usr/bin/time
N=${BENCH_MESSAGES:-2000}
RUNS=${BENCH_RUNS:-3}
deadline=$(( $(date +%s) + ${BENCH_DEADLINE:-900} ))
out_dir=$top/build/bench
out=$out_dir/mda.txt

die() { echo "bench: $*" >&2; exit 1; }

[[ $(id -u) -eq 0 ]] || die "must run as root (it runs both programs as user nobody via setpriv and starts a private Dovecot master)"
[[ -x $mda ]] || die "no mda at $mda (build first: make build)"
[[ -x $lda ]] || die "no $lda (Debian package dovecot-core)"
[[ -x $gnutime ]] || die "no $gnutime (Debian package time)"
[[ -x $python ]] || die "no $python"
command -v setpriv >/dev/null || die "no setpriv (util-linux)"

nobody_uid=$(id -u nobody)
nobody_gid=$(id -g nobody)

work=$(mktemp -d "${TMPDIR:-/tmp}/mda-bench.XXXXXX")
master_pid=
cleanup() {
  local rc=$?
  if [[ -n $master_pid ]] && kill -0 "$master_pid" 2>/dev/null; then
    kill "$master_pid" 2>/dev/null || true
    wait "$master_pid" 2>/dev/null || true
  fi
  rm -rf "$work"
  exit $rc
}
trap cleanup EXIT
trap 'exit 130' INT TERM
chmod 0755 "$work"

# Seconds left before the deadline, at most $1; fails when fewer than 5 are left.
budget() {
  local left=$(( deadline - $(date +%s) ))
  (( left >= 5 )) || return 1
  if (( left < $1 )); then echo "$left"; else echo "$1"; fi
}

# Run a command as nobody, with the same small environment for both programs.
as_nobody() {
  setpriv --reuid="$nobody_uid" --regid="$nobody_gid" --clear-groups \
    env -i PATH=/usr/bin:/bin LANG=C HOME="$work/home" TMPDIR="$work/tmp" "$@"
}

mkdir -p "$work/home" "$work/tmp" "$work/box" "$work/dovecot"

# ---- messages -------------------------------------------------------------------
# make_message PATH SIZE: an RFC 5322 message of exactly SIZE bytes, 72-column body
# lines that never start with "From ".
make_message() {
  "$python" - "$1" "$2" <<'PY'
import sys
path, size = sys.argv[1], int(sys.argv[2])
head = ("From: Bench Sender <sender@bench.example>\n"
        "To: nobody@bench.example\n"
        "Subject: mailroom bench, %d bytes\n"
        "Date: Sat, 21 Nov 2026 12:00:00 +0000\n"
        "Message-ID: <bench-%d@bench.example>\n"
        "MIME-Version: 1.0\n"
        "Content-Type: text/plain; charset=us-ascii\n\n" % (size, size)).encode()
line = (b"abcdefghijklmnopqrstuvwxyz0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ-_.,;:!?+=*" [:71] + b"\n")
body_len = size - len(head)
body = line * (body_len // len(line))
rest = body_len - len(body)
if rest:
    body += b"x" * (rest - 1) + b"\n"
with open(path, "wb") as f:
    f.write(head + body)
assert len(head + body) == size
PY
}
make_message "$work/msg-4k" 4096
make_message "$work/msg-1m" $((1024 * 1024))
make_message "$work/msg-50m" $((50 * 1024 * 1024))

# ---- mailroom configuration -----------------------------------------------------
cat > "$work/mailroom.conf" <<CONF
myhostname = bench.example
mail_spool_dir = $work/box
log = $work/mda.log
message_size_limit = 200M
CONF

# ---- Dovecot: private master serving the configuration ----------------------------
dv=$work/dovecot
cat > "$dv/dovecot.conf" <<CONF
# Private instance for the benchmark: nothing outside $work.
base_dir = $dv/run
state_dir = $dv/state
instance_name = mailroom-bench
log_path = $work/dovecot.log
info_log_path = $work/dovecot.log
protocols =
ssl = no
mail_fsync = always
mail_home = $work/home
mail_location = mbox:$work/home/mail:INBOX=$work/box/dovecot.mbox
service config {
  unix_listener config {
    mode = 0666
  }
}
service stats {
  unix_listener stats-writer {
    mode = 0666
  }
}
CONF
mkdir -p "$dv/state"
chown -R "$nobody_uid:$nobody_gid" "$work/home" "$work/tmp" "$work/box"
chown "$nobody_uid:$nobody_gid" "$work"/msg-*
touch "$work/mda.log" "$work/dovecot.log"
chown "$nobody_uid:$nobody_gid" "$work/mda.log" "$work/dovecot.log"

fsync_setting=$(doveconf -c "$dv/dovecot.conf" -h mail_fsync)
[[ $fsync_setting == always ]] || die "Dovecot's mail_fsync is '$fsync_setting', not 'always'"

dovecot -F -c "$dv/dovecot.conf" </dev/null >>"$work/dovecot.log" 2>&1 &
master_pid=$!
for _ in $(seq 100); do [[ -S $dv/run/config ]] && break; sleep 0.1; done
[[ -S $dv/run/config ]] || die "the private Dovecot master did not create its config socket (log: $(tail -3 "$work/dovecot.log"))"

mbox_path=$work/box/nobody.mbox
maildir_path=$work/box/nobody.maildir/
dv_mbox=$work/box/dovecot.mbox
dv_maildir=$work/box/dovecot.maildir

# The two command lines, per format (the driver appends nothing).
cmd() { # cmd PROGRAM FORMAT
  case $1.$2 in
    mailroom.mbox)    echo "$mda -C $work/mailroom.conf -f sender@bench.example -m mbox -o $mbox_path nobody" ;;
    mailroom.maildir) echo "$mda -C $work/mailroom.conf -f sender@bench.example -m maildir -o $maildir_path nobody" ;;
    dovecot.mbox)     echo "$lda -c $dv/run/config -f sender@bench.example -o mail_location=mbox:$work/home/mail:INBOX=$dv_mbox" ;;
    dovecot.maildir)  echo "$lda -c $dv/run/config -f sender@bench.example -o mail_location=maildir:$dv_maildir" ;;
  esac
}

# Empty every mailbox and index (not timed): the old ones are moved aside, not
# deleted, until the end. Deleting 2000 files right before a run makes ext4 pass
# over every inode freed in the last minutes each time it allocates one
# (__ext4_new_inode -> recently_deleted): a cost of the benchmark's, not of the
# program measured (tests/bench/bench_common.py set_aside).
resets=0
reset_boxes() {
  resets=$((resets + 1))
  mkdir -p "$work/old/$resets"
  [[ -e $work/box ]] && mv "$work/box" "$work/old/$resets/"
  [[ -e $work/home ]] && mv "$work/home" "$work/old/$resets/"
  mkdir -p "$work/box" "$work/home"
  chown "$nobody_uid:$nobody_gid" "$work/box" "$work/home"
}

# Messages in the mailbox PROGRAM FORMAT wrote.
count_box() {
  local f d
  case $1.$2 in
    mailroom.mbox) f=$mbox_path ;;
    dovecot.mbox) f=$dv_mbox ;;
    mailroom.maildir) d=${maildir_path%/} ;;
    dovecot.maildir) d=$dv_maildir ;;
  esac
  if [[ -n ${f:-} ]]; then
    if [[ -f $f ]]; then grep -c '^From ' "$f" || true; else echo 0; fi
  else
    { find "$d/new" "$d/cur" -type f 2>/dev/null || true; } | wc -l
  fi
}

declare -A rates     # [program.format] = "r1 r2 r3"
declare -A failed    # [program.format] = reason
declare -A skipped   # [program.format] = runs skipped for the deadline
declare -A cpums     # [program.format] = "cpu-ms-per-message per run"
declare -A last_secs # [program.format] = whole seconds the last run took
# measure PROGRAM FORMAT: one timed loop of N deliveries into an empty mailbox.
measure() {
  local p=$1 f=$2 res rc=0 n secs cpu got t
  [[ -n ${failed[$p.$f]:-} ]] && return 0
  # Skip (not fail) a run that cannot finish before the deadline: too little time
  # left, judging by this program's previous run, or cut short by the deadline.
  t=$(budget 300) || t=0
  if (( t < 5 || t < ${last_secs[$p.$f]:-0} * 3 / 2 )); then
    skipped[$p.$f]=$(( ${skipped[$p.$f]:-0} + 1 )); return 0
  fi
  reset_boxes
  # shellcheck disable=SC2046
  res=$(as_nobody timeout "$t" "$python" "$driver" "$N" "$work/msg-4k" -- $(cmd "$p" "$f") 2>"$work/err") || rc=$?
  if (( rc == 124 && t < 300 )); then
    skipped[$p.$f]=$(( ${skipped[$p.$f]:-0} + 1 )); return 0
  elif (( rc == 124 )); then
    failed[$p.$f]="timed out: $N deliveries did not finish in $t s"
    echo "  $p $f: ${failed[$p.$f]}" >&2
    return 0
  elif (( rc != 0 )); then
    failed[$p.$f]="failed (driver exit $rc): $(head -c 300 "$work/err" | tr '\n' ' ')"
    echo "  $p $f: ${failed[$p.$f]}" >&2
    return 0
  fi
  read -r n secs cpu <<<"$res"
  last_secs[$p.$f]=$(( ${secs%.*} + 1 ))
  got=$(count_box "$p" "$f")
  if [[ $got -ne $N ]]; then
    failed[$p.$f]="exit 0 for all $N deliveries but the mailbox holds $got messages"
    echo "  $p $f: ${failed[$p.$f]}" >&2
    return 0
  fi
  local rate
  rate=$(awk -v n="$n" -v s="$secs" 'BEGIN { printf "%.1f", n / s }')
  rates[$p.$f]="${rates[$p.$f]:-}$rate "
  cpums[$p.$f]="${cpums[$p.$f]:-}$(awk -v n="$n" -v c="$cpu" 'BEGIN { printf "%.2f", 1000 * c / n }') "
  printf '  %-8s %-7s run: %6.2f s  %7s msg/s\n' "$p" "$f" "$secs" "$rate" >&2
}

median() { tr ' ' '\n' | sed '/^$/d' | sort -g | awk '{ a[NR] = $1 } END { if (NR == 0) print "-"; else if (NR % 2) print a[(NR + 1) / 2]; else printf "%.1f\n", (a[NR / 2] + a[NR / 2 + 1]) / 2 }'; }

echo "bench: work folder $work, $N messages x 4096 bytes, $RUNS runs each, as nobody" >&2
echo "bench: mda = $mda" >&2

# ---- peak RSS ---------------------------------------------------------------------
declare -A rss   # [program.format.size] = KB or reason
rss_one() { # rss_one PROGRAM FORMAT SIZE-LABEL MESSAGE
  local p=$1 f=$2 s=$3 msg=$4 rc=0 kb got t
  if ! t=$(budget 120); then rss[$p.$f.$s]="skipped (deadline)"; return 0; fi
  reset_boxes
  # shellcheck disable=SC2046
  as_nobody timeout "$t" "$gnutime" -o "$work/tmp/rss" -f %M $(cmd "$p" "$f") <"$msg" >/dev/null 2>"$work/err" || rc=$?
  if (( rc != 0 )); then
    rss[$p.$f.$s]="failed (exit $rc)"
    echo "  rss $p $f $s: failed (exit $rc): $(head -c 300 "$work/err" | tr '\n' ' ')" >&2
    return 0
  fi
  kb=$(tail -1 "$work/tmp/rss")
  got=$(count_box "$p" "$f")
  if [[ $got -ne 1 ]]; then
    rss[$p.$f.$s]="not delivered"
    echo "  rss $p $f $s: exit 0 but $got messages in the mailbox" >&2
    return 0
  fi
  rss[$p.$f.$s]=$kb
  echo "  rss $p $f $s: $kb KB" >&2
}
for s in 1M 50M; do
  msg=$work/msg-1m; [[ $s == 50M ]] && msg=$work/msg-50m
  for f in mbox maildir; do
    for p in mailroom dovecot; do rss_one "$p" "$f" "$s" "$msg"; done
  done
done

# ---- throughput ---------------------------------------------------------------
# Floor of the driver itself: the same loop starting /bin/true.
reset_boxes
t=$(budget 120) || die "deadline reached before the first measurement"
floor=$(as_nobody timeout "$t" "$python" "$driver" "$N" "$work/msg-4k" -- /bin/true)
read -r floor_n floor_s _ <<<"$floor"
floor_rate=$(awk -v n="$floor_n" -v s="$floor_s" 'BEGIN { printf "%.0f", n / s }')
echo "  driver floor (/bin/true): $floor_rate starts/s" >&2

# Warm-up (page cache, dynamic loader): 50 deliveries each, not counted.
for f in mbox maildir; do
  for p in mailroom dovecot; do
    t=$(budget 60) || break
    reset_boxes
    # shellcheck disable=SC2046
    as_nobody timeout "$t" "$python" "$driver" 50 "$work/msg-4k" -- $(cmd "$p" "$f") >/dev/null 2>"$work/err" || true
  done
done

# Interleaved: for each run, each format, mailroom then Dovecot (order alternating).
for r in $(seq "$RUNS"); do
  for f in mbox maildir; do
    if (( r % 2 )); then order="mailroom dovecot"; else order="dovecot mailroom"; fi
    for p in $order; do measure "$p" "$f"; done
  done
done

# ---- table --------------------------------------------------------------------------
mb() { # KB -> "x.x MB", or the reason unchanged
  [[ $1 =~ ^[0-9]+$ ]] && awk -v k="$1" 'BEGIN { printf "%.1f MB", k / 1024 }' || echo "$1"
}
verdict_rate() { awk -v r="$1" 'BEGIN { print (r >= 2.0) ? "yes" : "NO" }'; }

{
  echo "mailroom mda vs dovecot-lda — one process per message, sequential"
  echo "date: $(date -u '+%Y-%m-%d %H:%M UTC')   host: $(uname -n), $(nproc) CPUs, $(uname -r)"
  echo "work folder: $(df -T "$work" | awk 'NR == 2 { print $2 " on " $1 }')   both run as nobody (setpriv), no user switch"
  echo "mda: $mda   (always fsyncs)"
  echo "dovecot-lda: $(dovecot --version | cut -d' ' -f1), mail_fsync = $fsync_setting, config from a private master's socket"
  echo "messages: $N x 4096 bytes per run; $RUNS runs each, interleaved; median shown"
  echo "driver: $python $driver (posix_spawn + wait4); its floor with /bin/true: $floor_rate starts/s"
  echo
  echo "Throughput (messages/s, median of $RUNS)"
  paired_notes=()
  printf '%-9s %14s %14s %9s %12s\n' format "mailroom mda" "dovecot-lda" ratio "≥ 2.0x?"
  for f in mbox maildir; do
    label=$f; [[ $f == maildir ]] && label=Maildir
    mr=FAILED; [[ -z ${failed[mailroom.$f]:-} ]] && mr=$(echo "${rates[mailroom.$f]:-}" | median)
    dr=FAILED; [[ -z ${failed[dovecot.$f]:-} ]] && dr=$(echo "${rates[dovecot.$f]:-}" | median)
    if [[ $mr != FAILED && $dr != FAILED && $mr != - && $dr != - ]]; then
      ratio=$(awk -v a="$mr" -v b="$dr" 'BEGIN { printf "%.2f", a / b }')
      printf '%-9s %14s %14s %8sx %12s\n' "$label" "$mr" "$dr" "$ratio" "$(verdict_rate "$ratio")"
      # Ratio of each interleaved pair (same run number), robust to slow drift.
      pairs=$(awk -v m="${rates[mailroom.$f]:-}" -v d="${rates[dovecot.$f]:-}" 'BEGIN {
        n = split(m, a, " "); k = split(d, b, " "); if (k < n) n = k
        for (i = 1; i <= n; i++) printf "%.2f ", a[i] / b[i] }')
      paired_notes+=("  $label: mailroom/dovecot-lda per interleaved run pair: ${pairs:-none}(median $(echo "$pairs" | median))")
    else
      printf '%-9s %14s %14s %9s %12s\n' "$label" "$mr" "$dr" "-" "no result"
    fi
  done
  for note in "${paired_notes[@]}"; do echo "$note"; done
  echo "CPU per message (user+system of the delivery process, ms, median; disk waits excluded)"
  for f in mbox maildir; do
    label=$f; [[ $f == maildir ]] && label=Maildir
    printf '  %-8s mailroom mda %6s   dovecot-lda %6s\n' "$label" \
      "$(echo "${cpums[mailroom.$f]:-}" | median)" "$(echo "${cpums[dovecot.$f]:-}" | median)"
  done
  for f in mbox maildir; do
    for p in mailroom dovecot; do
      if [[ -n ${failed[$p.$f]:-} ]]; then
        echo "  $p $f: ${failed[$p.$f]}"
      else
        echo "  $p $f runs (msg/s): ${rates[$p.$f]:-none}"
      fi
      if [[ -n ${skipped[$p.$f]:-} ]]; then
        echo "  $p $f: ${skipped[$p.$f]} of $RUNS runs skipped (BENCH_DEADLINE reached); median of the others"
      fi
    done
  done
  echo
  echo "Peak RSS delivering one message (GNU time %M)"
  printf '%-8s %-9s %14s %14s\n' message format "mailroom mda" "dovecot-lda"
  for s in 1M 50M; do
    for f in mbox maildir; do
      label=$f; [[ $f == maildir ]] && label=Maildir
      printf '%-8s %-9s %14s %14s\n' "${s/M/ MB}" "$label" "$(mb "${rss[mailroom.$f.$s]}")" "$(mb "${rss[dovecot.$f.$s]}")"
    done
  done
  worst=0
  for k in "${!rss[@]}"; do
    [[ $k == mailroom.* ]] || continue
    v=${rss[$k]}
    if [[ $v =~ ^[0-9]+$ ]]; then (( v > worst )) && worst=$v; else worst=-1; break; fi
  done
  if (( worst < 0 )); then
    echo "mda under 8 MB for both sizes: no result (a delivery failed)"
  else
    small=$(( ${rss[mailroom.mbox.1M]} > ${rss[mailroom.maildir.1M]} ? ${rss[mailroom.mbox.1M]} : ${rss[mailroom.maildir.1M]} ))
    big=$(( ${rss[mailroom.mbox.50M]} > ${rss[mailroom.maildir.50M]} ? ${rss[mailroom.mbox.50M]} : ${rss[mailroom.maildir.50M]} ))
    under=$( (( worst < 8192 )) && echo yes || echo NO )
    flat=$( (( big - small < 1024 )) && echo yes || echo NO )
    echo "mda peak RSS under 8 MB: $under (max $(mb "$worst")); flat in size (50 MB - 1 MB < 1 MB): $flat ($(( big - small )) KB)"
  fi
} > "$work/table"

mkdir -p "$out_dir"
cp "$work/table" "$out"
echo
cat "$work/table"
echo "(also in $out)"

# ---- queue benchmark ------------------------------------------------------------------
# Dovecot's master is not needed any more; it should not sit in the queue runs.
if [[ -n $master_pid ]]; then
  kill "$master_pid" 2>/dev/null || true
  wait "$master_pid" 2>/dev/null || true
  master_pid=
fi
if [[ ${BENCH_QUICK:-0} == 1 ]]; then
  queue_args=(--quick)
else
  queue_args=(--messages "$N" --runs "$RUNS")
fi
[[ ${BENCH_MAILQ:-0} == 1 ]] && queue_args+=(--mailq)
# The Python benchmarks keep their folders under $work, removed with it at the very
# end: a removal (100,000 queue files after --mailq) right before the next benchmark
# would slow every file it creates (bench_common.py set_aside).
mkdir -p "$work/py"
export TMPDIR=$work/py
queue_args+=(--keep)
echo
"$python" "$here/queue_bench.py" "${queue_args[@]}" "$bin"
if [[ ${BENCH_QUICK:-0} == 1 ]]; then
  alias_args=(--quick)
else
  alias_args=(--runs "$RUNS")
fi
alias_args+=(--keep)
echo
"$python" "$here/bench_alias.py" "${alias_args[@]}" "$bin"
# ---- LMTP benchmark: lmtpd against Dovecot's LMTP --------------------------------------
if [[ ${BENCH_QUICK:-0} == 1 ]]; then
  lmtp_args=(--runs 1 --messages 1000 --sessions-held 200)
else
  lmtp_args=(--runs "$RUNS" --sessions-held 200)
fi
lmtp_args+=(--keep)
echo
"$python" "$here/bench_lmtp.py" "${lmtp_args[@]}" "$bin"
# ---- SMTP benchmark: mta -d's listener against Postfix's smtpd -------------------------
if [[ ${BENCH_QUICK:-0} == 1 ]]; then
  smtp_args=(--runs 1 --messages 1000 --sessions-held 100 --tls-handshakes 200 --tls-held 100)
else
  smtp_args=(--runs "$RUNS")
fi
smtp_args+=(--keep)
echo
"$python" "$here/bench_smtp.py" "${smtp_args[@]}" "$bin"
