//! A durable on-disk spool of incidents waiting for the collector.
//!
//! # On-disk format
//!
//! The spool is a folder of segment files `NNNNNNNNNNNNNNNNNNNN.seg` (a
//! 20-digit increasing id) and one `cursor` file. A segment is a sequence of
//! records:
//!
//! ```text
//! magic  u32 LE  0x314E4253 ("SBN1")
//! len    u32 LE  payload length, 1..=MAX_RECORD
//! crc    u32 LE  CRC-32 (IEEE) of the payload
//! payload        one incident as JSON
//! ```
//!
//! `cursor` holds `SEGMENT_ID OFFSET`: everything before it has been
//! acknowledged by the collector. It is replaced atomically (write a
//! temporary file, fsync, rename).
//!
//! # Invariants
//!
//! * A record is deleted only after the collector acknowledged it: a
//!   segment file is removed only when the cursor has moved past its end,
//!   and the cursor moves only in [`Spool::ack`].
//! * Delivery is at least once: a crash between the collector's
//!   acknowledgement and the cursor write re-delivers the last batch.
//!   Incident ids are deterministic, so the collector stores it once.
//! * Writes go to a fresh segment after every open, so a segment torn by a
//!   crash is never appended to.
//!
//! # Durability (`fsync`)
//!
//! [`Fsync::Always`] syncs after every record; [`Fsync::Batch`] (the
//! default) syncs once per [`Spool::append`] call, i.e. once per batch the
//! forwarder hands over: an incident counts as spooled only after that sync,
//! so a power loss loses no incident that was reported as spooled.
//!
//! # When full
//!
//! The spool holds at most `max_bytes`. When an append would exceed it, the
//! new records are refused (drop-newest), counted in
//! [`SpoolStats::dropped_full`] and reported by the caller: spooled
//! incidents are never deleted to make room, because nothing unacknowledged
//! is ever deleted.
//!
//! # Corruption
//!
//! A record whose magic, length or CRC is wrong (a flipped bit, a torn
//! write) is skipped: the reader scans forward for the next magic whose
//! record checks out, and counts the skipped records and bytes.

use std::collections::VecDeque;
use std::fs::{self, File, OpenOptions};
use std::io::{self, Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

/// Record magic, `SBN1` in little-endian byte order.
pub const MAGIC: u32 = 0x314E_4253;
/// Largest payload accepted (and believed when reading).
pub const MAX_RECORD: usize = 1 << 20;
const HEADER: usize = 12;

/// When the spool calls fsync.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Fsync {
    /// After every record: slowest, each record durable on its own.
    Always,
    /// Once per `append` call (per batch): the default.
    Batch,
}

/// Spool settings.
#[derive(Clone, Debug)]
pub struct SpoolConfig {
    /// The folder (created if missing).
    pub dir: PathBuf,
    /// Most bytes kept (all segments, unacknowledged part). Default 1 GiB.
    pub max_bytes: u64,
    /// A new segment starts when the current one reaches this size.
    /// Smaller segments free disk sooner after acknowledgements; larger
    /// ones mean fewer files. Default 8 MiB.
    pub segment_bytes: u64,
    /// fsync policy.
    pub fsync: Fsync,
}

impl SpoolConfig {
    /// Defaults for `dir`.
    pub fn new(dir: impl Into<PathBuf>) -> Self {
        SpoolConfig {
            dir: dir.into(),
            max_bytes: 1 << 30,
            segment_bytes: 8 << 20,
            fsync: Fsync::Batch,
        }
    }
}

/// Spool failures (I/O on the spool folder).
#[derive(Debug, thiserror::Error)]
pub enum SpoolError {
    /// A file operation failed.
    #[error("spool {path}: {op}: {source}")]
    Io {
        /// File or folder.
        path: PathBuf,
        /// What was being done.
        op: &'static str,
        /// Why.
        source: io::Error,
    },
    /// A record is larger than [`MAX_RECORD`].
    #[error("record of {0} bytes exceeds the {MAX_RECORD}-byte limit")]
    TooLarge(usize),
}

