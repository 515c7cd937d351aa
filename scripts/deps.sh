#!/usr/bin/env bash
# Install the Debian 12 packages that mailroom's build, tests and benchmarks need.
# Only missing packages are installed; `apt-get update` runs once, first.
# Not root and something missing: say what, and exit 1.
set -euo pipefail

packages=(
  # build
  g++ cmake make pkg-config
  libboost1.81-dev libboost-filesystem1.81-dev
  libssl-dev libpam0g-dev libcdb-dev libfmt-dev catch2
  # tests: fake users and privilege changes, independent readers, peers
  libnss-wrapper libuid-wrapper libpam-wrapper
  python3 mutt swaks procmail  # procmail: formail, an mbox reader that trusts Content-Length
  libnet-ssleay-perl libauthen-sasl-perl openssl  # swaks --tls and --auth
  dovecot-core dovecot-lmtpd postfix
  # fuzzing and benchmarks
  clang libclang-rt-14-dev time procps pflogsumm
)

missing=()
for p in "${packages[@]}"; do
  if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed'; then
    missing+=("$p")
  fi
done

if [ ${#missing[@]} -eq 0 ]; then
  exit 0
fi

if [ "$(id -u)" -ne 0 ]; then
  echo "deps.sh: error: missing Debian packages (run as root to install): ${missing[*]}" >&2
  exit 1
fi

echo "deps.sh: installing ${missing[*]}"
export DEBIAN_FRONTEND=noninteractive
# Postfix asks for its mail configuration; the benchmark uses a private config folder.
echo "postfix postfix/main_mailer_type select No configuration" | debconf-set-selections
apt-get update -q </dev/null
# policy-rc.d keeps package scripts from starting daemons (postfix, dovecot) on this host.
policy=/usr/sbin/policy-rc.d
made_policy=no
if [ ! -e "$policy" ]; then
  printf '#!/bin/sh\nexit 101\n' > "$policy"; chmod 755 "$policy"; made_policy=yes
fi
trap '[ "$made_policy" = yes ] && rm -f "$policy"' EXIT
# libboost1.81-dev conflicts with the default 1.74 -dev packages: apt removes those.
apt-get install -y -q --no-install-recommends "${missing[@]}" </dev/null
