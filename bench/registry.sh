#!/usr/bin/env bash
# Pull and push of a 200 MB single-layer image over loopback, mbuild side by side with
# `skopeo copy` in one hyperfine run each, against a local docker-registry (plain HTTP on
# 127.0.0.1, its storage in a temp dir).
#
#   push  mbuild --root STORE push bench:1 HOST/mb:1
#         skopeo copy oci:STORE:bench:1 docker://HOST/sk:1   (the store is an OCI layout)
#         each run starts from an empty registry (the prepare step restarts it on fresh
#         storage, untimed) and, for mbuild, without its record of where blobs came from,
#         so every run really uploads the layer;
#   pull  mbuild --root EMPTY pull HOST/bench:1
#         skopeo copy docker://HOST/bench:1 oci:EMPTY:bench
#         each run into an empty store / layout.
# Both verify the layer's digest while they copy. The layer is 200 MB of random bytes
# (gzip cannot shrink it), so the figures are about moving and hashing bytes.
#
# Run as root from anywhere:   bench/registry.sh
# Environment:
#   MINIBOX_BENCH_DIR    where the temporary directory goes (/var/tmp/minibox-bench)
#   MINIBOX_BENCH_RUNS   timed runs per command (5)
#   MINIBOX_BENCH_MB     layer size in MB (200)
#   CARGO_TARGET_DIR     where `cargo build --release` puts mbuild (./target)
# Needs hyperfine, skopeo, docker-registry, curl. Results (registry.md, the hyperfine JSON)
# go to bench/results/, which git ignores. The registry is stopped by its pid and the
# temporary directory removed on exit.
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
repo=$(cd "$here/.." && pwd)
cache=${MINIBOX_BENCH_DIR:-/var/tmp/minibox-bench}
runs=${MINIBOX_BENCH_RUNS:-5}
mb=${MINIBOX_BENCH_MB:-200}
target=${CARGO_TARGET_DIR:-$repo/target}
out=$here/results

log() { printf '== %s\n' "$*" >&2; }
die() { printf 'registry.sh: %s\n' "$*" >&2; exit 1; }

for t in hyperfine skopeo docker-registry curl; do
    command -v "$t" >/dev/null || die "$t is not installed (apt-get install -y $t)"
done
mkdir -p "$cache" "$out"
tmp=$(mktemp -d "$cache/registry.XXXXXX")
cleanup() {
    [ -f "$tmp/registry.pid" ] && kill "$(cat "$tmp/registry.pid")" 2>/dev/null || true
    rm -rf "$tmp"
}
trap cleanup EXIT

log "cargo build --release (not timed)"
(cd "$repo" && cargo build --release --quiet --bin mbuild)
mbuild=$target/release/mbuild

port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
host=127.0.0.1:$port
cat >"$tmp/config.yml" <<EOF
version: 0.1
log:
  level: error
  accesslog:
    disabled: true
storage:
  filesystem:
    rootdirectory: $tmp/data
http:
  addr: $host
EOF
# Restart the registry on empty storage; used untimed before every push run.
cat >"$tmp/reset.sh" <<EOF
#!/bin/sh
set -e
if [ -f $tmp/registry.pid ]; then
    kill \$(cat $tmp/registry.pid) 2>/dev/null || true
    while kill -0 \$(cat $tmp/registry.pid) 2>/dev/null; do sleep 0.02; done
fi
rm -rf $tmp/data $tmp/store/sources.json
env -i docker-registry serve $tmp/config.yml >>$tmp/registry.log 2>&1 &
echo \$! >$tmp/registry.pid
i=0
until curl -s -o /dev/null http://$host/v2/; do
    i=\$((i + 1)); [ \$i -lt 200 ] || { echo "registry did not start" >&2; exit 1; }
    sleep 0.05
done
sync
EOF
chmod +x "$tmp/reset.sh"
"$tmp/reset.sh"

log "a ${mb} MB single-layer image (random bytes)"
mkdir -p "$tmp/tree"
head -c "$((mb * 1000 * 1000))" /dev/urandom >"$tmp/tree/blob"
"$mbuild" --root "$tmp/store" import "$tmp/tree" -t bench:1 >/dev/null
layer=$("$mbuild" --root "$tmp/store" inspect bench:1 |
    python3 -c 'import json,sys; m=json.load(sys.stdin)[0]["Manifest"]; print(m["layers"][0]["size"])')
log "layer blob: $layer bytes"

log "push: mbuild vs skopeo, $runs runs each, an empty registry before each"
hyperfine --runs "$runs" --warmup 1 --export-json "$out/registry-push.json" \
    --export-markdown "$out/registry-push.md" \
    --prepare "$tmp/reset.sh" -n "mbuild push" \
    "$mbuild --root $tmp/store push -q bench:1 $host/mb:1" \
    --prepare "$tmp/reset.sh" -n "skopeo copy (push)" \
    "skopeo copy -q --dest-tls-verify=false oci:$tmp/store:bench:1 docker://$host/sk:1"

"$tmp/reset.sh"
"$mbuild" --root "$tmp/store" push -q bench:1 "$host/bench:1"
log "pull: mbuild vs skopeo, $runs runs each, into an empty store or layout"
hyperfine --runs "$runs" --warmup 1 --export-json "$out/registry-pull.json" \
    --export-markdown "$out/registry-pull.md" \
    --prepare "rm -rf $tmp/pulled; sync" -n "mbuild pull" \
    "$mbuild --root $tmp/pulled pull -q $host/bench:1" \
    --prepare "rm -rf $tmp/pulled-oci; sync" -n "skopeo copy (pull)" \
    "skopeo copy -q --src-tls-verify=false docker://$host/bench:1 oci:$tmp/pulled-oci:bench"

# Both ended with the same layer on disk.
want=$("$mbuild" --root "$tmp/store" inspect bench:1 |
    python3 -c 'import json,sys; print(json.load(sys.stdin)[0]["Digest"])')
got=$("$mbuild" --root "$tmp/pulled" inspect "$host/bench:1" |
    python3 -c 'import json,sys; print(json.load(sys.stdin)[0]["Digest"])')
[ "$want" = "$got" ] || die "pulled digest $got is not $want"

{
    echo "# registry push and pull, $(date -u '+%Y-%m-%d %H:%M UTC')"
    echo
    echo "layer blob: $layer bytes; $runs runs each"
    echo
    cat "$out/registry-push.md"
    echo
    cat "$out/registry-pull.md"
} >"$out/registry.md"
cat "$out/registry.md"
