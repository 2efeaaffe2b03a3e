//! Classic libpcap file format, written (and read back, for tests) by hand.
//!
//! Layout, all little-endian:
//!
//! * global header (24 bytes): magic `0xa1b2c3d4` (microsecond timestamps),
//!   version 2.4, thiszone 0, sigfigs 0, snaplen 65535, linktype 1 (Ethernet);
//! * per record (16 bytes + data): `ts_sec`, `ts_usec`, `incl_len`,
//!   `orig_len`, then `incl_len` bytes of frame.
//!
//! The generator always writes whole frames, so `incl_len == orig_len`.

use std::io::{self, Write};

/// The microsecond-resolution pcap magic number.
pub const MAGIC: u32 = 0xa1b2_c3d4;
/// The snapshot length written in the global header.
pub const SNAPLEN: u32 = 65_535;
/// `LINKTYPE_ETHERNET`.
pub const LINKTYPE_ETHERNET: u32 = 1;
/// Size of the global header.
pub const GLOBAL_HEADER_LEN: usize = 24;
/// Size of a record header.
pub const RECORD_HEADER_LEN: usize = 16;

/// Writes a classic pcap stream to any [`Write`].
///
/// The global header is written by [`PcapWriter::new`]; each
/// [`PcapWriter::write_frame`] appends one record.
#[derive(Debug)]
pub struct PcapWriter<W: Write> {
    out: W,
    records: u64,
}

impl<W: Write> PcapWriter<W> {
    /// Writes the global header and returns the writer.
    pub fn new(mut out: W) -> io::Result<Self> {
        let mut h = [0u8; GLOBAL_HEADER_LEN];
        h[0..4].copy_from_slice(&MAGIC.to_le_bytes());
        h[4..6].copy_from_slice(&2u16.to_le_bytes());
        h[6..8].copy_from_slice(&4u16.to_le_bytes());
        // thiszone (8..12) and sigfigs (12..16) stay 0.
        h[16..20].copy_from_slice(&SNAPLEN.to_le_bytes());
        h[20..24].copy_from_slice(&LINKTYPE_ETHERNET.to_le_bytes());
        out.write_all(&h)?;
        Ok(PcapWriter { out, records: 0 })
    }

    /// Appends one record of a frame cut to its first `frame.len()` bytes
    /// (a short snaplen) whose length on the wire was `orig_len`, so rates
    /// in bits per second stay those of the full frames.
    pub fn write_snapped(&mut self, ts_micros: i64, frame: &[u8], orig_len: u32) -> io::Result<()> {
        let invalid = |what: &str| io::Error::new(io::ErrorKind::InvalidInput, what.to_string());
        let secs = u32::try_from(ts_micros.div_euclid(1_000_000))
            .map_err(|_| invalid("timestamp outside the pcap u32 seconds range"))?;
        let usec = ts_micros.rem_euclid(1_000_000) as u32;
        let len = u32::try_from(frame.len())
            .ok()
            .filter(|&l| l <= SNAPLEN && l <= orig_len)
            .ok_or_else(|| invalid("frame longer than the snaplen or its wire length"))?;
        let mut h = [0u8; RECORD_HEADER_LEN];
        h[0..4].copy_from_slice(&secs.to_le_bytes());
        h[4..8].copy_from_slice(&usec.to_le_bytes());
        h[8..12].copy_from_slice(&len.to_le_bytes());
        h[12..16].copy_from_slice(&orig_len.to_le_bytes());
        self.out.write_all(&h)?;
        self.out.write_all(frame)?;
        self.records += 1;
        Ok(())
    }

    /// Appends one record with capture time `ts_micros` (microseconds since
    /// the Unix epoch, must be >= 0) and the whole frame.
    pub fn write_frame(&mut self, ts_micros: i64, frame: &[u8]) -> io::Result<()> {
        let invalid = |what: &str| io::Error::new(io::ErrorKind::InvalidInput, what.to_string());
        let secs = u32::try_from(ts_micros.div_euclid(1_000_000))
            .map_err(|_| invalid("timestamp outside the pcap u32 seconds range"))?;
        let usec = ts_micros.rem_euclid(1_000_000) as u32;
        let len = u32::try_from(frame.len())
            .ok()
            .filter(|&l| l <= SNAPLEN)
            .ok_or_else(|| invalid("frame longer than the snaplen"))?;
        let mut h = [0u8; RECORD_HEADER_LEN];
        h[0..4].copy_from_slice(&secs.to_le_bytes());
        h[4..8].copy_from_slice(&usec.to_le_bytes());
        h[8..12].copy_from_slice(&len.to_le_bytes());
        h[12..16].copy_from_slice(&len.to_le_bytes());
        self.out.write_all(&h)?;
        self.out.write_all(frame)?;
        self.records += 1;
        Ok(())
    }

