#!/usr/bin/env bash
# Container start-up, side by side in one run with the runtimes users would pick instead.
#
# `mrun IMAGE /bin/true` of a debootstrap minbase bookworm image, against `crun run` and
# `runc run` of an OCI bundle of the same rootfs and `podman run --rm --network none` of the
# same rootfs imported into podman. Also: peak RSS of mrun, crun and runc, and mrun's start-up
# for images of 10, 100 and 500 layers (the rootfs at the bottom, one tiny layer per extra
# layer), to show how it grows with the layer count.
#
# Run as root from anywhere:   bench/run-start.sh
# Environment:
#   MINIBOX_BENCH_DIR     cache for the rootfs (/var/tmp/minibox-bench), shared with pack-unpack.sh
#   MINIBOX_BENCH_RUNS    timed runs per command (30)
#   MINIBOX_BENCH_LAYERS  layer counts for the scaling run ("10 100 500")
# Results (hyperfine markdown and JSON, start-summary.txt) go to bench/results/, which git
# ignores. The temporary store, bundle, podman storage and mount namespace are removed on exit.
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
repo=$(cd "$here/.." && pwd)
cache=${MINIBOX_BENCH_DIR:-/var/tmp/minibox-bench}
runs=${MINIBOX_BENCH_RUNS:-30}
layer_counts=${MINIBOX_BENCH_LAYERS:-10 100 500}
out=$here/results
suite=bookworm

log() { echo "== $*" >&2; }
die() { echo "run-start.sh: $*" >&2; exit 1; }

[ "$(id -u)" = 0 ] || die "run as root (runc, crun, podman and mrun all need it here)"
for t in hyperfine crun runc podman debootstrap python3 tar nsenter unshare findmnt cargo; do
    command -v "$t" >/dev/null || die "$t not found (scripts/install-deps, or apt-get install $t)"
done
if [ ! -x /usr/bin/time ]; then
    log "installing GNU time (for peak RSS)"
    apt-get install -y -qq time >/dev/null
fi

mkdir -p "$cache" "$out"
rootfs=$cache/rootfs

# 1. The rootfs, made once and kept (bench/lib.sh).
. "$here/lib.sh"
ensure_rootfs

# Release binaries, and the helper that makes many-layer images. Nothing is timed meanwhile.
log "cargo build --release"
(cd "$repo" && cargo build --release --quiet && cargo build --release --quiet -p layers --example mklayers)
mbuild=$repo/target/release/mbuild
mrun=$repo/target/release/mrun
mklayers=$repo/target/release/examples/mklayers
for b in "$mbuild" "$mrun" "$mklayers"; do [ -x "$b" ] || die "$b not built"; done

# Everything temporary lives in one directory on the same filesystem as the cache, so all
# four runtimes read the same kind of disk. On exit: unmount whatever is mounted below it
# (the mount namespace file and its private bind, anything podman left), deepest first.
tmp=$(mktemp -d "$cache/start.XXXXXX")
cleanup() {
    findmnt -rn -o TARGET | grep "^$tmp/" | sort -r | while read -r m; do umount -l "$m" || true; done
    rm -rf "$tmp"
}
trap cleanup EXIT
store=$tmp/store
bundle=$tmp/bundle
ns=$tmp/ns/mnt

# The minibox image, and its layer extracted once, so runs measure start-up, not extraction.
log "mbuild import + layers (extract once)"
"$mbuild" --root "$store" import "$rootfs" -t deb:bench >/dev/null
"$mbuild" --root "$store" layers deb:bench >/dev/null

# 2. The OCI bundle for runc and crun: a copy of the same rootfs and `runc spec`'s config
# (pid, network, ipc, uts and mount namespaces; lo only, like mrun --net none),
# with the command set, no terminal, and the root writable as mrun's and podman's are.
log "OCI bundle"
mkdir -p "$bundle/rootfs"
cp -a "$rootfs/." "$bundle/rootfs"
(cd "$bundle" && runc spec)
python3 - "$bundle/config.json" <<'EOF'
import json, sys
p = sys.argv[1]
c = json.load(open(p))
c["process"]["args"] = ["/bin/true"]
c["process"]["terminal"] = False
c["root"]["readonly"] = False
assert {"type": "network"} in c["linux"]["namespaces"], "runc spec without a network namespace"
json.dump(c, open(p, "w"), indent=2)
EOF

# crun 1.8 refuses this host's hybrid cgroups ("cgroups in hybrid mode not supported"),
# because /sys/fs/cgroup/unified lists hugetlb. One mount namespace without that mount,
# kept open through a bind-mounted nsfs file, entered with nsenter for every crun run
# (ANCHORS.md). The host's mounts are not touched.
log "mount namespace for crun"
mkdir -p "$tmp/ns"
mount --bind "$tmp/ns" "$tmp/ns"
mount --make-private "$tmp/ns"
touch "$ns"
unshare --mount="$ns" --propagation private umount /sys/fs/cgroup/unified