fn io_err<'a>(path: &'a Path, op: &'static str) -> impl FnOnce(io::Error) -> SpoolError + 'a {
    move |source| SpoolError::Io {
        path: path.to_path_buf(),
        op,
        source,
    }
}

/// Spool counters.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct SpoolStats {
    /// Records written.
    pub written: u64,
    /// Records acknowledged (and so deletable).
    pub acked: u64,
    /// Records refused because the spool was full.
    pub dropped_full: u64,
    /// Corrupt records skipped while reading.
    pub corrupt_records: u64,
    /// Bytes skipped with them.
    pub corrupt_bytes: u64,
}

/// A position in the spool: segment id and byte offset.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct Cursor {
    /// Segment id.
    pub segment: u64,
    /// Offset within it.
    pub offset: u64,
}

/// Records read from the spool, not yet acknowledged.
#[derive(Debug, Default)]
pub struct Batch {
    /// The payloads, oldest first.
    pub records: Vec<Vec<u8>>,
    /// Where the spool stands once these are acknowledged.
    pub end: Option<Cursor>,
}

#[derive(Debug)]
struct Segment {
    id: u64,
    len: u64,
}

/// The spool. One writer and one reader, in one thread or behind a lock.
#[derive(Debug)]
pub struct Spool {
    cfg: SpoolConfig,
    segments: VecDeque<Segment>,
    writer: Option<File>,
    cursor: Cursor,
    stats: SpoolStats,
    /// Corruption before this point was already counted (batches that were
    /// not acknowledged are read again).
    corrupt_counted: Cursor,
}

fn segment_path(dir: &Path, id: u64) -> PathBuf {
    dir.join(format!("{id:020}.seg"))
}

impl Spool {
    /// Opens (or creates) the spool in `cfg.dir`.
    pub fn open(cfg: SpoolConfig) -> Result<Spool, SpoolError> {
        fs::create_dir_all(&cfg.dir).map_err(io_err(&cfg.dir, "create folder"))?;
        let mut ids = Vec::new();
        for entry in fs::read_dir(&cfg.dir).map_err(io_err(&cfg.dir, "list"))? {
            let entry = entry.map_err(io_err(&cfg.dir, "list"))?;
            let name = entry.file_name();
            let Some(stem) = name.to_str().and_then(|n| n.strip_suffix(".seg")) else {
                continue;
            };
            if let Ok(id) = stem.parse::<u64>() {
                let len = entry
                    .metadata()
                    .map_err(io_err(&entry.path(), "stat"))?
                    .len();
                ids.push(Segment { id, len });
            }
        }
        ids.sort_by_key(|s| s.id);
        let segments: VecDeque<Segment> = ids.into();
        let mut cursor = read_cursor(&cfg.dir)?.unwrap_or(Cursor {
            segment: 0,
            offset: 0,
        });
        match segments.front() {
            Some(first) if cursor.segment < first.id => {
                cursor = Cursor {
                    segment: first.id,
                    offset: 0,
                }
            }
            _ => {}
        }
        let mut spool = Spool {
            cfg,
            segments,
            writer: None,
            cursor,
            stats: SpoolStats::default(),
            corrupt_counted: cursor,
        };
        // Segments entirely before the cursor were acknowledged already.
        spool.delete_consumed()?;
        Ok(spool)
    }

    /// Counters so far.
    pub fn stats(&self) -> &SpoolStats {
        &self.stats
    }

    /// Bytes not yet acknowledged.
    pub fn depth_bytes(&self) -> u64 {
        self.segments
            .iter()
            .map(|s| {
                if s.id == self.cursor.segment {
                    s.len.saturating_sub(self.cursor.offset)
                } else if s.id > self.cursor.segment {
                    s.len
                } else {
                    0
                }
            })
            .sum()
    }

    /// Whether everything written was acknowledged.
    pub fn is_empty(&self) -> bool {
        self.depth_bytes() == 0
    }

