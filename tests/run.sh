#!/bin/sh
# tests/run.sh - runs every suite and prints "N passed, N failed" last.
#
# Suites print TAP ("ok N - name" / "not ok N - name"); this script counts
# those lines. A suite that exits non-zero without reporting a failure (a
# crash, a sanitizer report) counts as one failure of its own.
#   C unit tests          build/tests/test_*
#   same, ASan + UBSan    build/asan-tests/test_*
#   Lua tests             tests/lua/test_*.lua inside the real binary, and its ASan build
#   end-to-end            tests/e2e/test_*.sh
cd "$(dirname "$0")/.." || exit 2
export PRMCAST_HOME="$PWD"
export ASAN_OPTIONS=detect_leaks=1:abort_on_error=0
export UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1
out=build/test-out
mkdir -p "$out"
pass=0
fail=0

run_suite() {   # name, command...
  name=$1; shift
  log="$out/$(echo "$name" | tr '/ ' '__').log"
  "$@" >"$log" 2>&1
  rc=$?
  p=$(grep -c '^ok ' "$log")
  f=$(grep -c '^not ok ' "$log")
  if [ "$rc" -ne 0 ] && [ "$f" -eq 0 ]; then
    f=1
    echo "not ok - $name exited with status $rc" >>"$log"
  fi
  pass=$((pass + p))
  fail=$((fail + f))
  if [ "$f" -gt 0 ]; then
    printf '%-44s %4d passed, %d FAILED\n' "$name" "$p" "$f"
    grep -A3 '^not ok' "$log" | head -40 | sed 's/^/    /'
    tail -5 "$log" | sed 's/^/    | /'
  else
    printf '%-44s %4d passed\n' "$name" "$p"
  fi
}

for t in build/tests/test_*; do
  [ -x "$t" ] && run_suite "unit $(basename "$t")" "$t"
done
for t in build/asan-tests/test_*; do
  [ -x "$t" ] && run_suite "asan $(basename "$t")" "$t"
done
for t in tests/lua/test_*.lua; do
  [ -f "$t" ] && run_suite "lua $(basename "$t")" sh -c "rm -f '$out/lua.db'* && ./prmcast --db '$out/lua.db' run '$t'"
done
# The same scripts in the ASan+UBSan build of the whole engine.
for t in tests/lua/test_*.lua; do
  [ -f "$t" ] && [ -x build/prmcast-asan ] && run_suite "lua (asan) $(basename "$t")" sh -c "rm -f '$out/lua-asan.db'* && ./build/prmcast-asan --db '$out/lua-asan.db' run '$t'"
done
for t in tests/e2e/test_*.sh; do
  [ -f "$t" ] && run_suite "e2e $(basename "$t")" sh "$t"
done

echo "$pass passed, $fail failed"
[ "$fail" -eq 0 ]
