//! Mitigation over BGP (off by default): on a volumetric `attack_started`
//! the engine announces an RTBH route and/or a FlowSpec rule for the target
//! through GoBGP ([`speaker`]), and withdraws it `hold_time_s` after the
//! last attack needing it ended. Decisions follow [`plan`]'s safety limits
//! and `max_active`; every announce, withdraw and refusal is logged and
//! written to the `mitigation_audit` table ([`audit`]). Admin analysts list
//! and withdraw through [`http`].
//!
//! The engine is one task fed by the [`crate::alerts::hub`] after
//! acknowledgement (never on the ingest path), by a one-second timer and by
//! the API. At start it takes over what an earlier run announced and never
//! withdrew, from the audit table (see `docs/collector.md`, "Restarts").

pub mod audit;
pub mod config;
pub mod http;
pub mod plan;
pub mod speaker;

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;
use std::net::IpAddr;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::Arc;
use std::time::{Duration, Instant};

use clickhouse::Client;
use serde::Serialize;
use shaobing_wire::{Event, Incident, Kind, Timestamp};
use tokio::sync::{mpsc, oneshot};
use uuid::Uuid;

use crate::metrics::MetricsSection;
use audit::AuditRow;
use config::{MitigationConfig, Mode};
use plan::{Route, Skip};

/// Counters (a `/metrics` section).
#[derive(Debug, Default)]
pub struct MitigationMetrics {
    /// Announcements active now.
    pub active: AtomicU64,
    /// Announcements made (or simulated in dry-run).
    pub announced: AtomicU64,
    /// Withdrawals made (or simulated).
    pub withdrawn: AtomicU64,
    /// Announcements refused by a safety limit.
    pub refused: AtomicU64,
    /// Speaker calls that failed.
    pub speaker_errors: AtomicU64,
    /// Audit rows that could not be written.
    pub audit_errors: AtomicU64,
}

impl MetricsSection for MitigationMetrics {
    fn render(&self, o: &mut String) {
        let _ = writeln!(
            o,
            "# HELP shaobing_collector_mitigation_active Mitigation announcements active now.\n# TYPE shaobing_collector_mitigation_active gauge\nshaobing_collector_mitigation_active {}",
            self.active.load(Relaxed)
        );
        for (name, help, v) in [
            ("announced", "Mitigation announcements made (simulated in dry-run).", &self.announced),
            ("withdrawn", "Mitigation announcements withdrawn (simulated in dry-run).", &self.withdrawn),
            ("refused", "Mitigations refused by a safety limit (protected space, prefix length, max_active).", &self.refused),
            ("speaker_errors", "gobgp calls that failed.", &self.speaker_errors),
            ("audit_errors", "Mitigation audit rows that could not be stored.", &self.audit_errors),
        ] {
            let _ = writeln!(
                o,
                "# HELP shaobing_collector_mitigation_{name}_total {help}\n# TYPE shaobing_collector_mitigation_{name}_total counter\nshaobing_collector_mitigation_{name}_total {}",
                v.load(Relaxed)
            );
        }
    }
}

/// One active announcement, as the API shows it.
#[derive(Debug, Clone, Serialize)]
pub struct ActiveView {
    /// Announcement id.
    pub id: Uuid,
    /// `rtbh` or `flowspec`.
    pub method: plan::Method,
    /// Destination prefix.
    pub prefix: String,
    /// The route as given to the speaker.
    pub route: String,
    /// Attacks still running that need it.
    pub attacks: Vec<Uuid>,
    /// When it was announced.
    pub since: Timestamp,
    /// Seconds until its withdrawal, once every attack ended.
    pub withdraw_in_s: Option<u64>,
}

/// What the API may ask the engine.
enum Request {
    List(oneshot::Sender<Vec<ActiveView>>),
    Withdraw {
        id: Uuid,
        actor: String,
        reply: oneshot::Sender<Result<(), String>>,
    },
}

/// The API's handle on the engine.
#[derive(Clone, Debug)]
pub struct Handle {
    tx: mpsc::Sender<Request>,
    /// The configured mode.
    pub mode: Mode,
    /// Analysts who may withdraw.
    pub admins: Arc<Vec<String>>,
    /// `max_active`.
    pub max_active: usize,
}

