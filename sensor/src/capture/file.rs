//! Reading pcap and pcapng files through libpcap, merged in capture-time
//! order across files.
//!
//! A file that is missing, not a capture, has an unsupported link type, or
//! is corrupt before its end is an error naming the file (and the record
//! number for corruption). A last record cut short (the file ends inside it,
//! as when a capture was copied while being written) is a warning: the
//! records before it are all delivered.

use std::ops::ControlFlow;
use std::path::{Path, PathBuf};

use pcap::{Capture, Offline};
use shaobing_wire::Timestamp;

use super::RawPacket;
use crate::decode::LinkType;

/// Why a capture file could not be read.
#[derive(Debug, thiserror::Error)]
pub enum CaptureError {
    /// The file is missing, unreadable, or not a pcap/pcapng file.
    #[error("{path}: cannot open capture: {message}")]
    Open {
        /// The file.
        path: PathBuf,
        /// libpcap's message.
        message: String,
    },
    /// The file's link type is not one the decoder handles.
    #[error("{path}: unsupported link type {dlt} ({name}); supported: Ethernet, Linux SLL/SLL2, raw IP, BSD loopback")]
    UnsupportedLinkType {
        /// The file.
        path: PathBuf,
        /// The DLT number.
        dlt: i32,
        /// libpcap's name for it.
        name: String,
    },
    /// The file uses a feature libpcap cannot read (a pcapng file whose
    /// interfaces differ in link type or snapshot length).
    #[error("{path}: unsupported capture after record {record}: {message} (libpcap reads only pcapng files whose interfaces share one link type and snapshot length; split it per interface, e.g. `tshark -r FILE -Y frame.interface_id==N -w PART.pcapng`, and replay the parts)")]
    Unsupported {
        /// The file.
        path: PathBuf,
        /// Number of records read successfully before it.
        record: u64,
        /// libpcap's message.
        message: String,
    },
    /// A record in the middle of the file is corrupt.
    #[error("{path}: corrupt capture after record {record}: {message}")]
    Corrupt {
        /// The file.
        path: PathBuf,
        /// Number of records read successfully before the corruption.
        record: u64,
        /// libpcap's message.
        message: String,
    },
}

/// Something wrong but survivable, reported after the replay.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CaptureWarning {
    /// The file.
    pub path: PathBuf,
    /// What happened.
    pub message: String,
}

impl std::fmt::Display for CaptureWarning {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.path.display(), self.message)
    }
}

struct Source {
    path: PathBuf,
    // Declared before `_stdio_buf`: fields drop in order, and libpcap's
    // `FILE` (closed with `cap`) reads into that buffer until then.
    cap: Capture<Offline>,
    _stdio_buf: Box<[u8]>,
    link: LinkType,
    records: u64,
    // The next packet, copied out of libpcap's buffer (multi-file merge).
    ts: Timestamp,
    wire_len: u32,
    buf: Vec<u8>,
    done: bool,
}

/// Opens capture files and replays their packets in capture-time order.
pub struct FileReplay {
    sources: Vec<Source>,
    warnings: Vec<CaptureWarning>,
}

fn open(path: &Path) -> Result<Source, CaptureError> {
    let (cap, stdio_buf) = stdio::open(path).map_err(|message| CaptureError::Open {
        path: path.to_path_buf(),
        message,
    })?;
    let dl = cap.get_datalink();
    let link = LinkType::from_dlt(dl.0).ok_or_else(|| CaptureError::UnsupportedLinkType {
        path: path.to_path_buf(),
        dlt: dl.0,
        name: dl.get_name().unwrap_or_else(|_| "unknown".into()),
    })?;
    Ok(Source {
        path: path.to_path_buf(),
        cap,
        _stdio_buf: stdio_buf,
        link,
        records: 0,
        ts: Timestamp::default(),
        wire_len: 0,
        buf: Vec::new(),
        done: false,
    })
}

/// Opening a capture file with a large read buffer.
///
/// libpcap reads offline files through C stdio, whose buffer glibc sizes
/// from the file system's block size: 4 KiB, one `read` system call per
/// 4 KiB (148,560 calls for a 608 MB capture, a third of the replay floor).
/// Opening the `FILE` here lets `setvbuf` give it a larger buffer before
/// libpcap reads the header.
#[allow(unsafe_code)]
mod stdio {
    use std::ffi::{c_char, c_uint, CStr};
    use std::os::fd::IntoRawFd;
    use std::path::Path;
    use std::ptr::NonNull;

