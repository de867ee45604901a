#!/usr/bin/env bash
# Many small drop files uploaded in ONE lftp session (mput): smsdrop, counted
# until every file has its results/NAME.report (so including validation,
# storing and the first report), against vsftpd, which only stores them.
#   FILES  (2000)  number of files, 2 recipients each
#   REPEAT (3)     runs per server, alternating; the median is shown
#   TIMEOUT (120)  seconds smsdrop may take for all reports, else it is stuck
# Goal: smsdrop <= 1.2x the time of vsftpd.
#
# smsdrop fsyncs every upload before its 226, so that an acknowledged file
# survives a power cut; vsftpd does not. The same source built with
# -tags smsdrop_nosync (no such fsync: not durable, never deployed) is
# measured in the same runs, to show what that fsync costs, with and
# without processing: the .part rows are the FTP server alone, so they are
# the floor of any processing.
#
# Each smsdrop is logged in to once before the timed session: the first
# login after a start checks the password with bcrypt (about 60 ms here),
# later ones with a cached digest. A long-running server pays it once; the
# anonymous vsftpd login never. Its cost is printed apart.
#
# Nothing is deleted between runs (every run gets fresh names and folders;
# the exit trap removes it all): on ext4 without a journal, creating a file
# scans past every inode deleted in the last minute or more, so a cleanup
# before a run would slow that run's creates, smsdrop's (3 per file: the
# upload, its report and CSV) three times as much as vsftpd's (1). The
# cost of one create in the bench directory is measured before the runs
# and printed: a high figure means recent deletions nearby.
source "$(dirname "$0")/lib.sh"

FILES=${FILES:-2000}
REPEAT=${REPEAT:-3}
TIMEOUT=${TIMEOUT:-120}
need lftp lftp
build_smsdrop
build_smsdrop_nosync

# make_files DIR TAG: FILES valid drop files, distinct bytes (the text names
# the file), numbers distinct within each file.
make_files() {
  local dir=$1 tag=$2 i
  mkdir -p "$dir"
  for ((i = 0; i < FILES; i++)); do
    printf 'U-BENCH\nT-Bench %s file %d: your parcel is on its way\n#-%s\n#-%s\n' \
      "$tag" "$i" "$(gb_number $((2 * i)))" "$(gb_number $((2 * i + 1)))" >"$dir/$tag-sms$(printf %05d "$i").txt"
  done
}

