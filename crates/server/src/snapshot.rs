//! Index snapshots: one file per account, so that a restart loads the index and replays
//! only what the store received after it, instead of reading every contact and event.
//!
//! A file is `MAGIC`, the format version, a JSON header (account, time zone, the store's
//! [`Watermark`] when the snapshot was taken, each saved segment's rule as canonical
//! JSON), the engine's body, and a footer: the length and CRC-32 of all that comes before
//! it, checked before anything is decoded. It is written to a temporary file, synced and
//! renamed, so a crash leaves the previous snapshot whole. A file that is missing,
//! damaged, or of another version, account or zone is refused and the account is rebuilt
//! from the store.
//!
//! The write gate ([`crate::index::AccountIndex::quiesce`]) is held while the watermark
//! is read and the index is written: no write of this process is then between its store
//! commit and its change log, so the index holds exactly the store up to the watermark
//! and the change log agrees with its membership.

use std::collections::BTreeMap;
use std::fs::File;
use std::io::{BufReader, BufWriter, Read, Seek, SeekFrom, Write};
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

/// Hashes and counts the bytes written through it (behind a `BufWriter`, so it sees
/// large chunks).
struct Crc<W> {
    inner: W,
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

/// The snapshot file of an account in `dir`.
pub fn path(dir: &Path, account: AccountId) -> PathBuf {
    dir.join(format!("account-{account}.snapshot"))
}

/// A snapshot written but not yet in place: [`Written::commit`] syncs it to disk and
/// renames it over the previous one. The caller holds the write gate only while
/// writing, not while syncing.
pub struct Written {
    partial: PathBuf,
    target: PathBuf,
    file: File,
    pub bytes: u64,
}

impl Written {
    pub fn commit(self) -> Result<u64, SnapshotError> {
        self.file.sync_all()?;
        drop(self.file);
        std::fs::rename(&self.partial, &self.target)?;
        if let Some(dir) = self.target.parent()
            && let Ok(d) = File::open(dir)
        {
            // The rename is durable once the directory is.
            let _ = d.sync_all();
        }
        Ok(self.bytes)
    }
}

/// Writes `index` with `header` to a temporary file beside the account's snapshot in
/// `dir`: magic, version, header, body, then the footer (length and CRC-32 of all that
/// comes before it).
pub fn write(dir: &Path, header: &Header, index: &Index) -> Result<Written, SnapshotError> {
    std::fs::create_dir_all(dir)?;
    let target = path(dir, header.account);
    let partial = target.with_extension("snapshot.partial");
    let crc = Crc {
        inner: File::create(&partial)?,
        hasher: crc32fast::Hasher::new(),
        bytes: 0,
    };
    let mut out = BufWriter::with_capacity(1 << 20, crc);
    out.write_all(MAGIC)?;
    out.write_all(&FORMAT.to_le_bytes())?;
    let head = serde_json::to_vec(header).map_err(|e| SnapshotError::Damaged(e.to_string()))?;
    out.write_all(&(head.len() as u32).to_le_bytes())?;
    out.write_all(&head)?;
    index
        .write_snapshot(&mut out)
        .map_err(|e| SnapshotError::Damaged(e.to_string()))?;
    let crc = out
        .into_inner()
        .map_err(|e| SnapshotError::Io(e.into_error()))?;
    let (bytes, sum) = (crc.bytes, crc.hasher.finalize());
    let mut file = crc.inner;
    file.write_all(&bytes.to_le_bytes())?;
    file.write_all(&sum.to_le_bytes())?;
    Ok(Written {
        partial,
        target,
        file,
        bytes: bytes + 12,
    })
}

const FOOTER: u64 = 12;

/// Checks the file's footer against all that comes before it, in one pass of large
/// reads, so that nothing damaged is ever decoded.
fn verify(file: &mut File) -> Result<(), SnapshotError> {
    let len = file.metadata()?.len();
    let body = len
        .checked_sub(FOOTER)
        .ok_or_else(|| SnapshotError::Damaged("shorter than its footer".into()))?;
    file.seek(SeekFrom::Start(body))?;
    let mut footer = [0u8; FOOTER as usize];
    file.read_exact(&mut footer)?;
    let (want_len, want_sum) = footer.split_at(8);
    let want_len = u64::from_le_bytes(want_len.try_into().unwrap_or([0; 8]));
    let want_sum = u32::from_le_bytes(want_sum.try_into().unwrap_or([0; 4]));
    if want_len != body {
        return Err(SnapshotError::Damaged("length mismatch".into()));
    }
    file.seek(SeekFrom::Start(0))?;
    let mut hasher = crc32fast::Hasher::new();
    let mut buf = vec![0u8; 1 << 20];
    let mut left = body;
    while left > 0 {
        let n = (left as usize).min(buf.len());
        file.read_exact(&mut buf[..n])?;
        hasher.update(&buf[..n]);
        left -= n as u64;
    }
    if hasher.finalize() != want_sum {
        return Err(SnapshotError::Damaged("checksum mismatch".into()));
    }
    file.seek(SeekFrom::Start(0))?;
    Ok(())
}

/// Reads the account's snapshot from `dir`: its header and the restored index (at the
/// clock it was taken at), after checking its checksum, version, account and zone.
pub fn read(
    dir: &Path,
    account: AccountId,
    zone_name: &str,
    zone: &TimeZone,
) -> Result<(Header, Restored), SnapshotError> {
    let mut file = match File::open(path(dir, account)) {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Err(SnapshotError::Missing),
        Err(e) => return Err(e.into()),
    };
    verify(&mut file)?;
    let mut input = BufReader::with_capacity(1 << 20, file);
    let mut magic = [0u8; 16];
    input.read_exact(&mut magic)?;
    let mut word = [0u8; 4];
    input.read_exact(&mut word)?;
    let format = u32::from_le_bytes(word);
    if &magic != MAGIC || format != FORMAT {
        return Err(SnapshotError::Version(format!("format {format}")));
    }
    input.read_exact(&mut word)?;
    let mut head = vec![0u8; u32::from_le_bytes(word) as usize];
    input.read_exact(&mut head)?;
    let header: Header =
        serde_json::from_slice(&head).map_err(|e| SnapshotError::Damaged(e.to_string()))?;
    if header.account != account || header.time_zone != zone_name {
        return Err(SnapshotError::Mismatch);
    }
    let restored = Index::read_snapshot(&mut input, zone).map_err(|e| match e {
        segmentd_engine::SnapshotError::Version(v) => SnapshotError::Version(v),
        other => SnapshotError::Damaged(other.to_string()),
    })?;
    Ok((header, restored))
}
