#!/usr/bin/env bash
# Container lifecycle at scale, side by side in one run with podman: start 50 detached
# `sleep 3600` containers on a bridge network, stop them all with one `stop`, remove them
# all with one `rm`.
#
# mrun runs them on its `minibox0` bridge (a veth each, NAT through its nftables table);
# podman on its default `podman` network (netavark, bridge `podman0`, iptables-nft rules),
# with runc and all of its state in a temporary directory. Both start the same image: a
# static busybox with a `sleep` link, imported with `mbuild import` and handed to podman
# with `mbuild save` + `podman load` (the same image id in both stores).
#
# Each round, for each tool, two cycles:
#   seq  50 `-d` commands one after another, as a user typing or a shell loop would
#   par  50 `-d` commands launched at once with `&`, then `wait`
# each followed by one `stop -t 0` naming all 50 (SIGKILL at once: busybox `sleep` as PID 1
# ignores SIGTERM, so any grace period is spent waiting) and one `rm` naming all 50. Every
# phase is timed on the wall clock ($EPOCHREALTIME); nothing is timed while checking. After
# the rounds, one more cycle per tool with `stop -t 1`, to show how a grace period adds up.
# Then, for mrun alone, where its time goes: the cost of a process start and of the `nft`
# and `iptables` commands it runs when it makes the bridge (at every bridge start before aac9dc9), the seq cycle with `--net none` and
# with `--net bridge` back to back, and stop and rm as 50 one-name commands run at once.
#
# Checked in every cycle (the script stops at the first failure): after the start, 50
# running in `ps`, all 50 `Running` in `inspect`, with 50 distinct bridge addresses; after
# the stop, none running and 50 exited; after the rm, `ps -a` empty and nothing left:
# no `mb*` veth, no `minibox` nft table, no lease in /run/minibox/network/leases, no mount
# under the stores, no cgroup named after a container, and no `podman0` bridge. The bridge,
# table and leases are host-wide: if someone else's mrun containers hold them, that is
# reported and only our own are required gone.
#
# Run as root from anywhere:   bench/lifecycle.sh
# Environment:
#   MINIBOX_BENCH_DIR         where the temporary directory goes (/var/tmp/minibox-bench)
#   MINIBOX_BENCH_CONTAINERS  containers per cycle (50)
#   MINIBOX_BENCH_ROUNDS      rounds; the summary gives medians over them (3)
#   MINIBOX_BENCH_GRACE       stop -t of the extra cycle (1; empty skips it)
#   CARGO_TARGET_DIR          where `cargo build --release` puts mrun and mbuild (./target)
# Results (lifecycle.tsv, lifecycle-summary.txt, lifecycle-stderr.txt) go to bench/results/,
# which git ignores. Containers, stores, podman's state and the iptables chains netavark
# added (when they were not there before) are removed on exit.
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
repo=$(cd "$here/.." && pwd)
cache=${MINIBOX_BENCH_DIR:-/var/tmp/minibox-bench}
n=${MINIBOX_BENCH_CONTAINERS:-50}
rounds=${MINIBOX_BENCH_ROUNDS:-3}
grace=${MINIBOX_BENCH_GRACE-1}
target=${CARGO_TARGET_DIR:-$repo/target}
out=$here/results
leases=/run/minibox/network/leases

log() { echo "== $*" >&2; }
die() { echo "lifecycle.sh: $*" >&2; exit 1; }
warn() { echo "lifecycle.sh: warning: $*" | tee -a "$out/lifecycle-stderr.txt" >&2; }

[ "$(id -u)" = 0 ] || die "run as root (bridge networking needs it, for mrun and for podman)"
for t in podman runc nft iptables ip python3 findmnt cargo; do
    command -v "$t" >/dev/null || die "$t not found (scripts/install-deps, or apt-get install $t)"
done
[ -x /bin/busybox ] && ! ldd /bin/busybox >/dev/null 2>&1 ||
    die "/bin/busybox missing or not static (apt-get install busybox-static)"

mkdir -p "$cache" "$out"
: >"$out/lifecycle-stderr.txt"

