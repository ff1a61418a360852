#!/usr/bin/env python3
"""Write the seed corpora of the unpack targets: corpus/unpack/ (plain layer tars) and
corpus/unpack_gz/ (a flag byte, then a tar or a blob; see fuzz_targets/unpack_gz.rs).

Small real tars in each format the tar crate reads (ustar, GNU long names, PAX), the
layer-specific entries (whiteouts, opaque markers, AUFS metadata), and the hostile cases
of layers/src/unpack.rs's tests (.., absolute names, writing or linking through symlinks,
hard links out of the root, malformed whiteouts). Deterministic: run it again and the
files are the same.

    python3 make-unpack-corpus.py        # from fuzz/
"""

import gzip
import io
import os
import tarfile

# No 10 KiB record padding: two zero blocks end the archive, as they do for the tar crate.
tarfile.RECORDSIZE = 1024

HERE = os.path.dirname(os.path.abspath(__file__))


def info(name, kind=tarfile.REGTYPE, data=b"", mode=0o644, link="", pax=None, **kw):
    t = tarfile.TarInfo(name)
    t.type = kind
    t.size = len(data) if kind in (tarfile.REGTYPE, tarfile.AREGTYPE) else 0
    t.mode = mode
    t.mtime = 1_600_000_000
    t.uid = t.gid = 0
    t.uname = t.gname = ""
    t.linkname = link
    if pax:
        t.pax_headers = pax
    for k, v in kw.items():
        setattr(t, k, v)
    return t, data


def tar(entries, fmt=tarfile.GNU_FORMAT, global_pax=None):
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=fmt, pax_headers=global_pax) as tf:
        for t, data in entries:
            tf.addfile(t, io.BytesIO(data) if t.size else None)
    return buf.getvalue()


def f(name, data=b"x", **kw):
    return info(name, data=data, **kw)


def d(name, mode=0o755, **kw):
    return info(name, tarfile.DIRTYPE, mode=mode, **kw)


def sym(name, target):
    return info(name, tarfile.SYMTYPE, mode=0o777, link=target)


def hard(name, target):
    return info(name, tarfile.LNKTYPE, link=target)


LONG = "d" * 150 + "/file"

