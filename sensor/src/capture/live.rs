//! Live capture from a network interface through libpcap.
//!
//! Each worker opens its own handle on the interface. With more than one
//! worker the handles join one `PACKET_FANOUT` group in hash mode (with the
//! defragment flag), so the kernel sends both directions of a flow, and
//! every fragment of a datagram, to the same worker: flow state never
//! crosses threads.

use std::os::fd::AsRawFd;

use pcap::{Active, Capture};

use shaobing_wire::Timestamp;

use super::RawPacket;
use crate::decode::LinkType;

/// Capture settings (`[capture]` in the config).
#[derive(Clone, Debug, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CaptureConfig {
    /// Interface to capture on (`--interface` overrides).
    pub interface: Option<String>,
    /// Capture workers, each with its own handle and thread. Default 1.
    /// More workers spread decoding and leak detection over cores.
    #[serde(default = "default_workers")]
    pub workers: usize,
    /// Bytes kept of each packet. Default 65535 (whole packets: leak
    /// detection needs payloads). 128 is enough for volumetric detection
    /// only.
    #[serde(default = "default_snaplen")]
    pub snaplen: u32,
    /// Kernel ring buffer per worker, in MiB. Default 256. A larger ring
    /// rides out longer bursts without drops, at that cost in memory.
    #[serde(default = "default_buffer_mib")]
    pub buffer_mib: u32,
    /// BPF filter (tcpdump syntax). Default: none (everything).
    #[serde(default)]
    pub bpf: String,
    /// Promiscuous mode. Default true (a SPAN port carries others' traffic).
    #[serde(default = "default_true")]
    pub promiscuous: bool,
    /// PACKET_FANOUT group id (0..65535). Default: derived from the
    /// process id. Set it when two sensors share an interface.
    #[serde(default)]
    pub fanout_group: Option<u16>,
}

fn default_workers() -> usize {
    1
}
fn default_snaplen() -> u32 {
    65535
}
fn default_buffer_mib() -> u32 {
    256
}
fn default_true() -> bool {
    true
}

impl Default for CaptureConfig {
    fn default() -> Self {
        CaptureConfig {
            interface: None,
            workers: 1,
            snaplen: 65535,
            buffer_mib: 256,
            bpf: String::new(),
            promiscuous: true,
            fanout_group: None,
        }
    }
}

/// Why capture could not start.
#[derive(Debug, thiserror::Error)]
pub enum LiveError {
    /// libpcap refused to open or configure the interface.
    #[error("interface {interface}: {what}: {message}")]
    Pcap {
        /// The interface.
        interface: String,
        /// What was being done.
        what: &'static str,
        /// libpcap's message.
        message: String,
    },
    /// The interface's link type is not one the decoder handles.
    #[error("interface {interface}: unsupported link type {dlt}")]
    LinkType {
        /// The interface.
        interface: String,
        /// The DLT number.
        dlt: i32,
    },
    /// Joining the fanout group failed.
    #[error("interface {interface}: joining PACKET_FANOUT group {group}: {source}")]
    Fanout {
        /// The interface.
        interface: String,
        /// The group.
        group: u16,
        /// The kernel's answer.
        source: std::io::Error,
    },
}

/// One opened capture handle (non-blocking).
pub struct LiveHandle {
    /// The libpcap handle.
    pub cap: Capture<Active>,
    /// Its link type.
    pub link: LinkType,
}

impl LiveHandle {
    /// The next packet, as a [`RawPacket`] like a capture file's. A
    /// non-blocking handle with nothing queued answers
    /// `pcap::Error::TimeoutExpired` (then [`wait`](Self::wait)).
    pub fn next_packet(&mut self) -> Result<RawPacket<'_>, pcap::Error> {
        let link = self.link;
        let p = self.cap.next_packet()?;
        let usec = u32::try_from(p.header.ts.tv_usec.clamp(0, 999_999)).unwrap_or(0);
        Ok(RawPacket {
            ts: Timestamp::from_parts(p.header.ts.tv_sec, usec),
            wire_len: p.header.len,
            data: p.data,
            link,
        })
    }

    /// Waits up to `timeout_ms` for the handle to become readable (after
    /// `next_packet` found nothing). Returns early on a signal.
    pub fn wait(&self, timeout_ms: u16) {
        sys::wait_readable(self.cap.as_raw_fd(), timeout_ms);
    }
}

