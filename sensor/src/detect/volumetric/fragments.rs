//! Which vector the later fragments of a datagram belong to.
//!
//! Only a datagram's first fragment carries the UDP header, so only it
//! shows the source port that makes a response an amplification vector
//! (DNS from port 53, NTP from 123...). Amplification responses are large
//! and often fragmented (the RRSIG responses of the shared corpus are
//! 3,930 bytes: a head and two more fragments each), and counting the
//! later fragments as `ip_fragment_flood` split one attack into two and
//! reported a third of its bytes. So the vector of each first fragment
//! classified as amplification is remembered by (source, destination,
//! protocol, identification), and the datagram's later fragments count
//! under it.
//!
//! The memory is a direct-mapped table of [`SLOTS`] entries, allocated
//! once: a newer head landing in the same slot replaces the older one,
//! whose remaining fragments then count as `ip_fragment_flood`, as every
//! later fragment did before. An entry serves for at most
//! [`MAX_AGE_MICROS`] of capture time after its head. The slot hash has a
//! fixed seed, so a replay classifies the same way every time; crafted
//! collisions can only send an attacker's own fragments back to
//! `ip_fragment_flood`. A later fragment that arrives before its head
//! (reordering) also counts as `ip_fragment_flood`.

use crate::decode::{Fragment, Header};
use crate::detect::fasthash::{hash_key, ip_key};

use super::vector::{classify, Vector};

/// Entries of the table (about 56 bytes each).
pub const SLOTS: usize = 4096;
/// Capture time an entry serves after its first fragment.
pub const MAX_AGE_MICROS: i64 = 30_000_000;
const SEED: u64 = 0x6672_6167_7665_6374;

#[derive(Clone, Copy, Debug)]
struct Slot {
    src: u128,
    dst: u128,
    id: u32,
    proto: u8,
    vector: Vector,
    ts: i64,
}

/// Classifies packets like [`classify`], except that later fragments of
/// an amplification response count under the response's vector.
#[derive(Debug)]
pub struct FragmentVectors {
    slots: Vec<Option<Slot>>,
}

impl Default for FragmentVectors {
    fn default() -> Self {
        FragmentVectors::new()
    }
}

impl FragmentVectors {
    /// An empty table.
    pub fn new() -> Self {
        FragmentVectors {
            slots: vec![None; SLOTS],
        }
    }

    /// The vector `d` (captured at `ts` µs) counts under, if any.
    pub fn classify(&mut self, d: &Header, wire_len: u32, ts: i64) -> Option<Vector> {
        match d.fragment {
            Fragment::None => classify(d, wire_len),
            Fragment::First => {
                let v = classify(d, wire_len);
                if let Some(vector) = v.filter(|v| v.amplification_port().is_some()) {
                    let (src, dst) = (ip_key(d.src), ip_key(d.dst));
                    let slot = Slot {
                        src,
                        dst,
                        id: d.frag_id,
                        proto: d.proto,
                        vector,
                        ts,
                    };
                    if let Some(s) = self.slots.get_mut(index(src, dst, d.frag_id, d.proto)) {
                        *s = Some(slot);
                    }
                }
                v
            }
            Fragment::Later => {
                let (src, dst) = (ip_key(d.src), ip_key(d.dst));
                let remembered = self
                    .slots
                    .get(index(src, dst, d.frag_id, d.proto))
                    .copied()
                    .flatten()
                    .filter(|s| {
                        s.src == src
                            && s.dst == dst
                            && s.id == d.frag_id
                            && s.proto == d.proto
                            && ts.saturating_sub(s.ts) <= MAX_AGE_MICROS
                    });
                Some(remembered.map_or(Vector::IpFragmentFlood, |s| s.vector))
            }
        }
    }
}

fn index(src: u128, dst: u128, id: u32, proto: u8) -> usize {
    let key = src ^ dst.rotate_left(64) ^ (u128::from(id) << 8 | u128::from(proto));
    (hash_key(key, SEED) % SLOTS as u64) as usize
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::decode::proto;

    fn fragment(src: &str, id: u32, fragment: Fragment, src_port: u16) -> Header {
        Header {
            src: src.parse().unwrap(),
            dst: "10.10.10.10".parse().unwrap(),
            proto: proto::UDP,
            ttl: 55,
            src_port,
            dst_port: if fragment == Fragment::Later { 0 } else { 22 },
            tcp_flags: 0,
            tcp_seq: 0,
            tcp_ack: 0,
            has_payload: false,
            fragment,
            frag_id: id,
        }
    }

    #[test]
    fn later_fragments_of_an_amplification_response_count_under_it() {
        let mut f = FragmentVectors::new();
        let head = fragment("198.51.100.53", 7, Fragment::First, 53);
        let tail = fragment("198.51.100.53", 7, Fragment::Later, 0);
        assert_eq!(f.classify(&head, 1514, 0), Some(Vector::DnsAmplification));
        assert_eq!(f.classify(&tail, 1514, 10), Some(Vector::DnsAmplification));
        assert_eq!(f.classify(&tail, 1514, 20), Some(Vector::DnsAmplification));
    }

    #[test]
    fn other_fragments_stay_ip_fragment_flood() {
        let mut f = FragmentVectors::new();
        // Another datagram id, another source, a head that is not an
        // amplification response, and a tail seen too late.
        let head = fragment("198.51.100.53", 7, Fragment::First, 53);
        assert_eq!(f.classify(&head, 1514, 0), Some(Vector::DnsAmplification));
        for (src, id, ts) in [
            ("198.51.100.53", 8, 1),
            ("198.51.100.54", 7, 1),
            ("198.51.100.53", 7, MAX_AGE_MICROS + 1),
        ] {
            let tail = fragment(src, id, Fragment::Later, 0);
            assert_eq!(
                f.classify(&tail, 1514, ts),
                Some(Vector::IpFragmentFlood),
                "{src} {id} {ts}"
            );
        }
        let plain = fragment("198.51.100.60", 9, Fragment::First, 40_000);
        assert_eq!(f.classify(&plain, 1514, 2), Some(Vector::IpFragmentFlood));
        let tail = fragment("198.51.100.60", 9, Fragment::Later, 0);
        assert_eq!(f.classify(&tail, 1514, 3), Some(Vector::IpFragmentFlood));
    }

    #[test]
    fn the_table_stays_bounded_and_keeps_the_newest_heads() {
        let mut f = FragmentVectors::new();
        let n = 10 * SLOTS as u32;
        for id in 0..n {
            let head = fragment("198.51.100.53", id, Fragment::First, 53);
            f.classify(&head, 1514, 0);
        }
        assert_eq!(f.slots.len(), SLOTS);
        // The last head always has its slot.
        let tail = fragment("198.51.100.53", n - 1, Fragment::Later, 0);
        assert_eq!(f.classify(&tail, 1514, 1), Some(Vector::DnsAmplification));
    }
}
