//! Packet sources: [`file`] reads capture files and [`live`] captures from
//! an interface, both through libpcap.

pub mod file;
pub mod live;

use shaobing_wire::Timestamp;

use crate::decode::LinkType;

/// One captured frame, borrowed from the source until the next one is read.
#[derive(Clone, Copy, Debug)]
pub struct RawPacket<'a> {
    /// Capture time.
    pub ts: Timestamp,
    /// Length on the wire (may exceed `data.len()` when snaplen cut it).
    pub wire_len: u32,
    /// The captured bytes.
    pub data: &'a [u8],
    /// Link-layer framing of `data`.
    pub link: LinkType,
}
