#!/bin/sh
# bench/world/run.sh - the world load of a score run (issue 9 item 6):
# world_load_as_of(T) + feat_prepare(T) alone, CPU time by getrusage, on
# the 1M-deal store, this tree against a peer tree side by side.
#
#   PEER_SRC=/path/to/a/built/prmcast/tree sh bench/world/run.sh [RUNS] [DB]
#
# bench/world/worldload.c is linked against this tree's engine objects
# (make prmcast first) and, with PEER_SRC, against the peer tree's (e.g. a
# `git archive main` built with make prmcast), then the two alternate RUNS
# times (default 5) on the same store as of $PRMCAST_NOW (2026-11-20).
# Each prints the load's CPU, feat_prepare's and the peak RSS; the load
# average is printed before and after (other engineers share the cores:
# read CPU time, and the ratio of the two side by side).
set -eu
cd "$(dirname "$0")/../.."
RUNS=${1:-5}
DB=${2:-build/bench/score-1000000.db}
AS_OF=${PRMCAST_NOW:-2026-11-20}
MULTI=$(gcc -print-multiarch 2>/dev/null || echo x86_64-linux-gnu)
make -s prmcast
link() {   # link TREE OUT
  objs=$(ls "$1"/build/obj/*.o | grep -v '/main\.o$')
  cc -std=c11 -O2 -g -D_DEFAULT_SOURCE -D_GNU_SOURCE -I"$1"/engine -I"$1"/build/gen \
     $(pkg-config --cflags lua5.4 sqlite3) -o "$2" bench/world/worldload.c $objs "$1"/build/libcore.a \
     /usr/lib/"$MULTI"/liblua5.4-cjson.a $(pkg-config --libs lua5.4 sqlite3 libcurl libcrypto libmicrohttpd) \
     -lcsv -lm -lpthread
}
link . build/worldload
[ -n "${PEER_SRC:-}" ] && link "$PEER_SRC" build/worldload-peer
echo "== world load as of $AS_OF on $DB, load before: $(cut -d' ' -f1-3 /proc/loadavg)"
for r in $(seq "$RUNS"); do
  build/worldload "$DB" "$AS_OF" | sed "s/^/  this: /"
  [ -n "${PEER_SRC:-}" ] && build/worldload-peer "$DB" "$AS_OF" | sed "s/^/  peer: /"
done | tee build/worldload.out
echo "   load after: $(cut -d' ' -f1-3 /proc/loadavg)"
awk '/this:/ { t[++nt] = $11 } /peer:/ { p[++np] = $11 }
  function sort(a, n,   i, j, x) { for (i = 1; i <= n; i++) for (j = i + 1; j <= n; j++) if (a[j] < a[i]) { x = a[i]; a[i] = a[j]; a[j] = x } }
  function med(a, n) { return n % 2 ? a[(n + 1) / 2] : (a[n / 2] + a[n / 2 + 1]) / 2 }
  END { sort(t, nt); sort(p, np)
        printf "  world (load + feat_prepare) CPU, median / min of %d: this %.3f / %.3f s", nt, med(t, nt), t[1]
        if (np) printf ", peer %.3f / %.3f s; peer / this = %.2fx / %.2fx", med(p, np), p[1], med(p, np) / med(t, nt), p[1] / t[1]
        printf "\n" }' build/worldload.out
