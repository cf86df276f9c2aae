# tests/e2e/lib.sh - helpers for end-to-end tests: TAP output, a scratch
# directory, the binary under test. Sourced by tests/e2e/test_*.sh.
set -u
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
P="$ROOT/prmcast"
export PRMCAST_HOME="$ROOT"
T=$(mktemp -d /tmp/prmcast-e2e.XXXXXX)
trap 'rm -rf "$T"' EXIT
n=0
failed=0

ok() {      # ok CONDITION-EXIT-STATUS NAME [DETAIL]
  n=$((n + 1))
  if [ "$1" -eq 0 ]; then
    echo "ok $n - $2"
  else
    failed=$((failed + 1))
    echo "not ok $n - $2"
    [ $# -ge 3 ] && echo "#   $3"
  fi
}

check() {   # check NAME COMMAND... : the command's exit status decides
  name=$1; shift
  if "$@" >/dev/null 2>&1; then ok 0 "$name"; else ok 1 "$name" "failed: $*"; fi
}

q() { sqlite3 "$1" "$2"; }   # q DB SQL -> result

done_testing() {
  echo "1..$n"
  [ "$failed" -eq 0 ]
}