impl std::fmt::Debug for Request {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Request")
    }
}

impl Handle {
    /// The active announcements.
    pub async fn list(&self) -> Option<Vec<ActiveView>> {
        let (reply, rx) = oneshot::channel();
        self.tx.send(Request::List(reply)).await.ok()?;
        rx.await.ok()
    }

    /// Withdraws announcement `id` now; `Err` says why not.
    pub async fn withdraw(&self, id: Uuid, actor: &str) -> Result<(), String> {
        let (reply, rx) = oneshot::channel();
        self.tx
            .send(Request::Withdraw {
                id,
                actor: actor.to_string(),
                reply,
            })
            .await
            .map_err(|_| "mitigation engine stopped".to_string())?;
        rx.await
            .map_err(|_| "mitigation engine stopped".to_string())?
    }
}

struct Active {
    id: Uuid,
    route: Route,
    attacks: BTreeSet<Uuid>,
    since: Timestamp,
    /// When it was announced (for `max_duration_s`).
    started: Instant,
    withdraw_at: Option<Instant>,
    /// The incident that started it (for the audit of its withdrawal).
    origin: Origin,
}

#[derive(Clone)]
struct Origin {
    attack_id: String,
    incident_id: String,
    sensor: String,
    vector: String,
}

impl Origin {
    fn of(inc: &Incident) -> Origin {
        Origin {
            attack_id: inc.attack_id.map(|a| a.to_string()).unwrap_or_default(),
            incident_id: inc.id.to_string(),
            sensor: inc.sensor.clone(),
            vector: inc.vector.clone().unwrap_or_default(),
        }
    }
}

/// Where the engine writes its audit rows.
#[derive(Clone)]
pub struct AuditSink {
    /// ClickHouse.
    pub client: Client,
    /// The database.
    pub database: String,
    /// Bound on one insert.
    pub timeout: Duration,
}

struct Engine {
    config: MitigationConfig,
    protected: Vec<(IpAddr, u8)>,
    speaker: speaker::Gobgp,
    active: BTreeMap<String, Active>,
    audit: AuditSink,
    metrics: Arc<MitigationMetrics>,
}

impl Engine {
    fn hold(&self) -> Duration {
        Duration::from_secs(self.config.hold_time_s)
    }

    async fn record(&self, mut row: AuditRow) {
        let now = Timestamp::now();
        row.ts = u32::try_from(now.secs()).unwrap_or(0);
        row.ts_us = now.subsec_micros();
        row.mode = self.config.mode.as_str().to_string();
        tracing::info!(
            event = "mitigation",
            action = %row.action,
            method = %row.method,
            prefix = %row.prefix,
            route = %row.route,
            attack_id = %row.attack_id,
            actor = %row.actor,
            reason = %row.reason,
            error = %row.error,
            "mitigation {}",
            row.action
        );
        if let Err(e) = audit::insert(
            &self.audit.client,
            &self.audit.database,
            self.audit.timeout,
            &row,
        )
        .await
        {
            self.metrics.audit_errors.fetch_add(1, Relaxed);
            tracing::error!(event = "mitigation_audit_failed", error = %e, "could not store a mitigation audit row");
        }
    }

    fn row(
        action: &str,
        route: Option<&Route>,
        id: Option<Uuid>,
        origin: &Origin,
        actor: &str,
        reason: &str,
    ) -> AuditRow {
        AuditRow {
            ts: 0,
            ts_us: 0,
            id: id.map(|i| i.to_string()).unwrap_or_default(),
            action: action.to_string(),
            mode: String::new(),
            method: route
                .map(|r| r.method().as_str().to_string())
                .unwrap_or_default(),
            prefix: route.map(|r| r.prefix().to_string()).unwrap_or_default(),
            route: route.map(|r| r.describe()).unwrap_or_default(),
            attack_id: origin.attack_id.clone(),
            incident_id: origin.incident_id.clone(),
            sensor: origin.sensor.clone(),
            vector: origin.vector.clone(),
            actor: actor.to_string(),
            reason: reason.to_string(),
            error: String::new(),
        }
    }

