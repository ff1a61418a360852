//! Parallel gzip, pigz style: the input is cut into fixed blocks, each compressed as raw
//! deflate on its own thread with the previous 32 KiB as dictionary, and the blocks are
//! joined in order into one gzip member. The bytes depend on the input, the level and the
//! block size only, never on the number of threads.

use flate2::{Compress, Compression, FlushCompress, Status};
use std::collections::VecDeque;
use std::io::{self, Write};
use std::sync::mpsc::{self, Receiver, SyncSender, TryRecvError};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;

/// Input bytes per deflate block: pigz's default (`-b 128`). Changing it changes the bytes.
const BLOCK: usize = 128 << 10;
/// The deflate window (RFC 1951 §2): all a block can refer back to in its predecessors.
const DICT: usize = 32 << 10;
/// Blocks queued or being compressed, per worker plus a few: enough to keep the workers
/// busy while the caller stalls on a read, few enough that memory stays bounded (about
/// 300 KiB a block) whatever the input size. pigz allows 2 per thread plus 3.
const IN_FLIGHT_PER_THREAD: usize = 2;
const IN_FLIGHT_EXTRA: usize = 2;

/// gzip header (RFC 1952 §2.3): no FNAME, MTIME 0, OS 3 (Unix) fixed, so the bytes never
/// depend on the file name, the clock or the machine. XFL is patched per level.
const HEADER: [u8; 10] = [0x1f, 0x8b, 8, 0, 0, 0, 0, 0, 0, 3];

pub struct ParallelGzEncoder<W: Write> {
    inner: W,
    level: Compression,
    /// The previous `dict_len` bytes of input followed by the block being filled.
    cur: Vec<u8>,
    dict_len: usize,
    crc: crc32fast::Hasher,
    header_written: bool,
    /// Set once a block or the inner writer has failed: the stream has a hole from then on.
    failed: bool,
    engine: Engine,
}

enum Engine {
    /// One thread: compress on the caller's thread, no workers spawned.
    Inline {
        out: Vec<u8>,
    },
    Pool(Pool),
}

struct Job {
    data: Vec<u8>,
    dict_len: usize,
    last: bool,
    out: Vec<u8>,
    reply: SyncSender<io::Result<Done>>,
}

struct Done {
    data: Vec<u8>,
    out: Vec<u8>,
    crc: crc32fast::Hasher,
}

struct Pool {
    jobs: Option<SyncSender<Job>>,
    workers: Vec<JoinHandle<()>>,
    /// Replies in block order: the output is written strictly in input order.
    pending: VecDeque<Receiver<io::Result<Done>>>,
    max_in_flight: usize,
    free_data: Vec<Vec<u8>>,
    free_out: Vec<Vec<u8>>,
    /// Each live worker holds a strong reference: tests watch them go.
    #[cfg(test)]
    queue: std::sync::Weak<Mutex<Receiver<Job>>>,
}

impl Pool {
    /// None when no worker thread could be started; the caller then compresses inline,
    /// which gives the same bytes.
    fn new(threads: usize, level: Compression) -> Option<Pool> {
        let (tx, rx) = mpsc::sync_channel::<Job>(threads * IN_FLIGHT_PER_THREAD + IN_FLIGHT_EXTRA);
        let rx = Arc::new(Mutex::new(rx));
        let workers: Vec<_> = (0..threads)
            .map_while(|_| {
                let rx = Arc::clone(&rx);
                std::thread::Builder::new()
                    .name("pgzip".into())
                    .spawn(move || worker(&rx, level))
                    .ok()
            })
            .collect();
        if workers.is_empty() {
            return None;
        }
        let max_in_flight = workers.len() * IN_FLIGHT_PER_THREAD + IN_FLIGHT_EXTRA;
        Some(Pool {
            jobs: Some(tx),
            workers,
            pending: VecDeque::with_capacity(max_in_flight),
            max_in_flight,
            free_data: Vec::new(),
            free_out: Vec::new(),
            #[cfg(test)]
            queue: Arc::downgrade(&rx),
        })
    }
}

impl Drop for Pool {
    fn drop(&mut self) {
        // Closing the queue ends each worker's loop; replies nobody waits for are dropped.
        self.jobs.take();
        self.pending.clear();
        for w in self.workers.drain(..) {
            let _ = w.join();
        }
    }
}

