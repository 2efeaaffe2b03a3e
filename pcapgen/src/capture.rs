//! A capture under construction: timed frames from any number of
//! generators, sorted by time when written.

use std::io::{self, Write};

use crate::pcap::PcapWriter;

/// One frame and its capture time.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TimedFrame {
    /// Capture time in microseconds since the Unix epoch.
    pub ts_micros: i64,
    /// The whole Ethernet frame.
    pub data: Vec<u8>,
}

/// Frames collected from several generators (background, attack, sessions)
/// in any order. [`Capture::write_pcap`] sorts them by time first; the sort
/// is stable, so frames with equal timestamps keep the order they were
/// added in (a generator's own order is preserved).
#[derive(Clone, Debug, Default)]
pub struct Capture {
    frames: Vec<TimedFrame>,
}

impl Capture {
    /// An empty capture.
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds one frame.
    pub fn push(&mut self, ts_micros: i64, data: Vec<u8>) {
        self.frames.push(TimedFrame { ts_micros, data });
    }

    /// Adds frames from a generator.
    pub fn extend(&mut self, frames: impl IntoIterator<Item = TimedFrame>) {
        self.frames.extend(frames);
    }

    /// Frames added so far (in insertion order until sorted).
    pub fn frames(&self) -> &[TimedFrame] {
        &self.frames
    }

    /// Number of frames.
    pub fn len(&self) -> usize {
        self.frames.len()
    }

    /// Whether no frame was added.
    pub fn is_empty(&self) -> bool {
        self.frames.is_empty()
    }

    /// Sorts the frames by time (stable).
    pub fn sort(&mut self) {
        self.frames.sort_by_key(|f| f.ts_micros);
    }

    /// Sorts and writes a classic pcap to `out`.
    pub fn write_pcap<W: Write>(&mut self, out: W) -> io::Result<W> {
        self.sort();
        let mut w = PcapWriter::new(out)?;
        for f in &self.frames {
            w.write_frame(f.ts_micros, &f.data)?;
        }
        w.finish()
    }

    /// Sorts and returns the pcap file's bytes.
    pub fn to_pcap_bytes(&mut self) -> io::Result<Vec<u8>> {
        let size = 24 + self.frames.iter().map(|f| 16 + f.data.len()).sum::<usize>();
        self.write_pcap(Vec::with_capacity(size))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pcap::read_pcap;

    #[test]
    fn frames_are_written_in_time_order_and_ties_keep_insertion_order() {
        let mut c = Capture::new();
        c.push(30, vec![3]);
        c.push(10, vec![1]);
        c.push(20, vec![2, 0]);
        c.push(20, vec![2, 1]);
        let bytes = c.to_pcap_bytes().unwrap();
        let recs = read_pcap(&bytes).unwrap();
        let data: Vec<&[u8]> = recs.iter().map(|r| r.data).collect();
        assert_eq!(data, vec![&[1][..], &[2, 0], &[2, 1], &[3]]);
    }
}