log "cargo build --release ($target)"
(cd "$repo" && CARGO_TARGET_DIR=$target cargo build --release --quiet)
mbuild=$target/release/mbuild
mrun=$target/release/mrun
[ -x "$mbuild" ] && [ -x "$mrun" ] || die "$mbuild or $mrun not built"
# What was built (the tree may change while the script runs).
rev=$(cd "$repo" && git rev-parse --short HEAD)$(cd "$repo" && git diff --quiet HEAD -- 2>/dev/null || echo "+dirty")

# What was there before us: the cleanup removes netavark's chains only if we made them.
netavark_before=$(iptables-save 2>/dev/null | grep -c '^:NETAVARK' || true)
nft_tables_before=$(nft list tables)
ip link show minibox0 >/dev/null 2>&1 &&
    warn "minibox0 exists before the run (someone else's mrun containers): bridge set-up and teardown are not in mrun's times"
ip link show podman0 >/dev/null 2>&1 &&
    warn "podman0 exists before the run (someone else's podman containers): bridge set-up and teardown are not in podman's times"

tmp=$(mktemp -d "$cache/lifecycle.XXXXXX")
store=$tmp/store
# podman refuses a runroot path longer than 50 characters: keep these short.
pdir=$tmp/p
pids=()
names=()
for i in $(seq 1 "$n"); do names+=("lc$i"); done

mr() { "$mrun" --root "$store" "$@"; }
pm() { podman --root "$pdir/storage" --runroot "$pdir/run" "$@"; }

# Only what this script made: the pids it started, the containers in its own stores, the
# mounts under its directory, and netavark's chains if there were none before.
cleanup() {
    set +e
    for p in "${pids[@]}"; do kill "$p" 2>/dev/null; done
    for p in "${pids[@]}"; do wait "$p" 2>/dev/null; done
    if [ -d "$store" ]; then
        ids=$(mr ps -a -q 2>/dev/null)
        [ -n "$ids" ] && mr rm -f $ids >/dev/null 2>&1
    fi
    [ -d "$pdir/storage" ] && pm rm -f -a -t 0 >/dev/null 2>&1
    if [ "$netavark_before" = 0 ] && ! ip link show podman0 >/dev/null 2>&1; then
        drop_netavark_chains
    fi
    nft delete table ip mbprobe 2>/dev/null
    findmnt -rn -o TARGET | { grep "^$tmp/" || true; } | sort -r | while read -r m; do umount -l "$m"; done
    rm -rf "$tmp"
}
trap cleanup EXIT

# netavark leaves its chains (and iptables-nft's `ip filter` / `ip nat` tables) behind when
# its last container goes. Remove the jumps to them, the chains, and the tables if they are
# empty and were not there before.
drop_netavark_chains() {
    local t r c chains
    for t in filter nat; do
        iptables -t "$t" -S 2>/dev/null | grep -E '^-A [A-Z]+ .*-j NETAVARK' | sed 's/^-A/-D/' |
            while read -r r; do eval "iptables -t $t $r"; done
        chains=$(iptables -t "$t" -S 2>/dev/null | awk '$1 == "-N" && $2 ~ /^NETAVARK/ { print $2 }')
        for c in $chains; do iptables -t "$t" -F "$c"; done
        for c in $chains; do iptables -t "$t" -X "$c"; done
        if ! grep -qx "table ip $t" <<<"$nft_tables_before" &&
            [ -z "$(iptables -t "$t" -S 2>/dev/null | grep -v '^-P')" ]; then
            nft delete table ip "$t" 2>/dev/null
        fi
    done
}

# 1. The image: a static busybox and its `sleep` link, into both stores.
log "image: busybox + sleep, mbuild import, mbuild save | podman load"
mkdir -p "$tmp/tree/bin" "$pdir"
cp /bin/busybox "$tmp/tree/bin/busybox"
ln -s busybox "$tmp/tree/bin/sleep"
"$mbuild" --root "$store" import "$tmp/tree" -t sleep:bench >/dev/null
"$mbuild" --root "$store" layers sleep:bench >/dev/null
"$mbuild" --root "$store" save sleep:bench -o "$tmp/sleep.tar"

