//! `--device` and the devices cgroup, as a user sees them: a directory adds every device
//! node below it (Docker's /dev/snd case, here /dev/net), anything that is not a device node
//! is one line and exit 125, a block device can be read through it and written only when
//! its permissions say so, and a node of a device not passed, made with mknod where nodev
//! does not apply (a `--tmpfs ...:dev`), cannot be opened: the devices cgroup says no.
//!
//! It must not touch host devices other than the loop devices it attaches (and detaches
//! when it ends, pass or fail).

use super::{assert_refused, mrun, ok, s, setup, unique};
use crate::common::*;
use crate::run::{code, containers_of, IMG};
use std::fs;
use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::path::Path;
use std::process::Command;

/// A loop device over a file holding `bytes`, detached when dropped.
struct Loop {
    dev: String,
}

impl Loop {
    fn new(file: &Path, bytes: &[u8]) -> Option<Loop> {
        if skip_unless(have("losetup"), "losetup missing (util-linux)") {
            return None;
        }
        fs::write(file, bytes).unwrap();
        let o = Command::new("losetup")
            .args(["-f", "--show"])
            .arg(file)
            .output()
            .unwrap();
        if skip_unless(o.status.success(), &format!("losetup: {}", text(&o.stderr))) {
            return None;
        }
        Some(Loop {
            dev: text(&o.stdout).trim().to_string(),
        })
    }

    /// (major, minor)
    fn numbers(&self) -> (u32, u32) {
        let rdev = fs::metadata(&self.dev).unwrap().rdev();
        (libc::major(rdev), libc::minor(rdev))
    }

    /// The first `n` bytes the host reads through the device itself.
    fn host_read(&self, n: usize) -> Vec<u8> {
        let mut b = fs::read(&self.dev).unwrap();
        b.truncate(n);
        b
    }
}

impl Drop for Loop {
    fn drop(&mut self) {
        let _ = Command::new("losetup").arg("-d").arg(&self.dev).status();
    }
}

/// 64 KiB of bytes no other disk holds.
fn disk_bytes() -> Vec<u8> {
    let tag = unique("disk");
    tag.bytes().cycle().take(64 << 10).collect()
}

#[test]
fn a_directory_adds_every_device_node_below_it() {
    let Some(env) = setup() else { return };
    let tun = Path::new("/dev/net/tun");
    let meta = fs::metadata(tun);
    if skip_unless(
        meta.as_ref().is_ok_and(|m| m.file_type().is_char_device()),
        "/dev/net/tun missing",
    ) {
        return;
    }
    let rdev = meta.unwrap().rdev();
    let want = format!("{}, {}", libc::major(rdev), libc::minor(rdev));
    for (spec, at) in [
        ("/dev/net", "/dev/net/tun"),
        // HOST:CTR replaces the directory's path, keeping what is below it.
        ("/dev/net:/dev/vnet", "/dev/vnet/tun"),
        ("/dev/net/:/opt/n/:rw", "/opt/n/tun"),
    ] {
        let o = mrun(&env, &["--device", spec, IMG, "ls", "-l", at]);
        let out = ok(&format!("--device {spec}"), &o);
        assert!(
            out.starts_with('c') && out.contains(&want),
            "--device {spec}: {at} is not char device {want}: {out:?}"
        );
    }
}

#[test]
fn anything_but_a_device_node_is_one_line_and_125() {
    let Some(env) = setup() else { return };
    let file = env.path("regular");
    fs::write(&file, "not a device").unwrap();
    let empty = env.path("no-devices");
    fs::create_dir(&empty).unwrap();
    fs::write(empty.join("file"), "x").unwrap();
    std::os::unix::fs::symlink("/dev/null", empty.join("link-not-followed")).unwrap();
    for (path, why) in [
        (s(&file), "not a device node"),
        (s(&empty), "not a device node"),
        ("/nonexistent/dev", "no such file or directory"),
    ] {
        let o = mrun(&env, &["--device", path, IMG, "true"]);
        assert_refused(
            &o,
            &format!(
                "error gathering device information while adding custom device {path:?}: {why}"
            ),
            &format!("--device {path}"),
        );
        assert_eq!(o.stdout, b"");
    }
    assert_eq!(containers_of(&env), Vec::<std::path::PathBuf>::new());
    assert_eq!(fs::read_to_string(&file).unwrap(), "not a device");
}

#[test]
fn a_block_device_is_read_through_device_and_written_only_when_allowed() {
    let Some(env) = setup() else { return };
    let bytes = disk_bytes();
    let Some(lo) = Loop::new(&env.path("disk.img"), &bytes) else {
        return;
    };
    let dev = lo.dev.as_str();
    let read = format!("head -c 512 {dev}");

    // rwm (the default): the container reads the disk's bytes and may write it.
    let o = mrun(&env, &["--device", dev, IMG, "sh", "-c", &read]);
    assert_eq!(ok("read with rwm", &o).as_bytes(), &bytes[..512]);
    let o = mrun(
        &env,
        &[
            "--device",
            dev,
            IMG,
            "sh",
            "-c",
            &format!("printf OVERWRITTEN > {dev}"),
        ],
    );
    ok("write with rwm", &o);
    assert_eq!(lo.host_read(11), b"OVERWRITTEN");

    // :r reads, and a write is refused by the devices cgroup (EPERM), the disk untouched.
    let r = format!("{dev}:r");
    let o = mrun(&env, &["--device", &r, IMG, "sh", "-c", &read]);
    let mut want = b"OVERWRITTEN".to_vec();
    want.extend_from_slice(&bytes[11..512]);
    assert_eq!(ok("read with :r", &o).as_bytes(), &want[..]);
    let o = mrun(
        &env,
        &[
            "--device",
            &r,
            IMG,
            "sh",
            "-c",
            &format!("printf AGAIN > {dev}"),
        ],
    );
    assert_ne!(code(&o), 0, "a write with :r succeeded");
    assert!(
        text(&o.stderr).contains("Operation not permitted"),
        "{}",
        text(&o.stderr)
    );
    assert_eq!(lo.host_read(11), b"OVERWRITTEN");
}

#[test]
fn a_node_made_for_a_device_not_passed_cannot_be_opened_even_where_nodev_is_off() {
    let Some(env) = setup() else { return };
    let Some(lo) = Loop::new(&env.path("disk.img"), &disk_bytes()) else {
        return;
    };
    let (ma, mi) = lo.numbers();
    let (ma, mi) = (ma.to_string(), mi.to_string());
    // `--tmpfs /t:dev` is a mount without nodev, so only the devices cgroup stands between
    // a node made there (CAP_MKNOD is a default capability) and the host's disk.
    let attack = |extra: &[&str]| {
        let mut args = vec!["--tmpfs", "/t:dev", "--cap-add", "MKNOD"];
        args.extend_from_slice(extra);
        args.extend([IMG, "/probe", "mknod-read", "/t/disk", &ma, &mi]);
        mrun(&env, &args)
    };
    let o = attack(&[]);
    assert_eq!(
        text(&o.stdout),
        "mknod ok\n",
        "the node could not be made, or was read: {}",
        text(&o.stderr)
    );
    assert_eq!(code(&o), 1);
    assert!(
        text(&o.stderr).contains("Operation not permitted"),
        "{}",
        text(&o.stderr)
    );
    // The same node opens once the device is passed (read-only): the rule, not the mount or
    // the node, decides.
    let r = format!("{}:r", lo.dev);
    let o = attack(&["--device", &r]);
    assert_eq!(ok("the passed device", &o), "mknod ok\nread 512 bytes\n");
}