    use pcap::{Capture, Offline};

    /// Size of the stdio buffer libpcap reads through.
    pub const BUFFER: usize = 32 << 10;

    // libpcap's PCAP_ERRBUF_SIZE.
    const ERRBUF_SIZE: usize = 256;
    // PCAP_TSTAMP_PRECISION_MICRO, as `Capture::from_file` asks for.
    const PRECISION_MICRO: c_uint = 0;

    extern "C" {
        // In every libpcap since 1.5 (the `pcap` crate needs 1.0 or later,
        // Debian ships 1.10); the crate links the library.
        fn pcap_fopen_offline_with_tstamp_precision(
            fp: *mut libc::FILE,
            precision: c_uint,
            errbuf: *mut c_char,
        ) -> *mut libc::c_void;
    }

    /// Opens `path` for libpcap with a [`BUFFER`]-byte stdio buffer. The
    /// buffer is returned and must outlive the capture.
    pub fn open(path: &Path) -> Result<(Capture<Offline>, Box<[u8]>), String> {
        let file = std::fs::File::open(path).map_err(|e| e.to_string())?;
        let fd = file.into_raw_fd();
        // SAFETY: `fd` is an open descriptor we own; on success the FILE
        // owns it, on failure we close it.
        let fp = unsafe { libc::fdopen(fd, c"rb".as_ptr()) };
        if fp.is_null() {
            let e = std::io::Error::last_os_error();
            // SAFETY: still ours, as fdopen failed.
            unsafe { libc::close(fd) };
            return Err(e.to_string());
        }
        let mut buf = vec![0u8; BUFFER].into_boxed_slice();
        // A refused setvbuf leaves stdio's own buffer: slower, still right.
        // SAFETY: no I/O has happened on `fp`; `buf` lives as long as the
        // returned capture (the caller keeps it beside the capture and
        // drops it after).
        let _ = unsafe { libc::setvbuf(fp, buf.as_mut_ptr().cast(), libc::_IOFBF, BUFFER) };
        let mut errbuf = [0 as c_char; ERRBUF_SIZE];
        // SAFETY: `fp` is a valid read stream, `errbuf` has libpcap's size.
        let handle = unsafe {
            pcap_fopen_offline_with_tstamp_precision(fp, PRECISION_MICRO, errbuf.as_mut_ptr())
        };
        let Some(handle) = NonNull::new(handle) else {
            // SAFETY: libpcap writes a NUL-terminated message on failure,
            // and does not close a FILE it was handed.
            let message = unsafe { CStr::from_ptr(errbuf.as_ptr()) }
                .to_string_lossy()
                .into_owned();
            // SAFETY: `fp` is ours and no longer used.
            unsafe { libc::fclose(fp) };
            return Err(message);
        };
        // `pcap_t` is libpcap's handle type; the crate's `From` takes the
        // pointer and closes it (and the FILE) on drop.
        Ok((Capture::from(handle.cast()), buf))
    }
}

fn ts_of(h: &pcap::PacketHeader) -> Timestamp {
    let usec = u32::try_from(h.ts.tv_usec.clamp(0, 999_999)).unwrap_or(0);
    Timestamp::from_parts(h.ts.tv_sec, usec)
}

/// What a libpcap read error means: a truncated last record ends the
/// file with a warning; anything else fails the replay.
fn read_error(
    path: &Path,
    records: u64,
    e: pcap::Error,
    warnings: &mut Vec<CaptureWarning>,
) -> Result<Step<'static>, CaptureError> {
    let message = e.to_string();
    if message.contains("truncated") {
        warnings.push(CaptureWarning {
            path: path.to_path_buf(),
            message: format!(
                "last record is truncated after {} complete records ({message}); it was skipped",
                records
            ),
        });
        Ok(Step::End)
    } else if message.contains("different from the") {
        Err(CaptureError::Unsupported {
            path: path.to_path_buf(),
            record: records,
            message,
        })
    } else {
        Err(CaptureError::Corrupt {
            path: path.to_path_buf(),
            record: records,
            message,
        })
    }
}

/// What reading the next record gave.
enum Step<'a> {
    Packet(RawPacket<'a>),
    End,
}

