#!/usr/bin/env bash
# FTP upload and download throughput of one large file with curl: smsdrop
# against vsftpd, both on 127.0.0.1, measured alternately in the same run.
#   SIZE_MIB (512)  size of the file
#   REPEAT   (9)    transfers per server and direction; the median is shown
# Goal: smsdrop >= 1.0x vsftpd.
#
# Throughput is the file's size over the transfer time: from curl's
# time_pretransfer (connected, logged in, transfer command sent) to the
# end (for an upload, the server's 226, so smsdrop's fsync counts). The
# session set-up is shown apart: smsdrop checks a bcrypt password at an
# account's first login (tens of ms; later logins with the same password
# skip it), vsftpd's anonymous login checks nothing. vsftpd does not fsync
# an upload; a second line compares with its upload followed by an fsync.
source "$(dirname "$0")/lib.sh"

SIZE_MIB=${SIZE_MIB:-512}
REPEAT=${REPEAT:-9}
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
# Written back now: left dirty, the kernel writes it out 30 s later, in the
# middle of the runs, and smsdrop's fsync before 226 would wait behind it.
sync "$tmp/big.bin"

# xfer URL up|down: "transfer setup" seconds of one transfer (see above).
xfer() {
  local url=$1 dir=$2 out
  if [[ $dir == up ]]; then
    out=$(curl -sS --fail -w '%{time_total} %{time_pretransfer}' -T "$tmp/big.bin" "$url") || die "upload to $url failed"
  else
    out=$(curl -sS --fail -w '%{time_total} %{time_pretransfer}' -o /dev/null "$url") || die "download of $url failed"
  fi
  awk '{printf "%.3f %.3f\n", $1-$2, $2}' <<<"$out"
}
mibs() { awk -v b="$bytes" -v s="$1" 'BEGIN{printf "%.1f", b/1048576/s}'; }

declare -A times
loads=()
pairs="" # vsftpd's upload time over smsdrop's just before it, per run
for ((r = 1; r <= REPEAT; r++)); do
  name="big-$r.part" # .part: smsdrop's pipeline ignores it, only FTP is measured
  for srv in smsdrop vsftpd; do
    if [[ $srv == smsdrop ]]; then base=$SURL; else base=$VSFTPD_URL; fi
    sync # each upload starts with nothing dirty, whoever wrote it
    read -r up upset < <(xfer "$base/$name" up)
    if [[ $srv == vsftpd ]]; then
      # What smsdrop does before its 226 and vsftpd never does: the file
      # on disk. Timed right after vsftpd's 226, for a comparison at equal
      # durability (a line of its own; the goal compares with vsftpd as is).
      t0=$(now_us)
      sync "$tmp/vsftpd/root/pub/$name"
      t1=$(now_us)
      fsync_s=$(awk -v a="$t0" -v b="$t1" 'BEGIN{printf "%.3f", (b-a)/1e6}')
      times[vsftpd,updurable]+="$(awk -v u="$up" -v f="$fsync_s" 'BEGIN{printf "%.3f", u+f}') "
    fi
    read -r down downset < <(xfer "$base/$name" down)
    # Delete it again, so the disk holds one copy at a time.
    curl -sS --fail -o /dev/null -Q "-DELE $name" "$base/" || die "DELE $name on $srv failed"
    times[$srv,up]+="$up "
    [[ $srv == vsftpd ]] && pairs+="$(awk -v s="$sup" -v v="$up" 'BEGIN{printf "%.3f", v/s}') "
    [[ $srv == smsdrop ]] && sup=$up
    times[$srv,down]+="$down "
    times[$srv,setup]+="$upset $downset "
    loads+=("$(loadavg)")
    synced=""
    [[ $srv == vsftpd ]] && synced=" (then fsync ${fsync_s}s)"
    log "run $r $srv: up ${up}s ($(mibs "$up") MiB/s)$synced, down ${down}s ($(mibs "$down") MiB/s), session set-up ${upset}s/${downset}s, load $(loadavg)"
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
vd=$(tr ' ' '\n' <<<"${times[vsftpd,updurable]}" | grep . | median)
su=$(tr ' ' '\n' <<<"${times[smsdrop,up]}" | grep . | median)
printf "at equal durability, vsftpd's upload then an fsync of the file: %s MiB/s, smsdrop/vsftpd %sx\n" \
  "$(mibs "$vd")" "$(awk -v s="$su" -v v="$vd" 'BEGIN{printf "%.2f", v/s}')"
printf "upload, median of the %d paired ratios (each smsdrop upload with the vsftpd upload right after it, so a slow spell of the shared disk weighs on both): %sx\n" \
  "$REPEAT" "$(tr ' ' '\n' <<<"$pairs" | grep . | median)"
printf "fastest upload (MiB/s): smsdrop %s, vsftpd %s; fastest download: smsdrop %s, vsftpd %s\n" \
  "$(mibs "$(tr ' ' '\n' <<<"${times[smsdrop,up]}" | grep . | sort -g | head -1)")" \
  "$(mibs "$(tr ' ' '\n' <<<"${times[vsftpd,up]}" | grep . | sort -g | head -1)")" \
  "$(mibs "$(tr ' ' '\n' <<<"${times[smsdrop,down]}" | grep . | sort -g | head -1)")" \
  "$(mibs "$(tr ' ' '\n' <<<"${times[vsftpd,down]}" | grep . | sort -g | head -1)")"
printf "session set-up before the transfer (connect, login, command), median: smsdrop %ss, vsftpd %ss\n" \
  "$(tr ' ' '\n' <<<"${times[smsdrop,setup]}" | grep . | median)" "$(tr ' ' '\n' <<<"${times[vsftpd,setup]}" | grep . | median)"
printf "load average after each smsdrop/vsftpd pair: %s\n" "$(IFS=";"; echo "${loads[*]}")"