# podman: state, events, network configs and temp files all in $pdir (tests/e2e/interop.rs);
# runc, because crun refuses this host's hybrid cgroups; the ulimits, because podman asks
# for more than this machine's hard limits otherwise (ANCHORS.md).
export CONTAINERS_CONF=$pdir/containers.conf CONTAINERS_STORAGE_CONF=$pdir/storage.conf
cat >"$CONTAINERS_STORAGE_CONF" <<EOF
[storage]
driver = "overlay"
runroot = "$pdir/run"
graphroot = "$pdir/storage"
EOF
cat >"$CONTAINERS_CONF" <<EOF
[containers]
default_ulimits = ["nofile=20000:20000", "nproc=32768:32768"]
[network]
network_backend = "netavark"
network_config_dir = "$pdir/networks"
[engine]
cgroup_manager = "cgroupfs"
events_logger = "file"
events_logfile_path = "$pdir/events.log"
runtime = "runc"
tmp_dir = "$pdir/tmp"
EOF
pm load -q -i "$tmp/sleep.tar" >/dev/null
mid=$("$mbuild" --root "$store" inspect sleep:bench | python3 -c 'import json,sys; print(json.load(sys.stdin)[0]["Id"])' 2>/dev/null || true)
pid_=$(pm image inspect --format '{{.Id}}' sleep:bench)
log "image id: mbuild ${mid:-?}, podman $pid_"

# 2. One container, started the way the timed runs start them.
start_one() { # TOOL NAME
    case $1 in
    mrun) mr -d --name "$2" --net bridge sleep:bench sleep 3600 ;;
    podman) pm run -d --name "$2" --network bridge sleep:bench sleep 3600 ;;
    esac
}
tool_cmd() { # TOOL ARGS... (mr or pm)
    local t=$1
    shift
    case $t in mrun) mr "$@" ;; podman) pm "$@" ;; esac
}

# The inspect records of NAMES as "running ip" lines.
states() { # TOOL NAME...
    local t=$1
    shift
    tool_cmd "$t" inspect "$@" | python3 -c '
import json, sys
for c in json.load(sys.stdin):
    print(str(c["State"]["Running"]).lower(), c["NetworkSettings"]["IPAddress"] or "-")'
}

fail() { die "$1 ($2, round $3, $4): $5"; }

check_started() { # TOOL ROUND MODE
    local t=$1 r=$2 m=$3 up s
    up=$(tool_cmd "$t" ps -q | wc -l)
    [ "$up" = "$n" ] || fail "after start" "$t" "$r" "$m" "$up running in ps, expected $n"
    s=$(states "$t" "${names[@]}")
    [ "$(grep -c '^true ' <<<"$s")" = "$n" ] || fail "after start" "$t" "$r" "$m" "not all running in inspect"
    [ "$(awk '$2 != "-" { print $2 }' <<<"$s" | sort -u | wc -l)" = "$n" ] ||
        fail "after start" "$t" "$r" "$m" "the $n addresses are not all set and distinct: $(awk '{ print $2 }' <<<"$s" | sort | uniq -c | sort -rn | head -3 | tr -s ' \n' ' ')"
    if [ "$t" = mrun ]; then
        # The veths and leases of these containers, to check they go after rm.
        ours=$(mr inspect "${names[@]}" | python3 -c 'import json,sys; print(" ".join(c["Id"] for c in json.load(sys.stdin)))')
    else
        pours=$(pm inspect --format '{{.Id}}' "${names[@]}" | tr '\n' ' ')
    fi
}

check_stopped() { # TOOL ROUND MODE
    local t=$1 r=$2 m=$3 up s
    up=$(tool_cmd "$t" ps -q | wc -l)
    [ "$up" = 0 ] || fail "after stop" "$t" "$r" "$m" "$up still running in ps"
    s=$(states "$t" "${names[@]}")
    [ "$(grep -c '^false ' <<<"$s")" = "$n" ] || fail "after stop" "$t" "$r" "$m" "inspect does not show $n stopped"
}

# Cgroup directories named after any of IDS (v1: one per hierarchy; mrun and podman both
# name theirs after the id).
cgroups_named() { # ID...
    local pat
    pat=$(printf '%.12s\n' "$@" | paste -sd'|')
    find /sys/fs/cgroup -mindepth 1 -maxdepth 4 -type d 2>/dev/null | grep -E "$pat" || true
}