    /// Records written so far.
    pub fn records(&self) -> u64 {
        self.records
    }

    /// Flushes and returns the inner writer.
    pub fn finish(mut self) -> io::Result<W> {
        self.out.flush()?;
        Ok(self.out)
    }
}

/// One record read back by [`read_pcap`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Record<'a> {
    /// Capture time in microseconds since the Unix epoch.
    pub ts_micros: i64,
    /// Original length on the wire.
    pub orig_len: u32,
    /// The captured bytes.
    pub data: &'a [u8],
}

/// Reads a little-endian microsecond pcap as written by [`PcapWriter`]
/// (for tests). Every length is checked against what remains; other magics
/// and linktypes are rejected with a message.
pub fn read_pcap(bytes: &[u8]) -> Result<Vec<Record<'_>>, String> {
    let u32_at = |b: &[u8], at: usize| -> Option<u32> {
        b.get(at..at + 4)
            .map(|s| u32::from_le_bytes([s[0], s[1], s[2], s[3]]))
    };
    let header = bytes
        .get(..GLOBAL_HEADER_LEN)
        .ok_or("file shorter than the pcap global header")?;
    if u32_at(header, 0) != Some(MAGIC) {
        return Err("not a little-endian microsecond pcap".into());
    }
    if u32_at(header, 20) != Some(LINKTYPE_ETHERNET) {
        return Err("linktype is not Ethernet".into());
    }
    let mut out = Vec::new();
    let mut rest = &bytes[GLOBAL_HEADER_LEN..];
    while !rest.is_empty() {
        let idx = out.len() + 1;
        let h = rest
            .get(..RECORD_HEADER_LEN)
            .ok_or_else(|| format!("record {idx}: truncated record header"))?;
        let (sec, usec, incl, orig) =
            match (u32_at(h, 0), u32_at(h, 4), u32_at(h, 8), u32_at(h, 12)) {
                (Some(a), Some(b), Some(c), Some(d)) => (a, b, c, d),
                _ => return Err(format!("record {idx}: truncated record header")),
            };
        if incl > SNAPLEN {
            return Err(format!("record {idx}: incl_len {incl} exceeds snaplen"));
        }
        let data = rest
            .get(RECORD_HEADER_LEN..RECORD_HEADER_LEN + incl as usize)
            .ok_or_else(|| format!("record {idx}: cut short"))?;
        out.push(Record {
            ts_micros: i64::from(sec) * 1_000_000 + i64::from(usec),
            orig_len: orig,
            data,
        });
        rest = &rest[RECORD_HEADER_LEN + incl as usize..];
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn writes_the_classic_global_header() {
        let w = PcapWriter::new(Vec::new()).unwrap();
        let bytes = w.finish().unwrap();
        assert_eq!(
            bytes,
            [
                0xd4, 0xc3, 0xb2, 0xa1, 2, 0, 4, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff, 0, 0, 1, 0,
                0, 0
            ]
        );
    }

    #[test]
    fn records_round_trip_through_the_reader() {
        let mut w = PcapWriter::new(Vec::new()).unwrap();
        w.write_frame(1_767_225_603_000_040, &[1, 2, 3]).unwrap();
        w.write_frame(1_767_225_604_999_999, &[]).unwrap();
        assert_eq!(w.records(), 2);
        let bytes = w.finish().unwrap();
        let recs = read_pcap(&bytes).unwrap();
        assert_eq!(recs.len(), 2);
        assert_eq!(recs[0].ts_micros, 1_767_225_603_000_040);
        assert_eq!(recs[0].data, &[1, 2, 3]);
        assert_eq!(recs[0].orig_len, 3);
        assert_eq!(recs[1].ts_micros, 1_767_225_604_999_999);
    }

    #[test]
    fn negative_timestamps_are_rejected() {
        let mut w = PcapWriter::new(Vec::new()).unwrap();
        assert!(w.write_frame(-1, &[0]).is_err());
    }

    #[test]
    fn reader_reports_a_cut_record_instead_of_panicking() {
        let mut w = PcapWriter::new(Vec::new()).unwrap();
        w.write_frame(0, &[9; 10]).unwrap();
        let bytes = w.finish().unwrap();
        let err = read_pcap(&bytes[..bytes.len() - 1]).unwrap_err();
        assert!(err.contains("cut short"), "{err}");
    }
}
