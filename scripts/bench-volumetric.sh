#!/usr/bin/env bash
# Volumetric detector benchmarks (called by scripts/bench.sh; figures go in
# docs/BENCHMARKS.md, section "Volumetric detector").
#
# Generates two header-only SYN-flood captures into /tmp (never checked
# in): 10 million 60-byte frames (64 bytes on the wire) to 10.0.0.10, from
# 10 million and from 1 million distinct sources. Then replays them in
# release mode, on one thread:
#   * with the volumetric detector only (leak detector off),
#   * with --no-detect (the floor: file reading and decoding),
#   * with the default configuration (both detectors),
# and reports packets/s (wall and per CPU second) and peak RSS.
set -euo pipefail
cd "$(dirname "$0")/.."
DIR=${SHAOBING_BENCH_DIR:-/tmp/shaobing-bench}
PACKETS=${SHAOBING_BENCH_PACKETS:-10000000}
mkdir -p "$DIR"

cargo build --release -q -p shaobing-sensor --bin shaobing-sensor
cargo build --release -q -p shaobing-pcapgen --example bench_flood
SENSOR=target/release/shaobing-sensor

for sources in 10000000 1000000; do
  f="$DIR/syn64-$PACKETS-$sources.pcap"
  [ -s "$f" ] || target/release/examples/bench_flood "$f" "$PACKETS" "$sources"
done
printf '[leak]\nenabled = false\n' > "$DIR/volumetric-only.toml"

# One run: prints wall packets/s, CPU seconds, packets per CPU second, RSS.
run() {
  local label=$1; shift
  local out
  out=$( { /usr/bin/time -f 'TIME %U %S %M' "$SENSOR" replay "$@" >/dev/null; } 2>&1 )
  local line pps cpu rss
  line=$(grep 'replayed' <<<"$out")
  pps=$(sed -E 's/.*\(([0-9]+) packets\/s.*/\1/' <<<"$line")
  cpu=$(awk '/^TIME/ {print $2 + $3}' <<<"$out")
  rss=$(awk '/^TIME/ {printf "%.1f", $4 / 1024}' <<<"$out")
  awk -v l="$label" -v p="$pps" -v c="$cpu" -v r="$rss" -v n="$PACKETS" \
    'BEGIN { printf "%-44s wall %6.2f M pps | cpu %5.2f s = %5.2f M pps per CPU-second | peak RSS %s MB\n", l, p/1e6, c, n/c/1e6, r }'
}

# The flood-path ratio (issue 11): the sensor with the volumetric detector
# alone against libpcap alone reading the same file (tcpdump writing to
# /dev/null), alternately, CPU time (user + sys) and wall time. /usr/bin/time
# writes to a file (-o): the commands' own stderr is discarded.
ratio() {
  local f=$1 label=$2 i t s
  for i in 1 2 3 4 5; do
    /usr/bin/time -o "$DIR/time.tcpdump" -f '%e %U %S' tcpdump -r "$f" -w /dev/null 2>/dev/null
    /usr/bin/time -o "$DIR/time.sensor" -f '%e %U %S %M' \
      "$SENSOR" replay --config "$DIR/volumetric-only.toml" "$f" >/dev/null 2>/dev/null
    t=$(tail -1 "$DIR/time.tcpdump")
    s=$(tail -1 "$DIR/time.sensor")
    awk -v t="$t" -v s="$s" -v l="$label" -v i="$i" 'BEGIN { split(t, a, " "); split(s, b, " ");
      printf "flood path, %s (run %d): tcpdump wall %.2f s cpu %.2f s | sensor wall %.2f s cpu %.2f s rss %.1f MB | ratio wall %.2f cpu %.2f\n",
        l, i, a[1], a[2] + a[3], b[1], b[2] + b[3], b[4] / 1024, b[1] / a[1], (b[2] + b[3]) / (a[2] + a[3]) }'
  done
}

