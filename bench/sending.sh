#!/usr/bin/env bash
# What sending costs at the default rate, where batches stay "sending" for
# minutes or hours (the other scripts send at rate 0):
#   1. FILES (2000) two-recipient files put in the inbox before start-up:
#      smsdrop's CPU over WINDOW seconds of sending once all are reported.
#   2. one file of RECIPIENTS (100000): CPU and bytes written (wchar: the
#      result files and the store) over WINDOW seconds of sending.
#   3. two accounts: one uploads a file of 2,000 recipients, the other a
#      file of 5 two seconds later; seconds until the second is "done"
#      (the accounts take turns under the global rate).
#   RATE (20)  [sender] rate, parts/s;  WINDOW (10)  seconds measured
# Goal: none set by the issue; CPU that does not grow with what waits.
source "$(dirname "$0")/lib.sh"

FILES=${FILES:-2000}
RECIPIENTS=${RECIPIENTS:-100000}
RATE=${RATE:-20}
WINDOW=${WINDOW:-10}
need curl curl
build_smsdrop

wchar() { awk '/^wchar/{print $2}' "/proc/$1/io"; }

# serve NAME KEY=VALUE...: a fresh smsdrop on its own data directory, with a
# second account "other" (code OTHER, password pw). Sets PORT and DATA.
serve() {
  local name=$1; shift
  PORT=$(free_ports 12)
  DATA=$tmp/data-$name
  smsdrop_config "$tmp/$name.toml" data_dir="$DATA" ftp_port="$PORT" pasv="$((PORT + 1))-$((PORT + 11))" \
    rate="$RATE" delay=1s settle=10ms "$@"
  printf '[[account]]\nlogin = "other"\npassword_hash = "%s"\ncode = "OTHER"\n' "$(echo pw | "$SMSDROP" passwd)" >>"$tmp/$name.toml"
  mkdir -p "$DATA/accounts/bench"
}

# outbox: messages the sim has taken so far.
outbox() { if [[ -f $DATA/sim-outbox.jsonl ]]; then wc -l <"$DATA/sim-outbox.jsonl"; else echo 0; fi; }

# window: smsdrop's CPU seconds, MiB written and messages sent over WINDOW
# seconds.
window() {
  local c0 w0 o0
  c0=$(cpu_seconds "$SMSDROP_PID") w0=$(wchar "$SMSDROP_PID") o0=$(outbox)
  sleep "$WINDOW"
  CPU=$(awk -v a="$c0" -v b="$(cpu_seconds "$SMSDROP_PID")" 'BEGIN{printf "%.2f", b-a}')
  MIB=$(awk -v a="$w0" -v b="$(wchar "$SMSDROP_PID")" 'BEGIN{printf "%.1f", (b-a)/1048576}')
  SENT=$(($(outbox) - o0))
}

# 1. Many small files.
serve small
for ((i = 0; i < FILES; i++)); do
  printf 'U-BENCH\nT-Sending bench, file %d\n#-%s\n#-%s\n' "$i" "$(gb_number $((2 * i)))" "$(gb_number $((2 * i + 1)))" \
    >"$DATA/accounts/bench/s$(printf %05d "$i").txt"
done
touch -d '1 minute ago' "$DATA"/accounts/bench/*.txt
start_smsdrop "$tmp/small.toml" "$PORT"
wait_reports "$DATA/accounts/bench/results" "$FILES" 120
sleep 1
window
small_cpu=$CPU small_mib=$MIB small_sent=$SENT
stop_pid "$SMSDROP_PID"
log "$FILES small files sending: $SENT sent, CPU ${small_cpu}s, ${small_mib} MiB written over ${WINDOW}s"

# 2. One big file.
serve big max_recipients="$RECIPIENTS" max_file_size=256MiB
awk -v n="$RECIPIENTS" 'BEGIN { print "U-BENCH"; print "T-Hello #1#, your code is (%2)"
  for (i = 0; i < n; i++) printf "#-+44712%06d1;Customer %d;C%07d\n", i, i, i }' >"$DATA/accounts/bench/big.txt"
touch -d '1 minute ago' "$DATA/accounts/bench/big.txt"
start_smsdrop "$tmp/big.toml" "$PORT"
wait_reports "$DATA/accounts/bench/results" 1 60
sleep 3
window
big_cpu=$CPU big_mib=$MIB big_sent=$SENT
stop_pid "$SMSDROP_PID"
log "one $RECIPIENTS-recipient file sending: $SENT sent, CPU ${big_cpu}s, ${big_mib} MiB written over ${WINDOW}s"

# 3. Two accounts.
serve turns
awk 'BEGIN { print "U-BENCH"; print "T-Campaign"; for (i = 0; i < 2000; i++) printf "#-+44712%06d1\n", i }' >"$tmp/campaign.txt"
awk 'BEGIN { print "U-OTHER"; print "T-Alert"; for (i = 0; i < 5; i++) printf "#-+44713%06d1\n", i }' >"$tmp/alert.txt"
start_smsdrop "$tmp/turns.toml" "$PORT"
curl -sS --fail -T "$tmp/campaign.txt" "ftp://bench:pw@127.0.0.1:$PORT/" || die "upload failed"
sleep 2
t0=$(now_us)
curl -sS --fail -T "$tmp/alert.txt" "ftp://other:pw@127.0.0.1:$PORT/" || die "upload failed"
report=$DATA/accounts/other/results/alert.txt.report
limit=$((t0 + 120 * 1000000))
until grep -q '^state: done' "$report" 2>/dev/null; do
  (($(now_us) > limit)) && die "the second account's file is not done after 120 s"
  sleep 0.01
done
turn=$(awk -v a="$t0" -v b="$(now_us)" 'BEGIN{printf "%.2f", (b-a)/1e6}')
stop_pid "$SMSDROP_PID"

bench_header "sending: sim at rate $RATE, delivery 1s, CPU and writes over ${WINDOW}s of sending"
{
  echo "what is sending|measured|result"
  echo "$FILES files of 2 recipients|over ${WINDOW}s: messages sent, smsdrop CPU, bytes written|${small_sent}, ${small_cpu} s, ${small_mib} MiB"
  echo "one file of $RECIPIENTS recipients|over ${WINDOW}s: messages sent, smsdrop CPU, bytes written|${big_sent}, ${big_cpu} s, ${big_mib} MiB"
  echo "one account's 2,000 recipients, then another's 5|upload of the 5 -> its report 'done'|${turn} s"
} | table
