#!/usr/bin/env bash
# Layer pack and unpack, side by side in one run with the tools users would pick instead.
#
# Pack: `mbuild import` of a debootstrap minbase bookworm rootfs against
#   tar | gzip -6 | sha256sum, tar | pigz | sha256sum and `skopeo copy` (parallel gzip) of the
#   same tree, stored as an uncompressed OCI layer, into a fresh OCI layout.
# Unpack: `mbuild layers` (extracts the layer blob into layers/<diff_id>) against `tar -xzf`
#   of the very same blob.
# Also: compressed size against gzip -6, peak RSS of mbuild on the tree and on a tree twice
# as large, and whether the layer digest is the same across two fresh stores.
#
# Run as root from anywhere:   bench/pack-unpack.sh
# Environment:
#   MINIBOX_BENCH_DIR   cache for the rootfs and the OCI source layout (/var/tmp/minibox-bench)
#   MINIBOX_BENCH_RUNS  timed runs per command (5)
# Results (hyperfine markdown and JSON, summary.txt) go to bench/results/, which git ignores.
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
repo=$(cd "$here/.." && pwd)
cache=${MINIBOX_BENCH_DIR:-/var/tmp/minibox-bench}
runs=${MINIBOX_BENCH_RUNS:-5}
out=$here/results
suite=bookworm

log() { echo "== $*" >&2; }
die() { echo "pack-unpack.sh: $*" >&2; exit 1; }

[ "$(id -u)" = 0 ] || die "run as root (debootstrap, and the rootfs holds root-owned files and device nodes)"
for t in hyperfine pigz gzip skopeo debootstrap python3 tar sha256sum; do
    command -v "$t" >/dev/null || die "$t not found (scripts/install-deps, or apt-get install $t)"
done
if [ ! -x /usr/bin/time ]; then
    log "installing GNU time (for peak RSS)"
    apt-get install -y -qq time >/dev/null
fi

mkdir -p "$cache" "$out"
rootfs=$cache/rootfs
big=$cache/rootfs-x2
src=$cache/oci-src

# 1. The rootfs, made once and kept (bench/lib.sh).
. "$here/lib.sh"
ensure_rootfs
# A tree twice as large (two copies of the rootfs side by side), for peak RSS only.
if [ ! -d "$big" ]; then
    log "copying the rootfs twice into $big"
    rm -rf "$big.tmp"
    mkdir -p "$big.tmp"
    cp -a "$rootfs" "$big.tmp/a"
    cp -a "$rootfs" "$big.tmp/b"
    mv "$big.tmp" "$big"
fi

# The same tree as an OCI layout with one *uncompressed* layer, so that `skopeo copy
# --dest-compress` does the whole tar -> gzip -> sha256 job, like the other commands.
if [ ! -f "$src/index.json" ]; then
    log "making the OCI source layout for skopeo"
    rm -rf "$src.tmp"
    mkdir -p "$src.tmp/blobs/sha256"
    tar -C "$rootfs" -cf "$src.tmp/layer.tar" .
    layer=$(sha256sum "$src.tmp/layer.tar" | cut -d' ' -f1)
    layer_size=$(stat -c %s "$src.tmp/layer.tar")
    mv "$src.tmp/layer.tar" "$src.tmp/blobs/sha256/$layer"
    blob() { # write stdin as a blob, print "<hex> <size>"
        local f=$src.tmp/blob.tmp h n
        cat >"$f"
        h=$(sha256sum "$f" | cut -d' ' -f1)
        n=$(stat -c %s "$f")
        mv "$f" "$src.tmp/blobs/sha256/$h"
        echo "$h $n"
    }
    read -r cfg cfg_size <<<"$(printf '{"architecture":"amd64","os":"linux","config":{},"rootfs":{"type":"layers","diff_ids":["sha256:%s"]}}' "$layer" | blob)"
    read -r man man_size <<<"$(printf '{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json","config":{"mediaType":"application/vnd.oci.image.config.v1+json","digest":"sha256:%s","size":%s},"layers":[{"mediaType":"application/vnd.oci.image.layer.v1.tar","digest":"sha256:%s","size":%s}]}' \
        "$cfg" "$cfg_size" "$layer" "$layer_size" | blob)"
    printf '{"imageLayoutVersion":"1.0.0"}' >"$src.tmp/oci-layout"
    printf '{"schemaVersion":2,"manifests":[{"mediaType":"application/vnd.oci.image.manifest.v1+json","digest":"sha256:%s","size":%s,"annotations":{"org.opencontainers.image.ref.name":"bench"}}]}' \
        "$man" "$man_size" >"$src.tmp/index.json"
    for h in "$layer" "$cfg" "$man"; do
        [ -s "$src.tmp/blobs/sha256/$h" ] || die "making the OCI source layout: blob $h missing"
    done
    mv "$src.tmp" "$src"
