//! The devices controller's rules: which device nodes a container may open and make, as an
//! allow-list over a default of "deny everything" (the kernel's cgroup-v1/devices.rst
//! whitelist, and the BPF_PROG_TYPE_CGROUP_DEVICE program of v2 that `bpf` builds from the
//! same list). Docker's default list is here, written once; `--device` adds to it.
//!
//! Plain data and text: it must not touch the filesystem or load programs (`v1` writes the
//! rules, `bpf` compiles and attaches them).

use std::fmt;

/// Block or character device (the kernel's `b` and `c`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Kind {
    Block,
    Char,
}

impl Kind {
    fn letter(self) -> char {
        match self {
            Kind::Block => 'b',
            Kind::Char => 'c',
        }
    }
}

/// What a rule allows: read (open for reading), write (open for writing), mknod. The bits
/// are the kernel's BPF_DEVCG_ACC_* values, which the v2 program compares against.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Access(u8);

impl Access {
    pub const MKNOD: Access = Access(1);
    pub const READ: Access = Access(2);
    pub const WRITE: Access = Access(4);
    pub const RWM: Access = Access(7);

    /// Docker's permission string: any of `r`, `w`, `m`, each at most once, at least one.
    pub fn parse(s: &str) -> Option<Access> {
        let mut bits = 0u8;
        for c in s.chars() {
            let bit = match c {
                'r' => Access::READ.0,
                'w' => Access::WRITE.0,
                'm' => Access::MKNOD.0,
                _ => return None,
            };
            if bits & bit != 0 {
                return None;
            }
            bits |= bit;
        }
        (bits != 0).then_some(Access(bits))
    }

    pub fn bits(self) -> u8 {
        self.0
    }

    pub fn contains(self, other: Access) -> bool {
        self.0 & other.0 == other.0
    }
}

impl fmt::Display for Access {
    /// `rwm` order, as devices.list shows it.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (bit, c) in [
            (Access::READ, 'r'),
            (Access::WRITE, 'w'),
            (Access::MKNOD, 'm'),
        ] {
            if self.contains(bit) {
                write!(f, "{c}")?;
            }
        }
        Ok(())
    }
}

/// One allow rule: devices of `kind` with these numbers (None: any) may be used for `access`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Rule {
    pub kind: Kind,
    pub major: Option<u32>,
    pub minor: Option<u32>,
    pub access: Access,
}

impl Rule {
    /// A rule for one device node.
    pub fn node(kind: Kind, major: u32, minor: u32, access: Access) -> Rule {
        Rule {
            kind,
            major: Some(major),
            minor: Some(minor),
            access,
        }
    }

    /// Whether this rule lets a process use device `kind major:minor` for every bit of `want`.
    pub fn allows(&self, kind: Kind, major: u32, minor: u32, want: Access) -> bool {
        self.kind == kind
            && self.major.map_or(true, |m| m == major)
            && self.minor.map_or(true, |m| m == minor)
            && self.access.contains(want)
    }
}

impl fmt::Display for Rule {
    /// The line `devices.allow` takes: `c 1:3 rwm`, `c 136:* rwm`, `b *:* m`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let num = |n: Option<u32>| n.map_or("*".to_string(), |n| n.to_string());
        write!(
            f,
            "{} {}:{} {}",
            self.kind.letter(),
            num(self.major),
            num(self.minor),
            self.access
        )
    }
}

const fn char_node(major: u32, minor: Option<u32>) -> Rule {
    Rule {
        kind: Kind::Char,
        major: Some(major),
        minor,
        access: Access::RWM,
    }
}