fn worker(jobs: &Mutex<Receiver<Job>>, level: Compression) {
    loop {
        let job = jobs.lock().unwrap_or_else(|e| e.into_inner()).recv();
        let Ok(mut job) = job else { return };
        let res = deflate_block(level, &job.data, job.dict_len, job.last, &mut job.out);
        let res = res.map(|()| {
            let mut crc = crc32fast::Hasher::new();
            crc.update(&job.data[job.dict_len..]);
            Done {
                data: job.data,
                out: job.out,
                crc,
            }
        });
        let _ = job.reply.send(res);
    }
}

/// Compress `data[dict_len..]` as raw deflate primed with `data[..dict_len]`. A block that
/// is not the last ends with a sync flush (an empty stored block) so it ends on a byte
/// boundary and the next block's bytes can simply follow; the last one ends the stream.
///
/// Each block gets a freshly allocated (zeroed) compressor rather than a reset one: the
/// match finder reads up to 258 bytes past the end of the input still in its window
/// (zlib's longest_match does too), and reset(3) keeps the window, so a reused
/// compressor's choices would depend on the previous block it happened to compress, that
/// is on the number of threads. Allocating costs well under 1% of compressing 128 KiB.
fn deflate_block(
    level: Compression,
    data: &[u8],
    dict_len: usize,
    last: bool,
    out: &mut Vec<u8>,
) -> io::Result<()> {
    let z = &mut Compress::new(level, false);
    if dict_len > 0 {
        z.set_dictionary(&data[..dict_len])
            .map_err(io::Error::other)?;
    }
    let input = &data[dict_len..];
    let flush = if last {
        FlushCompress::Finish
    } else {
        FlushCompress::Sync
    };
    out.clear();
    out.reserve(input.len() + input.len() / 64 + 64);
    loop {
        if out.capacity() - out.len() < 64 {
            out.reserve(BLOCK / 4);
        }
        let consumed = z.total_in() as usize;
        let status = z
            .compress_vec(&input[consumed..], out, flush)
            .map_err(io::Error::other)?;
        let done = if last {
            status == Status::StreamEnd
        } else {
            // zlib's contract for Z_SYNC_FLUSH: complete once all input is consumed and
            // the call left output space unused (deflate(3), zlib.h).
            z.total_in() as usize == input.len() && out.len() < out.capacity()
        };
        if done {
            return Ok(());
        }
    }
}

impl<W: Write> ParallelGzEncoder<W> {
    /// `threads` <= 1 compresses on the caller's thread; more spawns that many workers,
    /// joined when the encoder is finished or dropped.
    pub fn new(inner: W, level: u32, threads: usize) -> Self {
        let level = Compression::new(level.min(9));
        let pool = if threads > 1 {
            Pool::new(threads, level)
        } else {
            None
        };
        let engine = match pool {
            Some(p) => Engine::Pool(p),
            None => Engine::Inline { out: Vec::new() },
        };
        ParallelGzEncoder {
            inner,
            level,
            cur: Vec::with_capacity(DICT + BLOCK),
            dict_len: 0,
            crc: crc32fast::Hasher::new(),
            header_written: false,
            failed: false,
            engine,
        }
    }

    /// Compress what is buffered, write the trailer and return the inner writer.
    pub fn finish(mut self) -> io::Result<W> {
        self.check()?;
        let res = (|| {
            self.submit(true)?;
            if let Engine::Pool(_) = self.engine {
                while self.write_next(true)? {}
            }
            let mut trailer = [0u8; 8];
            let crc = std::mem::take(&mut self.crc);
            trailer[4..].copy_from_slice(&(crc.total_len() as u32).to_le_bytes());
            trailer[..4].copy_from_slice(&crc.finalize().to_le_bytes());
            self.inner.write_all(&trailer)
        })();
        if res.is_err() {
            self.failed = true;
        }
        res?;
        let ParallelGzEncoder { inner, engine, .. } = self;
        drop(engine);
        Ok(inner)
    }

    fn check(&self) -> io::Result<()> {
        if self.failed {
            return Err(io::Error::other("gzip stream broken by an earlier error"));
        }
        Ok(())
    }

