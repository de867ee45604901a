# shellcheck shell=bash
# Shared helpers of the bench/ scripts: sourced, not run. Every script gets a
# temporary directory ($tmp), cleaned up with every server it started on exit.
set -euo pipefail

BENCH_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
ROOT=$(cd "$BENCH_DIR/.." && pwd)
export PATH="$PATH:/usr/local/go/bin"

tmp=$(mktemp -d "${TMPDIR:-/tmp}/smsdrop-bench.XXXXXX")
# vsftpd drops to the "ftp" user: it must be able to traverse the temp dir.
chmod 711 "$tmp"
_bench_pids=()

_bench_cleanup() {
  local rc=$? pid
  for pid in "${_bench_pids[@]}"; do
    kill "$pid" 2>/dev/null || true
  done
  for pid in "${_bench_pids[@]}"; do
    wait "$pid" 2>/dev/null || true
  done
  if [[ -n "${KEEP_TMP:-}" ]]; then
    echo "kept $tmp" >&2
  else
    rm -rf "$tmp"
  fi
  exit "$rc"
}
trap _bench_cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

log() { printf '[%s] %s\n' "$(date -u +%H:%M:%S)" "$*" >&2; }
die() { printf 'error: %s\n' "$*" >&2; exit 1; }

# track PID: kill it on exit.
track() { _bench_pids+=("$1"); }

