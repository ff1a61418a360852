#!/usr/bin/env bash
# Image build, side by side in one run with buildah (`buildah bud --layers --network host`).
#
# The same 7-line Minifile (used as the Dockerfile for buildah) and the same context, on the
# same base (a debootstrap minbase bookworm rootfs, imported into both stores as base:bench):
#   cold     the base is present, the build cache is empty
#   cached   nothing changed since the last build: every step is a cache hit
#   changed  one ADDed file has new content: that ADD and every step after it run again
# plus, for minibox only, cold with the base layer not yet extracted (as right after
# `mbuild import`, which keeps only the blob): the first build extracts it.
# Targets (from the issue): cached under a tenth of buildah's time and under 50 ms; cold no
# slower than buildah's.
# Afterwards it checks that the image runs (`mrun` prints the same SUMS as `podman run` of
# buildah's image) and that a cached mbuild reports CACHED on every step that makes a layer,
# and it records `strace -c -f` of one cached mbuild.
#
# Run as root from anywhere:   bench/build.sh
# Environment:
#   MINIBOX_BENCH_DIR   cache for the rootfs (/var/tmp/minibox-bench), shared with pack-unpack.sh
#   MINIBOX_BENCH_RUNS  minimum timed runs per command (10); hyperfine adds runs to fill 3 s
# Results (build-hyperfine.md, build.json, summary.txt, build-cached.log, build-sums.txt,
# strace-cached*.txt) go to bench/results/, which git ignores.
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
repo=$(cd "$here/.." && pwd)
cache=${MINIBOX_BENCH_DIR:-/var/tmp/minibox-bench}
runs=${MINIBOX_BENCH_RUNS:-10}
out=$here/results
suite=bookworm

log() { echo "== $*" >&2; }
die() { echo "build.sh: $*" >&2; exit 1; }

[ "$(id -u)" = 0 ] || die "run as root (buildah and mbuild RUN steps need it, and the rootfs holds root-owned files)"
for t in hyperfine buildah podman runc debootstrap python3 tar strace; do
    command -v "$t" >/dev/null || die "$t not found (scripts/install-deps, or apt-get install $t)"
done

mkdir -p "$cache" "$out"
rootfs=$cache/rootfs

# 1. The rootfs, made once and kept (bench/lib.sh).
. "$here/lib.sh"
ensure_rootfs

# 2. Release binaries. Nothing is timed while this compiles.
log "cargo build --release"
(cd "$repo" && cargo build --release --quiet)
mbuild=$repo/target/release/mbuild
mrun=$repo/target/release/mrun
[ -x "$mbuild" ] && [ -x "$mrun" ] || die "$mbuild or $mrun not built"

tmp=$(mktemp -d "$cache/build.XXXXXX")
ctr=$tmp/containers
# buildah and podman keep all their state in $ctr (ANCHORS.md), and run RUN steps with runc.
export CONTAINERS_CONF=$ctr/containers.conf CONTAINERS_STORAGE_CONF=$ctr/storage.conf
cleanup() {
    buildah rm --all >/dev/null 2>&1 || true
    # containers/storage may leave its overlay home bind-mounted; only mounts under $tmp.
    findmnt -rn -o TARGET | { grep "^$tmp/" || true; } | sort -r | while read -r m; do umount -l "$m" || true; done
    rm -rf "$tmp"
}
trap cleanup EXIT

mkdir -p "$ctr"
cat >"$ctr/storage.conf" <<EOF
[storage]
driver = "overlay"
runroot = "$ctr/runroot"
graphroot = "$ctr/storage"
EOF
cat >"$ctr/containers.conf" <<'EOF'
[containers]
default_ulimits = ["nofile=20000:20000", "nproc=32768:32768"]
[engine]
cgroup_manager = "cgroupfs"
events_logger = "file"
runtime = "runc"
EOF

# 3. The Minifile and its context. One text serves both tools: buildah resolves the short name
# base:bench to the local localhost/base:bench. Each tool gets its own copy of the context, so
# the "changed" runs of one never turn the other's "cached" runs into misses.
mkdir -p "$tmp/ctx/app"
cat >"$tmp/ctx/Minifile" <<'EOF'
FROM base:bench
ENV APP_MODE=bench LANG=C.UTF-8
WORKDIR /app
ADD app/ /app/
RUN sh -c 'for i in $(seq 1 200); do echo $i; done > /app/numbers; sha256sum /app/* > /app/SUMS'
ADD config.txt /etc/app.conf
ENTRYPOINT ["/bin/sh","-c","cat /app/SUMS"]
EOF
printf 'one\n' >"$tmp/ctx/app/one-file"
printf 'two\n' >"$tmp/ctx/app/two-file"
printf '#!/bin/sh\necho "app $APP_MODE"\n' >"$tmp/ctx/app/run.sh"
chmod 755 "$tmp/ctx/app/run.sh"
printf 'listen = 8080\nlog = info\n' >"$tmp/ctx/config.txt"
cp -a "$tmp/ctx" "$tmp/ctx-mb"
cp -a "$tmp/ctx" "$tmp/ctx-bh"

