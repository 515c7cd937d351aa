#!/bin/sh
# Runs the unit tests' PAM cases (tag "[pam]", hidden otherwise: core/pam_password.hpp
# against pam_matrix, tests/unit/pam_password_test.cpp) under pam_wrapper, which lets
# a test point libpam at service files of its own. Each case writes its service
# folder and password file; this script only loads the wrapper and says where
# pam_matrix.so is (PAM_MATRIX_MODULE).
# Exit 77 (CTest: skipped) when pam_wrapper or pam_matrix is not installed (Debian:
# libpam-wrapper, scripts/deps.sh); otherwise the unit tests' exit code, and a
# failure when no [pam] case is found (--warn NoTests).
# Usage: run_pam_tests.sh UNIT_TESTS
set -u
unit_tests=$1
wrapper=
matrix=
for dir in "/usr/lib/$(uname -m)-linux-gnu" /usr/lib64 /usr/lib /usr/local/lib; do
  [ -z "$wrapper" ] && [ -e "$dir/libpam_wrapper.so" ] && wrapper=$dir/libpam_wrapper.so
  [ -z "$matrix" ] && [ -e "$dir/pam_wrapper/pam_matrix.so" ] && matrix=$dir/pam_wrapper/pam_matrix.so
done
if [ -z "$wrapper" ] || [ -z "$matrix" ]; then
  echo "run_pam_tests.sh: pam_wrapper or pam_matrix is not installed (libpam-wrapper): skipped"
  exit 77
fi
# Under AddressSanitizer (make unit-asan): the wrapper comes before the ASan runtime
# in the preload list, which ASan is told to accept; the wrapper must open libpam
# without RTLD_DEEPBIND, which ASan refuses (libpam-wrapper 1.1.4 reads the switch
# under uid_wrapper's name, later versions under its own); and libpam's own leak
# when pam_start fails (the missing service case) is not ours to report.
suppressions=$(mktemp) || exit 1
trap 'rm -f "$suppressions"' EXIT
echo "leak:libpam.so" > "$suppressions"
LD_PRELOAD="$wrapper${LD_PRELOAD:+:$LD_PRELOAD}" PAM_WRAPPER=1 PAM_MATRIX_MODULE="$matrix" \
PAM_WRAPPER_DISABLE_DEEPBIND=1 UID_WRAPPER_DISABLE_DEEPBIND=1 \
ASAN_OPTIONS="${ASAN_OPTIONS:+$ASAN_OPTIONS:}verify_asan_link_order=0" \
LSAN_OPTIONS="${LSAN_OPTIONS:+$LSAN_OPTIONS:}suppressions=$suppressions" \
  "$unit_tests" --warn NoTests "[pam]"