/// Opens `cfg.workers` handles on `interface`, joined in one fanout group
/// when there is more than one. Needs CAP_NET_RAW (root, or the
/// capability); call it before dropping privileges.
pub fn open(interface: &str, cfg: &CaptureConfig) -> Result<Vec<LiveHandle>, LiveError> {
    let pcap_err = |what| {
        let interface = interface.to_string();
        move |e: pcap::Error| LiveError::Pcap {
            interface,
            what,
            message: e.to_string(),
        }
    };
    let group = cfg
        .fanout_group
        .unwrap_or_else(|| (std::process::id() & 0xffff) as u16);
    let mut handles = Vec::with_capacity(cfg.workers);
    for _ in 0..cfg.workers.max(1) {
        let mut cap = Capture::from_device(interface)
            .map_err(pcap_err("open"))?
            .promisc(cfg.promiscuous)
            .snaplen(i32::try_from(cfg.snaplen).unwrap_or(65535))
            .buffer_size(i32::try_from(u64::from(cfg.buffer_mib) << 20).unwrap_or(i32::MAX))
            .timeout(100)
            .immediate_mode(false)
            .open()
            .map_err(pcap_err("activate"))?;
        if !cfg.bpf.is_empty() {
            cap.filter(&cfg.bpf, true).map_err(pcap_err("BPF filter"))?;
        }
        // Non-blocking: with TPACKET_V3 a blocking read waits forever on a
        // silent link (the read timeout only retires non-empty blocks), so a
        // worker would never see a stop request. Workers wait with
        // [`LiveHandle::wait`] instead.
        let cap = cap.setnonblock().map_err(pcap_err("non-blocking mode"))?;
        let dlt = cap.get_datalink().0;
        let link = LinkType::from_dlt(dlt).ok_or_else(|| LiveError::LinkType {
            interface: interface.to_string(),
            dlt,
        })?;
        if cfg.workers > 1 {
            sys::join_fanout(cap.as_raw_fd(), group).map_err(|source| LiveError::Fanout {
                interface: interface.to_string(),
                group,
                source,
            })?;
        }
        handles.push(LiveHandle { cap, link });
    }
    Ok(handles)
}

/// The two socket calls the `pcap` crate does not expose.
#[allow(unsafe_code)]
mod sys {
    use std::io;
    use std::os::fd::RawFd;

    /// poll(2) for readability with a timeout; errors (EINTR) just return.
    pub fn wait_readable(fd: RawFd, timeout_ms: u16) {
        let mut pfd = libc::pollfd {
            fd,
            events: libc::POLLIN,
            revents: 0,
        };
        // SAFETY: one valid pollfd on the stack, count 1; `fd` belongs to a
        // live pcap handle for the duration of the call.
        let _ = unsafe { libc::poll(&mut pfd, 1, libc::c_int::from(timeout_ms)) };
    }

    const SOL_PACKET: libc::c_int = 263;
    const PACKET_FANOUT: libc::c_int = 18;
    const PACKET_FANOUT_HASH: u32 = 0;
    const PACKET_FANOUT_FLAG_DEFRAG: u32 = 0x8000;

    /// Joins `fd` (an AF_PACKET socket) to fanout group `group` in
    /// symmetric flow-hash mode, defragmenting first.
    pub fn join_fanout(fd: RawFd, group: u16) -> io::Result<()> {
        let arg: u32 = u32::from(group) | ((PACKET_FANOUT_HASH | PACKET_FANOUT_FLAG_DEFRAG) << 16);
        // SAFETY: `fd` is a valid socket owned by a live pcap handle for
        // the duration of the call; `arg` is a u32 on the stack and its size
        // is passed exactly, as PACKET_FANOUT expects.
        let rc = unsafe {
            libc::setsockopt(
                fd,
                SOL_PACKET,
                PACKET_FANOUT,
                (&arg as *const u32).cast(),
                std::mem::size_of::<u32>() as libc::socklen_t,
            )
        };
        if rc == 0 {
            Ok(())
        } else {
            Err(io::Error::last_os_error())
        }
    }
}