    fn new_segment(&mut self) -> Result<(), SpoolError> {
        // Ids only grow, also past segments already deleted.
        let id = self
            .segments
            .back()
            .map_or(self.cursor.segment + 1, |s| s.id + 1);
        let path = segment_path(&self.cfg.dir, id);
        let f = OpenOptions::new()
            .create_new(true)
            .append(true)
            .open(&path)
            .map_err(io_err(&path, "create segment"))?;
        self.segments.push_back(Segment { id, len: 0 });
        self.writer = Some(f);
        Ok(())
    }

    /// Appends records (each one incident as JSON). Returns how many were
    /// spooled; the rest were refused because the spool is full (counted).
    /// Spooled records are on disk (fsynced) when this returns.
    pub fn append<R: AsRef<[u8]>>(&mut self, records: &[R]) -> Result<usize, SpoolError> {
        let mut written = 0;
        let mut dirty = false;
        for r in records {
            let payload = r.as_ref();
            if payload.is_empty() || payload.len() > MAX_RECORD {
                return Err(SpoolError::TooLarge(payload.len()));
            }
            let size = (HEADER + payload.len()) as u64;
            if self.depth_bytes() + size > self.cfg.max_bytes {
                self.stats.dropped_full += 1;
                continue;
            }
            let rotate = match (self.writer.as_ref(), self.segments.back()) {
                (Some(_), Some(last)) => last.len > 0 && last.len + size > self.cfg.segment_bytes,
                _ => true,
            };
            if rotate {
                if dirty {
                    self.sync()?;
                    dirty = false;
                }
                self.new_segment()?;
            }
            let mut buf = Vec::with_capacity(HEADER + payload.len());
            buf.extend_from_slice(&MAGIC.to_le_bytes());
            buf.extend_from_slice(&(payload.len() as u32).to_le_bytes());
            buf.extend_from_slice(&crc32fast::hash(payload).to_le_bytes());
            buf.extend_from_slice(payload);
            let (Some(w), Some(last)) = (self.writer.as_mut(), self.segments.back_mut()) else {
                continue;
            };
            let path = segment_path(&self.cfg.dir, last.id);
            w.write_all(&buf).map_err(io_err(&path, "write"))?;
            last.len += size;
            written += 1;
            self.stats.written += 1;
            dirty = true;
            if self.cfg.fsync == Fsync::Always {
                self.sync()?;
                dirty = false;
            }
        }
        if dirty {
            self.sync()?;
        }
        Ok(written)
    }

    fn sync(&mut self) -> Result<(), SpoolError> {
        if let (Some(w), Some(last)) = (self.writer.as_mut(), self.segments.back()) {
            let path = segment_path(&self.cfg.dir, last.id);
            w.sync_data().map_err(io_err(&path, "fsync"))?;
        }
        Ok(())
    }