fi

# 2. Release binaries. Nothing is timed while this compiles.
log "cargo build --release"
(cd "$repo" && cargo build --release --quiet)
mbuild=$repo/target/release/mbuild
[ -x "$mbuild" ] || die "$mbuild not built"

tmp=$(mktemp -d "$cache/run.XXXXXX")
trap 'rm -rf "$tmp"' EXIT

# Facts measured outside the timings.
tar_bytes=$(tar -C "$rootfs" -cf - . | wc -c)
entries=$(find "$rootfs" | wc -l)
log "rootfs: $entries entries, $tar_bytes bytes of tar"
gzip6_bytes=$(tar -C "$rootfs" -cf - . | gzip -6 | wc -c)
pigz_bytes=$(tar -C "$rootfs" -cf - . | pigz | wc -c)

# Layer digest and size of image "bench" in store $1.
layer_field() { # STORE FIELD
    "$mbuild" --root "$1" inspect bench |
        python3 -c 'import json,sys; print(json.load(sys.stdin)[0]["Manifest"]["layers"][0][sys.argv[1]])' "$2"
}
# Peak RSS in KiB of a command, from GNU time.
peak_rss() {
    /usr/bin/time -f '%M' -o "$tmp/rss" "$@" >/dev/null
    cat "$tmp/rss"
}

# 3. Pack, one hyperfine run. Every mbuild run starts from an empty store, every skopeo run
# from no destination, so each really packs. Each prepare ends with sync, so the writeback of
# what the previous run wrote or deleted does not land in the next one's time.
log "pack: hyperfine, $runs runs each"
hyperfine --warmup 1 --runs "$runs" \
    --export-markdown "$out/pack.md" --export-json "$out/pack.json" \
    -n "mbuild import" \
    -p "rm -rf '$tmp/store' && mkdir '$tmp/store' && sync" \
    "'$mbuild' --root '$tmp/store' import '$rootfs' -t bench" \
    -n "tar | gzip -6 | sha256sum" -p sync \
    "tar -C '$rootfs' -cf - . | gzip -6 | sha256sum" \
    -n "tar | pigz | sha256sum" -p sync \
    "tar -C '$rootfs' -cf - . | pigz | sha256sum" \
    -n "skopeo copy --dest-compress" \
    -p "rm -rf '$tmp/skopeo' && sync" \
    "skopeo --insecure-policy copy -q --dest-compress --dest-compress-format gzip 'oci:$src:bench' 'oci:$tmp/skopeo:bench'"