# 4. The base in both stores. minibox: a template store holding only base:bench, its layer
# already extracted into layers/ (as buildah's overlay storage holds it extracted), copied
# afresh before every cold run. `mbuild import` alone leaves only the layer blob, which the
# first build then extracts: a second template, for an extra row that shows that cost.
log "importing the rootfs into a minibox template store and into buildah's storage"
"$mbuild" --root "$tmp/template-raw" import "$rootfs" -t base:bench >/dev/null
cp -a "$tmp/template-raw" "$tmp/template"
"$mbuild" --root "$tmp/template" layers base:bench >/dev/null
tar -C "$rootfs" -c . | podman import -q - base:bench >/dev/null
buildah inspect --type image localhost/base:bench >/dev/null || die "base:bench not in buildah's storage"
cp -a "$tmp/template" "$tmp/store"

store=$tmp/store
case "$tmp$mbuild" in *[!A-Za-z0-9/._-]*) die "$tmp or $mbuild: the benchmark needs paths without spaces or quotes" ;; esac
# The timed commands. hyperfine runs them without a shell (-N): a cached mbuild takes a few
# milliseconds, below what hyperfine can correct for a shell's start-up.
mb_build="$mbuild --root $store -f $tmp/ctx-mb/Minifile -t app:bench $tmp/ctx-mb"
bh_build="buildah bud --layers --network host -t app:bench -f $tmp/ctx-bh/Minifile $tmp/ctx-bh"

# The prepare steps, as scripts (hyperfine runs them without a shell too). Each ends with
# sync, so the writeback of one run does not land in the next one's time.
# Cold: minibox gets a fresh copy of the template; buildah loses the built image, every
# intermediate (cache) image and any working container, which leaves only the base.
cat >"$tmp/prep-mb-cold" <<PREP
rm -rf $store && cp -a $tmp/template $store && sync
PREP
cat >"$tmp/prep-mb-cold-raw" <<PREP
rm -rf $store && cp -a $tmp/template-raw $store && sync
PREP
cat >"$tmp/prep-bh-cold" <<PREP
buildah rm --all >/dev/null
buildah rmi -f localhost/app:bench >/dev/null 2>&1
buildah rmi --prune -f >/dev/null
sync
PREP
# Changed: new content in one ADDed file, different on every run, so every run misses.
cat >"$tmp/prep-mb-changed" <<PREP
date +%s%N >$tmp/ctx-mb/app/one-file && sync
PREP
cat >"$tmp/prep-bh-changed" <<PREP
date +%s%N >$tmp/ctx-bh/app/one-file && sync
PREP

# build LOG CMD: run a build into a log (shown if it fails), print its number of cache hits.
build() {
    $2 >"$1" 2>&1 || { tail -n 20 "$1" >&2; die "build failed: $2"; }
    grep -cE '^\[[0-9]+/[0-9]+\] CACHED |^--> Using cache ' "$1" || true
}
expect_hits() { # WHAT EXPECTED GOT
    [ "$2" = "$3" ] || die "$1: $3 cache hits, expected $2"
}

# Each scenario really is what it says: checked once before the timings. The context ends
# as it started, so the timed cold runs build the original files.
log "checking the scenarios"
sh "$tmp/prep-mb-cold"
expect_hits "mbuild cold" 0 "$(build "$tmp/log" "$mb_build")"
sh "$tmp/prep-mb-cold-raw"
expect_hits "mbuild cold, base not extracted" 0 "$(build "$tmp/log" "$mb_build")"
expect_hits "mbuild cached" 3 "$(build "$tmp/log" "$mb_build")" # ADD, RUN, ADD
sh "$tmp/prep-mb-changed"
expect_hits "mbuild changed" 0 "$(build "$tmp/log" "$mb_build")"
sh "$tmp/prep-bh-cold"
[ "$(buildah images -a -q | wc -l)" = 1 ] || die "buildah storage holds more than the base after the cold prepare"
expect_hits "buildah cold" 0 "$(build "$tmp/log" "$bh_build")"
expect_hits "buildah cached" 6 "$(build "$tmp/log" "$bh_build")" # every step after FROM
sh "$tmp/prep-bh-changed"
expect_hits "buildah changed" 2 "$(build "$tmp/log" "$bh_build")" # ENV, WORKDIR
cp "$tmp/ctx/app/one-file" "$tmp/ctx-mb/app/one-file"
cp "$tmp/ctx/app/one-file" "$tmp/ctx-bh/app/one-file"