    /// Reads up to `max_records` records (stopping once `max_bytes` of
    /// payload are reached) from the cursor, skipping corrupt ones. The
    /// cursor does not move until [`Spool::ack`] is called with the batch.
    pub fn read_batch(
        &mut self,
        max_records: usize,
        max_bytes: usize,
    ) -> Result<Batch, SpoolError> {
        let mut batch = Batch::default();
        let mut bytes = 0usize;
        let segments: Vec<(u64, u64)> = self
            .segments
            .iter()
            .filter(|s| s.id >= self.cursor.segment)
            .map(|s| (s.id, s.len))
            .collect();
        for (id, len) in segments {
            let base = if id == self.cursor.segment {
                self.cursor.offset
            } else {
                0
            };
            if base < len {
                let path = segment_path(&self.cfg.dir, id);
                let mut f = File::open(&path).map_err(io_err(&path, "open segment"))?;
                f.seek(SeekFrom::Start(base))
                    .map_err(io_err(&path, "seek"))?;
                let mut data = Vec::new();
                f.take(len - base)
                    .read_to_end(&mut data)
                    .map_err(io_err(&path, "read"))?;
                let mut at = 0usize;
                while at < data.len() {
                    if batch.records.len() >= max_records || bytes >= max_bytes {
                        batch.end = Some(Cursor {
                            segment: id,
                            offset: base + at as u64,
                        });
                        return Ok(batch);
                    }
                    match parse_record(&data, at) {
                        Some(payload) => {
                            bytes += payload.len();
                            batch.records.push(payload.to_vec());
                            at += HEADER + payload.len();
                        }
                        None => {
                            let next = resync(&data, at + 1);
                            let here = Cursor {
                                segment: id,
                                offset: base + at as u64,
                            };
                            if here < self.corrupt_counted {
                                at = next;
                                continue;
                            }
                            self.corrupt_counted = Cursor {
                                segment: id,
                                offset: base + next as u64,
                            };
                            self.stats.corrupt_records += 1;
                            self.stats.corrupt_bytes += (next - at) as u64;
                            tracing::warn!(
                                segment = %path.display(),
                                offset = base + at as u64,
                                skipped_bytes = next - at,
                                "corrupt spool record skipped"
                            );
                            at = next;
                        }
                    }
                }
            }
            batch.end = Some(Cursor {
                segment: id,
                offset: len,
            });
        }
        Ok(batch)
    }

    /// Marks everything up to `end` acknowledged: persists the cursor and
    /// deletes segments that are wholly behind it.
    pub fn ack(&mut self, batch: &Batch) -> Result<(), SpoolError> {
        let Some(end) = batch.end else { return Ok(()) };
        if end <= self.cursor {
            return Ok(());
        }
        self.cursor = end;
        self.stats.acked += batch.records.len() as u64;
        write_cursor(&self.cfg.dir, end)?;
        self.delete_consumed()
    }

    /// Deletes segments the cursor has passed (never the one being written).
    fn delete_consumed(&mut self) -> Result<(), SpoolError> {
        while let Some(first) = self.segments.front() {
            let is_writer = self.writer.is_some() && self.segments.len() == 1;
            let passed = first.id < self.cursor.segment
                || (first.id == self.cursor.segment
                    && self.cursor.offset >= first.len
                    && !is_writer);
            if !passed || is_writer {
                break;
            }
            let path = segment_path(&self.cfg.dir, first.id);
            match fs::remove_file(&path) {
                Ok(()) => {}
                Err(e) if e.kind() == io::ErrorKind::NotFound => {}
                Err(e) => return Err(io_err(&path, "delete segment")(e)),
            }
            self.segments.pop_front();
        }
        Ok(())
    }
}

/// The payload of a valid record at `at`, or `None`.
fn parse_record(data: &[u8], at: usize) -> Option<&[u8]> {
    let header = data.get(at..at.checked_add(HEADER)?)?;
    let word = |i: usize| -> Option<u32> {
        let b = header.get(i..i + 4)?;
        Some(u32::from_le_bytes([
            *b.first()?,
            *b.get(1)?,
            *b.get(2)?,
            *b.get(3)?,
        ]))
    };
    if word(0)? != MAGIC {
        return None;
    }
    let len = usize::try_from(word(4)?).ok()?;
    if len == 0 || len > MAX_RECORD {
        return None;
    }
    let payload = data.get(at + HEADER..at + HEADER + len)?;
    (crc32fast::hash(payload) == word(8)?).then_some(payload)
}

/// The offset of the next valid record at or after `from`, or the end.
fn resync(data: &[u8], from: usize) -> usize {
    let magic = MAGIC.to_le_bytes();
    let mut at = from;
    while let Some(rest) = data.get(at..) {
        match rest.windows(4).position(|w| w == magic) {
            Some(i) => {
                if parse_record(data, at + i).is_some() {
                    return at + i;
                }
                at += i + 1;
            }
            None => break,
        }
    }
    data.len()
}

