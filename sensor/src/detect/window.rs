//! One-second rate windows advanced by packet timestamps.

/// Width of one step of a window, in microseconds (100 ms).
pub const SLOT_MICROS: i64 = 100_000;
/// Steps per window: 10 × 100 ms = 1 s.
pub const SLOTS: usize = 10;

/// Packets and bytes over the last second of capture time, in 100 ms steps.
///
/// The window covers the current (partial) step and the nine before it, so
/// a rate is known 100 ms after it changes, not a second later. Time only
/// moves forward: a packet older than the current step is counted in the
/// current step (captures are not always perfectly ordered). 120 bytes.
#[derive(Clone, Debug, Default)]
pub struct RateWindow {
    slot: i64,
    packets: [u32; SLOTS],
    bytes: [u64; SLOTS],
    sum_packets: u64,
    sum_bytes: u64,
}

/// The step a timestamp (µs) falls in.
#[inline]
pub fn slot_of(ts_micros: i64) -> i64 {
    ts_micros.div_euclid(SLOT_MICROS)
}

#[inline]
fn index(slot: i64) -> usize {
    // rem_euclid with a positive modulus is in 0..SLOTS.
    usize::try_from(slot.rem_euclid(SLOTS as i64)).unwrap_or(0)
}

impl RateWindow {
    /// Moves the window forward to `slot`, dropping steps that fell out.
    #[inline]
    pub fn advance(&mut self, slot: i64) {
        if slot <= self.slot {
            return;
        }
        if slot - self.slot >= SLOTS as i64 {
            *self = RateWindow {
                slot,
                ..RateWindow::default()
            };
            return;
        }
        for s in self.slot + 1..=slot {
            let i = index(s);
            if let (Some(p), Some(b)) = (self.packets.get_mut(i), self.bytes.get_mut(i)) {
                self.sum_packets -= u64::from(*p);
                self.sum_bytes -= *b;
                *p = 0;
                *b = 0;
            }
        }
        self.slot = slot;
    }

    /// Counts one packet of `bytes` at step `slot`.
    #[inline]
    pub fn add(&mut self, slot: i64, bytes: u32) {
        self.advance(slot);
        let i = index(self.slot);
        if let (Some(p), Some(b)) = (self.packets.get_mut(i), self.bytes.get_mut(i)) {
            *p = p.saturating_add(1);
            *b += u64::from(bytes);
            self.sum_packets += 1;
            self.sum_bytes += u64::from(bytes);
        }
    }

    /// Counts `packets` packets of `bytes` bytes in all at step `slot`.
    #[inline]
    pub fn add_bulk(&mut self, slot: i64, packets: u32, bytes: u64) {
        self.advance(slot);
        let i = index(self.slot);
        if let (Some(p), Some(b)) = (self.packets.get_mut(i), self.bytes.get_mut(i)) {
            *p = p.saturating_add(packets);
            *b += bytes;
            self.sum_packets += u64::from(packets);
            self.sum_bytes += bytes;
        }
    }

    /// Packets in the last second.
    #[inline]
    pub fn pps(&self) -> u64 {
        self.sum_packets
    }

    /// Bits in the last second.
    #[inline]
    pub fn bps(&self) -> u64 {
        self.sum_bytes * 8
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_the_last_second_only() {
        let mut w = RateWindow::default();
        for i in 0..100 {
            w.add(slot_of(i * 10_000), 100); // 100 packets over 1 s
        }
        assert_eq!(w.pps(), 100);
        assert_eq!(w.bps(), 100 * 100 * 8);
        w.advance(slot_of(1_050_000));
        assert_eq!(w.pps(), 90, "the first 100 ms fell out");
        w.advance(slot_of(10_000_000));
        assert_eq!(w.pps(), 0);
    }

    #[test]
    fn late_packets_count_in_the_current_step() {
        let mut w = RateWindow::default();
        w.add(50, 1);
        w.add(40, 1);
        assert_eq!(w.pps(), 2);
        w.advance(59);
        assert_eq!(w.pps(), 2);
        w.advance(60);
        assert_eq!(w.pps(), 0);
    }
}
