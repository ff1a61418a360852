//! Golden tests of `config`: each folder under `compose/tests/golden/` is a project. Its
//! `compose.yaml` (or the files listed one per line in `files`, as `-f` would give them),
//! its `.env`, and the shell environment in `env` (KEY=VALUE lines; HOME is /home/user
//! unless set there) go through `load`; `expected.yaml` is what `config` must print, or
//! `expected.err` the one error line. `{{dir}}` stands for the folder's absolute path.
//! Only test code: it reads the folders and compares.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use crate::project::load_in;

fn read(p: &Path) -> Option<String> {
    std::fs::read_to_string(p).ok()
}

fn run_case(dir: &Path) -> Result<(), String> {
    let mut env: HashMap<String, String> =
        HashMap::from([("HOME".to_string(), "/home/user".to_string())]);
    if let Some(text) = read(&dir.join("env")) {
        for line in text.lines().filter(|l| !l.is_empty()) {
            let (k, v) = line.split_once('=').expect("env lines are KEY=VALUE");
            env.insert(k.to_string(), v.to_string());
        }
    }
    let files: Vec<PathBuf> = match read(&dir.join("files")) {
        Some(list) => list
            .lines()
            .filter(|l| !l.is_empty())
            .map(PathBuf::from)
            .collect(),
        None => vec![PathBuf::from("compose.yaml")],
    };
    let shown = dir.to_string_lossy().into_owned();
    let got = match load_in(dir, &files, None, None, &[], &env) {
        Ok(p) => Ok(p.config_yaml().replace(&shown, "{{dir}}")),
        Err(e) => Err(e.to_string().replace(&shown, "{{dir}}")),
    };
    match (
        got,
        read(&dir.join("expected.yaml")),
        read(&dir.join("expected.err")),
    ) {
        (Ok(out), Some(want), _) if out == want => Ok(()),
        (Err(e), _, Some(want)) if e == want.trim_end() => Ok(()),
        (Ok(out), _, _) => Err(format!("{}: config printed:\n{out}", dir.display())),
        (Err(e), _, _) => Err(format!("{}: load failed: {e}", dir.display())),
    }
}

#[test]
fn golden_config_output() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/golden");
    let mut cases: Vec<PathBuf> = std::fs::read_dir(&root)
        .expect("read tests/golden")
        .map(|e| e.expect("a folder entry").path())
        .filter(|p| p.is_dir())
        .collect();
    cases.sort();
    let failures: Vec<String> = cases.iter().filter_map(|c| run_case(c).err()).collect();
    assert!(
        failures.is_empty(),
        "{} of {} golden cases differ:\n{}",
        failures.len(),
        cases.len(),
        failures.join("\n")
    );
    assert!(
        cases.len() >= 8,
        "expected the golden cases under {}",
        root.display()
    );
}