# 5. One hyperfine run, the two tools side by side per scenario. Cold leaves a built image
# behind, so the cached runs that follow hit (the warmup run makes sure of it).
load_before=$(cut -d' ' -f1-3 /proc/loadavg)
log "hyperfine: at least $runs runs each (load average $load_before)"
hyperfine -N --warmup 1 --min-runs "$runs" \
    --export-markdown "$out/build-hyperfine.md" --export-json "$out/build.json" \
    -n "mbuild cold" -p "sh $tmp/prep-mb-cold" "$mb_build" \
    -n "buildah cold" -p "sh $tmp/prep-bh-cold" "$bh_build" \
    -n "mbuild cold, base not extracted" -p "sh $tmp/prep-mb-cold-raw" "$mb_build" \
    -n "mbuild cached" -p true "$mb_build" \
    -n "buildah cached" -p true "$bh_build" \
    -n "mbuild changed" -p "sh $tmp/prep-mb-changed" "$mb_build" \
    -n "buildah changed" -p "sh $tmp/prep-bh-changed" "$bh_build"
load_after=$(cut -d' ' -f1-3 /proc/loadavg)

# 6. Correctness, after the runs. Put the original file back and build once (the store may
# or may not still hold those layers); the build after that must hit on every layer step.
log "checking the images"
cp "$tmp/ctx/app/one-file" "$tmp/ctx-mb/app/one-file"
cp "$tmp/ctx/app/one-file" "$tmp/ctx-bh/app/one-file"
build "$tmp/log" "$mb_build" >/dev/null
n=$(build "$out/build-cached.log" "$mb_build")
layer_steps=$(grep -cE '^(ADD|COPY|RUN) ' "$tmp/ctx/Minifile")
[ "$n" = "$layer_steps" ] || die "cached mbuild: $n CACHED lines for $layer_steps layer steps (see $out/build-cached.log)"
build "$tmp/log" "$bh_build" >/dev/null
mb_sums=$("$mrun" --root "$store" --rm --net none app:bench)
bh_sums=$(podman run --rm --network none localhost/app:bench)
printf '%s\n' "$mb_sums" >"$out/build-sums.txt"
grep -q ' /app/numbers$' <<<"$mb_sums" || die "mrun app:bench did not print the SUMS: $mb_sums"
[ "$mb_sums" = "$bh_sums" ] && same_sums=yes || same_sums=NO

# Where a cached build's time goes: syscall counts, and a timestamped trace of one run.
strace -c -f -o "$out/strace-cached.txt" $mb_build >/dev/null 2>&1
strace -f -tt -T -o "$out/strace-cached-trace.txt" $mb_build >/dev/null 2>&1

# 7. Summary.
{
echo "minibox $(git -C "$repo" describe --always --dirty 2>/dev/null || echo '(no git)'), $(buildah --version), $(podman --version)"
echo "$(runc --version | head -n 1), $(hyperfine --version), kernel $(uname -r), $(nproc) CPUs"
python3 - "$out" "$load_before" "$load_after" "$same_sums" "$n" "$layer_steps" <<'EOF'
import json, sys
out, load_before, load_after, same_sums, hits, steps = sys.argv[1:]
r = {x["command"]: x for x in json.load(open(f"{out}/build.json"))["results"]}
ms = lambda s: f"{s * 1000:.1f} ms" if s < 0.1 else f"{s * 1000:.0f} ms"
print(f"load average (1/5/15 min) before: {load_before}, after: {load_after}")
print()
print(f"{'scenario':<9} {'mbuild':>10} {'buildah':>10} {'mbuild/buildah':>15} {'buildah/mbuild':>15}")
ratio = {}
for s in ("cold", "cached", "changed"):
    m, b = r[f"mbuild {s}"]["median"], r[f"buildah {s}"]["median"]
    ratio[s] = m / b
    print(f"{s:<9} {ms(m):>10} {ms(b):>10} {m / b:>15.3f} {b / m:>14.1f}x")
x = r["mbuild cold, base not extracted"]["median"]
print(f"cold with the base not yet extracted (the first build after `mbuild import`): "
      f"mbuild {ms(x)}, mbuild/buildah {x / r['buildah cold']['median']:.3f}")
print("(medians of wall time; the per-run spread is in build-hyperfine.md and build.json)")
print()
c = r["mbuild cached"]["median"]
met = lambda ok: "MET" if ok else "NOT MET"
print(f"target cached < 1/10 of buildah's:  {met(ratio['cached'] < 0.1)} (mbuild/buildah = {ratio['cached']:.3f})")
print(f"target cached < 50 ms:              {met(c < 0.050)} ({c * 1000:.1f} ms median, "
      f"max {r['mbuild cached']['max'] * 1000:.1f} ms, {len(r['mbuild cached']['times'])} runs)")
print(f"target cold no slower than buildah: {met(ratio['cold'] <= 1.0)} (mbuild/buildah = {ratio['cold']:.3f})")
print()
print(f"cached mbuild: {hits} CACHED lines for {steps} layer steps; "
      f"mrun and podman run print the same SUMS: {same_sums}")
EOF
} | tee "$out/summary.txt"
log "results in $out/ (build-hyperfine.md, build.json, summary.txt, build-cached.log, strace-cached*.txt)"
