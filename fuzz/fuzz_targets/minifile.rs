//! Arbitrary bytes as a Minifile, through everything `mbuild check` and the build loop do
//! with one before running anything: stage one (and its dump), stage two, then the word
//! expansion of every instruction with some ARG/ENV values in scope, EXPOSE ports and
//! STOPSIGNAL names. Errors are fine; a panic, a hang or unbounded memory is a bug.

#![no_main]

use builder::minifile::{self, expand, lines};
use libfuzzer_sys::fuzz_target;
use std::collections::HashMap;

/// Values a build could have in scope: empty, blanks, quotes, glob characters, escapes,
/// non-ASCII, and one long enough to make a quadratic pattern match show.
fn scope() -> HashMap<String, String> {
    let mut m: HashMap<String, String> = [
        ("A", "a"),
        ("EMPTY", ""),
        ("SP", "a b  c"),
        ("P", "/usr/local/bin/tool.tar.gz"),
        ("Q", "'\"\\$x`"),
        ("G", "*?[a]\\*"),
        ("U", "한국어 größe"),
        ("PORTS", "80/tcp 443 8000-8010/udp"),
        ("SIG", "SIGTERM"),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v.to_string()))
    .collect();
    m.insert("LONG".into(), "ab/".repeat(400));
    m
}

fuzz_target!(|data: &[u8]| {
    let name = "Minifile";
    // `mbuild check --dump`: stage one alone.
    if let Ok(parsed) = lines::parse(name, data) {
        let _ = parsed.dump();
    }
    // `mbuild check` and `mbuild build`: both stages.
    let Ok(m) = minifile::parse_bytes(name, data) else {
        return;
    };
    let _ = m.dump();
    let vars = scope();
    let lookup = |k: &str| vars.get(k).cloned();
    // FROM sees only the ARGs before the first FROM (the build loop's `global`).
    let global: HashMap<String, String> = m
        .args_before_from
        .iter()
        .filter_map(|(k, v)| Some((k.clone(), v.clone()?)))
        .collect();
    for stage in &m.stages {
        let _ = expand::word(&stage.from, &|k| global.get(k).cloned(), m.escape);
        if let Some(p) = &stage.platform {
            let _ = expand::word(p, &|k| global.get(k).cloned(), m.escape);
        }
        for l in &stage.instructions {
            let _ = l.inst.keyword();
            let Ok(inst) = l.inst.expand(m.escape, &lookup) else {
                continue;
            };
            match &inst {
                minifile::Instruction::Expose(ports) => {
                    for p in ports {
                        let _ = minifile::exposed_ports(p);
                    }
                }
                minifile::Instruction::StopSignal(s) => {
                    let _ = minifile::signal_number(s);
                }
                _ => {}
            }
        }
    }
});