    fn set_gauge(&self) {
        self.metrics.active.store(self.active.len() as u64, Relaxed);
    }

    async fn on_incident(&mut self, json: &str) {
        let Ok(inc) = serde_json::from_str::<Incident>(json) else {
            tracing::error!("mitigation engine got an unparsable incident");
            return;
        };
        if inc.kind != Kind::Volumetric {
            return;
        }
        match inc.event {
            Event::AttackStarted => self.on_start(&inc).await,
            Event::AttackEnded => self.on_end(&inc),
            _ => {}
        }
    }

    async fn on_start(&mut self, inc: &Incident) {
        let Some(attack) = inc.attack_id else { return };
        let origin = Origin::of(inc);
        let routes = match plan::plan(&self.config, &self.protected, inc) {
            Ok(r) => r,
            Err(Skip::NotAnAttackStart) => return,
            Err(Skip::NotSelected(why)) => {
                tracing::debug!(attack = %attack, reason = %why, "attack not selected for mitigation");
                return;
            }
            Err(Skip::Refused { prefix, reason }) => {
                self.metrics.refused.fetch_add(1, Relaxed);
                let mut row = Self::row("refused", None, None, &origin, "collector", &reason);
                row.prefix = prefix.map(|p| p.to_string()).unwrap_or_default();
                self.record(row).await;
                return;
            }
        };
        for route in routes {
            let key = route.key();
            if let Some(a) = self.active.get_mut(&key) {
                // Already announced (another attack on the same target, a
                // retry, or a new start within the hold time).
                a.attacks.insert(attack);
                a.withdraw_at = None;
                continue;
            }
            if self.active.len() >= self.config.max_active {
                self.metrics.refused.fetch_add(1, Relaxed);
                let reason = format!(
                    "mitigation.max_active ({}) announcements already active",
                    self.config.max_active
                );
                self.record(Self::row(
                    "refused",
                    Some(&route),
                    None,
                    &origin,
                    "collector",
                    &reason,
                ))
                .await;
                continue;
            }
            // Defence in depth: plan() checked it; check again right before
            // anything reaches BGP.
            if !plan::inside(&self.protected, route.prefix()) {
                self.metrics.refused.fetch_add(1, Relaxed);
                self.record(Self::row(
                    "refused",
                    Some(&route),
                    None,
                    &origin,
                    "collector",
                    "outside protected space",
                ))
                .await;
                continue;
            }
            let id = Uuid::now_v7();
            let reason = format!("attack_started ({})", origin.vector);
            let (action, error) = match self.config.mode {
                Mode::Announce => ("announce", self.speaker.announce(&route).await.err()),
                _ => ("dry_run_announce", None),
            };
            let mut row = Self::row(
                action,
                Some(&route),
                Some(id),
                &origin,
                "collector",
                &reason,
            );
            if let Some(e) = error {
                self.metrics.speaker_errors.fetch_add(1, Relaxed);
                row.error = e.to_string();
                self.record(row).await;
                continue;
            }
            self.metrics.announced.fetch_add(1, Relaxed);
            self.active.insert(
                key,
                Active {
                    id,
                    route,
                    attacks: BTreeSet::from([attack]),
                    since: Timestamp::now(),
                    started: Instant::now(),
                    withdraw_at: None,
                    origin: origin.clone(),
                },
            );
            self.set_gauge();
            self.record(row).await;
        }
    }

    fn on_end(&mut self, inc: &Incident) {
        let Some(attack) = inc.attack_id else { return };
        let deadline = Instant::now() + self.hold();
        for a in self.active.values_mut() {
            if a.attacks.remove(&attack) && a.attacks.is_empty() {
                a.withdraw_at = Some(deadline);
            }
        }
    }

