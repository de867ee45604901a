#!/usr/bin/env bash
# Ingest of one large personalised file: RECIPIENTS recipient lines with two
# personalisation fields each, uploaded with curl; the time from curl's exit
# to results/NAME.report saying "state: sending" (parsed, validated, stored,
# moved, report written). The sender is limited to 1 part/s so that sending
# does not compete. Each run uses a fresh server and store.
#   RECIPIENTS (100000)  recipient lines
#   REPEAT     (3)       runs; the median is shown
# Goal: < 1 s.
source "$(dirname "$0")/lib.sh"

RECIPIENTS=${RECIPIENTS:-100000}
REPEAT=${REPEAT:-3}
need curl curl
build_smsdrop

# make_file PATH TAG: the personalised file.
make_file() {
  awk -v n="$RECIPIENTS" -v tag="$2" 'BEGIN {
    print "U-BENCH"
    print "T-Hello #1#, your parcel " tag " is ready: show code (%2) at the desk."
    for (i = 0; i < n; i++) printf "#-+44712%06d1;Customer %d;C%07d\n", i, i, i
  }' >"$1"
}

times=() loads=() cpus=()
for ((r = 1; r <= REPEAT; r++)); do
  port=$(free_ports 12)
  data=$tmp/data-$r
  smsdrop_config "$tmp/smsdrop-$r.toml" data_dir="$data" ftp_port="$port" pasv="$((port + 1))-$((port + 11))" \
    rate=1 max_recipients="$RECIPIENTS" max_file_size=256MiB
  start_smsdrop "$tmp/smsdrop-$r.toml" "$port"
  name=big$r.txt
  make_file "$tmp/$name" "run$r-$RANDOM"
  report=$data/accounts/bench/results/$name.report
  c0=$(cpu_seconds "$SMSDROP_PID")
  profile_start
  curl -sS --fail -T "$tmp/$name" "ftp://bench:pw@127.0.0.1:$port/$name" || die "upload failed"
  t0=${EPOCHREALTIME/[.,]/}
  state=
  for ((i = 0; i < 12000; i++)); do # 60 s at most
    if [[ -e $report ]]; then
      while IFS= read -r line; do
        [[ $line == state:* ]] && { state=${line#state: }; break; }
      done <"$report"
      [[ $state == sending || $state == "done" ]] && break
      [[ $state == rejected ]] && die "the file was rejected: $(grep '^error:' "$report" | head -3)"
    fi
    sleep 0.005
  done
  t1=${EPOCHREALTIME/[.,]/}
  [[ $state == sending || $state == "done" ]] || smsdrop_stuck "no 'state: sending' report after 60 s"
  profile_stop "ingest-$r"
  cpu=$(awk -v a="$c0" -v b="$(cpu_seconds "$SMSDROP_PID")" 'BEGIN{printf "%.2f", b-a}')
  rss=$(awk '/VmHWM/{printf "%.0f", $2/1024}' "/proc/$SMSDROP_PID/status")
  recips=$(sed -n 's/^recipients: //p' "$report")
  [[ $recips == "$RECIPIENTS" ]] || die "report counts $recips recipients, want $RECIPIENTS"
  s=$(awk -v a="$t0" -v b="$t1" 'BEGIN{printf "%.3f", (b-a)/1e6}')
  times+=("$s") loads+=("$(loadavg)") cpus+=("$cpu")
  log "run $r: $s s to 'state: $state' (smsdrop CPU ${cpu}s, peak RSS ${rss} MiB), load $(loadavg)"
  stop_pid "$SMSDROP_PID"
  rm -rf "$data" "${tmp:?}/$name"
done

bytes=$(awk -v n="$RECIPIENTS" 'BEGIN{printf "%.1f", (n*36+80)/1048576}')
med=$(printf '%s\n' "${times[@]}" | median)
bench_header "ingest: one file of $RECIPIENTS personalised recipients (~$bytes MiB), median of $REPEAT"
{
  echo "recipients|upload end -> 'state: sending' (s)|recipients/s|runs (s)|smsdrop CPU s|goal"
  echo "$RECIPIENTS|$med|$(awk -v n="$RECIPIENTS" -v s="$med" 'BEGIN{printf "%.0f", n/s}')|${times[*]}|${cpus[*]}|$(awk -v m="$med" 'BEGIN{print (m < 1) ? "met (< 1 s)" : "MISSED (< 1 s)"}')"
} | table
printf 'load average after each run: %s\n' "$(IFS=";"; echo "${loads[*]}")"
