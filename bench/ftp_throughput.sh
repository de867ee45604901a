#!/usr/bin/env bash
# FTP upload and download throughput of one large file with curl: smsdrop
# against vsftpd, both on 127.0.0.1, measured alternately in the same run.
#   SIZE_MIB (512)  size of the file
#   REPEAT   (5)    transfers per server and direction; the median is shown
# Goal: smsdrop >= 1.0x vsftpd.
source "$(dirname "$0")/lib.sh"

SIZE_MIB=${SIZE_MIB:-512}
REPEAT=${REPEAT:-5}
need curl curl
build_smsdrop

sport=$(free_ports 12)
smsdrop_config "$tmp/smsdrop.toml" ftp_port="$sport" pasv="$((sport + 1))-$((sport + 11))" \
  max_file_size=1GiB quota=4GiB
start_smsdrop "$tmp/smsdrop.toml" "$sport"
vport=$(free_ports 12)
start_vsftpd "$vport" "$((vport + 1))" "$((vport + 11))"
SURL="ftp://bench:pw@127.0.0.1:$sport"

log "creating a $SIZE_MIB MiB file"
head -c "$((SIZE_MIB * 1024 * 1024))" /dev/urandom >"$tmp/big.bin"
bytes=$(stat -c %s "$tmp/big.bin")

# xfer URL up|down: seconds for one transfer (wall clock around curl).
xfer() {
  local url=$1 dir=$2 t0 t1
  t0=$(now_us)
  if [[ $dir == up ]]; then
    curl -sS --fail -T "$tmp/big.bin" "$url" || die "upload to $url failed"
  else
    curl -sS --fail -o /dev/null "$url" || die "download of $url failed"
  fi
  t1=$(now_us)
  awk -v a="$t0" -v b="$t1" 'BEGIN{printf "%.3f\n", (b-a)/1e6}'
}
mibs() { awk -v b="$bytes" -v s="$1" 'BEGIN{printf "%.1f", b/1048576/s}'; }

declare -A times
loads=()
for ((r = 1; r <= REPEAT; r++)); do
  name="big-$r.part" # .part: smsdrop's pipeline ignores it, only FTP is measured
  for srv in smsdrop vsftpd; do
    if [[ $srv == smsdrop ]]; then base=$SURL; else base=$VSFTPD_URL; fi
    up=$(xfer "$base/$name" up)
    down=$(xfer "$base/$name" down)
    # Delete it again, so the disk holds one copy at a time.
    curl -sS --fail -o /dev/null -Q "-DELE $name" "$base/" || die "DELE $name on $srv failed"
    times[$srv,up]+="$up "
    times[$srv,down]+="$down "
    loads+=("$(loadavg)")
    log "run $r $srv: up ${up}s ($(mibs "$up") MiB/s), down ${down}s ($(mibs "$down") MiB/s), load $(loadavg)"
  done
done

bench_header "ftp_throughput: $SIZE_MIB MiB with curl, median of $REPEAT"
{
  echo "direction|smsdrop MiB/s|vsftpd MiB/s|smsdrop/vsftpd|goal"
  for dir in up down; do
    s=$(tr ' ' '\n' <<<"${times[smsdrop,$dir]}" | grep . | median)
    v=$(tr ' ' '\n' <<<"${times[vsftpd,$dir]}" | grep . | median)
    ratio=$(awk -v s="$s" -v v="$v" 'BEGIN{printf "%.2f", v/s}')
    verdict=$(awk -v r="$ratio" 'BEGIN{print (r>=1.0) ? "met (>= 1.0x)" : "MISSED (>= 1.0x)"}')
    label=upload; [[ $dir == down ]] && label=download
    echo "$label|$(mibs "$s")|$(mibs "$v")|${ratio}x|$verdict"
  done
} | table
printf "load average after each smsdrop/vsftpd pair: %s\n" "$(IFS=";"; echo "${loads[*]}")"