    fn write_out(&mut self, out: &[u8]) -> io::Result<()> {
        if !self.header_written {
            let mut h = HEADER;
            // XFL (RFC 1952): 2 = maximum compression, 4 = fastest, as gzip(1) writes it.
            h[8] = match self.level.level() {
                9 => 2,
                1 => 4,
                _ => 0,
            };
            self.inner.write_all(&h)?;
            self.header_written = true;
        }
        self.inner.write_all(out)
    }

    /// Hand the current block to the compressor and start the next one with the last
    /// 32 KiB of input as its dictionary.
    fn submit(&mut self, last: bool) -> io::Result<()> {
        let dict_len = self.dict_len;
        let keep = self.cur.len().min(DICT);
        self.dict_len = keep;
        match &mut self.engine {
            Engine::Inline { out } => {
                let mut out = std::mem::take(out);
                deflate_block(self.level, &self.cur, dict_len, last, &mut out)?;
                self.crc.update(&self.cur[dict_len..]);
                let res = self.write_out(&out);
                if let Engine::Inline { out: o } = &mut self.engine {
                    *o = out;
                }
                res?;
                let n = self.cur.len();
                self.cur.copy_within(n - keep.., 0);
                self.cur.truncate(keep);
                Ok(())
            }
            Engine::Pool(p) => {
                let mut next = p.free_data.pop().unwrap_or_default();
                next.clear();
                next.reserve(DICT + BLOCK);
                next.extend_from_slice(&self.cur[self.cur.len() - keep..]);
                let (reply, rx) = mpsc::sync_channel(1);
                let job = Job {
                    data: std::mem::replace(&mut self.cur, next),
                    dict_len,
                    last,
                    out: p.free_out.pop().unwrap_or_default(),
                    reply,
                };
                let jobs = p.jobs.as_ref().expect("pool open until dropped");
                jobs.send(job)
                    .map_err(|_| io::Error::other("gzip worker threads are gone"))?;
                p.pending.push_back(rx);
                // Write whatever is already done, and wait only when the queue is full.
                while self.write_next(false)? {}
                while self.pending_len() >= self.max_in_flight() {
                    self.write_next(true)?;
                }
                Ok(())
            }
        }
    }

    fn pending_len(&self) -> usize {
        match &self.engine {
            Engine::Pool(p) => p.pending.len(),
            Engine::Inline { .. } => 0,
        }
    }

    fn max_in_flight(&self) -> usize {
        match &self.engine {
            Engine::Pool(p) => p.max_in_flight,
            Engine::Inline { .. } => usize::MAX,
        }
    }

    /// Write the oldest block if it is done (or, with `wait`, once it is). False when
    /// there was nothing to write.
    fn write_next(&mut self, wait: bool) -> io::Result<bool> {
        let Engine::Pool(p) = &mut self.engine else {
            return Ok(false);
        };
        let Some(rx) = p.pending.front() else {
            return Ok(false);
        };
        let reply = if wait {
            rx.recv().ok()
        } else {
            match rx.try_recv() {
                Ok(r) => Some(r),
                Err(TryRecvError::Empty) => return Ok(false),
                Err(TryRecvError::Disconnected) => None,
            }
        };
        p.pending.pop_front();
        let done = reply.ok_or_else(|| io::Error::other("gzip worker thread panicked"))??;
        self.crc.combine(&done.crc);
        self.write_out(&done.out)?;
        if let Engine::Pool(p) = &mut self.engine {
            p.free_data.push(done.data);
            p.free_out.push(done.out);
        }
        Ok(true)
    }
}