# (Functions that start servers run in the main shell, never in $(...), so
# the exit trap knows every server.)
# run_smsdrop R [BINARY]: a fresh smsdrop (empty store), one mput, then wait
# for the reports. Sets ST (seconds of the mput), TOT (until the last
# report), CPU and LOGIN (seconds of the untimed first session).
run_smsdrop() {
  local r=$1 bin=${2:-$SMSDROP} port data res t0 t1 t2
  port=$(free_ports 12)
  data=$tmp/data-$r-$(basename "$bin")
  smsdrop_config "$tmp/smsdrop-$r.toml" data_dir="$data" ftp_port="$port" pasv="$((port + 1))-$((port + 11))"
  SMSDROP=$bin start_smsdrop "$tmp/smsdrop-$r.toml" "$port"
  warm_login "$port"
  res=$data/accounts/bench/results
  local c0
  c0=$(cpu_seconds "$SMSDROP_PID")
  profile_start
  t0=$(now_us)
  lftp_session "$port" bench pw "mput -O / $tmp/files-$r/*.txt" >/dev/null || die "lftp mput to smsdrop failed"
  t1=$(now_us)
  wait_reports "$res" "$FILES" "$TIMEOUT"
  t2=$(now_us)
  profile_stop "small_files-$r-$(basename "$bin")"
  CPU=$(awk -v a="$c0" -v b="$(cpu_seconds "$SMSDROP_PID")" 'BEGIN{printf "%.1f", b-a}')
  local bad
  bad=$(grep -L '^state: \(sending\|done\)' "$res"/*.report | wc -l)
  ((bad == 0)) || die "$bad reports are not sending/done (first: $(grep -L '^state: \(sending\|done\)' "$res"/*.report | head -1))"
  stop_pid "$SMSDROP_PID"
  ST=$(awk -v a="$t0" -v b="$t1" 'BEGIN{printf "%.3f", (b-a)/1e6}')
  TOT=$(awk -v a="$t0" -v c="$t2" 'BEGIN{printf "%.3f", (c-a)/1e6}')
}

# run_smsdrop_ftp_only R [BINARY]: the same files under NAME.part names,
# which smsdrop's pipeline ignores: the FTP server's own cost. Sets FTPONLY.
run_smsdrop_ftp_only() {
  local r=$1 bin=${2:-$SMSDROP} port data t0 t1 f
  port=$(free_ports 12)
  data=$tmp/data-$r-part-$(basename "$bin")
  smsdrop_config "$tmp/smsdrop-$r-part.toml" data_dir="$data" ftp_port="$port" pasv="$((port + 1))-$((port + 11))"
  SMSDROP=$bin start_smsdrop "$tmp/smsdrop-$r-part.toml" "$port"
  warm_login "$port"
  if [[ ! -d $tmp/parts-$r ]]; then
    mkdir -p "$tmp/parts-$r"
    for f in "$tmp/files-$r"/*.txt; do ln "$f" "$tmp/parts-$r/$(basename "$f").part"; done
  fi
  t0=$(now_us)
  lftp_session "$port" bench pw "mput -O / $tmp/parts-$r/*.part" >/dev/null || die "lftp mput of .part files to smsdrop failed"
  t1=$(now_us)
  stop_pid "$SMSDROP_PID"
  FTPONLY=$(awk -v a="$t0" -v b="$t1" 'BEGIN{printf "%.3f", (b-a)/1e6}')
}

# warm_login PORT: one untimed session (the bcrypt check of the first
# login); sets LOGIN to its seconds.
warm_login() {
  local t0
  t0=$(now_us)
  lftp_session "$1" bench pw "ls" >/dev/null || die "lftp login to smsdrop failed"
  LOGIN=$(awk -v a="$t0" -v b="$(now_us)" 'BEGIN{printf "%.3f", (b-a)/1e6}')
}

# run_vsftpd R: one mput into vsftpd's empty upload folder. Prints seconds.
run_vsftpd() {
  local r=$1 t0 t1 n
  t0=$(now_us)
  lftp_session "$VSFTPD_PORT" anonymous x "mput -O pub $tmp/files-$r/*.txt" >/dev/null || die "lftp mput to vsftpd failed"
  t1=$(now_us)
  n=$(find "$tmp/vsftpd/root/pub" -name "run$r-*.txt" | wc -l)
  ((n == FILES)) || die "vsftpd holds $n of $FILES files"
  awk -v a="$t0" -v b="$t1" 'BEGIN{printf "%.3f\n", (b-a)/1e6}'
}

# create_cost: microseconds per file create (and write) in a fresh folder
# of $tmp, over 500 files.
create_cost() {
  local d=$tmp/create-probe t0 t1 i
  mkdir -p "$d"
  t0=$(now_us)
  for ((i = 0; i < 500; i++)); do echo x >"$d/f$i"; done
  t1=$(now_us)
  awk -v a="$t0" -v b="$t1" 'BEGIN{printf "%.0f", (b-a)/500}'
}
CREATE_US=$(create_cost)
log "one file create in $tmp costs ${CREATE_US} us (shell loop; tens of us when nothing was deleted nearby lately)"

VSFTPD_PORT=$(free_ports 12)
start_vsftpd "$VSFTPD_PORT" "$((VSFTPD_PORT + 1))" "$((VSFTPD_PORT + 11))"

s_store=() s_total=() v_total=() loads=() s_cpu=() s_part=() n_part=() n_total=() logins=()
for ((r = 1; r <= REPEAT; r++)); do
  make_files "$tmp/files-$r" "run$r"
  run_smsdrop_ftp_only "$r"
  s_part+=("$FTPONLY")
  run_smsdrop_ftp_only "$r" "$SMSDROP_NOSYNC"
  n_part+=("$FTPONLY")
  run_smsdrop "$r"
  st=$ST tot=$TOT
  s_cpu+=("$CPU") logins+=("$LOGIN")
  run_smsdrop "$r" "$SMSDROP_NOSYNC"
  n_total+=("$TOT")
  v=$(run_vsftpd "$r")
  s_store+=("$st") s_total+=("$tot") v_total+=("$v") loads+=("$(loadavg)")
  log "run $r: smsdrop .part names (FTP only) ${s_part[-1]}s, without the upload fsync ${n_part[-1]}s; smsdrop stored in ${st}s, all reports in ${tot}s (smsdrop CPU ${s_cpu[-1]}s); without the upload fsync all reports in ${TOT}s; vsftpd ${v}s; load $(loadavg)"
done

med() { printf '%s\n' "$@" | median; }
S=$(med "${s_total[@]}") SS=$(med "${s_store[@]}") V=$(med "${v_total[@]}") SP=$(med "${s_part[@]}") SN=$(med "${n_total[@]}") NP=$(med "${n_part[@]}")
fs=$(df -T "$tmp" | awk 'NR==2{print $2}')
# row WHO WHAT SECONDS [GOAL]: one table row, files/s and the ratio to vsftpd.
row() {
  local goal=""
  [[ -n ${4:-} ]] && goal=$(awk -v s="$3" -v v="$V" 'BEGIN{print (s/v <= 1.2) ? "met (<= 1.2x)" : "MISSED (<= 1.2x)"}')
  echo "$1|$2|$3|$(awk -v f="$FILES" -v s="$3" 'BEGIN{printf "%.0f", f/s}')|$(awk -v s="$3" -v v="$V" 'BEGIN{printf "%.2fx", s/v}')|$goal"
}
bench_header "small_files: $FILES files x 2 recipients, one lftp mput session, median of $REPEAT, files on $fs"
{
  echo "server|what is timed|seconds|files/s|vs vsftpd|goal"
  row vsftpd "mput (store only)" "$V"
  row smsdrop "mput of NAME.part names (FTP only, not processed)" "$SP"
  row "smsdrop, no upload fsync (not durable)" "mput of NAME.part names (FTP only, not processed)" "$NP"
  row smsdrop "mput of drop files (until the last 226)" "$SS"
  row smsdrop "mput until all $FILES reports exist" "$S" goal
  row "smsdrop, no upload fsync (not durable)" "mput until all $FILES reports exist" "$SN"
} | table
printf 'runs (smsdrop total / no upload fsync / vsftpd): '
for ((r = 0; r < REPEAT; r++)); do printf '%s/%s/%s ' "${s_total[r]}" "${n_total[r]}" "${v_total[r]}"; done
echo
printf 'smsdrop CPU seconds (user+sys) during each run: %s\n' "${s_cpu[*]}"
printf 'first login after each start (bcrypt, untimed): %s s\n' "${logins[*]}"
printf 'load average after each run: %s\n' "$(IFS=";"; echo "${loads[*]}")"
printf 'one file create before the runs (shell loop): %s us\n' "$CREATE_US"
