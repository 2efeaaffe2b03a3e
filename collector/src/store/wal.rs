//! The collector's write-ahead log: where acknowledged incidents wait while
//! ClickHouse is unavailable.
//!
//! # On-disk format
//!
//! A directory of segment files named `{seq:020}.wal`, `seq` increasing.
//! A segment is a sequence of records:
//!
//! ```text
//! magic  u32 LE  0x4C57_4253 ("SBWL")
//! len    u32 LE  payload length (at most MAX_RECORD_BYTES)
//! crc    u32 LE  CRC-32 (IEEE) of the payload
//! payload        len bytes
//! ```
//!
//! A payload is one accepted request: `received_at` (u32 LE, Unix seconds)
//! followed by the incidents' stored JSON (`raw`), one per line.
//!
//! # Invariants
//!
//! * A record is appended (and, with `fsync`, `fdatasync`ed) before the
//!   request it holds is acknowledged.
//! * Segments are replayed oldest first, records in file order, so
//!   incidents reach ClickHouse in the order they were acknowledged.
//! * A segment is deleted only after every record in it was accepted by
//!   ClickHouse (or dead-lettered as bad data). A crash during replay replays
//!   the segment again from the start: ClickHouse deduplicates re-inserted
//!   incidents (same id, same sorting key), so the outcome is exactly one
//!   stored incident each.
//! * Reading never trusts the file: a record with a wrong magic, an
//!   impossible length or a CRC mismatch is skipped (counted in
//!   `wal_corrupt_records`), and the reader resynchronises on the next valid
//!   record. A torn write at the end of a segment is one corrupt record.
//! * Appends always go to a segment opened by this process: on start the
//!   existing segments are sealed (queued for replay) and a new one is
//!   begun, so a torn tail is never appended to.
//! * Size cap (`max_bytes`, all segments together): an append that would
//!   exceed it fails with [`WalError::Full`] and the request is not
//!   acknowledged (503): the sensor keeps the incidents in its spool and
//!   retries. Nothing is dropped.

use std::collections::VecDeque;
use std::fs::{self, File, OpenOptions};
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::sync::atomic::Ordering::Relaxed;
use std::sync::{Arc, Mutex};

use crate::config::WalConfig;
use crate::metrics::Metrics;

/// Record marker.
pub const MAGIC: u32 = 0x4C57_4253;
/// Bytes before a record's payload.
pub const HEADER_BYTES: usize = 12;
/// Largest payload accepted when reading (a request body is at most 1 GiB).
pub const MAX_RECORD_BYTES: usize = (1 << 30) + 4096;

/// A WAL operation failed.
#[derive(Debug, thiserror::Error)]
pub enum WalError {
    /// The append would exceed `wal.max_bytes`.
    #[error("write-ahead log full ({used} of {max} bytes)")]
    Full {
        /// Bytes in use.
        used: u64,
        /// The cap.
        max: u64,
    },
    /// A file operation failed.
    #[error("write-ahead log {what} {path}: {source}")]
    Io {
        /// What was being done.
        what: &'static str,
        /// The file or directory.
        path: PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
}

/// Whether `e` says the disk (or the user's quota) is full.
pub fn is_disk_full(e: &std::io::Error) -> bool {
    matches!(
        e.kind(),
        std::io::ErrorKind::StorageFull | std::io::ErrorKind::QuotaExceeded
    )
}

fn io_err<'a>(what: &'static str, path: &'a Path) -> impl FnOnce(std::io::Error) -> WalError + 'a {
    move |source| WalError::Io {
        what,
        path: path.to_path_buf(),
        source,
    }
}

/// Frames one payload as a record.
pub fn encode_record(payload: &[u8]) -> Vec<u8> {
    let len = u32::try_from(payload.len()).unwrap_or(u32::MAX);
    let mut out = Vec::with_capacity(HEADER_BYTES + payload.len());
    out.extend_from_slice(&MAGIC.to_le_bytes());
    out.extend_from_slice(&len.to_le_bytes());
    out.extend_from_slice(&crc32fast::hash(payload).to_le_bytes());
    out.extend_from_slice(payload);
    out
}

fn u32_at(bytes: &[u8], pos: usize) -> Option<u32> {
    let b: [u8; 4] = bytes.get(pos..pos.checked_add(4)?)?.try_into().ok()?;
    Some(u32::from_le_bytes(b))
}

/// The valid record at `pos`, if there is one: (payload, next position).
fn record_at(bytes: &[u8], pos: usize) -> Option<(&[u8], usize)> {
    if u32_at(bytes, pos)? != MAGIC {
        return None;
    }
    let len = usize::try_from(u32_at(bytes, pos + 4)?).ok()?;
    if len > MAX_RECORD_BYTES {
        return None;
    }
    let crc = u32_at(bytes, pos + 8)?;
    let start = pos + HEADER_BYTES;
    let end = start.checked_add(len)?;
    let payload = bytes.get(start..end)?;
    (crc32fast::hash(payload) == crc).then_some((payload, end))
}

/// Splits a segment into record payloads; also returns how many corrupt
/// stretches were skipped (each counts as one corrupt record).
pub fn decode_records(bytes: &[u8]) -> (Vec<&[u8]>, u64) {
    let mut out = Vec::new();
    let mut corrupt = 0u64;
    let mut in_corrupt = false;
    let mut pos = 0usize;
    while pos < bytes.len() {
        if let Some((payload, next)) = record_at(bytes, pos) {
            out.push(payload);
            pos = next;
            in_corrupt = false;
        } else {
            if !in_corrupt {
                corrupt += 1;
                in_corrupt = true;
            }
            pos += 1;
        }
    }
    (out, corrupt)
}

/// A request's payload: `received_at` then one JSON text per line.
pub fn encode_batch<'a>(received_at: u32, raws: impl Iterator<Item = &'a str>) -> Vec<u8> {
    let mut out = received_at.to_le_bytes().to_vec();
    for (i, raw) in raws.enumerate() {
        if i > 0 {
            out.push(b'\n');
        }
        out.extend_from_slice(raw.as_bytes());
    }
    out
}