# The last timed runs left a store and a skopeo layout behind: their layer sizes.
mbuild_bytes=$(layer_field "$tmp/store" size)
skopeo_bytes=$(python3 -c '
import json,sys
d=sys.argv[1]
idx=json.load(open(d+"/index.json"))
h=idx["manifests"][0]["digest"].split(":")[1]
print(json.load(open(d+"/blobs/sha256/"+h))["layers"][0]["size"])' "$tmp/skopeo")

# Peak memory: mbuild on the tree and on one twice as large; skopeo for comparison.
log "peak RSS"
rm -rf "$tmp/rss1" "$tmp/rss2" && mkdir "$tmp/rss1" "$tmp/rss2"
rss_pack1=$(peak_rss "$mbuild" --root "$tmp/rss1" import "$rootfs" -t bench)
rss_pack2=$(peak_rss "$mbuild" --root "$tmp/rss2" import "$big" -t bench)
rss_unpack1=$(peak_rss "$mbuild" --root "$tmp/rss1" layers bench)
rss_unpack2=$(peak_rss "$mbuild" --root "$tmp/rss2" layers bench)
rm -rf "$tmp/skopeo-rss"
rss_skopeo=$(peak_rss skopeo --insecure-policy copy -q --dest-compress --dest-compress-format gzip "oci:$src:bench" "oci:$tmp/skopeo-rss:bench")
big_bytes=$(tar -C "$big" -cf - . | wc -c)
rm -rf "$tmp/rss1" "$tmp/rss2" "$tmp/skopeo-rss"

# 4. Determinism: two fresh stores, the second packed on one CPU (so with a different number
# of compression threads), both with SOURCE_DATE_EPOCH set.
log "determinism"
mkdir "$tmp/d1" "$tmp/d2"
SOURCE_DATE_EPOCH=1700000000 "$mbuild" --root "$tmp/d1" import "$rootfs" -t bench >/dev/null
SOURCE_DATE_EPOCH=1700000000 taskset -c 0 "$mbuild" --root "$tmp/d2" import "$rootfs" -t bench >/dev/null
digest1=$(layer_field "$tmp/d1" digest)
digest2=$(layer_field "$tmp/d2" digest)
[ "$digest1" = "$digest2" ] && deterministic=yes || deterministic=NO
rm -rf "$tmp/d1" "$tmp/d2"

# 5. Unpack, one hyperfine run, of the very same gzip blob.
log "unpack: hyperfine, $runs runs each"
store=$tmp/store
digest=$(layer_field "$store" digest)
layer_blob=$store/oci/blobs/sha256/${digest#sha256:}
[ -f "$layer_blob" ] || die "layer blob $layer_blob missing"
hyperfine --warmup 1 --runs "$runs" \
    --export-markdown "$out/unpack.md" --export-json "$out/unpack.json" \
    -n "mbuild layers (extract)" \
    -p "rm -rf '$store'/layers/* && sync" \
    "'$mbuild' --root '$store' layers bench" \
    -n "tar -xzf" \
    -p "rm -rf '$tmp/x' && mkdir '$tmp/x' && sync" \
    "tar -xzf '$layer_blob' -C '$tmp/x'"
rm -rf "$tmp/x"

# 6. Summary.
python3 - "$out" "$tar_bytes" "$entries" "$gzip6_bytes" "$pigz_bytes" "$mbuild_bytes" "$skopeo_bytes" \
    "$rss_pack1" "$rss_pack2" "$rss_unpack1" "$rss_unpack2" "$rss_skopeo" "$big_bytes" \
    "$deterministic" "$digest1" "$digest2" <<'EOF' | tee "$out/summary.txt"
import json, sys
(out, tar_b, entries, gz_b, pigz_b, mb_b, sk_b, rp1, rp2, ru1, ru2, rsk, big_b,
 det, d1, d2) = sys.argv[1:]
tar_b, gz_b, pigz_b, mb_b, sk_b, big_b = map(int, (tar_b, gz_b, pigz_b, mb_b, sk_b, big_b))
MB = 1e6

def load(name):
    return {r["command"]: r for r in json.load(open(f"{out}/{name}.json"))["results"]}

pack, unpack = load("pack"), load("unpack")
size = {"mbuild import": mb_b, "tar | gzip -6 | sha256sum": gz_b,
        "tar | pigz | sha256sum": pigz_b, "skopeo copy --dest-compress": sk_b}
print(f"rootfs: {entries} entries, {tar_b / MB:.1f} MB of tar input (MB = 10^6 bytes)")
print()
print("pack (median wall time of the timed runs; MB/s of tar input; mean CPU time, user+sys,")
print("which a busy machine distorts less than wall time; size vs gzip -6)")
sk = pack["skopeo copy --dest-compress"]["median"]
for name, r in pack.items():
    m, cpu = r["median"], r["user"] + r["system"]
    s = size[name]
    print(f"  {name:<28} {m:7.2f} s  {tar_b / MB / m:6.1f} MB/s  {sk / m:5.2f}x skopeo's speed"
          f"  cpu {cpu:6.2f} s  {s / MB:6.2f} MB  {100 * (s - gz_b) / gz_b:+6.2f}% vs gzip -6")
print()
print("unpack (median)")
tx = unpack["tar -xzf"]["median"]
for name, r in unpack.items():
    m, cpu = r["median"], r["user"] + r["system"]
    print(f"  {name:<28} {m:7.2f} s  {tar_b / MB / m:6.1f} MB/s of tar  {tx / m:5.2f}x tar -xzf's speed"
          f"  cpu {cpu:5.2f} s")
print()
kib = lambda k: f"{int(k) / 1024:.1f} MiB"
print("peak RSS (GNU time, one run each)")
print(f"  mbuild import, rootfs ({tar_b / MB:.0f} MB tar)         {kib(rp1)}")
print(f"  mbuild import, rootfs x2 ({big_b / MB:.0f} MB tar)      {kib(rp2)}")
print(f"  mbuild layers (extract), rootfs         {kib(ru1)}")
print(f"  mbuild layers (extract), rootfs x2      {kib(ru2)}")
print(f"  skopeo copy --dest-compress, rootfs     {kib(rsk)}")
print()
print(f"deterministic layer digest (two fresh stores, SOURCE_DATE_EPOCH set, 2nd on one CPU): {det}")
print(f"  {d1}")
print(f"  {d2}")
EOF
log "results in $out/ (pack.md, unpack.md, *.json, summary.txt)"