TARS = {
    # Ordinary layers.
    "tree": tar([d("./", 0o711), d("etc/"), f("etc/hostname", b"box\n"),
                 f("bin/sh", b"#!", mode=0o4755), sym("bin/ash", "sh"),
                 hard("bin/hard", "bin/sh"), d("ro/", 0o555), f("ro/inside"),
                 info("fifo", tarfile.FIFOTYPE, mode=0o620)], tarfile.USTAR_FORMAT),
    "gnu-long-names": tar([f(LONG, b"long name"), sym("l" * 120, "t" * 130),
                           hard("h" * 110, LONG)], tarfile.GNU_FORMAT),
    "pax-long-names": tar([f(LONG, b"long name"), sym("s" * 120, "/" + "t" * 130),
                           f("attrs", b"x", mode=0o600,
                             pax={"SCHILY.xattr.user.note": "hello",
                                  "mtime": "1234567890.25"}),
                           f("neg-mtime", pax={"mtime": "-1.25"})], tarfile.PAX_FORMAT),
    "pax-overlay-xattr": tar([d("dir/", pax={"SCHILY.xattr.trusted.overlay.opaque": "y",
                                            "SCHILY.xattr.user.overlay.redirect": "/x"})],
                             tarfile.PAX_FORMAT),
    "pax-global-header": tar([f("a")], tarfile.PAX_FORMAT, global_pax={"comment": "hi"}),
    "ustar-prefix": tar([f("p" * 90 + "/" + "q" * 90, b"split name")], tarfile.USTAR_FORMAT),
    "whiteouts": tar([d("etc/"), f("etc/.wh.passwd", b""), f(".wh.tmp", b""),
                      d("var/"), f("var/.wh..wh..opq", b""), f("var/kept")]),
    "opaque-after-siblings": tar([d("a/"), f("a/x"), f("a/.wh..wh..opq", b""), f("a/y")]),
    "aufs-metadata": tar([d(".wh..wh.plnk/"), f(".wh..wh.plnk/123.456"),
                          f(".wh..wh.aufs", b""), f("real")]),
    "devices": tar([info("dev/null", tarfile.CHRTYPE, mode=0o666, devmajor=1, devminor=3),
                    info("dev/loop0", tarfile.BLKTYPE, mode=0o660, devmajor=7, devminor=0),
                    info("dev/wh", tarfile.CHRTYPE, mode=0, devmajor=0, devminor=0)]),
    "replace-same-name": tar([d("x/"), f("x/child"), f("x", b"now a file"),
                              sym("y", "/etc"), f("y", b"file replaces link"),
                              f("z"), d("z/")]),
    "owners-and-modes": tar([f("suid", mode=0o6755, uid=1000, gid=1000),
                             d("sticky/", 0o1777, uid=65534, gid=65534),
                             f("noperm", mode=0)]),
    "empty": b"\0" * 1024,
    "truncated": tar([f("big", b"y" * 3000)])[:2048],
    # Hostile layers: each must be refused or stay inside the target.
    "dotdot": tar([f("ok"), f("../x", b"pwned")]),
    "dotdot-inner": tar([f("a/b/../../../canary/pwned", b"pwned")]),
    "absolute": tar([f("/etc/x", b"inside"), f("./a/./b", b"ab")]),
    "symlink-then-write": tar([sym("esc", "../canary"), f("esc/pwned", b"pwned")]),
    "symlink-abs-then-write": tar([sym("esc", "/tmp"), f("esc/pwned", b"pwned")]),
    "symlink-dir-then-dir": tar([sym("l", "../canary"), d("l/", 0o777), d("l/sub/", 0o777)]),
    "symlink-chain": tar([sym("a", "b"), sym("b", ".."), f("a/pwned")]),
    "symlink-root": tar([sym("./", "/etc"), f("a")]),
    "hardlink-out": tar([hard("h", "../canary/f1")]),
    "hardlink-abs": tar([hard("h", "/etc/passwd")]),
    "hardlink-via-symlink": tar([sym("l", "../canary"), hard("h", "l/f1")]),
    "hardlink-then-write": tar([f("t", b"orig"), hard("h", "t"), f("h", b"new")]),
    "hardlink-to-dir": tar([d("dir/"), hard("h", "dir")]),
    "malformed-whiteouts": tar([f(".wh.", b""), f("a/.wh..", b""), f(".wh..wh.x", b""),
                                hard(".wh.h", "a"), f("w/.wh.y/z", b"")]),
    "whiteout-through-symlink": tar([sym("l", "../canary"), f("l/.wh.f1", b""),
                                     f("l/.wh..wh..opq", b"")]),
    "unsupported-types": tar([info("sparse", tarfile.GNUTYPE_SPARSE), info("vol", b"V"),
                              info("cont", tarfile.CONTTYPE, data=b"c")]),
}


def gz(b, mtime=0):
    return gzip.compress(b, compresslevel=6, mtime=mtime)


def main():
    plain = os.path.join(HERE, "corpus", "unpack")
    comp = os.path.join(HERE, "corpus", "unpack_gz")
    os.makedirs(plain, exist_ok=True)
    os.makedirs(comp, exist_ok=True)
    for name, data in TARS.items():
        with open(os.path.join(plain, name + ".tar"), "wb") as out:
            out.write(data)
    blobs = {
        # Bit 0: the harness gzips the rest; bit 1: a wrong diff_id is expected.
        "harness-gzip-tree": b"\x01" + TARS["tree"],
        "harness-gzip-wrong-diff-id": b"\x03" + TARS["tree"],
        "harness-gzip-symlink-then-write": b"\x01" + TARS["symlink-then-write"],
        "plain-whiteouts": b"\x00" + TARS["whiteouts"],
        "plain-wrong-diff-id": b"\x02" + TARS["tree"],
        "gzip-tree": b"\x00" + gz(TARS["tree"]),
        "gzip-pax": b"\x00" + gz(TARS["pax-long-names"]),
        "gzip-multi-member": b"\x00" + gz(TARS["tree"][:512]) + gz(TARS["tree"][512:]),
        "gzip-trailing-garbage": b"\x00" + gz(TARS["tree"]) + b"garbage",
        "gzip-truncated": b"\x00" + gz(TARS["tree"])[:100],
        "gzip-hostile": b"\x00" + gz(TARS["hardlink-out"]),
        "zstd-magic": b"\x00" + bytes([0x28, 0xB5, 0x2F, 0xFD]) + b"\0" * 8,
        "xz-magic": b"\x00" + b"\xfd7zXZ\0" + b"\0" * 8,
        "bzip2-magic": b"\x00BZh91AY&SY",
    }
    for name, data in blobs.items():
        with open(os.path.join(comp, name), "wb") as out:
            out.write(data)


if __name__ == "__main__":
    main()
