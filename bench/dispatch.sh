#!/usr/bin/env bash
# Dispatch throughput with the simulated provider (sender rate 0 = unlimited,
# delivery_delay 100ms): MESSAGES one-part messages in files of PER_FILE
# recipients, uploaded in one lftp session; timed from the start of the
# upload until every report says "state: done" (every part handed over and
# its receipt stored). Samples every 0.5 s: parts sent (/metrics), files
# done, resident memory; prints the server's peak RSS (VmHWM).
#   MESSAGES (200000)  total messages (= parts)
#   PER_FILE (2000)    recipients per file
#   TIMEOUT  (auto)    seconds before giving up (default max(300, MESSAGES/400))
# Goal of the issue: 20,000 parts/s sustained for 1,000,000 messages, flat
# memory (run with MESSAGES=1000000).
source "$(dirname "$0")/lib.sh"

MESSAGES=${MESSAGES:-200000}
PER_FILE=${PER_FILE:-2000}
FILES=$(((MESSAGES + PER_FILE - 1) / PER_FILE))
TIMEOUT=${TIMEOUT:-$((MESSAGES / 400 > 300 ? MESSAGES / 400 : 300))}
((MESSAGES <= 1000000)) || die "MESSAGES is at most 1,000,000 (distinct numbers)"
need lftp lftp
need curl curl
build_smsdrop

port=$(free_ports 13)
hport=$((port + 12))
smsdrop_config "$tmp/smsdrop.toml" ftp_port="$port" pasv="$((port + 1))-$((port + 11))" \
  http="127.0.0.1:$hport" rate=0 delay=100ms max_recipients="$PER_FILE"
start_smsdrop "$tmp/smsdrop.toml" "$port"
acct=$tmp/data/accounts/bench

log "writing $FILES files of up to $PER_FILE recipients ($MESSAGES messages)"
mkdir -p "$tmp/files"
awk -v files="$FILES" -v per="$PER_FILE" -v total="$MESSAGES" -v dir="$tmp/files" -v tag="$RANDOM" 'BEGIN {
  for (f = 0; f < files; f++) {
    out = sprintf("%s/d%05d.txt", dir, f)
    printf "U-BENCH\nT-Dispatch %s file %d: your appointment is confirmed\n", tag, f > out
    for (j = 0; j < per && f * per + j < total; j++) printf "#-+44712%06d1\n", f * per + j > out
    close(out)
  }
}'

