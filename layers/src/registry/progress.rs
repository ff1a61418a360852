//! What a pull or push shows while it works: on a terminal, one row per blob (bytes and
//! rate) redrawn in place; otherwise plain lines, one when a blob is done, and never an
//! ANSI code. The client reports events; this module only draws them.

use crate::units::human_size;
use std::io::{IsTerminal, Write};
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// Events of a transfer. Blob ids are the short hex (12 digits) Docker shows.
pub trait Progress: Sync {
    /// A blob transfer begins (`total` bytes).
    fn start(&self, id: &str, total: u64);
    /// `n` more bytes of it went through.
    fn advance(&self, id: &str, n: u64);
    /// It ended: "pulled", "pushed", "already exists", "mounted from ...".
    fn finish(&self, id: &str, status: &str);
    /// A line of its own ("Digest: sha256:...").
    fn line(&self, s: &str);
}

/// Shows nothing (`-q`, tests).
pub struct Quiet;

impl Progress for Quiet {
    fn start(&self, _: &str, _: u64) {}
    fn advance(&self, _: &str, _: u64) {}
    fn finish(&self, _: &str, _: &str) {}
    fn line(&self, _: &str) {}
}

struct Row {
    id: String,
    total: u64,
    done: u64,
    started: Instant,
    status: Option<String>,
}

impl Row {
    fn text(&self) -> String {
        let secs = self.started.elapsed().as_secs_f64().max(0.001);
        let rate = human_size((self.done as f64 / secs) as u64);
        match &self.status {
            Some(s) if self.done > 0 => {
                format!(
                    "{}: {s} {} in {secs:.1}s ({rate}/s)",
                    self.id,
                    human_size(self.done)
                )
            }
            Some(s) => format!("{}: {s}", self.id),
            None => format!(
                "{}: {} / {}  {rate}/s",
                self.id,
                human_size(self.done),
                human_size(self.total)
            ),
        }
    }
}

struct State {
    rows: Vec<Row>,
    /// Rows drawn on the terminal last time (the cursor is below them).
    drawn: usize,
    last: Instant,
}

/// Progress on stderr: redrawn rows on a terminal, plain lines elsewhere.
pub struct Stderr {
    tty: bool,
    state: Mutex<State>,
}

impl Stderr {
    pub fn new() -> Stderr {
        Stderr {
            tty: std::io::stderr().is_terminal(),
            state: Mutex::new(State {
                rows: Vec::new(),
                drawn: 0,
                last: Instant::now(),
            }),
        }
    }

    fn redraw(&self, st: &mut State) {
        let mut e = std::io::stderr().lock();
        let mut s = String::new();
        if st.drawn > 0 {
            s.push_str(&format!("\x1b[{}A", st.drawn));
        }
        for r in &st.rows {
            s.push_str("\x1b[2K");
            s.push_str(&r.text());
            s.push('\n');
        }
        let _ = e.write_all(s.as_bytes());
        let _ = e.flush();
        st.drawn = st.rows.len();
        st.last = Instant::now();
    }
}

impl Default for Stderr {
    fn default() -> Self {
        Stderr::new()
    }
}

impl Progress for Stderr {
    fn start(&self, id: &str, total: u64) {
        let mut st = self.state.lock().expect("progress lock");
        st.rows.push(Row {
            id: id.to_string(),
            total,
            done: 0,
            started: Instant::now(),
            status: None,
        });
        if self.tty {
            self.redraw(&mut st);
        }
    }

    fn advance(&self, id: &str, n: u64) {
        let mut st = self.state.lock().expect("progress lock");
        if let Some(r) = st.rows.iter_mut().find(|r| r.id == id) {
            r.done += n;
        }
        if self.tty && st.last.elapsed() >= Duration::from_millis(100) {
            self.redraw(&mut st);
        }
    }

    fn finish(&self, id: &str, status: &str) {
        let mut st = self.state.lock().expect("progress lock");
        let i = match st
            .rows
            .iter()
            .position(|r| r.id == id && r.status.is_none())
        {
            Some(i) => i,
            None => {
                st.rows.push(Row {
                    id: id.to_string(),
                    total: 0,
                    done: 0,
                    started: Instant::now(),
                    status: None,
                });
                st.rows.len() - 1
            }
        };
        st.rows[i].status = Some(status.to_string());
        if self.tty {
            self.redraw(&mut st);
        } else {
            eprintln!("{}", st.rows[i].text());
        }
    }

    fn line(&self, s: &str) {
        let mut st = self.state.lock().expect("progress lock");
        // Finished rows stay on the screen above; the line goes below them.
        st.rows.clear();
        st.drawn = 0;
        eprintln!("{s}");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rows_read_as_people_write_them() {
        let mut r = Row {
            id: "0123456789ab".into(),
            total: 2_000_000,
            done: 1_000_000,
            started: Instant::now() - Duration::from_secs(1),
            status: None,
        };
        let t = r.text();
        assert!(t.starts_with("0123456789ab: 1MB / 2MB  "), "{t}");
        assert!(t.ends_with("/s"), "{t}");
        r.status = Some("pulled".into());
        assert!(
            r.text().starts_with("0123456789ab: pulled 1MB in 1.0s ("),
            "{}",
            r.text()
        );
        r.done = 0;
        r.status = Some("already exists".into());
        assert_eq!(r.text(), "0123456789ab: already exists");
    }
}
