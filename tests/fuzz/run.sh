#!/bin/sh
# tests/fuzz/run.sh SECONDS [TARGET...] - builds each libFuzzer target with
# clang (ASan + UBSan) and runs it for SECONDS (default 20) from its seed
# corpus in tests/fuzz/corpus/<target>. New inputs go to build/fuzz/, not
# the committed corpus. A crash, leak, sanitizer report or broken invariant
# stops the target and leaves the input as build/fuzz/<target>/crash-*;
# such an input becomes a regression test (the tests replay every file in
# tests/fuzz/regress/<target>/ on each run, before fuzzing).
#   targets: csv (prm.csv over libcsv), json (JSON record scan), jsonpage
#   (the page walker of declared sync objects), parse
#   (dates, money, percentages), model (model_load), http (Retry-After
#   values, URL and message redaction)
set -eu
cd "$(dirname "$0")/../.."
SECS=${1:-20}
[ $# -gt 0 ] && shift
TARGETS=${*:-csv json jsonpage parse model http}
CLANG=${CLANG:-$(command -v clang-14 || command -v clang || true)}
if [ -z "$CLANG" ]; then
  echo "tests/fuzz/run.sh: clang is missing (Debian: apt-get install clang-14 libclang-rt-14-dev)" >&2
  exit 2
fi
B=build/fuzz
mkdir -p "$B"
CF="-std=c11 -D_DEFAULT_SOURCE -D_GNU_SOURCE -Iengine -g -O1 -fno-omit-frame-pointer
    -fsanitize=fuzzer,address,undefined -fno-sanitize-recover=undefined"
LUA_CF=$(pkg-config --cflags lua5.4)
LUA_LIBS=$(pkg-config --libs lua5.4)
CORE=""
for f in engine/ts*.c engine/model*.c engine/mc*.c engine/metrics.c engine/clsmetrics.c engine/rng.c \
         engine/error.c; do
  [ -f "$f" ] && CORE="$CORE $f"
done

build() {   # target -> build/fuzz/fuzz_<target>
  case $1 in
    csv)   src="engine/lcsvlib.c engine/json.c engine/jsonscan.c engine/numparse.c engine/currency.c
                 engine/timeutil.c engine/error.c tests/fuzz/stub_store.c"; extra="$LUA_CF"; libs="$LUA_LIBS -lcsv -lm" ;;
    json)  src="engine/jsonscan.c engine/json.c engine/error.c"; extra=""; libs="-lm" ;;
    jsonpage) src="engine/jsonscan.c engine/json.c engine/error.c"; extra=""; libs="-lm" ;;
    parse) src="engine/timeutil.c engine/numparse.c engine/currency.c engine/error.c"; extra=""; libs="-lm" ;;
    model) src="$CORE"; extra=""; libs="-lm" ;;
    http)  src="engine/http.c engine/error.c"; extra="$(pkg-config --cflags libcurl)"; libs="$(pkg-config --libs libcurl)" ;;
    *) echo "unknown fuzz target $1" >&2; exit 2 ;;
  esac
  # shellcheck disable=SC2086
  "$CLANG" $CF $extra -o "$B/fuzz_$1" "tests/fuzz/fuzz_$1.c" $src $libs
}

status=0
for t in $TARGETS; do
  echo "fuzz $t: building"
  build "$t"
  work="$B/$t"
  mkdir -p "$work/corpus"
  cp tests/fuzz/corpus/"$t"/* "$work/corpus/" 2>/dev/null || true
  if [ -d "tests/fuzz/regress/$t" ]; then
    # shellcheck disable=SC2046
    if ! "$B/fuzz_$t" $(ls -d tests/fuzz/regress/"$t"/*) >"$work/regress.log" 2>&1; then
      echo "fuzz $t: a regression input fails again:"; tail -30 "$work/regress.log"; status=1; continue
    fi
  fi
  echo "fuzz $t: running ${SECS}s"
  if "$B/fuzz_$t" -max_total_time="$SECS" -timeout=10 -rss_limit_mb=1024 -max_len=8192 \
       -artifact_prefix="$work/" -print_final_stats=1 "$work/corpus" >"$work/fuzz.log" 2>&1; then
    echo "fuzz $t: ok ($(grep -o 'stat::number_of_executed_units: *[0-9]*' "$work/fuzz.log" | grep -o '[0-9]*$') runs)"
  else
    echo "fuzz $t: FAILED (input: $(ls "$work"/crash-* "$work"/leak-* "$work"/timeout-* "$work"/oom-* 2>/dev/null | head -1))"
    grep -A25 'ERROR\|fuzz_csv:\|runtime error' "$work/fuzz.log" | head -40
    status=1
  fi
done
exit $status