check_removed() { # TOOL ROUND MODE
    local t=$1 r=$2 m=$3 left id mine others
    left=$(tool_cmd "$t" ps -a -q | wc -l)
    [ "$left" = 0 ] || fail "after rm" "$t" "$r" "$m" "$left containers still in ps -a"
    [ -z "$(findmnt -rn -o TARGET | grep "^$tmp/" || true)" ] ||
        fail "after rm" "$t" "$r" "$m" "mounts left under $tmp: $(findmnt -rn -o TARGET | grep -c "^$tmp/")"
    if [ "$t" = mrun ]; then
        [ -z "$(ls -A "$store/containers" 2>/dev/null)" ] || fail "after rm" "$t" "$r" "$m" "container directories left"
        [ -z "$(cgroups_named $ours)" ] || fail "after rm" "$t" "$r" "$m" "cgroups left: $(cgroups_named $ours | head -3)"
        # Ours must be gone; anything else on the host bridge belongs to someone else.
        mine=0
        for id in $ours; do
            ip link show "mb${id:0:11}" >/dev/null 2>&1 && mine=$((mine + 1))
            grep -rlx "$id" "$leases" >/dev/null 2>&1 && mine=$((mine + 1))
        done
        [ "$mine" = 0 ] || fail "after rm" "$t" "$r" "$m" "$mine veths or leases of ours left"
        others=$(ip -br link | grep -c '^mb' || true)
        if [ "$others" != 0 ] || [ -n "$(ls -A "$leases" 2>/dev/null)" ]; then
            warn "round $r $m: $others mb* veths and $(ls -A "$leases" | wc -l) leases of others on the host; the bridge and table stay for them"
        elif nft list table ip minibox >/dev/null 2>&1 || ip link show minibox0 >/dev/null 2>&1; then
            fail "after rm" "$t" "$r" "$m" "no container left, but the minibox nft table or bridge is still there"
        fi
    else
        [ -z "$(cgroups_named $pours)" ] || fail "after rm" "$t" "$r" "$m" "cgroups left: $(cgroups_named $pours | head -3)"
        ! ip link show podman0 >/dev/null 2>&1 || fail "after rm" "$t" "$r" "$m" "the podman0 bridge is still there"
    fi
}

now() { echo "$EPOCHREALTIME"; }
record() { # ROUND TOOL MODE PHASE T0 T1
    awk -v r="$1" -v t="$2" -v m="$3" -v p="$4" -v a="$5" -v b="$6" \
        'BEGIN { printf "%s\t%s\t%s\t%s\t%.4f\n", r, t, m, p, b - a }' >>"$out/lifecycle.tsv"
}

# One timed cycle: start N (seq or par), stop all with -t STOP, rm all; checks in between.
cycle() { # ROUND TOOL MODE STOP_TIME
    local r=$1 t=$2 m=$3 st=$4 t0 t1 i p bad=0
    echo "-- round $r $t $m" >>"$out/lifecycle-stderr.txt"
    t0=$(now)
    if [[ $m == par* ]]; then
        pids=()
        for i in "${names[@]}"; do
            start_one "$t" "$i" >/dev/null 2>>"$out/lifecycle-stderr.txt" &
            pids+=($!)
        done
        for p in "${pids[@]}"; do wait "$p" || bad=$((bad + 1)); done
        pids=()
    else
        for i in "${names[@]}"; do
            start_one "$t" "$i" >/dev/null 2>>"$out/lifecycle-stderr.txt" || bad=$((bad + 1))
        done
    fi
    t1=$(now)
    [ "$bad" = 0 ] || fail "start" "$t" "$r" "$m" "$bad of $n starts failed (see $out/lifecycle-stderr.txt)"
    record "$r" "$t" "$m" start "$t0" "$t1"
    check_started "$t" "$r" "$m"

    t0=$(now)
    tool_cmd "$t" stop -t "$st" "${names[@]}" >/dev/null 2>>"$out/lifecycle-stderr.txt" ||
        fail "stop" "$t" "$r" "$m" "stop failed"
    t1=$(now)
    record "$r" "$t" "$m" stop "$t0" "$t1"
    check_stopped "$t" "$r" "$m"

    t0=$(now)
    tool_cmd "$t" rm "${names[@]}" >/dev/null 2>>"$out/lifecycle-stderr.txt" ||
        fail "rm" "$t" "$r" "$m" "rm failed"
    t1=$(now)
    record "$r" "$t" "$m" rm "$t0" "$t1"
    check_removed "$t" "$r" "$m"
}

