# Shared by the bench scripts (sourced, not run): the cached debootstrap rootfs they all
# measure against. Expects $cache, $suite and the log/die functions of the sourcing script.

# Make $cache/rootfs once and keep it. Built beside its final name and renamed when complete,
# so an interrupted debootstrap is never mistaken for a finished one; copies derived from an
# older tree (pack-unpack.sh's rootfs-x2 and oci-src) go with it.
ensure_rootfs() {
    local rootfs=$cache/rootfs
    [ -d "$rootfs" ] && return 0
    log "debootstrap --variant=minbase $suite (about 35 s and 200 MB, once)"
    rm -rf "$rootfs.tmp"
    debootstrap --variant=minbase "$suite" "$rootfs.tmp" >"$cache/debootstrap.log" 2>&1 ||
        die "debootstrap failed, see $cache/debootstrap.log"
    mv "$rootfs.tmp" "$rootfs"
    rm -rf "$cache/rootfs-x2" "$cache/oci-src"
}