# 3. podman with its state in the temp dir, runc as its runtime, the same rootfs imported.
log "podman import"
export CONTAINERS_CONF=$tmp/containers.conf CONTAINERS_STORAGE_CONF=$tmp/storage.conf
cat >"$CONTAINERS_STORAGE_CONF" <<EOF
[storage]
driver = "overlay"
runroot = "$tmp/podman-run"
graphroot = "$tmp/podman-storage"
EOF
# The ulimits: without them podman asks for limits above this machine's hard limits and
# fails with "error setting rlimit type 7: operation not permitted".
cat >"$CONTAINERS_CONF" <<EOF
[containers]
default_ulimits = ["nofile=20000:20000", "nproc=32768:32768"]
[engine]
cgroup_manager = "cgroupfs"
events_logger = "file"
runtime = "runc"
EOF
tar -C "$rootfs" -c . | podman import -q - deb:bench >/dev/null

# Every command runs through hyperfine's shell (sh -c, its start-up subtracted), because
# runc and crun need a container id that is new on every run: `exec ... r$$`. The others go
# through the same shell so that all rows pay the same. `exec` leaves no shell waiting.
cmd_mrun="exec '$mrun' --root '$store' --rm --net none deb:bench /bin/true"
cmd_crun="exec nsenter --mount='$ns' crun run -b '$bundle' c\$\$"
cmd_runc="exec runc run -b '$bundle' r\$\$"
cmd_podman="exec podman run --rm --network none deb:bench /bin/true"

# Each must work once before anything is timed.
log "smoke test of each runtime"
for c in "$cmd_mrun" "$cmd_crun" "$cmd_runc" "$cmd_podman"; do
    sh -c "$c" || die "failed: $c"
done

# 4. Start-up, one hyperfine run.
load_before=$(cut -d' ' -f1-3 /proc/loadavg)
log "start-up: hyperfine, $runs runs each (load average $load_before)"
hyperfine --warmup 3 --runs "$runs" \
    --export-markdown "$out/start.md" --export-json "$out/start.json" \
    -n "mrun" "$cmd_mrun" \
    -n "crun run" "$cmd_crun" \
    -n "runc run" "$cmd_runc" \
    -n "podman run" "$cmd_podman"
load_after=$(cut -d' ' -f1-3 /proc/loadavg)
# What nsenter adds to every crun run: nsenter in front of /bin/true against /bin/true alone.
# Without a shell (-N): these take about a millisecond, below what the shell correction can
# resolve.
log "nsenter's cost: hyperfine -N"
hyperfine -N --warmup 3 --runs "$runs" \
    --export-markdown "$out/start-nsenter.md" --export-json "$out/start-nsenter.json" \
    -n "/bin/true" "/bin/true" \
    -n "nsenter --mount /bin/true" "nsenter --mount=$ns /bin/true"

# 5. Peak RSS (GNU time; the largest of the process and its waited-for descendants, so runc's
# `runc init` and crun's container process count too). Five runs each, the largest kept.
log "peak RSS"
peak_rss() { # COMMAND... -> largest peak RSS in KiB over 5 runs
    local i max=0 k
    for i in 1 2 3 4 5; do
        /usr/bin/time -f '%M' -o "$tmp/rss" "$@" >/dev/null
        k=$(tail -n1 "$tmp/rss")
        [ "$k" -gt "$max" ] && max=$k
    done
    echo "$max"
}
rss_mrun=$(peak_rss "$mrun" --root "$store" --rm --net none deb:bench /bin/true)
# nsenter and sh exec the runtime, and the peak survives execve(2), so these are crun's and
# runc's own (the small nsenter and sh come first and are far below them).
rss_crun=$(peak_rss sh -c "exec nsenter --mount='$ns' crun run -b '$bundle' c\$\$")
rss_runc=$(peak_rss sh -c "exec runc run -b '$bundle' r\$\$")
rss_podman=$(peak_rss podman run --rm --network none deb:bench /bin/true)

# 6. Layer count. Images whose bottom layer is the rootfs and whose other layers hold one
# small file each, every layer extracted beforehand. A count that cannot be made or run is
# reported with its error and left out of the timing.
log "layer scaling: images of $layer_counts layers"
: >"$out/start-layers-errors.txt"
scale_args=(-n "1 layer" "'$mrun' --root '$store' --rm --net none deb:bench /bin/true")
ok_counts=()
for n in $layer_counts; do
    if ! "$mklayers" "$store" "layers$n:bench" "$n" deb:bench >/dev/null 2>"$tmp/err" ||
        ! "$mbuild" --root "$store" layers "layers$n:bench" >/dev/null 2>>"$tmp/err" ||
        ! "$mrun" --root "$store" --rm --net none "layers$n:bench" /bin/true 2>>"$tmp/err"; then
        echo "$n layers: $(tr '\n' ' ' <"$tmp/err")" | tee -a "$out/start-layers-errors.txt" >&2
        continue
    fi
    scale_args+=(-n "$n layers" "'$mrun' --root '$store' --rm --net none layers$n:bench /bin/true")
    ok_counts+=("$n")