/// What a Docker container may use without `--device`: the union of moby's default spec
/// (oci/defaults.go: deny all, then null, zero, urandom, random, tty, console) and the rules
/// runc appends to every container (libcontainer/specconv AllowedDevices: mknod of any
/// device, full, ptmx, the pseudo-terminals, and tun/tap, which runc 1.2.0 dropped and 1.2.4
/// put back). moby's deny of fuse (10:229) only removes an allow that nothing here grants.
pub const DEFAULT_ALLOWED: [Rule; 12] = [
    // mknod of any node: useless without an allow for its numbers, and needed by images that
    // make their own /dev entries.
    Rule {
        kind: Kind::Char,
        major: None,
        minor: None,
        access: Access::MKNOD,
    },
    Rule {
        kind: Kind::Block,
        major: None,
        minor: None,
        access: Access::MKNOD,
    },
    char_node(1, Some(3)),    // /dev/null
    char_node(1, Some(5)),    // /dev/zero
    char_node(1, Some(7)),    // /dev/full
    char_node(1, Some(8)),    // /dev/random
    char_node(1, Some(9)),    // /dev/urandom
    char_node(5, Some(0)),    // /dev/tty
    char_node(5, Some(1)),    // /dev/console
    char_node(5, Some(2)),    // /dev/ptmx
    char_node(136, None),     // /dev/pts/*
    char_node(10, Some(200)), // /dev/net/tun
];

/// The rules of a container: Docker's defaults, then `extra` (its `--device`s).
pub fn allow_list(extra: &[Rule]) -> Vec<Rule> {
    DEFAULT_ALLOWED.iter().chain(extra).copied().collect()
}

/// Whether `rules` let a process use device `kind major:minor` for `want` (the reference
/// the v2 program is tested against).
pub fn allowed(rules: &[Rule], kind: Kind, major: u32, minor: u32, want: Access) -> bool {
    rules.iter().any(|r| r.allows(kind, major, minor, want))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn access_reads_dockers_strings() {
        assert_eq!(Access::parse("rwm"), Some(Access::RWM));
        assert_eq!(Access::parse("mwr"), Some(Access::RWM));
        assert_eq!(Access::parse("r"), Some(Access::READ));
        assert_eq!(Access::parse("rw").unwrap().to_string(), "rw");
        assert_eq!(Access::parse("wm").unwrap().to_string(), "wm");
        for bad in ["", "x", "rr", "rwmx", "R", " r"] {
            assert_eq!(Access::parse(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn rules_print_as_devices_allow_lines() {
        let lines: Vec<String> = DEFAULT_ALLOWED.iter().map(Rule::to_string).collect();
        assert_eq!(lines, crate::cgroup::DEFAULT_ALLOWED_LINES);
        let loop0 = Rule::node(Kind::Block, 7, 0, Access::READ);
        assert_eq!(loop0.to_string(), "b 7:0 r");
    }

    #[test]
    fn the_default_list_allows_the_standard_nodes_and_mknod_only() {
        let rules = allow_list(&[]);
        let c = Kind::Char;
        for (major, minor) in [
            (1, 3),
            (1, 5),
            (1, 7),
            (1, 8),
            (1, 9),
            (5, 0),
            (5, 2),
            (136, 7),
        ] {
            assert!(
                allowed(&rules, c, major, minor, Access::RWM),
                "{major}:{minor}"
            );
        }
        // A disk, memory, fuse, a raw tty: made, never opened.
        for (kind, major, minor) in [
            (Kind::Block, 8, 0),
            (Kind::Block, 7, 0),
            (c, 1, 1),
            (c, 10, 229),
            (c, 4, 1),
        ] {
            assert!(allowed(&rules, kind, major, minor, Access::MKNOD));
            assert!(!allowed(&rules, kind, major, minor, Access::READ));
            assert!(!allowed(&rules, kind, major, minor, Access::WRITE));
        }
        let loop0 = Rule::node(Kind::Block, 7, 0, Access::READ);
        let rules = allow_list(&[loop0]);
        assert!(allowed(&rules, Kind::Block, 7, 0, Access::READ));
        assert!(!allowed(&rules, Kind::Block, 7, 0, Access(6)));
        assert!(!allowed(&rules, Kind::Block, 7, 1, Access::READ));
        assert!(!allowed(&rules, Kind::Char, 7, 0, Access::READ));
    }
}