# 3. Warm-up, untimed: one container through the whole cycle with each tool, so that
# podman's storage and both tools' first-use paths are not in round 1.
log "warm-up: one container each"
for t in mrun podman; do
    start_one "$t" warm >/dev/null
    tool_cmd "$t" stop -t 0 warm >/dev/null
    tool_cmd "$t" rm warm >/dev/null
done

# 4. The rounds. The tools take turns going first.
: >"$out/lifecycle.tsv"
loads=("start $(cut -d' ' -f1-3 /proc/loadavg)")
for r in $(seq 1 "$rounds"); do
    order="mrun podman"
    [ $((r % 2)) = 0 ] && order="podman mrun"
    for t in $order; do
        for m in seq par; do
            log "round $r/$rounds: $t, $n containers, start $m, stop -t 0, rm"
            cycle "$r" "$t" "$m" 0
        done
    done
    loads+=("round$r $(cut -d' ' -f1-3 /proc/loadavg)")
done
if [ -n "$grace" ]; then
    for t in mrun podman; do
        log "grace: $t, $n containers, start par, stop -t $grace, rm"
        cycle grace "$t" "par-t$grace" "$grace"
    done
    loads+=("grace $(cut -d' ' -f1-3 /proc/loadavg)")
fi

# 5. Where mrun's time goes, by difference (one pass, not in the comparison above):
#   - what a process start costs (`mrun --version`), and the two firewall commands mrun runs
#     under the host-wide network lock on every bridge start: `nft -f -` replacing a table
#     shaped like mrun's (a probe table `mbprobe` of our own, deleted at once; it masquerades
#     a subnet nobody uses) and `iptables -S FORWARD`;
#   - the seq cycle with `--net none` and, right after it, again with `--net bridge`, so the
#     bridge's share shows under the same load;
#   - stop and rm of bridge containers as N one-name commands run at once, against one
#     command naming all N (which handles them one after another).
prof() { # MODE PHASE T0 T1
    record profile mrun "$1" "$2" "$3" "$4"
}
nft_probe='add table ip mbprobe
delete table ip mbprobe
table ip mbprobe {
	chain postrouting {
		type nat hook postrouting priority srcnat; policy accept;
		ip saddr 10.255.254.0/24 oifname != "mbprobe0" masquerade
	}
}'
log "profile: mrun --version, nft -f -, iptables -S, x$n each"
t0=$(now); for i in "${names[@]}"; do "$mrun" --version >/dev/null; done; t1=$(now); prof version "x$n" "$t0" "$t1"
t0=$(now); for i in "${names[@]}"; do nft -f - <<<"$nft_probe"; done; t1=$(now); prof nft "x$n" "$t0" "$t1"
nft delete table ip mbprobe
t0=$(now); for i in "${names[@]}"; do iptables -w -t filter -S FORWARD >/dev/null; done; t1=$(now); prof iptables "x$n" "$t0" "$t1"
for net in none bridge; do
    log "profile: mrun, $n containers --net $net: start seq, stop -t 0, rm"
    t0=$(now); for i in "${names[@]}"; do mr -d --name "$i" --net "$net" sleep:bench sleep 3600 >/dev/null; done; t1=$(now)
    prof "$net" start "$t0" "$t1"
    t0=$(now); mr stop -t 0 "${names[@]}" >/dev/null; t1=$(now); prof "$net" stop "$t0" "$t1"
    t0=$(now); mr rm "${names[@]}" >/dev/null; t1=$(now); prof "$net" rm "$t0" "$t1"
    [ "$(mr ps -a -q | wc -l)" = 0 ] || die "profile: --net $net containers left"
done
log "profile: mrun, $n bridge containers: $n stop commands at once, $n rm commands at once"
for i in "${names[@]}"; do mr -d --name "$i" --net bridge sleep:bench sleep 3600 >/dev/null; done
at_once() { # PHASE ARGS... : one mrun command per name, all at once
    local ph=$1 t0 t1 i p bad=0
    shift
    t0=$(now)
    pids=()
    for i in "${names[@]}"; do
        mr "$@" "$i" >/dev/null 2>>"$out/lifecycle-stderr.txt" &
        pids+=($!)
    done
    for p in "${pids[@]}"; do wait "$p" || bad=$((bad + 1)); done
    pids=()
    t1=$(now)
    [ "$bad" = 0 ] || die "profile: $bad of $n '$*' commands failed"
    prof bridge-at-once "$ph" "$t0" "$t1"
}
at_once stop stop -t 0
at_once rm rm
[ "$(mr ps -a -q | wc -l)" = 0 ] || die "profile: bridge containers left"
loads+=("end $(cut -d' ' -f1-3 /proc/loadavg)")