# need CMD PACKAGE...: installs the Debian packages when CMD is missing and we
# are root with apt-get; otherwise says what to install and stops.
need() {
  local cmd=$1; shift
  command -v "$cmd" >/dev/null 2>&1 && return 0
  if [[ $(id -u) -eq 0 ]] && command -v apt-get >/dev/null; then
    log "installing $* (for $cmd)"
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$@" >/dev/null 2>&1 ||
      { apt-get update -qq >/dev/null 2>&1 && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$@" >/dev/null; } ||
      die "could not install $*"
    command -v "$cmd" >/dev/null 2>&1 && return 0
    # vsftpd lives in /usr/sbin, not always on a user's PATH.
    [[ -x /usr/sbin/$cmd ]] && return 0
  fi
  [[ -x /usr/sbin/$cmd ]] && return 0
  die "$cmd is missing: install it with 'apt-get install $*' (as root), then run again"
}

# now_ms: wall clock in milliseconds, with three decimals, no fork.
now_ms() {
  local t=${EPOCHREALTIME/[.,]/}
  printf '%d.%03d' "$((t / 1000))" "$((t % 1000))"
}
# now_us: wall clock in microseconds (an integer), no fork.
now_us() { echo "${EPOCHREALTIME/[.,]/}"; }

loadavg() { cut -d' ' -f1-3 /proc/loadavg; }

# free_ports N: the first of N consecutive TCP ports free on 127.0.0.1,
# picked at random below the ephemeral range.
free_ports() {
  local n=$1 used base i ok tries
  used=" $(ss -Htan 2>/dev/null | awk '{n=split($4,a,":"); printf "%s ", a[n]}') "
  for ((tries = 0; tries < 200; tries++)); do
    base=$((20000 + RANDOM % 12000))
    ok=1
    for ((i = 0; i < n; i++)); do
      if [[ $used == *" $((base + i)) "* ]]; then ok=0; break; fi
    done
    ((ok)) && { echo "$base"; return 0; }
  done
  die "no $n free consecutive ports found"
}

# wait_port PORT PID NAME LOG: waits up to 30 s for a listener on PORT.
wait_port() {
  local port=$1 pid=$2 name=$3 logf=$4 i
  for ((i = 0; i < 300; i++)); do
    if (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then return 0; fi
    if ! kill -0 "$pid" 2>/dev/null; then
      tail -20 "$logf" >&2 || true
      die "$name exited before listening on $port"
    fi
    sleep 0.1
  done
  tail -20 "$logf" >&2 || true
  die "$name did not listen on 127.0.0.1:$port within 30 s"
}

# build_smsdrop: builds the binary once into $tmp/smsdrop, from the working
# tree, or with BUILD_FROM=head from the last commit, or BUILD_REV when set
# (git archive into $tmp, so colleagues' uncommitted edits are not measured). Sets SMSDROP and
# SMSDROP_REV (what was measured).
build_smsdrop() {
  need go golang
  local src=$ROOT
  SMSDROP_REV=$(git -C "$ROOT" rev-parse --short HEAD 2>/dev/null || echo unknown)
  if [[ ${BUILD_FROM:-worktree} == head ]]; then
    src=$tmp/src
    mkdir -p "$src"
    SMSDROP_REV=$(git -C "$ROOT" rev-parse --short "${BUILD_REV:-HEAD}") || die "unknown BUILD_REV ${BUILD_REV:-}"
    git -C "$ROOT" archive "$SMSDROP_REV" | tar -x -C "$src" || die "git archive $SMSDROP_REV failed"
  elif [[ -n $(git -C "$ROOT" status --porcelain --untracked-files=no 2>/dev/null) ]]; then
    SMSDROP_REV+="+worktree"
  fi
  log "building smsdrop ($SMSDROP_REV)"
  (cd "$src" && go build -o "$tmp/smsdrop" ./cmd/smsdrop) || die "go build failed"
  SMSDROP=$tmp/smsdrop
  SMSDROP_SRC=$src
}

# build_smsdrop_nosync: after build_smsdrop, the same source built with
# -tags smsdrop_nosync, which does not fsync uploads before their 226 (not
# durable: for comparison only). Sets SMSDROP_NOSYNC.
build_smsdrop_nosync() {
  (cd "$SMSDROP_SRC" && go build -tags smsdrop_nosync -o "$tmp/smsdrop-nosync" ./cmd/smsdrop) || die "go build -tags smsdrop_nosync failed"
  SMSDROP_NOSYNC=$tmp/smsdrop-nosync
}

# smsdrop_config FILE KEY=VALUE...: writes a throwaway configuration.
# Keys (with defaults): data_dir, ftp_port, pasv (FIRST-LAST), http ("" = off),
# rate (0), delay ("100ms"), max_recipients (2000), max_file_size ("10MiB"),
# quota (0), settle ("2s"), outbox ("").
# Account: login "bench", password "pw", code "BENCH".
smsdrop_config() {
  local file=$1; shift
  local -A c=([data_dir]="$tmp/data" [ftp_port]=2121 [pasv]="30000-30100" [http]=""
    [rate]=0 [delay]=100ms [max_recipients]=2000 [max_file_size]=10MiB [quota]=0
    [settle]=2s [outbox]="")
  local kv
  for kv in "$@"; do c[${kv%%=*}]=${kv#*=}; done
  local hash
  hash=$(echo pw | "$SMSDROP" passwd)
  local quota=${c[quota]}
  [[ $quota =~ ^[0-9]+$ ]] || quota="\"$quota\""
  cat >"$file" <<TOML
data_dir = "${c[data_dir]}"
[log]
level = "warn"
[ftp]
listen = "127.0.0.1:${c[ftp_port]}"
public_host = "127.0.0.1"
passive_ports = "${c[pasv]}"
max_connections = 100
max_connections_per_ip = 100
[http]
listen = "${c[http]}"
[sender]
driver = "sim"
rate = ${c[rate]}
[sender.sim]
delivery_delay = "${c[delay]}"
outbox = "${c[outbox]}"
[processing]
settle = "${c[settle]}"
[[account]]
login = "bench"
password_hash = "$hash"
code = "BENCH"
max_recipients = ${c[max_recipients]}
max_file_size = "${c[max_file_size]}"
quota = $quota
TOML
}

# start_smsdrop CONFIG PORT: starts the server; sets SMSDROP_PID.
start_smsdrop() {
  local conf=$1 port=$2
  "$SMSDROP" serve -config "$conf" >"$tmp/smsdrop.log" 2>&1 &
  SMSDROP_PID=$!
  track "$SMSDROP_PID"
  wait_port "$port" "$SMSDROP_PID" smsdrop "$tmp/smsdrop.log"
}

# stop_pid PID: SIGTERM and wait (only for a PID this script started).
stop_pid() {
  kill "$1" 2>/dev/null || true
  wait "$1" 2>/dev/null || true
}

# start_vsftpd PORT PASV_FIRST PASV_LAST: runs vsftpd in the foreground on
# 127.0.0.1 with anonymous, writable $tmp/vsftpd/root/pub; sets VSFTPD_PID
# and VSFTPD_URL (ftp://anonymous:x@127.0.0.1:PORT/pub).
start_vsftpd() {
  local port=$1 first=$2 last=$3 bin
  need vsftpd vsftpd
  bin=$(command -v vsftpd || echo /usr/sbin/vsftpd)
  local root=$tmp/vsftpd/root conf=$tmp/vsftpd/vsftpd.conf
  mkdir -p "$root/pub"
  local extra
  if [[ $(id -u) -eq 0 ]]; then
    # Anonymous sessions chroot into anon_root and run as "ftp": the root
    # must not be writable by it, the upload folder must.
    id ftp >/dev/null 2>&1 || die "vsftpd needs the 'ftp' user (created by the vsftpd package)"
    chown root:root "$root"
    chmod 755 "$tmp/vsftpd" "$root"
    chown ftp:ftp "$root/pub"
    mkdir -p /var/run/vsftpd/empty
    extra="secure_chroot_dir=/var/run/vsftpd/empty"
  else
    # Without root vsftpd can only run as the launching user, without chroot.
    extra="run_as_launching_user=YES"
  fi
  cat >"$conf" <<CONF
listen=YES
listen_ipv6=NO
listen_address=127.0.0.1
listen_port=$port
background=NO
seccomp_sandbox=NO
anonymous_enable=YES
no_anon_password=YES
local_enable=NO
write_enable=YES
anon_upload_enable=YES
anon_mkdir_write_enable=NO
anon_other_write_enable=YES
anon_world_readable_only=NO
anon_umask=022
anon_root=$root
pasv_enable=YES
pasv_address=127.0.0.1
pasv_min_port=$first
pasv_max_port=$last
connect_from_port_20=NO
dirmessage_enable=NO
xferlog_enable=NO
max_clients=100
max_per_ip=100
idle_session_timeout=600
data_connection_timeout=600
$extra
CONF
  "$bin" "$conf" >"$tmp/vsftpd.log" 2>&1 &
  VSFTPD_PID=$!
  track "$VSFTPD_PID"
  wait_port "$port" "$VSFTPD_PID" vsftpd "$tmp/vsftpd.log"
  # shellcheck disable=SC2034 # used by the scripts that source this file
  VSFTPD_URL="ftp://anonymous:x@127.0.0.1:$port/pub"
}

# median and percentile of numbers on stdin.
median() { sort -n | awk '{a[NR]=$1} END {if (NR==0) {print "nan"; exit}; if (NR%2) print a[(NR+1)/2]; else print (a[NR/2]+a[NR/2+1])/2}'; }
# percentile P: nearest-rank percentile of numbers on stdin.
percentile() { sort -n | awk -v p="$1" '{a[NR]=$1} END {if (NR==0) {print "nan"; exit}; r=int((p/100)*NR+0.999999); if (r<1) r=1; if (r>NR) r=NR; print a[r]}'; }

# table: prints stdin ("|"-separated rows, the first being the header) as a
# Markdown table, columns padded.
table() {
  awk -F'|' '
    { n=NR; for (i=1;i<=NF;i++) { v=$i; gsub(/^ +| +$/,"",v); c[NR,i]=v; if (length(v)>w[i]) w[i]=length(v) }; if (NF>nf) nf=NF }
    END {
      for (r=1;r<=n;r++) {
        line="|"; for (i=1;i<=nf;i++) line=line sprintf(" %-*s |", w[i], c[r,i]); print line
        if (r==1) { line="|"; for (i=1;i<=nf;i++) { d=""; for (k=0;k<w[i]+2;k++) d=d "-"; line=line d "|" }; print line }
      }
    }'
}

# header NAME: what every script prints first.
bench_header() {
  echo "== $1  ($(date -u '+%Y-%m-%d %H:%M:%S UTC'), smsdrop ${SMSDROP_REV:-?}, $(nproc) cores, load $(loadavg))"
}

# gb_number I: the I-th of a million distinct valid GB mobile numbers,
# +44712NNNNNN1 (I = NNNNNN). The last digit is 1, so no number ends in the
# sim's special endings 0013..0016 and every message is delivered "ok".
gb_number() { printf '+44712%06d1' "$1"; }

# lftp_session PORT USER PASS COMMANDS: one lftp session to 127.0.0.1,
# plain FTP, passive, no retries.
lftp_session() {
  need lftp lftp
  lftp -u "$2,$3" -p "$1" \
    -e "set ftp:ssl-allow no; set ftp:passive-mode yes; set net:max-retries 1; set net:timeout 30; set cmd:fail-exit yes; $4; quit" \
    127.0.0.1
}

# smsdrop_stuck WHY: smsdrop made no progress; dump its goroutines (SIGQUIT
# makes a Go program print every stack and exit), show smsdrop's own frames,
# and stop.
smsdrop_stuck() {
  log "smsdrop stuck: $1; goroutine dump follows (SIGQUIT)"
  if kill -QUIT "$SMSDROP_PID" 2>/dev/null; then
    sleep 2
    awk '/^goroutine /{g=$0; next} /^(smsdrop|go\.etcd\.io\/bbolt)[.\/]/{if (g) {print ""; print g; g=""}; print "  " $0}' \
      "$tmp/smsdrop.log" | sed -n 1,150p >&2
    if [[ -n "${DUMP_TO:-}" ]]; then cp "$tmp/smsdrop.log" "$DUMP_TO" && log "full dump copied to $DUMP_TO"; fi
  fi
  die "smsdrop stuck: $1"
}

# count_reports DIR: number of *.report files in DIR (no fork).
count_reports() {
  local f n=0
  for f in "$1"/*.report; do [[ -e $f ]] && n=$((n + 1)); done
  echo "$n"
}

# wait_reports DIR N TIMEOUT_S: waits until DIR holds N reports, polling every
# 10 ms; smsdrop_stuck when it does not happen within TIMEOUT_S.
wait_reports() {
  local dir=$1 want=$2 limit=$(( $(now_us) + $3 * 1000000 )) n=0 f
  while :; do
    n=0
    for f in "$dir"/*.report; do [[ -e $f ]] && n=$((n + 1)); done
    ((n >= want)) && return 0
    (($(now_us) > limit)) && smsdrop_stuck "$n of $want reports after $3 s"
    sleep 0.01
  done
}

# cpu_seconds PID: user+system CPU seconds the process has used so far.
cpu_seconds() {
  local stat
  stat=$(<"/proc/$1/stat")
  stat=${stat##*) }
  # Fields after "comm)": 12th and 13th are utime and stime in clock ticks.
  awk -v tck="$(getconf CLK_TCK)" '{printf "%.2f", ($12+$13)/tck}' <<<"$stat"
}

# profile_start / profile_stop NAME: with PROFILE=1, samples smsdrop's CPU
# with perf (call graphs) between the two calls, then prints the hottest
# functions to stderr and leaves the report in $PROFILE_DIR/NAME.txt when
# PROFILE_DIR is set.
profile_start() {
  [[ -n "${PROFILE:-}" ]] || return 0
  command -v perf >/dev/null || { log "PROFILE=1 needs perf (apt-get install linux-perf)"; return 0; }
  perf record -q -g -F 499 -p "$SMSDROP_PID" -o "$tmp/perf.data" >/dev/null 2>&1 &
  PERF_PID=$!
  track "$PERF_PID"
  sleep 0.3
}
profile_stop() {
  [[ -n "${PERF_PID:-}" ]] || return 0
  kill -INT "$PERF_PID" 2>/dev/null || true
  wait "$PERF_PID" 2>/dev/null || true
  PERF_PID=
  local out=$tmp/profile-$1.txt
  {
    echo "## perf profile of smsdrop: $1 (self time, top 25)"
    perf report -i "$tmp/perf.data" --no-children --sort symbol --stdio -g none 2>/dev/null |
      grep -v '^#' | grep -v '^$' | sed -n 1,25p
    echo "## with children (inclusive), smsdrop and bbolt frames, top 25"
    perf report -i "$tmp/perf.data" --children --sort symbol --stdio -g none 2>/dev/null |
      grep -E 'smsdrop|bbolt|syscall|runtime\.(gcBgMarkWorker|mallocgc)' | sed -n 1,25p
  } >"$out"
  cat "$out" >&2
  if [[ -n "${PROFILE_DIR:-}" ]]; then mkdir -p "$PROFILE_DIR" && cp "$out" "$PROFILE_DIR/" && cp "$tmp/perf.data" "$PROFILE_DIR/$1.perf.data"; fi
}