/// Splits a payload back into `received_at` and the JSON texts; `None` if
/// it is too short or not UTF-8.
pub fn decode_batch(payload: &[u8]) -> Option<(u32, Vec<&str>)> {
    let received_at = u32_at(payload, 0)?;
    let text = std::str::from_utf8(payload.get(4..)?).ok()?;
    let raws = if text.is_empty() {
        Vec::new()
    } else {
        text.split('\n').collect()
    };
    Some((received_at, raws))
}

struct Writer {
    seq: u64,
    file: File,
    len: u64,
}

struct Inner {
    /// Sealed segments, oldest first: (seq, bytes).
    sealed: VecDeque<(u64, u64)>,
    writer: Option<Writer>,
    next_seq: u64,
}

/// The write-ahead log of one collector process.
pub struct Wal {
    dir: PathBuf,
    max_bytes: u64,
    segment_bytes: u64,
    fsync: bool,
    metrics: Arc<Metrics>,
    inner: Mutex<Inner>,
}

impl std::fmt::Debug for Wal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Wal").field("dir", &self.dir).finish()
    }
}

fn segment_seq(path: &Path) -> Option<u64> {
    let name = path.file_name()?.to_str()?;
    let stem = name.strip_suffix(".wal")?;
    if stem.len() != 20 || !stem.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    stem.parse().ok()
}

