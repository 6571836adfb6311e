//! The lease task of one of several replicas (`slipway run --ha-table`; the rules are
//! `slipway_core::lease`, the table `slipway_aws::lease`).
//!
//! Every `renew_every` (a third of the lease) it writes its heartbeat, reads the table, decides
//! the lease writes of the tick and makes them, each conditional on what it read. The
//! [`Board`] the fence checks is updated from every read and every write, and a lease a renewal
//! finds lost is dropped from it at once. The loop hears which shards it holds ([`Held`]) and
//! tells the task which shards have a reconcile in flight (`busy`: their leases are kept until it
//! ends). On shutdown it releases its leases and marks itself gone, so the others take its shards
//! at their next tick instead of after the expiry.

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::Duration;

use slipway_aws::Aws;
use slipway_aws::fence::{Board, Fence, now_millis};
use slipway_aws::lease::{self, Written};
use slipway_core::lease::{self as rules, LeaseTimes, LeaseTransition, LeaseWrite, ReplicaId};
use tokio::sync::watch;
use tokio::task::JoinHandle;
use tracing::{info, warn};

use crate::metrics::Metrics;

/// A replica's place among the others.
#[derive(Debug, Clone)]
pub(crate) struct ReplicaSettings {
    pub table: String,
    /// Create the table when it is missing.
    pub create_table: bool,
    pub id: ReplicaId,
    pub shards: u16,
    pub times: LeaseTimes,
}

/// What the replica last read and holds.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct Held {
    pub shards: BTreeSet<u16>,
    /// The live replicas, itself included.
    pub members: Vec<ReplicaId>,
}

/// The loop's end of the lease task: where its shards are decided and its writes fenced.
pub(crate) struct Sharding {
    pub id: ReplicaId,
    pub table: String,
    pub shards: u16,
    /// `None` until the table was first read.
    pub held: watch::Receiver<Option<Held>>,
    /// Shards with a reconcile in flight.
    pub busy: watch::Sender<BTreeSet<u16>>,
    pub board: Arc<Board>,
}

impl Sharding {
    pub fn shard_of(&self, pipeline: &str) -> u16 {
        rules::shard_of(pipeline, self.shards)
    }

    pub fn fence(&self, shard: u16) -> Fence {
        Fence { shard, board: self.board.clone() }
    }
}

/// The running lease task.
pub(crate) struct Replica {
    stop: watch::Sender<bool>,
    task: JoinHandle<()>,
}

impl Replica {
    /// Releases the leases this replica holds and marks it gone; waits at most a few seconds.
    pub async fn stop(self) {
        let _ = self.stop.send(true);
        let _ = tokio::time::timeout(Duration::from_secs(5), self.task).await;
    }
}

/// Starts the lease task.
pub(crate) fn spawn(aws: Aws, settings: ReplicaSettings, metrics: Arc<Metrics>) -> (Replica, Sharding) {
    let board = Arc::new(Board::new(settings.id.clone(), settings.times));
    let (held_tx, held) = watch::channel(None);
    let (busy, busy_rx) = watch::channel(BTreeSet::new());
    let (stop, stop_rx) = watch::channel(false);
    let sharding =
        Sharding { id: settings.id.clone(), table: settings.table.clone(), shards: settings.shards, held, busy, board: board.clone() };
    metrics.set_replica(&settings.id);
    let task = tokio::spawn(async move {
        let task = LeaseTask { aws, settings, metrics, board, held: held_tx, busy: busy_rx, last_error: None };
        task.run(stop_rx).await;
    });
    (Replica { stop, task }, sharding)
}

struct LeaseTask {
    aws: Aws,
    settings: ReplicaSettings,
    metrics: Arc<Metrics>,
    board: Arc<Board>,
    held: watch::Sender<Option<Held>>,
    busy: watch::Receiver<BTreeSet<u16>>,
    /// The last failure logged: the same one is not logged again on every tick.
    last_error: Option<String>,
}

impl LeaseTask {
    async fn run(mut self, mut stop: watch::Receiver<bool>) {
        let every = Duration::from_millis(self.settings.times.renew_every());
        let table = self.settings.table.clone();
        while let Err(err) = lease::ensure_table(&self.aws, &table, self.settings.create_table).await {
            self.failed(format!("the lease table {table}: {err}"));
            tokio::select! {
                _ = tokio::time::sleep(every) => {}
                _ = stop.wait_for(|s| *s) => return,
            }
        }
        info!(replica = %self.settings.id, table = %table, shards = self.settings.shards, lease = ?Duration::from_millis(self.settings.times.duration), "joined the replicas: pipelines are spread over the live ones by shard");
        // Heard before taking anything: replicas started together see each other on their first
        // read and split the shards at once, instead of the first taking all and handing most over.
        let now = now_millis();
        if let Err(err) = lease::heartbeat(&self.aws, &table, &self.settings.id, now + self.settings.times.duration).await {
            self.failed(format!("writing the heartbeat: {err}"));
        }
        tokio::time::sleep(every.min(Duration::from_secs(2))).await;
        loop {
            self.tick().await;
            tokio::select! {
                _ = tokio::time::sleep(every) => {}
                _ = stop.wait_for(|s| *s) => break,
            }
        }
        self.leave().await;
    }

