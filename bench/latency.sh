#!/usr/bin/env bash
# Upload-to-report latency: COUNT small drop files uploaded one after another
# with curl (one connection each); for each, the time from curl's exit (the
# upload acknowledged with 226 and the session closed) to the moment
# results/NAME.report appears (inotify, time-stamped as the event arrives).
#   COUNT (200)  uploads
# Goal: median < 20 ms.
source "$(dirname "$0")/lib.sh"

COUNT=${COUNT:-200}
need curl curl
need inotifywait inotify-tools
build_smsdrop

port=$(free_ports 12)
smsdrop_config "$tmp/smsdrop.toml" ftp_port="$port" pasv="$((port + 1))-$((port + 11))"
start_smsdrop "$tmp/smsdrop.toml" "$port"
res=$tmp/data/accounts/bench/results

# Every event in results/ with the time it reached us: inotifywait writes
# into a FIFO, a bash loop (builtins only, no fork) stamps each line.
mkfifo "$tmp/events.fifo"
inotifywait -m -q -e moved_to -e create --format '%f' "$res" >"$tmp/events.fifo" &
track $!
while IFS= read -r f; do printf '%s %s\n' "${EPOCHREALTIME/[.,]/}" "$f"; done <"$tmp/events.fifo" >"$tmp/events" &
track $!
sleep 0.5

mkdir -p "$tmp/files"
for ((i = 0; i < COUNT; i++)); do
  printf 'U-BENCH\nT-Latency probe %d of %d\n#-%s\n#-%s\n' "$i" "$RANDOM" \
    "$(gb_number $((2 * i)))" "$(gb_number $((2 * i + 1)))" >"$tmp/files/lat$i.txt"
done

c0=$(cpu_seconds "$SMSDROP_PID")
profile_start
: >"$tmp/ends"
for ((i = 0; i < COUNT; i++)); do
  curl -sS --fail -T "$tmp/files/lat$i.txt" "ftp://bench:pw@127.0.0.1:$port/lat$i.txt" ||
    die "upload $i failed"
  echo "${EPOCHREALTIME/[.,]/} lat$i.txt.report" >>"$tmp/ends"
  # One at a time: the next upload starts once this report is there.
  for ((w = 0; w < 1000; w++)); do
    [[ -e $res/lat$i.txt.report ]] && break
    sleep 0.005
  done
  [[ -e $res/lat$i.txt.report ]] || smsdrop_stuck "no report for lat$i.txt after 5 s"
done
profile_stop latency
sleep 0.2
cpu=$(awk -v a="$c0" -v b="$(cpu_seconds "$SMSDROP_PID")" 'BEGIN{printf "%.1f", b-a}')

# Latency of each upload: first appearance of NAME.report minus upload end.
awk 'NR==FNR { if (!($2 in first)) first[$2]=$1; next }
     { if ($2 in first) printf "%.3f\n", (first[$2]-$1)/1000; else print "missing " $2 > "/dev/stderr" }' \
  "$tmp/events" "$tmp/ends" >"$tmp/lat_ms"
n=$(wc -l <"$tmp/lat_ms")
((n == COUNT)) || die "only $n of $COUNT latencies measured"
f1() { awk '{printf "%.1f", $1}'; }
med=$(median <"$tmp/lat_ms" | f1)
p90=$(percentile 90 <"$tmp/lat_ms" | f1)
p99=$(percentile 99 <"$tmp/lat_ms" | f1)
mn=$(sort -n "$tmp/lat_ms" | sed -n 1p | f1)
mx=$(sort -n "$tmp/lat_ms" | sed -n '$p' | f1)

bench_header "latency: $COUNT uploads, one at a time, curl exit -> results/NAME.report"
{
  echo "uploads|min ms|median ms|p90 ms|p99 ms|max ms|goal"
  echo "$COUNT|$mn|$med|$p90|$p99|$mx|$(awk -v m="$med" 'BEGIN{print (m < 20) ? "met (median < 20 ms)" : "MISSED (median < 20 ms)"}')"
} | table
echo "(negative: the report was there before curl had closed its session; smsdrop hands the file on before its 226)"
echo "smsdrop CPU seconds during the run (200 logins included): $cpu; load average: $(loadavg)"