echo "== volumetric: $PACKETS-packet 64-byte SYN flood (release, one core)"
if command -v tcpdump >/dev/null; then
  ratio "$DIR/syn64-$PACKETS-10000000.pcap" plain
  # Decapsulation cost: the same flood, every frame inside VXLAN.
  vx="$DIR/syn64-$PACKETS-10000000-vxlan.pcap"
  [ -s "$vx" ] || target/release/examples/bench_flood "$vx" "$PACKETS" 10000000 vxlan
  ratio "$vx" vxlan
else
  echo "tcpdump not installed: flood-path ratio skipped (make deps installs it)"
fi
for i in 1 2 3; do
  run "volumetric only, 10M sources (run $i)" --config "$DIR/volumetric-only.toml" "$DIR/syn64-$PACKETS-10000000.pcap"
done
for i in 1 2 3; do
  run "--no-detect floor, 10M sources (run $i)" --no-detect "$DIR/syn64-$PACKETS-10000000.pcap"
done
run "volumetric only, 1M sources" --config "$DIR/volumetric-only.toml" "$DIR/syn64-$PACKETS-1000000.pcap"
run "default config (volumetric + leak), 10M sources" "$DIR/syn64-$PACKETS-10000000.pcap"
run "default config (volumetric + leak), 1M sources" "$DIR/syn64-$PACKETS-1000000.pcap"

# Network-level detection (issue 13): a carpet over every /24 of 10.0.0.0/8
# (65,536 prefixes, 20 packets/s each over four hosts, 2 s after a quiet
# second: 2.6 M packets, 200 MB), prefix threshold 5 packets/s (4x), group
# threshold 131,072 packets/s (10x). Prints peak RSS with and without the
# aggregates, the attacks started and their latency from the onset.
cargo build --release -q -p shaobing-pcapgen --example bench_carpet
carpet="$DIR/carpet-65536.pcap"
[ -s "$carpet" ] || target/release/examples/bench_carpet "$carpet" 2 20
cat > "$DIR/carpet.toml" <<'TOML'
[leak]
enabled = false
[volumetric]
update_secs = 0
[[volumetric.groups]]
name = "slash8"
networks = ["10.0.0.0/8"]
[volumetric.groups.prefix]
pps = 5
[volumetric.groups.network]
pps = 131072
TOML
{ cat "$DIR/carpet.toml"; printf '[volumetric.networks]\nenabled = false\n'; } > "$DIR/carpet-nonet.toml"
echo "== volumetric: carpet over 65,536 /24s (release, one core)"
/usr/bin/time -f 'with network aggregates: wall %e s cpu %U+%S s peak RSS %M kB' \
  "$SENSOR" replay --config "$DIR/carpet.toml" "$carpet" 2>"$DIR/carpet.err" >"$DIR/carpet.out" || true
tail -1 "$DIR/carpet.err"
/usr/bin/time -f 'hosts only (networks off): wall %e s cpu %U+%S s peak RSS %M kB' \
  "$SENSOR" replay --config "$DIR/carpet-nonet.toml" "$carpet" 2>&1 >/dev/null | tail -1
python3 - "$DIR/carpet.out" <<'PY'
import datetime, json, sys
def t(s):
    return datetime.datetime.strptime(s, '%Y-%m-%dT%H:%M:%S.%fZ').replace(tzinfo=datetime.timezone.utc).timestamp()
starts = [json.loads(l) for l in open(sys.argv[1]) if '"attack_started"' in l]
onset = t(starts[0]['ts'][:11] + '00:00:01.000000Z')
pre = sorted(t(i['ts']) - onset for i in starts if i.get('scope') == 'prefix')
grp = [t(i['ts']) - onset for i in starts if i.get('scope') == 'group']
capped = sum(1 for i in starts if i.get('evidence') == 'capped')
print(f"prefix attacks {len(pre)} (evidence capped {capped}), latency min/median/max "
      f"{pre[0]:.2f}/{pre[len(pre)//2]:.2f}/{pre[-1]:.2f} s; group attacks {len(grp)}, latency {grp and round(grp[0], 2)} s")
PY