    /// Heartbeat, read, decide, write; then tells the loop what it holds.
    async fn tick(&mut self) {
        let (me, table, times) = (self.settings.id.clone(), self.settings.table.clone(), self.settings.times);
        let now = now_millis();
        // The tick's first failure, logged once per reason; none: the table works again.
        let mut failed =
            lease::heartbeat(&self.aws, &table, &me, now + times.duration).await.err().map(|err| format!("writing the heartbeat: {err}"));
        let snapshot = match lease::read(&self.aws, &table).await {
            Ok(snapshot) => snapshot,
            Err(err) => {
                self.failed(format!("reading the lease table: {err}"));
                // The board keeps the leases it had: they stop letting this replica write as
                // they run out.
                self.publish(None, now_millis());
                return;
            }
        };
        for held in self.board_shards() {
            if !snapshot.leases.iter().any(|l| l.shard == held && l.holder == me) {
                self.lost(held, "another replica holds it");
            }
        }
        // Its own live leases as the table has them (a released or expired one lets nothing).
        for l in snapshot.leases.iter().filter(|l| l.holder == me && l.expires > now) {
            self.board.set(l.clone());
        }
        let busy = self.busy.borrow().clone();
        let decided = rules::tick(&me, &snapshot.members, &snapshot.leases, self.settings.shards, &busy, now, &times);
        let (mut acquired, mut released) = (Vec::new(), Vec::new());
        for (shard, write) in &decided.writes {
            match lease::write(&self.aws, &table, *shard, &me, write, now).await {
                Ok(Written::Done) => {
                    match write {
                        LeaseWrite::Release { .. } => self.board.drop_shard(*shard),
                        _ => self.board.set(write.written(*shard, &me, now)),
                    }
                    match write.transition() {
                        Some(LeaseTransition::Acquired) => acquired.push(*shard),
                        Some(LeaseTransition::Released) => released.push(*shard),
                        _ => {}
                    }
                    if let Some(transition) = write.transition() {
                        self.metrics.record_lease(transition);
                    }
                }
                Ok(Written::Lost) if matches!(write, LeaseWrite::Renew { .. }) => self.lost(*shard, "a renewal found it taken"),
                // Taken by another replica first (an acquire), or after it was given up (a release).
                Ok(Written::Lost) => {}
                Err(err) => {
                    failed.get_or_insert(format!("writing the lease of shard {shard}: {err}"));
                }
            }
        }
        match failed {
            Some(reason) => self.failed(reason),
            None => self.recovered(),
        }
        if !acquired.is_empty() || !released.is_empty() {
            info!(acquired = ?acquired, released = ?released, "shard leases changed");
        }
        self.publish(Some(rules::live(&snapshot.members, &me, now)), now_millis());
        self.forget_departed(&snapshot.members, now).await;
    }

    fn board_shards(&self) -> Vec<u16> {
        (0..self.settings.shards).filter(|s| self.board.holds(*s)).collect()
    }

    fn lost(&self, shard: u16, why: &str) {
        self.board.drop_shard(shard);
        self.metrics.record_lease(LeaseTransition::Lost);
        warn!(shard, why, "lost the lease of a shard: its pipelines are no longer written by this replica");
    }

    /// Tells the loop the shards it may work on now (and the members, when read).
    fn publish(&self, members: Option<Vec<ReplicaId>>, now: u64) {
        let shards: BTreeSet<u16> = (0..self.settings.shards).filter(|s| self.board.lets_write(*s, now)).collect();
        self.held.send_if_modified(|held| {
            let members = members.or_else(|| held.as_ref().map(|h| h.members.clone()));
            let Some(members) = members else { return false };
            let next = Held { shards: shards.clone(), members };
            let changed = held.as_ref() != Some(&next);
            *held = Some(next);
            changed
        });
    }

    /// Deletes the heartbeat items of replicas gone for a day; done by the holder of shard 0.
    async fn forget_departed(&self, members: &[(ReplicaId, u64)], now: u64) {
        const DAY: u64 = 24 * 3600 * 1000;
        if !self.board.holds(0) {
            return;
        }
        for (id, _) in members.iter().filter(|(_, expires)| expires.saturating_add(DAY) < now) {
            if let Err(err) = lease::forget_member(&self.aws, &self.settings.table, id, now - DAY).await {
                warn!(replica = %id, error = %err, "failed to delete the heartbeat of a replica gone for a day");
            }
        }
    }

    /// Gives every lease up and marks this replica gone (the process is stopping).
    async fn leave(&mut self) {
        let (me, table) = (self.settings.id.clone(), self.settings.table.clone());
        let now = now_millis();
        let mut released = Vec::new();
        for shard in self.board_shards() {
            let Some(token) = self.board.token(shard) else { continue };
            self.board.drop_shard(shard);
            match lease::write(&self.aws, &table, shard, &me, &LeaseWrite::Release { token }, now).await {
                Ok(Written::Done) => {
                    self.metrics.record_lease(LeaseTransition::Released);
                    released.push(shard);
                }
                Ok(Written::Lost) => {}
                Err(err) => warn!(shard, error = %err, "failed to release a lease; the others take the shard when it expires"),
            }
        }
        if let Err(err) = lease::heartbeat(&self.aws, &table, &me, now).await {
            warn!(error = %err, "failed to mark this replica gone; the others notice when its heartbeat expires");
        }
        self.publish(Some(Vec::new()), now);
        info!(released = ?released, "left the replicas: leases released");
    }

    fn failed(&mut self, reason: String) {
        if self.last_error.as_deref() != Some(reason.as_str()) {
            warn!(reason = %reason, "lease table: retrying every tick; this replica writes only while its leases last");
            self.last_error = Some(reason);
        }
    }

    fn recovered(&mut self) {
        if self.last_error.take().is_some() {
            info!("lease table reachable again");
        }
    }
}
