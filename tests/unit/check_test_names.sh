#!/bin/sh
# Every unit test's name must reach CTest whole: catch_discover_tests passes the
# names through a CMake list, which splits at ';' and does not split inside
# unbalanced '[' ']'. A name that breaks either becomes CTest entries that match
# no case and pass without running one. Prints the offending names; exit 1 if any.
"$1" --list-test-names-only | awk '
    { opens = gsub(/\[/, "["); closes = gsub(/\]/, "]") }
    /;/ || opens != closes { print "unit test name CTest cannot carry: " $0; bad = 1 }
    END { exit bad }'
