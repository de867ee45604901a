#!/usr/bin/env bash
# SMPP submit rate of smsdrop's driver (gosmpp) to the local node-smpp test
# SMSC (test/smsc/smsc.js): sender's BenchmarkSMPPSubmit, windows 10 and 50,
# run COUNT times each; prints the median submit_sm/s.
#   COUNT     (5)    runs of each sub-benchmark
#   BENCHTIME (2s)   go test -benchtime
source "$(dirname "$0")/lib.sh"

COUNT=${COUNT:-5}
BENCHTIME=${BENCHTIME:-2s}
need go golang
command -v node >/dev/null || die "node is missing: install Node.js 20 (apt-get install nodejs npm), then run again"

src=$ROOT
rev=$(git -C "$ROOT" rev-parse --short HEAD 2>/dev/null || echo unknown)
if [[ ${BUILD_FROM:-worktree} == head ]]; then
  src=$tmp/src
  mkdir -p "$src"
  rev=$(git -C "$ROOT" rev-parse --short "${BUILD_REV:-HEAD}") || die "unknown BUILD_REV ${BUILD_REV:-}"
  git -C "$ROOT" archive "$rev" | tar -x -C "$src" || die "git archive $rev failed"
  [[ -d $ROOT/test/smsc/node_modules ]] && cp -a "$ROOT/test/smsc/node_modules" "$src/test/smsc/"
elif [[ -n $(git -C "$ROOT" status --porcelain --untracked-files=no 2>/dev/null) ]]; then
  rev+="+worktree"
fi
SMSDROP_REV=$rev
if [[ ! -f $src/test/smsc/node_modules/smpp/package.json ]]; then
  command -v npm >/dev/null || die "npm is missing: install it (apt-get install npm), then run again"
  log "installing the test SMSC's node module (npm install smpp@0.5.1 in test/smsc)"
  (cd "$src/test/smsc" && npm install --no-audit --no-fund --silent smpp@0.5.1) || die "npm install failed"
fi

log "go test -bench BenchmarkSMPPSubmit -benchtime $BENCHTIME -count $COUNT ./sender/ ($rev), load $(loadavg)"
(cd "$src" && go test -run '^$' -bench '^BenchmarkSMPPSubmit$' -benchtime "$BENCHTIME" -count "$COUNT" ./sender/) \
  >"$tmp/bench.txt" 2>&1 || { cat "$tmp/bench.txt" >&2; die "go test -bench failed"; }
grep '^BenchmarkSMPPSubmit' "$tmp/bench.txt" >&2

bench_header "smpp: submit_sm to the local node-smpp SMSC, median of $COUNT"
{
  echo "window|runs|submit_sm/s (median)|min|max|us per submit_sm (median)"
  for w in $(sed -n 's/^BenchmarkSMPPSubmit\/window=\([0-9]*\).*/\1/p' "$tmp/bench.txt" | sort -nu); do
    awk -v w="$w" '$1 ~ "^BenchmarkSMPPSubmit/window=" w "(-[0-9]+)?$" {
        for (i = 1; i <= NF; i++) { if ($(i+1) == "submit_sm/s") r[++n] = $i; if ($(i+1) == "ns/op") t[++m] = $i }
      }
      function med(a, k,   i, j, x) {
        for (i = 2; i <= k; i++) { x = a[i]; for (j = i - 1; j >= 1 && a[j] > x; j--) a[j+1] = a[j]; a[j+1] = x }
        return (k % 2) ? a[(k+1)/2] : (a[k/2] + a[k/2+1]) / 2
      }
      END { mr = med(r, n); lo = r[1]; hi = r[n]; mt = med(t, m)
            printf "%s|%d|%.0f|%.0f|%.0f|%.1f\n", w, n, mr, lo, hi, mt/1000 }' "$tmp/bench.txt"
  done
} | table
echo "load average after the runs: $(loadavg)"
