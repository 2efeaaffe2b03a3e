//! The write-ahead log on a full disk (a small tmpfs; needs root, skipped
//! otherwise): appends fail, count in `wal_full_total`, leave no empty
//! segments, and what was written before stays readable.

use std::path::Path;
use std::process::Command;
use std::sync::atomic::Ordering::Relaxed;
use std::sync::Arc;

use shaobing_collector::config::WalConfig;
use shaobing_collector::metrics::Metrics;
use shaobing_collector::store::wal::{encode_record, Wal, WalError};

struct Tmpfs(tempfile::TempDir);

impl Tmpfs {
    fn mount(size: &str) -> Option<Tmpfs> {
        let dir = tempfile::tempdir().ok()?;
        let ok = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
            .arg(dir.path())
            .status()
            .map(|s| s.success())
            .unwrap_or(false);
        ok.then_some(Tmpfs(dir))
    }
    fn path(&self) -> &Path {
        self.0.path()
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg(self.0.path()).status();
    }
}

fn segments(dir: &Path) -> Vec<(String, u64)> {
    let mut v: Vec<(String, u64)> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| {
            let e = e.unwrap();
            (
                e.file_name().to_string_lossy().to_string(),
                e.metadata().unwrap().len(),
            )
        })
        .collect();
    v.sort();
    v
}

#[test]
fn a_full_disk_refuses_appends_without_empty_segments_or_torn_records() {
    let Some(fs) = Tmpfs::mount("256k") else {
        eprintln!("skipping: cannot mount a tmpfs (needs root)");
        return;
    };
    let metrics = Arc::new(Metrics::default());
    let config = WalConfig {
        dir: fs.path().join("wal"),
        max_bytes: 1 << 30,
        segment_bytes: 64 << 10,
        fsync: true,
    };
    let wal = Wal::open(&config, metrics.clone()).unwrap();
    let record = encode_record(&[b'x'; 10_000]);
    let mut stored = 0;
    let mut failures = 0;
    for _ in 0..100 {
        match wal.append(&record) {
            Ok(()) => stored += 1,
            Err(WalError::Io { .. }) => failures += 1,
            Err(e) => panic!("unexpected {e}"),
        }
    }
    assert!(
        stored > 5 && failures > 10,
        "stored {stored}, failed {failures}"
    );
    assert_eq!(metrics.wal_full.load(Relaxed), failures);
    let segs = segments(&config.dir);
    assert!(segs.iter().all(|(_, len)| *len > 0), "{segs:?}");
    assert!(segs.len() <= 5, "{segs:?}");
    // Every segment holds whole records only, and all of them.
    let mut records = 0;
    while let Some((seq, path)) = wal.oldest() {
        let r = wal.read(&path).unwrap();
        assert!(r.iter().all(|p| p.len() == 10_000));
        records += r.len();
        wal.remove(seq).unwrap();
    }
    assert_eq!(records, stored);
    assert_eq!(metrics.wal_corrupt_records.load(Relaxed), 0);
}
