//! Whiteouts in their two encodings. In a layer tar (OCI image spec, "Whiteouts"):
//! `DIR/.wh.NAME` deletes NAME from the layers below, `DIR/.wh..wh..opq` hides everything
//! below DIR. In an overlay directory (overlayfs(5)): a 0/0 character device named NAME,
//! and the xattr `trusted.overlay.opaque=y` on DIR (`user.overlay.opaque` for overlays
//! mounted with `userxattr` inside a user namespace).

pub const PREFIX: &str = ".wh.";
pub const OPAQUE: &str = ".wh..wh..opq";
pub const OPAQUE_XATTR: &str = "trusted.overlay.opaque";
pub const OPAQUE_XATTR_USER: &str = "user.overlay.opaque";

/// The xattr that marks an opaque directory in the layer directories of this process:
/// trusted.* needs CAP_SYS_ADMIN in the initial user namespace, so rootless stores use user.*.
pub fn opaque_xattr() -> &'static str {
    if rustix::process::geteuid().is_root() && !in_user_namespace() {
        OPAQUE_XATTR
    } else {
        OPAQUE_XATTR_USER
    }
}

fn in_user_namespace() -> bool {
    // The initial user namespace maps the whole 32-bit range from 0.
    match std::fs::read_to_string("/proc/self/uid_map") {
        Ok(m) => {
            let f: Vec<&str> = m.split_whitespace().collect();
            !(f.len() == 3 && f[0] == "0" && f[1] == "0" && f[2] == "4294967295")
        }
        Err(_) => false,
    }
}