    /// Withdraws the announcement under `key`; false (kept) when the
    /// speaker failed.
    async fn withdraw(&mut self, key: &str, actor: &str, reason: &str) -> Result<(), String> {
        let Some((route, id, origin)) = self
            .active
            .get(key)
            .map(|a| (a.route.clone(), a.id, a.origin.clone()))
        else {
            return Err("no such announcement".into());
        };
        let (action, error) = match self.config.mode {
            Mode::Announce => ("withdraw", self.speaker.withdraw(&route).await.err()),
            _ => ("dry_run_withdraw", None),
        };
        let mut row = Self::row(action, Some(&route), Some(id), &origin, actor, reason);
        if let Some(e) = error {
            self.metrics.speaker_errors.fetch_add(1, Relaxed);
            row.error = e.to_string();
            let msg = row.error.clone();
            // Try again in ten seconds.
            if let Some(a) = self.active.get_mut(key) {
                a.withdraw_at = Some(Instant::now() + Duration::from_secs(10));
            }
            self.record(row).await;
            return Err(msg);
        }
        self.active.remove(key);
        self.metrics.withdrawn.fetch_add(1, Relaxed);
        self.set_gauge();
        self.record(row).await;
        Ok(())
    }

    async fn tick(&mut self) {
        let now = Instant::now();
        let due: Vec<String> = self
            .active
            .iter()
            .filter(|(_, a)| a.withdraw_at.is_some_and(|t| t <= now))
            .map(|(k, _)| k.clone())
            .collect();
        let reason = format!(
            "hold time ({} s) after attack_ended",
            self.config.hold_time_s
        );
        for key in due {
            let _ = self.withdraw(&key, "collector", &reason).await;
        }
        if self.config.max_duration_s > 0 {
            let limit = Duration::from_secs(self.config.max_duration_s);
            let old: Vec<String> = self
                .active
                .iter()
                .filter(|(_, a)| {
                    a.withdraw_at.is_none() && now.saturating_duration_since(a.started) >= limit
                })
                .map(|(k, _)| k.clone())
                .collect();
            let reason = format!(
                "max_duration_s ({} s) reached without attack_ended",
                self.config.max_duration_s
            );
            for key in old {
                let _ = self.withdraw(&key, "collector", &reason).await;
            }
        }
    }

    /// Takes over what a previous run announced and never withdrew (from
    /// the audit table): an announcement whose attack's end is stored is
    /// withdrawn after the hold time, one outside today's protected space
    /// at once, the others when their attack ends (or `max_duration_s`).
    async fn adopt(&mut self) {
        let action = match self.config.mode {
            Mode::Announce => "announce",
            _ => "dry_run_announce",
        };
        let rows = match audit::still_announced(
            &self.audit.client,
            &self.audit.database,
            self.audit.timeout,
            action,
        )
        .await
        {
            Ok(r) => r,
            Err(e) => {
                tracing::error!(event = "mitigation_adopt_failed", error = %e, "could not read the mitigation audit: announcements made before this start are not tracked (see `shaobing-collector mitigations`)");
                return;
            }
        };
        let now = Instant::now();
        let now_secs = Timestamp::now().secs();
        for o in rows {
            let (Some(route), Ok(id)) = (Route::parse_described(&o.route), o.id.parse::<Uuid>())
            else {
                tracing::warn!(id = %o.id, route = %o.route, "cannot take over an audited announcement: unreadable route");
                continue;
            };
            let key = route.key();
            if self.active.contains_key(&key) {
                continue;
            }
            let age = Duration::from_secs(u64::try_from(now_secs - i64::from(o.ts)).unwrap_or(0));
            let attack = o.attack_id.parse::<Uuid>().ok();
            let inside = plan::inside(&self.protected, route.prefix());
            let ended = o.ended != 0 || attack.is_none();
            let (withdraw_at, reason) = if !inside {
                (Some(now), "collector restarted: taken over; outside protected space now, withdrawn at once")
            } else if ended {
                (Some(now + self.hold()), "collector restarted: taken over; its attack ended, withdrawn after the hold time")
            } else {
                (
                    None,
                    "collector restarted: taken over; its attack is still running",
                )
            };
            let origin = Origin {
                attack_id: o.attack_id.clone(),
                incident_id: o.incident_id.clone(),
                sensor: o.sensor.clone(),
                vector: o.vector.clone(),
            };
            let adopt = match self.config.mode {
                Mode::Announce => "adopt",
                _ => "dry_run_adopt",
            };
            let row = Self::row(adopt, Some(&route), Some(id), &origin, "collector", reason);
            self.active.insert(
                key,
                Active {
                    id,
                    route,
                    attacks: match (ended, attack) {
                        (false, Some(a)) => BTreeSet::from([a]),
                        _ => BTreeSet::new(),
                    },
                    since: Timestamp::from_parts(i64::from(o.ts), 0),
                    started: now.checked_sub(age).unwrap_or(now),
                    withdraw_at,
                    origin,
                },
            );
            self.record(row).await;
        }
        self.set_gauge();
    }