fn read_cursor(dir: &Path) -> Result<Option<Cursor>, SpoolError> {
    let path = dir.join("cursor");
    let text = match fs::read_to_string(&path) {
        Ok(t) => t,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(io_err(&path, "read cursor")(e)),
    };
    let mut parts = text.split_whitespace().map(str::parse::<u64>);
    match (parts.next(), parts.next()) {
        (Some(Ok(segment)), Some(Ok(offset))) => Ok(Some(Cursor { segment, offset })),
        _ => {
            // An unreadable cursor re-delivers from the oldest segment:
            // duplicates are harmless, losses are not.
            tracing::warn!(path = %path.display(), "spool cursor unreadable; re-delivering from the start");
            Ok(None)
        }
    }
}

fn write_cursor(dir: &Path, c: Cursor) -> Result<(), SpoolError> {
    let tmp = dir.join("cursor.tmp");
    let path = dir.join("cursor");
    let mut f = File::create(&tmp).map_err(io_err(&tmp, "create cursor"))?;
    writeln!(f, "{} {}", c.segment, c.offset).map_err(io_err(&tmp, "write cursor"))?;
    f.sync_data().map_err(io_err(&tmp, "fsync cursor"))?;
    fs::rename(&tmp, &path).map_err(io_err(&path, "rename cursor"))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cfg(dir: &Path) -> SpoolConfig {
        SpoolConfig {
            segment_bytes: 256,
            ..SpoolConfig::new(dir)
        }
    }

    fn rec(i: usize) -> Vec<u8> {
        format!("{{\"n\":{i},\"pad\":\"{}\"}}", "x".repeat(40)).into_bytes()
    }

    fn drain(s: &mut Spool) -> Vec<Vec<u8>> {
        let mut out = Vec::new();
        loop {
            let b = s.read_batch(7, 1 << 20).unwrap();
            if b.records.is_empty() {
                s.ack(&b).unwrap();
                return out;
            }
            out.extend(b.records.iter().cloned());
            s.ack(&b).unwrap();
        }
    }

    fn seg_files(dir: &Path) -> Vec<PathBuf> {
        let mut v: Vec<PathBuf> = fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().path())
            .filter(|p| p.extension().is_some_and(|e| e == "seg"))
            .collect();
        v.sort();
        v
    }

    #[test]
    fn records_come_back_in_order_across_segments_and_acked_segments_are_deleted() {
        let dir = tempfile::tempdir().unwrap();
        let mut s = Spool::open(cfg(dir.path())).unwrap();
        let recs: Vec<Vec<u8>> = (0..50).map(rec).collect();
        assert_eq!(s.append(&recs).unwrap(), 50);
        assert!(seg_files(dir.path()).len() > 5, "rotation happened");
        assert_eq!(drain(&mut s), recs);
        assert!(s.is_empty());
        assert!(
            seg_files(dir.path()).len() <= 1,
            "only the segment being written may remain"
        );
        assert_eq!(s.stats().acked, 50);
    }

    #[test]
    fn unacknowledged_records_survive_a_restart() {
        let dir = tempfile::tempdir().unwrap();
        let recs: Vec<Vec<u8>> = (0..20).map(rec).collect();
        {
            let mut s = Spool::open(cfg(dir.path())).unwrap();
            s.append(&recs).unwrap();
            let first = s.read_batch(5, 1 << 20).unwrap();
            s.ack(&first).unwrap();
            let _lost_ack = s.read_batch(5, 1 << 20).unwrap(); // delivered, never acknowledged
        }
        let mut s = Spool::open(cfg(dir.path())).unwrap();
        assert_eq!(drain(&mut s), recs[5..].to_vec());
        let mut again = Spool::open(cfg(dir.path())).unwrap();
        assert!(
            drain(&mut again).is_empty(),
            "acknowledged records are gone for good"
        );
    }

    #[test]
    fn a_full_spool_refuses_new_records_counts_them_and_keeps_the_old_ones() {
        let dir = tempfile::tempdir().unwrap();
        let mut s = Spool::open(SpoolConfig {
            max_bytes: 10 * (HEADER as u64 + rec(0).len() as u64),
            ..cfg(dir.path())
        })
        .unwrap();
        let recs: Vec<Vec<u8>> = (0..15).map(rec).collect();
        assert_eq!(s.append(&recs).unwrap(), 10);
        assert_eq!(s.stats().dropped_full, 5);
        assert_eq!(drain(&mut s), recs[..10].to_vec());
        // Acknowledged space is free again.
        assert_eq!(s.append(&recs[10..]).unwrap(), 5);
    }

    #[test]
    fn a_corrupt_record_is_skipped_and_counted_and_the_rest_delivered() {
        let dir = tempfile::tempdir().unwrap();
        let recs: Vec<Vec<u8>> = (0..3).map(rec).collect();
        {
            let mut s = Spool::open(SpoolConfig::new(dir.path())).unwrap();
            s.append(&recs).unwrap();
        }
        let seg = seg_files(dir.path()).remove(0);
        let mut bytes = fs::read(&seg).unwrap();
        let second_payload = HEADER + recs[0].len() + HEADER + 3;
        bytes[second_payload] ^= 0x20; // flip a bit in record 2's payload
        fs::write(&seg, &bytes).unwrap();
        let mut s = Spool::open(SpoolConfig::new(dir.path())).unwrap();
        assert_eq!(drain(&mut s), vec![recs[0].clone(), recs[2].clone()]);
        assert_eq!(s.stats().corrupt_records, 1);
    }

    #[test]
    fn a_corrupt_length_resynchronizes_on_the_next_record() {
        let dir = tempfile::tempdir().unwrap();
        let recs: Vec<Vec<u8>> = (0..4).map(rec).collect();
        {
            let mut s = Spool::open(SpoolConfig::new(dir.path())).unwrap();
            s.append(&recs).unwrap();
        }
        let seg = seg_files(dir.path()).remove(0);
        let mut bytes = fs::read(&seg).unwrap();
        bytes[4..8].copy_from_slice(&u32::MAX.to_le_bytes()); // record 1's length
        fs::write(&seg, &bytes).unwrap();
        let mut s = Spool::open(SpoolConfig::new(dir.path())).unwrap();
        assert_eq!(drain(&mut s), recs[1..].to_vec());
        assert_eq!(s.stats().corrupt_records, 1);
    }

    #[test]
    fn a_torn_last_record_is_skipped_and_writing_continues_in_a_new_segment() {
        let dir = tempfile::tempdir().unwrap();
        let recs: Vec<Vec<u8>> = (0..3).map(rec).collect();
        {
            let mut s = Spool::open(SpoolConfig::new(dir.path())).unwrap();
            s.append(&recs).unwrap();
        }
        let seg = seg_files(dir.path()).remove(0);
        let len = fs::metadata(&seg).unwrap().len();
        OpenOptions::new()
            .write(true)
            .open(&seg)
            .unwrap()
            .set_len(len - 5)
            .unwrap();
        let mut s = Spool::open(SpoolConfig::new(dir.path())).unwrap();
        s.append(&[rec(99)]).unwrap();
        assert_eq!(
            drain(&mut s),
            vec![recs[0].clone(), recs[1].clone(), rec(99)]
        );
        assert_eq!(s.stats().corrupt_records, 1);
    }

    #[test]
    fn corruption_read_twice_is_counted_once() {
        let dir = tempfile::tempdir().unwrap();
        {
            let mut s = Spool::open(SpoolConfig::new(dir.path())).unwrap();
            s.append(&[rec(0), rec(1)]).unwrap();
        }
        let seg = seg_files(dir.path()).remove(0);
        let mut bytes = fs::read(&seg).unwrap();
        bytes[0] = 0;
        fs::write(&seg, &bytes).unwrap();
        let mut s = Spool::open(SpoolConfig::new(dir.path())).unwrap();
        let _ = s.read_batch(10, 1 << 20).unwrap();
        let b = s.read_batch(10, 1 << 20).unwrap();
        assert_eq!(b.records, vec![rec(1)]);
        assert_eq!(s.stats().corrupt_records, 1);
    }
}