impl Source {
    /// Reads the next record; end of file and a truncated last record both
    /// end the source (the latter with a warning).
    fn next(&mut self, warnings: &mut Vec<CaptureWarning>) -> Result<Step<'_>, CaptureError> {
        match self.cap.next_packet() {
            Ok(p) => {
                self.records += 1;
                Ok(Step::Packet(RawPacket {
                    ts: ts_of(p.header),
                    wire_len: p.header.len,
                    data: p.data,
                    link: self.link,
                }))
            }
            Err(pcap::Error::NoMorePackets) => Ok(Step::End),
            Err(e) => read_error(&self.path, self.records, e, warnings),
        }
    }

    /// Calls `f` with every record, libpcap driving the loop
    /// (`pcap_loop`): one file needs no merge, and a push loop costs about
    /// 100 instructions a packet less than pulling each record with
    /// `pcap_next_ex`. End of file and a truncated last record end it as
    /// in [`Source::next`]; `f` may stop it early.
    fn push_all<F>(
        &mut self,
        warnings: &mut Vec<CaptureWarning>,
        mut f: F,
    ) -> Result<(), CaptureError>
    where
        F: FnMut(&RawPacket<'_>) -> ControlFlow<()>,
    {
        let link = self.link;
        let stop = self.cap.breakloop_handle();
        let mut stopped = false;
        let mut records = self.records;
        let res = self.cap.for_each(None, |p| {
            if stopped {
                return;
            }
            records += 1;
            let raw = RawPacket {
                ts: ts_of(p.header),
                wire_len: p.header.len,
                data: p.data,
                link,
            };
            if f(&raw).is_break() {
                stopped = true;
                stop.breakloop();
            }
        });
        self.records = records;
        match res {
            Ok(()) => Ok(()),
            // A loop broken on request ends with an error of its own.
            Err(_) if stopped => Ok(()),
            Err(e) => read_error(&self.path, self.records, e, warnings).map(|_| ()),
        }
    }

    /// Reads the next record into the owned buffer (for merging).
    fn fill(&mut self, warnings: &mut Vec<CaptureWarning>) -> Result<(), CaptureError> {
        let mut buf = std::mem::take(&mut self.buf);
        let got = match self.next(warnings)? {
            Step::Packet(p) => {
                buf.clear();
                buf.extend_from_slice(p.data);
                Some((p.ts, p.wire_len))
            }
            Step::End => None,
        };
        self.buf = buf;
        match got {
            Some((ts, len)) => {
                self.ts = ts;
                self.wire_len = len;
            }
            None => self.done = true,
        }
        Ok(())
    }
}

impl FileReplay {
    /// Opens every file up front, so a bad path fails before any work.
    pub fn open<P: AsRef<Path>>(paths: &[P]) -> Result<FileReplay, CaptureError> {
        let sources = paths
            .iter()
            .map(|p| open(p.as_ref()))
            .collect::<Result<Vec<_>, _>>()?;
        Ok(FileReplay {
            sources,
            warnings: Vec::new(),
        })
    }

    /// Calls `f` with every packet of every file in capture-time order
    /// (ties go to the file named first). `f` may stop the replay early.
    pub fn for_each<F>(&mut self, mut f: F) -> Result<(), CaptureError>
    where
        F: FnMut(&RawPacket<'_>) -> ControlFlow<()>,
    {
        if let [single] = self.sources.as_mut_slice() {
            return single.push_all(&mut self.warnings, f);
        }
        for s in &mut self.sources {
            s.fill(&mut self.warnings)?;
        }
        loop {
            // Few files: a linear scan for the earliest beats a heap.
            let next = self
                .sources
                .iter()
                .enumerate()
                .filter(|(_, s)| !s.done)
                .min_by_key(|(i, s)| (s.ts, *i))
                .map(|(i, _)| i);
            let Some(i) = next else { return Ok(()) };
            let Some(s) = self.sources.get_mut(i) else {
                return Ok(());
            };
            let p = RawPacket {
                ts: s.ts,
                wire_len: s.wire_len,
                data: &s.buf,
                link: s.link,
            };
            if f(&p).is_break() {
                return Ok(());
            }
            s.fill(&mut self.warnings)?;
        }
    }

    /// Warnings gathered so far (truncated last records).
    pub fn warnings(&self) -> &[CaptureWarning] {
        &self.warnings
    }
}
