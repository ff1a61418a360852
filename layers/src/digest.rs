//! sha256 digests and the streaming adapters that compute them while bytes pass through.

use sha2::{Digest as _, Sha256};
use std::io::{self, Read, Write};
use std::str::FromStr;

pub use oci_spec::image::{Digest, Sha256Digest};

/// A running sha256.
#[derive(Clone, Default)]
pub struct Hasher(Sha256);

impl Hasher {
    pub fn new() -> Hasher {
        Hasher(Sha256::new())
    }
    pub fn update(&mut self, b: &[u8]) {
        self.0.update(b)
    }
    pub fn finish(self) -> Digest {
        from_hex(&hex(&self.0.finalize()))
    }
}

pub fn sha256(bytes: &[u8]) -> Digest {
    let mut h = Hasher::new();
    h.update(bytes);
    h.finish()
}

fn hex(b: &[u8]) -> String {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let mut s = String::with_capacity(b.len() * 2);
    for x in b {
        s.push(HEX[(x >> 4) as usize] as char);
        s.push(HEX[(x & 15) as usize] as char);
    }
    s
}

fn from_hex(h: &str) -> Digest {
    Sha256Digest::from_str(h)
        .expect("sha256 output is 64 hex digits")
        .into()
}

/// Parse "sha256:<64 hex>"; any other algorithm or form is refused, since the store names
/// blobs by their sha256 only.
pub fn parse(s: &str) -> Option<Digest> {
    let hex = s.strip_prefix("sha256:")?;
    if hex.len() != 64 || !hex.bytes().all(|c| matches!(c, b'0'..=b'9' | b'a'..=b'f')) {
        return None;
    }
    Some(from_hex(hex))
}

/// A writer that hashes and counts what goes through it.
pub struct HashWriter<W> {
    inner: W,
    hasher: Hasher,
    count: u64,
}

impl<W: Write> HashWriter<W> {
    pub fn new(inner: W) -> Self {
        HashWriter {
            inner,
            hasher: Hasher::new(),
            count: 0,
        }
    }
    pub fn count(&self) -> u64 {
        self.count
    }
    pub fn get_mut(&mut self) -> &mut W {
        &mut self.inner
    }
    pub fn finish(self) -> (W, Digest, u64) {
        (self.inner, self.hasher.finish(), self.count)
    }
}

impl<W: Write> Write for HashWriter<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let n = self.inner.write(buf)?;
        self.hasher.update(&buf[..n]);
        self.count += n as u64;
        Ok(n)
    }
    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}

/// A reader that hashes and counts what is read through it.
pub struct HashReader<R> {
    inner: R,
    hasher: Hasher,
    count: u64,
}

impl<R: Read> HashReader<R> {
    pub fn new(inner: R) -> Self {
        HashReader {
            inner,
            hasher: Hasher::new(),
            count: 0,
        }
    }
    pub fn count(&self) -> u64 {
        self.count
    }
    /// The digest of what has been read so far.
    pub fn digest(&self) -> Digest {
        self.hasher.clone().finish()
    }
    /// Read to the end (tar streams stop at their end-of-archive marker, leaving padding
    /// behind) and return the digest of everything read.
    pub fn drain(mut self) -> io::Result<(Digest, u64)> {
        io::copy(&mut self, &mut io::sink())?;
        Ok((self.hasher.finish(), self.count))
    }
}

impl<R: Read> Read for HashReader<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.hasher.update(&buf[..n]);
        self.count += n as u64;
        Ok(n)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn empty_sha256() {
        assert_eq!(
            sha256(b"").to_string(),
            "sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
        );
    }

    #[test]
    fn parse_refuses_other_forms() {
        assert!(
            parse("sha256:E3B0C44298FC1C149AFBF4C8996FB92427AE41E4649B934CA495991B7852B855")
                .is_none()
        );
        assert!(parse("sha512:00").is_none());
        assert!(parse("sha256:../../etc/passwd").is_none());
        assert!(parse(sha256(b"x").as_ref()).is_some());
    }
}
