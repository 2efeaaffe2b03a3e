//! `shaobing-sensor signatures test`: what a signature set fires on some
//! captures, per signature, and with a baseline set, which incidents a
//! change adds and removes.
//!
//! Each capture is replayed on its own through the leak detector only
//! (the volumetric detector is off), with the same settings as `replay`,
//! so what fires here is what the sensor reports. Incidents are compared
//! by capture file, signature id and directional 5-tuple; the incident
//! time and match count are not part of the identity, so a change that
//! only finds *more* matches in a flow that already fired is not "added".

use std::collections::BTreeSet;
use std::fmt::Write as _;
use std::ops::ControlFlow;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use shaobing_signatures::SignatureSet;
use shaobing_wire::Incident;

use crate::capture::file::{CaptureError, FileReplay};
use crate::config::Settings;
use crate::detect::leak::LeakStats;
use crate::pipeline::Pipeline;

/// One incident of a test run, with the capture it came from.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct Fired {
    /// File name of the capture.
    pub capture: String,
    /// Signature id.
    pub signature: String,
    /// `src:port -> dst:port proto/app direction`.
    pub flow: String,
    /// Matches in the flow.
    pub match_count: u64,
    /// Masked excerpt.
    pub excerpt: String,
}

impl Fired {
    fn key(&self) -> (&str, &str, &str) {
        (&self.capture, &self.signature, &self.flow)
    }

    fn from_incident(capture: &str, i: &Incident) -> Fired {
        let ip = |a: Option<std::net::IpAddr>| a.map_or_else(|| "?".to_string(), |a| a.to_string());
        let dir = i.direction.map_or("?", |d| match d {
            shaobing_wire::Direction::Inbound => "inbound",
            shaobing_wire::Direction::Outbound => "outbound",
            shaobing_wire::Direction::Internal => "internal",
            shaobing_wire::Direction::External => "external",
        });
        Fired {
            capture: capture.to_string(),
            signature: i.signature.clone(),
            flow: format!(
                "{}:{} -> {}:{} {}/{} {}",
                ip(i.src_ip),
                i.src_port.unwrap_or(0),
                ip(i.dst_ip),
                i.dst_port.unwrap_or(0),
                i.proto,
                i.app_proto.as_deref().unwrap_or("?"),
                dir
            ),
            match_count: i.match_count.unwrap_or(0),
            excerpt: i.excerpt.clone().unwrap_or_default(),
        }
    }
}

/// What one signature set fired on the captures.
#[derive(Clone, Debug, Default)]
pub struct Run {
    /// Incidents, sorted by capture, signature and flow.
    pub fired: Vec<Fired>,
    /// Per signature id (every loaded signature, in file order):
    /// incidents and matches that passed the direction and port filters.
    pub per_signature: Vec<(String, u64, u64)>,
}

/// Replays `pcaps` one by one through the leak detector with `sigs`.
pub fn run(
    settings: &Settings,
    sigs: Arc<SignatureSet>,
    pcaps: &[PathBuf],
) -> Result<Run, CaptureError> {
    let mut settings = settings.clone();
    settings.volumetric.enabled = false;
    settings.leak.enabled = true;
    let mut fired = Vec::new();
    let mut totals: Vec<(String, u64, u64)> = sigs
        .signatures()
        .iter()
        .map(|s| (s.id.clone(), 0, 0))
        .collect();
    for pcap in pcaps {
        let name = pcap.file_name().map_or_else(
            || pcap.display().to_string(),
            |n| n.to_string_lossy().into_owned(),
        );
        let mut replay = FileReplay::open(std::slice::from_ref(pcap))?;
        let mut pipeline = Pipeline::new(&settings, Arc::clone(&sigs), true);
        let mut incidents: Vec<Incident> = Vec::new();
        replay.for_each(|p| {
            pipeline.on_packet(p, &mut incidents);
            ControlFlow::Continue(())
        })?;
        pipeline.finish(&mut incidents);
        fired.extend(incidents.iter().map(|i| Fired::from_incident(&name, i)));
        if let Some(stats) = pipeline.leak_stats() {
            add_counts(&mut totals, &stats);
        }
    }
    fired.sort();
    Ok(Run {
        fired,
        per_signature: totals,
    })
}

fn add_counts(totals: &mut [(String, u64, u64)], stats: &LeakStats) {
    for (t, ((_, incidents), (_, hits))) in totals.iter_mut().zip(
        stats
            .incidents_by_signature
            .iter()
            .zip(&stats.hits_by_signature),
    ) {
        t.1 += incidents;
        t.2 += hits;
    }
}

/// Incidents of `new` not in `old` (added) and of `old` not in `new`
/// (removed).
pub fn diff<'a>(new: &'a Run, old: &'a Run) -> (Vec<&'a Fired>, Vec<&'a Fired>) {
    let new_keys: BTreeSet<_> = new.fired.iter().map(Fired::key).collect();
    let old_keys: BTreeSet<_> = old.fired.iter().map(Fired::key).collect();
    let added = new
        .fired
        .iter()
        .filter(|f| !old_keys.contains(&f.key()))
        .collect();
    let removed = old
        .fired
        .iter()
        .filter(|f| !new_keys.contains(&f.key()))
        .collect();
    (added, removed)
}

fn line(f: &Fired) -> String {
    format!(
        "{}  {}  {}  matches={}  excerpt={:?}",
        f.capture, f.signature, f.flow, f.match_count, f.excerpt
    )
}

/// The text report: per-signature table, every incident, and with a
/// baseline the added and removed incidents.
pub fn report(path: &Path, run: &Run, baseline: Option<(&Path, &Run)>) -> String {
    let mut out = String::new();
    let width = run
        .per_signature
        .iter()
        .map(|(id, _, _)| id.len())
        .max()
        .unwrap_or(9)
        .max(9);
    let _ = writeln!(out, "signatures: {}", path.display());
    let _ = writeln!(
        out,
        "{:<width$}  {:>9}  {:>9}",
        "SIGNATURE", "INCIDENTS", "MATCHES"
    );
    for (id, incidents, hits) in &run.per_signature {
        let _ = writeln!(out, "{id:<width$}  {incidents:>9}  {hits:>9}");
    }
    let _ = writeln!(out, "incidents ({}):", run.fired.len());
    for f in &run.fired {
        let _ = writeln!(out, "  {}", line(f));
    }
    if let Some((base_path, base)) = baseline {
        let (added, removed) = diff(run, base);
        let _ = writeln!(
            out,
            "compared with baseline {}: {} added, {} removed",
            base_path.display(),
            added.len(),
            removed.len()
        );
        for f in added {
            let _ = writeln!(out, "+ {}", line(f));
        }
        for f in removed {
            let _ = writeln!(out, "- {}", line(f));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fired(capture: &str, sig: &str, flow: &str) -> Fired {
        Fired {
            capture: capture.into(),
            signature: sig.into(),
            flow: flow.into(),
            match_count: 1,
            excerpt: String::new(),
        }
    }

    #[test]
    fn diff_names_added_and_removed_incidents_by_capture_signature_and_flow() {
        let old = Run {
            fired: vec![fired("a", "s1", "f1"), fired("a", "s2", "f1")],
            per_signature: vec![],
        };
        let mut changed = fired("a", "s1", "f1");
        changed.match_count = 9;
        let new = Run {
            fired: vec![changed, fired("b", "s3", "f2")],
            per_signature: vec![],
        };
        let (added, removed) = diff(&new, &old);
        assert_eq!(added, [&fired("b", "s3", "f2")]);
        assert_eq!(removed, [&fired("a", "s2", "f1")]);
    }
}