    fn list(&self) -> Vec<ActiveView> {
        let now = Instant::now();
        self.active
            .values()
            .map(|a| ActiveView {
                id: a.id,
                method: a.route.method(),
                prefix: a.route.prefix().to_string(),
                route: a.route.describe(),
                attacks: a.attacks.iter().copied().collect(),
                since: a.since,
                withdraw_in_s: a
                    .withdraw_at
                    .map(|t| t.saturating_duration_since(now).as_secs()),
            })
            .collect()
    }

    async fn on_request(&mut self, r: Request) {
        match r {
            Request::List(reply) => {
                let _ = reply.send(self.list());
            }
            Request::Withdraw { id, actor, reply } => {
                let key = self
                    .active
                    .iter()
                    .find(|(_, a)| a.id == id)
                    .map(|(k, _)| k.clone());
                let r = match key {
                    Some(k) => self.withdraw(&k, &actor, "withdrawn by hand").await,
                    None => Err("no active announcement with this id".into()),
                };
                let _ = reply.send(r);
            }
        }
    }
}

/// What [`start`] returns: the engine's incident queue (for the hub), the
/// API handle and the counters.
pub type Started = (mpsc::Sender<Arc<str>>, Handle, Arc<MitigationMetrics>);

/// Starts the engine unless `mode = "off"`. Must run inside a tokio
/// runtime. The engine stops when both its queue and handle are dropped.
pub fn start(config: &MitigationConfig, audit: AuditSink) -> Option<Started> {
    if config.mode == Mode::Off {
        return None;
    }
    let metrics = Arc::new(MitigationMetrics::default());
    let (tx, mut rx) = mpsc::channel::<Arc<str>>(config.queue);
    let (req_tx, mut req_rx) = mpsc::channel::<Request>(64);
    let mut engine = Engine {
        protected: config.protected_prefixes(),
        speaker: speaker::Gobgp::new(&config.gobgp),
        config: config.clone(),
        active: BTreeMap::new(),
        audit,
        metrics: metrics.clone(),
    };
    tokio::spawn(async move {
        engine.adopt().await;
        let mut tick = tokio::time::interval(Duration::from_millis(250));
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let (mut incidents_open, mut requests_open) = (true, true);
        while incidents_open || requests_open {
            tokio::select! {
                m = rx.recv(), if incidents_open => match m {
                    Some(json) => engine.on_incident(&json).await,
                    None => incidents_open = false,
                },
                r = req_rx.recv(), if requests_open => match r {
                    Some(r) => engine.on_request(r).await,
                    None => requests_open = false,
                },
                _ = tick.tick() => engine.tick().await,
            }
        }
        tracing::info!(
            active = engine.active.len(),
            "mitigation engine stopped; announcements stay in gobgpd"
        );
    });
    tracing::info!(
        mode = config.mode.as_str(),
        protected = ?config.protected,
        max_active = config.max_active,
        hold_time_s = config.hold_time_s,
        "mitigation started"
    );
    let handle = Handle {
        tx: req_tx,
        mode: config.mode,
        admins: Arc::new(config.admins.clone()),
        max_active: config.max_active,
    };
    Some((tx, handle, metrics))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A dry-run engine whose audit store is unreachable (its rows are
    /// counted as audit errors): the decisions are what is tested here;
    /// `tests/mitigation.rs` covers BGP and the audit table.
    fn engine(extra: &str) -> Engine {
        let config: MitigationConfig = toml::from_str(&format!(
            "mode = \"dry-run\"\nprotected = [\"198.51.100.0/24\"]\n{extra}\n[rtbh]\nnext_hop = \"192.0.2.1\"\n"
        ))
        .unwrap();
        config.validate(&[]).unwrap();
        Engine {
            protected: config.protected_prefixes(),
            speaker: speaker::Gobgp::new(&config.gobgp),
            config,
            active: BTreeMap::new(),
            audit: AuditSink {
                client: Client::default().with_url("http://127.0.0.1:1"),
                database: "shaobing".into(),
                timeout: Duration::from_millis(200),
            },
            metrics: Arc::new(MitigationMetrics::default()),
        }
    }

    fn event(event: &str, attack: u32, dst: &str) -> String {
        serde_json::json!({
            "id": format!("018bd0c4-2000-7000-8000-{:012}", fastrand::u32(..)), "schema": 1,
            "sensor": "s", "kind": "volumetric", "event": event, "signature": "syn-flood",
            "severity": "high", "ts": "2026-11-29T04:19:24Z", "src_ip": null, "dst_ip": dst,
            "src_port": null, "dst_port": null, "proto": "tcp", "community_id": null,
            "attack_id": format!("018bd0c4-2000-7000-8000-{attack:012}"), "vector": "syn_flood",
            "pps": 1, "bps": 1, "peak_pps": 1, "peak_bps": 1, "packets": 1, "bytes": 1,
            "top_sources": []
        })
        .to_string()
    }

    #[tokio::test]
    async fn a_shared_route_stays_until_the_last_of_its_attacks_ends() {
        let mut e = engine("");
        e.on_incident(&event("attack_started", 1, "198.51.100.20"))
            .await;
        e.on_incident(&event("attack_started", 2, "198.51.100.20"))
            .await;
        assert_eq!(e.active.len(), 1, "one route for both attacks");
        e.on_incident(&event("attack_ended", 1, "198.51.100.20"))
            .await;
        let a = e.active.values().next().unwrap();
        assert!(a.withdraw_at.is_none(), "attack 2 still needs it");
        e.on_incident(&event("attack_ended", 2, "198.51.100.20"))
            .await;
        assert!(e.active.values().next().unwrap().withdraw_at.is_some());
        // A new start within the hold time keeps it.
        e.on_incident(&event("attack_started", 3, "198.51.100.20"))
            .await;
        assert!(e.active.values().next().unwrap().withdraw_at.is_none());
        assert_eq!(e.metrics.announced.load(Relaxed), 1);
    }

    #[tokio::test]
    async fn max_active_refuses_and_expired_holds_are_withdrawn() {
        let mut e = engine("max_active = 2\nhold_time_s = 0");
        for (n, dst) in [
            (1, "198.51.100.1"),
            (2, "198.51.100.2"),
            (3, "198.51.100.3"),
        ] {
            e.on_incident(&event("attack_started", n, dst)).await;
        }
        assert_eq!(e.active.len(), 2);
        assert_eq!(e.metrics.refused.load(Relaxed), 1);
        e.on_incident(&event("attack_ended", 1, "198.51.100.1"))
            .await;
        e.tick().await;
        assert_eq!(e.active.len(), 1);
        assert_eq!(e.metrics.withdrawn.load(Relaxed), 1);
        assert_eq!(e.metrics.active.load(Relaxed), 1);
        assert!(
            e.metrics.audit_errors.load(Relaxed) >= 4,
            "every decision tried the audit"
        );
    }

    #[tokio::test]
    async fn an_attack_that_never_ends_is_withdrawn_after_max_duration() {
        let mut e = engine("max_duration_s = 60");
        e.on_incident(&event("attack_started", 1, "198.51.100.20"))
            .await;
        e.tick().await;
        assert_eq!(e.active.len(), 1);
        for a in e.active.values_mut() {
            a.started = Instant::now() - Duration::from_secs(61);
        }
        e.tick().await;
        assert!(e.active.is_empty());
    }
}