done
# No container id here, so no shell: -N runs mrun directly.
hyperfine -N --warmup 3 --runs "$runs" \
    --export-markdown "$out/start-layers.md" --export-json "$out/start-layers.json" \
    "${scale_args[@]}"
rss_mrun_layers=""
for n in "${ok_counts[@]}"; do
    rss_mrun_layers+="$n=$(peak_rss "$mrun" --root "$store" --rm --net none "layers$n:bench" /bin/true) "
done

# 7. Summary, ratios and the targets of the issue.
versions="crun $(crun --version | sed -n 's/^crun version //p'), $(runc --version | head -n1), $(podman --version), $(hyperfine --version), kernel $(uname -r)"
rev=$(cd "$repo" && git rev-parse --short HEAD)$(cd "$repo" && git diff --quiet HEAD -- 2>/dev/null || echo "+dirty")
python3 - "$out" "$load_before" "$load_after" "$versions" "$rev" "$runs" \
    "$rss_mrun" "$rss_crun" "$rss_runc" "$rss_podman" "$rss_mrun_layers" <<'EOF' | tee "$out/start-summary.txt"
import json, sys, time
(out, load_before, load_after, versions, rev, runs,
 rss_mrun, rss_crun, rss_runc, rss_podman, rss_layers) = sys.argv[1:]

def load(name):
    return {r["command"]: r for r in json.load(open(f"{out}/{name}.json"))["results"]}

ms = lambda s: f"{1000 * s:8.2f} ms"
mib = lambda k: int(k) / 1024
start = load("start")
print(f"{time.strftime('%Y-%m-%d %H:%M')}  minibox {rev}  {runs} runs per command")
print(f"load average before/after: {load_before} / {load_after}")
print(versions)
print()
print("start-up of /bin/true (median and mean of the timed runs, hyperfine's shell start-up subtracted)")
for name, r in start.items():
    print(f"  {name:<26} median {ms(r['median'])}  mean {ms(r['mean'])} ± {1000 * r['stddev']:.2f}"
          f"  min {ms(r['min'])}  cpu {ms(r['user'] + r['system'])}")
m = start["mrun"]["median"]
nse = load("start-nsenter")
nsenter_cost = nse["nsenter --mount /bin/true"]["median"] - nse["/bin/true"]["median"]
crun_bare = start["crun run"]["median"] - nsenter_cost
print()
print(f"nsenter in front of crun adds about {1000 * nsenter_cost:.2f} ms; crun without it: {1000 * crun_bare:.2f} ms")
print()
print("targets (by median)")
rows = [
    ("mrun / crun    <= 1", m / start["crun run"]["median"], 1.0),
    ("mrun / crun (nsenter removed) <= 1", m / crun_bare, 1.0),
    ("mrun / runc    < 1/3", m / start["runc run"]["median"], 1 / 3),
    ("mrun / podman  < 1/20", m / start["podman run"]["median"], 1 / 20),
]
for what, ratio, limit in rows:
    verdict = "met" if ratio <= limit else "NOT met"
    print(f"  {what:<36} {ratio:6.3f}  (limit {limit:.3f})  {verdict}")
print(f"  peak RSS of mrun < 8 MiB             {mib(rss_mrun):6.2f} MiB  {'met' if mib(rss_mrun) < 8 else 'NOT met'}")
print()
print("peak RSS (GNU time, largest of 5 runs, the process and its waited-for descendants)")
for name, k in [("mrun", rss_mrun), ("crun run", rss_crun), ("runc run", rss_runc), ("podman run", rss_podman)]:
    print(f"  {name:<12} {mib(k):7.2f} MiB")
for kv in rss_layers.split():
    n, k = kv.split("=")
    print(f"  mrun, {n} layers {mib(k):5.2f} MiB")
print()
print("mrun start-up by layer count (median; hyperfine -N, no shell)")
layers = load("start-layers")
base = layers["1 layer"]["median"]
for name, r in layers.items():
    print(f"  {name:<12} median {ms(r['median'])}  {r['median'] / base:5.2f}x one layer"
          f"  cpu {ms(r['user'] + r['system'])}")
errors = open(f"{out}/start-layers-errors.txt").read().strip()
if errors:
    print("  failed:", errors)
EOF
log "results in $out/ (start.md, start-layers.md, *.json, start-summary.txt)"