impl Wal {
    /// Opens (creating if needed) the log in `config.dir`; existing segments
    /// are queued for replay.
    pub fn open(config: &WalConfig, metrics: Arc<Metrics>) -> Result<Wal, WalError> {
        let dir = config.dir.clone();
        fs::create_dir_all(&dir).map_err(io_err("create directory", &dir))?;
        let mut sealed = Vec::new();
        for entry in fs::read_dir(&dir).map_err(io_err("read directory", &dir))? {
            let entry = entry.map_err(io_err("read directory", &dir))?;
            let path = entry.path();
            let Some(seq) = segment_seq(&path) else {
                continue;
            };
            let len = entry
                .metadata()
                .map_err(io_err("stat segment", &path))?
                .len();
            sealed.push((seq, len));
        }
        sealed.sort_unstable();
        let next_seq = sealed.last().map_or(1, |(s, _)| s + 1);
        let wal = Wal {
            dir,
            max_bytes: config.max_bytes,
            segment_bytes: config.segment_bytes,
            fsync: config.fsync,
            metrics,
            inner: Mutex::new(Inner {
                sealed: sealed.into(),
                writer: None,
                next_seq,
            }),
        };
        wal.update_gauges(&wal.lock());
        if !wal.is_empty() {
            tracing::info!(
                dir = %wal.dir.display(),
                bytes = wal.pending_bytes(),
                "write-ahead log holds incidents from a previous run: replaying"
            );
        }
        Ok(wal)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        // A panic while holding the lock leaves consistent-enough state:
        // every field is updated after its file operation succeeded.
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn path(&self, seq: u64) -> PathBuf {
        self.dir.join(format!("{seq:020}.wal"))
    }

    fn total(inner: &Inner) -> u64 {
        inner.sealed.iter().map(|(_, l)| l).sum::<u64>()
            + inner.writer.as_ref().map_or(0, |w| w.len)
    }

    fn update_gauges(&self, inner: &Inner) {
        self.metrics.wal_bytes.store(Self::total(inner), Relaxed);
        let segs = inner.sealed.len() as u64 + u64::from(inner.writer.is_some());
        self.metrics.wal_segments.store(segs, Relaxed);
    }

    /// Bytes not yet stored in ClickHouse.
    pub fn pending_bytes(&self) -> u64 {
        Self::total(&self.lock())
    }

    /// Whether every acknowledged incident is in ClickHouse.
    pub fn is_empty(&self) -> bool {
        let inner = self.lock();
        inner.sealed.is_empty() && inner.writer.as_ref().is_none_or(|w| w.len == 0)
    }

    /// Appends records (already framed by [`encode_record`]) as one write,
    /// then fsyncs when configured. On error nothing may be acknowledged.
    pub fn append(&self, records: &[u8]) -> Result<(), WalError> {
        let mut inner = self.lock();
        let used = Self::total(&inner);
        let add = records.len() as u64;
        if used.saturating_add(add) > self.max_bytes {
            self.metrics.wal_full.fetch_add(1, Relaxed);
            return Err(WalError::Full {
                used,
                max: self.max_bytes,
            });
        }
        if inner.writer.is_none() {
            let seq = inner.next_seq;
            let path = self.path(seq);
            let file = OpenOptions::new()
                .create_new(true)
                .append(true)
                .open(&path)
                .map_err(|e| self.io_failure("create segment", &path, e))?;
            inner.next_seq += 1;
            if self.fsync {
                // Make the new directory entry durable too.
                if let Err(e) = File::open(&self.dir).and_then(|d| d.sync_all()) {
                    let _ = fs::remove_file(&path);
                    return Err(self.io_failure("sync directory", &self.dir, e));
                }
            }
            inner.writer = Some(Writer { seq, file, len: 0 });
        }
        let seq = inner.writer.as_ref().map_or(0, |w| w.seq);
        let path = self.path(seq);
        let Some(w) = inner.writer.as_mut() else {
            return Ok(());
        };
        let written = w.file.write_all(records).and_then(|()| {
            if self.fsync {
                w.file.sync_data()
            } else {
                Ok(())
            }
        });
        if let Err(e) = written {
            // Cut the failed (possibly torn) record off so the segment
            // stays appendable; a segment left empty is deleted, so a full
            // disk does not leave one new empty file per refused request.
            let kept = w.len;
            let cut = w.file.set_len(kept).and_then(|()| w.file.sync_data());
            match cut {
                Ok(()) if kept == 0 => {
                    inner.writer = None;
                    let _ = fs::remove_file(&path);
                }
                Ok(()) => {}
                Err(_) => {
                    // Cannot cut: seal it, so nothing is appended after
                    // the tear (the reader skips it).
                    let len = w.file.metadata().map(|m| m.len()).unwrap_or(kept);
                    inner.writer = None;
                    inner.sealed.push_back((seq, len));
                }
            }
            self.update_gauges(&inner);
            return Err(self.io_failure("append to", &path, e));
        }
        w.len += add;
        if w.len >= self.segment_bytes {
            let len = w.len;
            inner.writer = None;
            inner.sealed.push_back((seq, len));
        }
        self.update_gauges(&inner);
        Ok(())
    }

    /// An I/O error of an append; a full disk or quota is counted in
    /// `wal_full_total` like a full log.
    fn io_failure(&self, what: &'static str, path: &Path, source: std::io::Error) -> WalError {
        if is_disk_full(&source) {
            self.metrics.wal_full.fetch_add(1, Relaxed);
        }
        WalError::Io {
            what,
            path: path.to_path_buf(),
            source,
        }
    }

    /// The oldest segment to replay (sealing the segment being written if
    /// it is the only one left): its sequence number and path.
    pub fn oldest(&self) -> Option<(u64, PathBuf)> {
        let mut inner = self.lock();
        if inner.sealed.is_empty() {
            let w = inner.writer.take()?;
            if w.len == 0 {
                inner.writer = Some(w);
                return None;
            }
            inner.sealed.push_back((w.seq, w.len));
        }
        let (seq, _) = *inner.sealed.front()?;
        Some((seq, self.path(seq)))
    }

    /// Reads a segment: the payloads of its valid records; corrupt records
    /// are counted and skipped.
    pub fn read(&self, path: &Path) -> Result<Vec<Vec<u8>>, WalError> {
        let bytes = fs::read(path).map_err(io_err("read segment", path))?;
        let (records, corrupt) = decode_records(&bytes);
        if corrupt > 0 {
            self.metrics.wal_corrupt_records.fetch_add(corrupt, Relaxed);
            tracing::warn!(
                event = "wal_corrupt_record",
                segment = %path.display(),
                corrupt,
                "skipped corrupt write-ahead log records"
            );
        }
        Ok(records.into_iter().map(<[u8]>::to_vec).collect())
    }

    /// Deletes segment `seq` once all of it is stored.
    pub fn remove(&self, seq: u64) -> Result<(), WalError> {
        let path = self.path(seq);
        let mut inner = self.lock();
        match fs::remove_file(&path) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(io_err("delete segment", &path)(e)),
        }
        inner.sealed.retain(|(s, _)| *s != seq);
        self.update_gauges(&inner);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(dir: &Path, max_bytes: u64) -> WalConfig {
        WalConfig {
            dir: dir.to_path_buf(),
            max_bytes,
            segment_bytes: 64 << 10,
            fsync: true,
        }
    }

    #[test]
    fn records_round_trip_and_corrupt_ones_are_skipped() {
        let mut seg = encode_record(b"one");
        let mut bad = encode_record(b"two");
        let last = bad.len() - 1;
        bad[last] ^= 0xff; // CRC mismatch
        seg.extend_from_slice(&bad);
        seg.extend_from_slice(b"garbage between records");
        seg.extend_from_slice(&encode_record(b"three"));
        let torn = encode_record(b"four");
        seg.extend_from_slice(&torn[..torn.len() - 2]);
        let (records, corrupt) = decode_records(&seg);
        assert_eq!(records, vec![&b"one"[..], &b"three"[..]]);
        assert_eq!(corrupt, 2);
    }

    #[test]
    fn an_impossible_length_does_not_panic_or_allocate() {
        let mut seg = MAGIC.to_le_bytes().to_vec();
        seg.extend_from_slice(&u32::MAX.to_le_bytes());
        seg.extend_from_slice(&0u32.to_le_bytes());
        seg.extend_from_slice(&encode_record(b"ok"));
        let (records, corrupt) = decode_records(&seg);
        assert_eq!(records, vec![&b"ok"[..]]);
        assert_eq!(corrupt, 1);
    }

    #[test]
    fn batch_payload_round_trips() {
        let p = encode_batch(42, ["{\"a\":1}", "{\"b\":2}"].into_iter());
        let (at, raws) = decode_batch(&p).unwrap();
        assert_eq!(at, 42);
        assert_eq!(raws, vec!["{\"a\":1}", "{\"b\":2}"]);
        assert!(decode_batch(b"ab").is_none());
    }

    #[test]
    fn segments_survive_reopen_and_are_deleted_only_when_removed() {
        let dir = tempfile::tempdir().unwrap();
        let m = Arc::new(Metrics::default());
        let wal = Wal::open(&config(dir.path(), 1 << 20), m.clone()).unwrap();
        assert!(wal.is_empty());
        wal.append(&encode_record(b"a")).unwrap();
        wal.append(&encode_record(b"b")).unwrap();
        assert!(!wal.is_empty());
        drop(wal);
        let wal = Wal::open(&config(dir.path(), 1 << 20), m.clone()).unwrap();
        assert!(!wal.is_empty());
        wal.append(&encode_record(b"c")).unwrap();
        let (seq, path) = wal.oldest().unwrap();
        assert_eq!(wal.read(&path).unwrap(), vec![b"a".to_vec(), b"b".to_vec()]);
        wal.remove(seq).unwrap();
        let (seq, path) = wal.oldest().unwrap();
        assert_eq!(wal.read(&path).unwrap(), vec![b"c".to_vec()]);
        wal.remove(seq).unwrap();
        assert!(wal.is_empty());
        assert!(wal.oldest().is_none());
        assert_eq!(m.wal_bytes.load(Relaxed), 0);
    }

    #[test]
    fn full_log_refuses_appends_without_losing_what_it_holds() {
        let dir = tempfile::tempdir().unwrap();
        let m = Arc::new(Metrics::default());
        let wal = Wal::open(&config(dir.path(), 1 << 20), m.clone()).unwrap();
        let big = encode_record(&vec![b'x'; 600 << 10]);
        wal.append(&big).unwrap();
        assert!(matches!(wal.append(&big), Err(WalError::Full { .. })));
        assert_eq!(m.wal_full.load(Relaxed), 1);
        let (_, path) = wal.oldest().unwrap();
        assert_eq!(wal.read(&path).unwrap().len(), 1);
    }
}