# 6. Summary: medians over the rounds, per phase and in total, and podman / mrun.
versions="$(podman --version), $(runc --version | head -n1), netavark $(/usr/lib/podman/netavark --version 2>/dev/null | awk '{ print $2 }'), nft $(nft --version | awk '{ print $2 }'), kernel $(uname -r)"
python3 - "$out/lifecycle.tsv" "$n" "$rounds" "$rev" "$versions" "${loads[@]}" <<'EOF' | tee "$out/lifecycle-summary.txt"
import statistics, sys, time
from collections import defaultdict
tsv, n, rounds, rev, versions, *loads = sys.argv[1:]
t = defaultdict(dict)  # (tool, mode, phase) -> {round: seconds}
for line in open(tsv):
    r, tool, mode, phase, s = line.split("\t")
    t[(tool, mode, phase)][r] = float(s)
med = lambda d: statistics.median(d.values())
print(f"{time.strftime('%Y-%m-%d %H:%M')}  minibox {rev}  {n} containers  {rounds} rounds (medians)")
print(versions)
print("load average (1/5/15 min): " + ";  ".join(loads))
print()
print(f"{'':24}{'mrun':>10}{'podman':>10}{'podman/mrun':>13}   per round: mrun | podman")
def row(label, a, b):
    ra = " ".join(f"{v:.2f}" for v in a.values())
    rb = " ".join(f"{v:.2f}" for v in b.values())
    print(f"{label:24}{med(a):9.2f}s{med(b):9.2f}s{med(b) / med(a):12.1f}x   {ra} | {rb}")
for mode, what in [("seq", "sequential start"), ("par", "parallel start (&, wait)")]:
    print(f"{what}:")
    total = {}
    for tool in ("mrun", "podman"):
        total[tool] = {r: sum(t[(tool, mode, p)][r] for p in ("start", "stop", "rm"))
                       for r in t[(tool, mode, "start")]}
    for p in ("start", "stop", "rm"):
        row(f"  {p} {n}" + (" (-t 0)" if p == "stop" else ""), t[("mrun", mode, p)], t[("podman", mode, p)])
    row("  total", total["mrun"], total["podman"])
    ratio = med(total["podman"]) / med(total["mrun"])
    print(f"  target podman/mrun >= 5 on the total: {ratio:.2f}  {'met' if ratio >= 5 else 'NOT met'}")
    print()
grace = [k for k in t if k[1].startswith("par-t")]
if grace:
    mode = grace[0][1]
    print(f"with a grace period ({mode[4:].replace('t', 'stop -t ')}, one cycle, parallel start):")
    for p in ("start", "stop", "rm"):
        row(f"  {p} {n}", t[("mrun", mode, p)], t[("podman", mode, p)])
    print()
prof = lambda mode, phase: t[("mrun", mode, phase)]["profile"]
each = lambda s: f"{1000 * s / int(n):6.1f} ms each"
if ("mrun", "none", "start") in t:
    print(f"where mrun's time goes (one pass, {n} of each; seconds for all {n}, then per container)")
    print(f"  mrun --version                       {prof('version', 'x' + n):6.2f}s  {each(prof('version', 'x' + n))}")
    print(f"  nft -f - (a table like mrun's)       {prof('nft', 'x' + n):6.2f}s  {each(prof('nft', 'x' + n))}")
    print(f"  iptables -w -t filter -S FORWARD     {prof('iptables', 'x' + n):6.2f}s  {each(prof('iptables', 'x' + n))}")
    for p in ("start", "stop", "rm"):
        a, b = prof("none", p), prof("bridge", p)
        print(f"  {p:5} --net none / bridge            {a:6.2f}s / {b:5.2f}s  {each(a)} / {each(b).strip()}")
    for p in ("stop", "rm"):
        a, b = prof("bridge-at-once", p), prof("bridge", p)
        print(f"  {p:5} bridge: {n} commands at once      {a:6.2f}s  {each(a)}  (one command naming all: {b:.2f}s)")
EOF
log "results in $out/ (lifecycle.tsv, lifecycle-summary.txt, lifecycle-stderr.txt)"
