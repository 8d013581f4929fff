//! Index snapshots: one file per account, so that a restart loads the index and replays
//! only what the store received after it, instead of reading every contact and event.
//!
//! A file is `MAGIC`, the format version, a JSON header (account, time zone, the store's
//! [`Watermark`] when the snapshot was taken, each saved segment's rule as canonical
//! JSON), the engine's body, and a footer: the body's length and a CRC-32 of header and
//! body. It is written to a temporary file, synced and renamed, so a crash leaves the
//! previous snapshot whole. A file that is missing, of another version or account, or
//! damaged is refused and the account is rebuilt from the store.
//!
//! The write gate ([`crate::index::AccountIndex::quiesce`]) is held while the watermark
//! is read and the index is written: no write of this process is then between its store
//! commit and its change log, so the index holds exactly the store up to the watermark
//! and the change log agrees with its membership.

use std::collections::BTreeMap;
use std::fs::File;
use std::io::{BufReader, BufWriter, Read, Write};
use std::path::{Path, PathBuf};

use jiff::tz::TimeZone;
use segmentd_engine::{Index, Restored};
use segmentd_rules::SegmentId;
use segmentd_store::{AccountId, Watermark};
use serde::{Deserialize, Serialize};

const MAGIC: &[u8; 16] = b"segmentd-index\0\0";
const FORMAT: u32 = 1;

#[derive(Debug, thiserror::Error)]
pub enum SnapshotError {
    #[error("no snapshot")]
    Missing,
    #[error("not a snapshot of this version: {0}")]
    Version(String),
    #[error("the snapshot is of another account or time zone")]
    Mismatch,
    #[error("the snapshot is damaged: {0}")]
    Damaged(String),
    #[error(transparent)]
    Io(#[from] std::io::Error),
}

/// What a snapshot says of the store and the rules when it was taken.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Header {
    pub account: AccountId,
    pub time_zone: String,
    pub watermark: Watermark,
    /// Each saved segment's rule as the index held it (canonical JSON).
    pub rules: BTreeMap<SegmentId, serde_json::Value>,
    pub saved_at: jiff::Timestamp,
}

/// Counts and hashes what passes through.
struct Crc<T> {
    inner: T,
    hasher: crc32fast::Hasher,
    bytes: u64,
}

impl<W: Write> Write for Crc<W> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let n = self.inner.write(buf)?;
        self.hasher.update(&buf[..n]);
        self.bytes += n as u64;
        Ok(n)
    }
    fn flush(&mut self) -> std::io::Result<()> {
        self.inner.flush()
    }
}

impl<R: Read> Read for Crc<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.hasher.update(&buf[..n]);
        self.bytes += n as u64;
        Ok(n)
    }
}

/// The snapshot file of an account in `dir`.
pub fn path(dir: &Path, account: AccountId) -> PathBuf {
    dir.join(format!("account-{account}.snapshot"))
}

/// Writes `index` with `header` to the account's file in `dir` (atomically replacing
/// the previous one). Returns the file's size.
pub fn write(dir: &Path, header: &Header, index: &Index) -> Result<u64, SnapshotError> {
    std::fs::create_dir_all(dir)?;
    let target = path(dir, header.account);
    let partial = target.with_extension("snapshot.partial");
    let file = File::create(&partial)?;
    let mut out = BufWriter::with_capacity(1 << 20, file);
    out.write_all(MAGIC)?;
    out.write_all(&FORMAT.to_le_bytes())?;
    let mut crc = Crc {
        inner: out,
        hasher: crc32fast::Hasher::new(),
        bytes: 0,
    };
    let head = serde_json::to_vec(header).map_err(|e| SnapshotError::Damaged(e.to_string()))?;
    crc.write_all(&(head.len() as u32).to_le_bytes())?;
    crc.write_all(&head)?;
    index
        .write_snapshot(&mut crc)
        .map_err(|e| SnapshotError::Damaged(e.to_string()))?;
    let (bytes, sum) = (crc.bytes, crc.hasher.finalize());
    let mut out = crc.inner;
    out.write_all(&bytes.to_le_bytes())?;
    out.write_all(&sum.to_le_bytes())?;
    let file = out
        .into_inner()
        .map_err(|e| SnapshotError::Io(e.into_error()))?;
    file.sync_all()?;
    drop(file);
    std::fs::rename(&partial, &target)?;
    if let Ok(d) = File::open(dir) {
        // The rename is durable once the directory is.
        let _ = d.sync_all();
    }
    Ok(bytes + 16 + 4 + 12)
}

/// Reads the account's snapshot from `dir`: its header and the restored index (at the
/// clock it was taken at), after checking its version, account, zone and checksum.
pub fn read(
    dir: &Path,
    account: AccountId,
    zone_name: &str,
    zone: &TimeZone,
) -> Result<(Header, Restored), SnapshotError> {
    let file = match File::open(path(dir, account)) {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Err(SnapshotError::Missing),
        Err(e) => return Err(e.into()),
    };
    let mut input = BufReader::with_capacity(1 << 20, file);
    let mut magic = [0u8; 16];
    input.read_exact(&mut magic)?;
    let mut word = [0u8; 4];
    input.read_exact(&mut word)?;
    let format = u32::from_le_bytes(word);
    if &magic != MAGIC || format != FORMAT {
        return Err(SnapshotError::Version(format!("format {format}")));
    }
    let mut crc = Crc {
        inner: input,
        hasher: crc32fast::Hasher::new(),
        bytes: 0,
    };
    crc.read_exact(&mut word)?;
    let mut head = vec![0u8; u32::from_le_bytes(word) as usize];
    crc.read_exact(&mut head)?;
    let header: Header =
        serde_json::from_slice(&head).map_err(|e| SnapshotError::Damaged(e.to_string()))?;
    if header.account != account || header.time_zone != zone_name {
        return Err(SnapshotError::Mismatch);
    }
    let restored = Index::read_snapshot(&mut crc, zone).map_err(|e| match e {
        segmentd_engine::SnapshotError::Version(v) => SnapshotError::Version(v),
        other => SnapshotError::Damaged(other.to_string()),
    })?;
    let (bytes, sum) = (crc.bytes, crc.hasher.finalize());
    let mut input = crc.inner;
    let mut footer = [0u8; 12];
    input.read_exact(&mut footer)?;
    let (len, check) = footer.split_at(8);
    let len = u64::from_le_bytes(len.try_into().unwrap_or([0; 8]));
    let check = u32::from_le_bytes(check.try_into().unwrap_or([0; 4]));
    if len != bytes || check != sum {
        return Err(SnapshotError::Damaged("checksum mismatch".into()));
    }
    if input.read(&mut [0u8; 1])? != 0 {
        return Err(SnapshotError::Damaged("bytes after the footer".into()));
    }
    Ok((header, restored))
}