impl<W: Write> Write for ParallelGzEncoder<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.check()?;
        let room = self.dict_len + BLOCK - self.cur.len();
        let n = room.min(buf.len());
        self.cur.extend_from_slice(&buf[..n]);
        if self.cur.len() == self.dict_len + BLOCK {
            if let Err(e) = self.submit(false) {
                self.failed = true;
                return Err(e);
            }
        }
        Ok(n)
    }

    /// Writes out the blocks already compressed and flushes the inner writer. The block
    /// being filled is not cut short: the bytes must not depend on when flush is called.
    fn flush(&mut self) -> io::Result<()> {
        self.check()?;
        let res = (|| {
            while self.write_next(true)? {}
            self.inner.flush()
        })();
        if res.is_err() {
            self.failed = true;
        }
        res
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Read;
    use std::process::{Command, Stdio};

    /// Deterministic pseudo-random bytes (xorshift64*), incompressible.
    fn random(n: usize, seed: u64) -> Vec<u8> {
        let mut x = seed | 1;
        (0..n)
            .map(|_| {
                x ^= x >> 12;
                x ^= x << 25;
                x ^= x >> 27;
                (x.wrapping_mul(0x2545_f491_4f6c_dd1d) >> 56) as u8
            })
            .collect()
    }

    /// Tar-like: short random records padded with zeros to 512 bytes. Blocks of these
    /// catch a compressor whose output depends on what it compressed before.
    fn records(n: usize) -> Vec<u8> {
        let r = random(n, 11);
        let mut v = Vec::with_capacity(n + 512);
        let mut i = 0;
        while v.len() < n {
            let len = 1 + (r[i] as usize * 7 + r[i + 1] as usize) % 500;
            v.extend_from_slice(&r[i..(i + len).min(n)]);
            v.resize(v.len().div_ceil(512) * 512, 0);
            i = (i + len) % (n - 600);
        }
        v.truncate(n);
        v
    }

    /// Text-like bytes with repeats near and far (across block boundaries).
    fn compressible(n: usize) -> Vec<u8> {
        let words = [
            "usr",
            "lib",
            "share",
            "x86_64-linux-gnu",
            "debian",
            "/",
            ".so.6",
            "\n",
        ];
        let r = random(n, 7);
        let mut v = Vec::with_capacity(n + 32);
        let mut i = 0;
        while v.len() < n {
            v.extend_from_slice(words[(r[i % n] % 8) as usize].as_bytes());
            if r[(i * 7) % n] < 8 {
                v.push(r[(i * 13) % n]);
            }
            i += 1;
        }
        v.truncate(n);
        v
    }

    fn gz(data: &[u8], threads: usize, chunk: usize) -> Vec<u8> {
        let mut e = ParallelGzEncoder::new(Vec::new(), 6, threads);
        for c in data.chunks(chunk.max(1)) {
            e.write_all(c).unwrap();
        }
        e.finish().unwrap()
    }

    fn gunzip(gz: &[u8]) -> Vec<u8> {
        let mut out = Vec::new();
        flate2::read::GzDecoder::new(gz)
            .read_to_end(&mut out)
            .unwrap();
        out
    }

    fn system_gunzip(gz: &[u8]) -> Vec<u8> {
        let mut child = Command::new("gzip")
            .arg("-dc")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .expect("gzip(1) on PATH");
        let mut stdin = child.stdin.take().unwrap();
        let input = gz.to_vec();
        let feeder = std::thread::spawn(move || stdin.write_all(&input));
        let out = child.wait_with_output().unwrap();
        feeder.join().unwrap().unwrap();
        assert!(out.status.success(), "gzip -dc failed: {:?}", out.status);
        out.stdout
    }

    fn inputs() -> Vec<(&'static str, Vec<u8>)> {
        let mut mixed = compressible(700_000);
        mixed.extend(random(300_000, 3));
        mixed.extend(compressible(BLOCK * 2));
        vec![
            ("empty", Vec::new()),
            ("one byte", vec![42]),
            ("exact blocks", compressible(BLOCK * 3)),
            ("random", random(BLOCK * 5 + 1234, 1)),
            ("mixed", mixed),
            ("records", records(BLOCK * 12 + 100)),
        ]
    }

    /// Equal bytes, or a failure that says where they part (not megabytes of both).
    fn assert_same(a: &[u8], b: &[u8], what: &str) {
        let at = a.iter().zip(b).position(|(x, y)| x != y);
        assert!(
            a.len() == b.len() && at.is_none(),
            "{what}: {} vs {} bytes, first difference at {at:?}",
            a.len(),
            b.len()
        );
    }

    #[test]
    fn same_bytes_whatever_the_thread_count_and_write_sizes() {
        for (name, data) in inputs() {
            let one = gz(&data, 1, 1 << 20);
            assert_same(&gz(&data, 4, 1 << 20), &one, &format!("{name}: 4 threads"));
            assert_same(
                &gz(&data, 2, 4096 + 7),
                &one,
                &format!("{name}: 2 threads, odd writes"),
            );
            assert_same(
                &gz(&data, 3, BLOCK),
                &one,
                &format!("{name}: 3 threads, block writes"),
            );
        }
    }

    #[test]
    fn decodes_with_flate2_and_system_gzip() {
        for (name, data) in inputs() {
            let z = gz(&data, 4, 65536);
            assert_same(&gunzip(&z), &data, &format!("{name}: flate2"));
            assert_same(&system_gunzip(&z), &data, &format!("{name}: gzip -dc"));
        }
    }

    #[test]
    fn header_and_trailer_are_fixed() {
        let data = compressible(BLOCK + 5);
        let z = gz(&data, 2, 1000);
        assert_eq!(z[..10], [0x1f, 0x8b, 8, 0, 0, 0, 0, 0, 0, 3]);
        let n = z.len();
        assert_eq!(z[n - 8..n - 4], crc32fast::hash(&data).to_le_bytes());
        assert_eq!(z[n - 4..], (data.len() as u32).to_le_bytes());
        let empty = gz(&[], 1, 1);
        assert_eq!(gunzip(&empty), b"");
        assert_eq!(empty[..10], [0x1f, 0x8b, 8, 0, 0, 0, 0, 0, 0, 3]);
    }

    #[test]
    fn size_close_to_single_stream_gzip() {
        let data = compressible(4 << 20);
        let ours = gz(&data, 2, 1 << 16).len() as f64;
        let mut e = flate2::write::GzEncoder::new(Vec::new(), Compression::new(6));
        e.write_all(&data).unwrap();
        let single = e.finish().unwrap().len() as f64;
        assert!(
            ours <= single * 1.01,
            "ours {ours} vs single stream {single}"
        );
    }

    /// Accepts `limit` bytes, then fails as a full disk would.
    #[derive(Debug)]
    struct Full {
        written: usize,
        limit: usize,
    }
    impl Write for Full {
        fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
            if self.written + buf.len() > self.limit {
                return Err(io::Error::from_raw_os_error(libc::ENOSPC));
            }
            self.written += buf.len();
            Ok(buf.len())
        }
        fn flush(&mut self) -> io::Result<()> {
            Ok(())
        }
    }

    #[test]
    fn inner_errors_propagate_and_workers_stop() {
        let data = random(BLOCK * 40, 9);
        for threads in [1, 4] {
            let mut e = ParallelGzEncoder::new(
                Full {
                    written: 0,
                    limit: BLOCK * 3,
                },
                6,
                threads,
            );
            let res = e.write_all(&data).and_then(|()| e.finish().map(|_| ()));
            let err = res.expect_err("the full disk must be reported");
            assert_eq!(err.raw_os_error(), Some(libc::ENOSPC), "threads={threads}");
        }
        // Failing in finish (only the trailer does not fit), and a write after a failure.
        let mut e = ParallelGzEncoder::new(
            Full {
                written: 0,
                limit: 12,
            },
            6,
            2,
        );
        e.write_all(b"short").unwrap();
        assert_eq!(e.finish().unwrap_err().raw_os_error(), Some(libc::ENOSPC));
        let mut e = ParallelGzEncoder::new(
            Full {
                written: 0,
                limit: 0,
            },
            6,
            2,
        );
        assert!(e.write_all(&data).is_err());
        assert!(e.write_all(b"x").is_err());
    }

    #[test]
    fn drop_without_finish_joins_workers() {
        let data = random(BLOCK * 10, 5);
        let mut e = ParallelGzEncoder::new(Vec::new(), 6, 4);
        e.write_all(&data).unwrap();
        let Engine::Pool(p) = &e.engine else {
            panic!("4 threads asked, no pool started")
        };
        let queue = p.queue.clone();
        assert_eq!(queue.strong_count(), 4);
        drop(e);
        assert_eq!(queue.strong_count(), 0, "a worker outlived its encoder");

        let e = ParallelGzEncoder::new(Vec::new(), 6, 1);
        assert!(
            matches!(e.engine, Engine::Inline { .. }),
            "one thread spawns none"
        );
    }
}