parts_sent() { curl -s "http://127.0.0.1:$hport/metrics" | awk '/^smsdrop_parts_sent_total /{printf "%d", $2}'; }
# rss: "RSS anon file" in MiB: anonymous memory (heap, stacks) and mapped
# file pages (bbolt maps the store, so its pages touched count in RSS).
rss() { awk '/^VmRSS/{r=$2} /^RssAnon/{a=$2} /^RssFile/{f=$2} END{printf "%.0f %.0f %.0f", r/1024, a/1024, f/1024}' "/proc/$SMSDROP_PID/status"; }
files_done() {
  local n=0 f
  for f in "$acct"/results/*.report; do
    [[ -e $f ]] || continue
    while IFS= read -r line; do
      [[ $line == state:* ]] && { [[ $line == "state: done" ]] && n=$((n + 1)); break; }
    done <"$f"
  done
  echo "$n"
}

c0=$(cpu_seconds "$SMSDROP_PID")
t0=$(now_us)
log "uploading with lftp mput, load $(loadavg)"
lftp_session "$port" bench pw "mput -O / $tmp/files/*.txt" >/dev/null &
LFTP_PID=$!
track "$LFTP_PID"
profile_start
: >"$tmp/samples"
done_files=0 up_s=
while :; do
  sleep 0.5
  t=$(now_us)
  el=$(awk -v a="$t0" -v b="$t" 'BEGIN{printf "%.1f", (b-a)/1e6}')
  if [[ -z $up_s ]] && ! kill -0 "$LFTP_PID" 2>/dev/null; then
    wait "$LFTP_PID" || die "lftp mput failed"
    up_s=$el
  fi
  done_files=$(files_done)
  sent=$(parts_sent)
  echo "$el ${sent:-0} $done_files $(rss) $(($(stat -c %s "$tmp/data/smsdrop.db") / 1048576))" >>"$tmp/samples"
  ((done_files >= FILES)) && break
  if (($(awk -v e="$el" -v l="$TIMEOUT" 'BEGIN{print (e > l)}'))); then
    smsdrop_stuck "$done_files of $FILES files done after ${TIMEOUT}s ($sent parts sent)"
  fi
done
t1=$(now_us)
profile_stop dispatch
cpu=$(awk -v a="$c0" -v b="$(cpu_seconds "$SMSDROP_PID")" 'BEGIN{printf "%.1f", b-a}')
hwm=$(awk '/^VmHWM/{printf "%.0f", $2/1024}' "/proc/$SMSDROP_PID/status")
total_s=$(awk -v a="$t0" -v b="$t1" 'BEGIN{printf "%.1f", (b-a)/1e6}')
sent=$(parts_sent)

# Checks: every message handed over once, every one ok.
outbox=$(wc -l <"$tmp/data/sim-outbox.jsonl")
ok=$(awk '/^ok: /{s+=$2} END{print s+0}' "$acct"/results/*.report)
((sent == MESSAGES && outbox == MESSAGES && ok == MESSAGES)) ||
  die "counts disagree: $MESSAGES messages, $sent parts sent (metrics), $outbox outbox lines, $ok ok in reports"

# Sustained rate: parts sent per second between 10% and 90% of all parts.
read -r sus _ _ < <(awk -v n="$MESSAGES" '
  { t[NR]=$1; s[NR]=$2 }
  END {
    for (i=1;i<=NR;i++) { if (!a && s[i] >= 0.1*n) a=i; if (!b && s[i] >= 0.9*n) b=i }
    if (a && b && t[b] > t[a]) printf "%.0f %s %s\n", (s[b]-s[a])/(t[b]-t[a]), t[a], t[b]; else print "n/a - -"
  }' "$tmp/samples")
# Memory over the run, when 25/50/75/100 % of the parts were sent: RSS
# (column c of the samples: 4 all, 5 anonymous, 6 mapped files).
rss_at() {
  awk -v n="$MESSAGES" -v c="$1" '
    { for (q=1;q<=4;q++) if (!(q in r) && $2 >= n*q/4) r[q]=$c; last=$c }
    END { for (q=1;q<=4;q++) printf "%s%s", (q in r ? r[q] : last), (q<4 ? "/" : "") }' "$tmp/samples"
}
hwm_anon=$(awk 'BEGIN{m=0} $5>m{m=$5} END{print m}' "$tmp/samples")
dbsize=$(($(stat -c %s "$tmp/data/smsdrop.db") / 1048576))

bench_header "dispatch: $MESSAGES messages in $FILES files, sim (rate 0, delivery 100ms)"
{
  echo "messages|files|upload s|all done s|parts/s overall|parts/s sustained (10-90%)|peak RSS (VmHWM) MiB|RSS MiB at 25/50/75/100%|of which anon (heap)|of which mapped store|store file MiB|smsdrop CPU s|goal 20,000 parts/s"
  echo "$MESSAGES|$FILES|${up_s:-?}|$total_s|$(awk -v n="$MESSAGES" -v s="$total_s" 'BEGIN{printf "%.0f", n/s}')|$sus|$hwm|$(rss_at 4)|$(rss_at 5)|$(rss_at 6)|$dbsize|$cpu|$(awk -v s="$sus" 'BEGIN{print (s+0 >= 20000) ? "met" : "MISSED"}')"
} | table
echo "checks: $sent parts sent (metrics) = $outbox outbox lines = $ok ok in reports; load average: $(loadavg)"
echo "peak anonymous RSS sampled: $hwm_anon MiB"
if [[ -n "${SAMPLES_TO:-}" ]]; then
  { echo "# seconds parts_sent files_done rss_mib anon_mib file_mib store_mib"; cat "$tmp/samples"; } >"$SAMPLES_TO"
fi
