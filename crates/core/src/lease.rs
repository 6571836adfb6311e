//! Several replicas, one writer per pipeline: who works on what, decided from what a replica read
//! of the lease table (a DynamoDB table, written only with condition expressions by
//! `slipway-aws`). Pure: every function takes the time it decides at, in Unix milliseconds, so
//! the rules are tested on a clock the test moves.
//!
//! - Pipelines fall into a fixed number of shards ([`shard_of`]: a stable hash of the name), and
//!   each shard belongs to one live replica ([`assignee`]: rendezvous hashing over the members'
//!   ids), so a replica joining or leaving moves only its share of the shards.
//! - A replica works on a shard's pipelines only while it holds the shard's lease: holder,
//!   expiry, and a fencing token raised by one on every change of holder ([`plan_lease`]). It
//!   renews at a third of the lease's duration and stops writing once less than a margin is left
//!   ([`Lease::lets_write`]), so a process paused past its expiry wakes up unable to write.
//! - A replica that is no longer the assignee releases the lease (expiry now) once its work on
//!   the shard has stopped, so the assignee takes over without waiting for the expiry.

use std::collections::BTreeSet;

use sha2::{Digest, Sha256};

/// A replica's id (its task or pod name and a random suffix, given by the caller).
pub type ReplicaId = String;

/// Unix time in milliseconds.
pub type Millis = u64;

/// How long leases and heartbeats last, and how close to its expiry a lease stops letting its
/// holder write.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LeaseTimes {
    pub duration: Millis,
    /// Less than this left: the holder writes nothing more until it has renewed.
    pub margin: Millis,
}

impl LeaseTimes {
    /// Leases of `duration`, written off in their last sixth (5 s of 30 s).
    pub fn new(duration: Millis) -> LeaseTimes {
        LeaseTimes { duration, margin: duration / 6 }
    }

    /// A third of the duration: two renewals can fail before the lease runs out.
    pub fn renew_every(&self) -> Millis {
        self.duration / 3
    }
}

impl Default for LeaseTimes {
    /// 30 s leases, written off 5 s before their end.
    fn default() -> LeaseTimes {
        LeaseTimes::new(30_000)
    }
}

labels! {
    /// A change of a shard's lease as seen by the replica that made or suffered it.
    pub enum LeaseTransition {
        /// Taken: free, expired or released by its last holder.
        Acquired = "acquired",
        /// Given up to the shard's new assignee once its work there stopped.
        Released = "released",
        /// A renewal found the lease taken: this replica stopped writing for the shard.
        Lost = "lost",
    }
}

impl LeaseWrite {
    /// The transition this write makes once done; a renewal makes none.
    pub fn transition(&self) -> Option<LeaseTransition> {
        match self {
            LeaseWrite::Acquire { .. } => Some(LeaseTransition::Acquired),
            LeaseWrite::Release { .. } => Some(LeaseTransition::Released),
            LeaseWrite::Renew { .. } => None,
        }
    }

    /// The lease as it stands once this write of `me` is done.
    pub fn written(&self, shard: u16, me: &str, now: Millis) -> Lease {
        let (expires, token) = match *self {
            LeaseWrite::Acquire { token, expires } => (expires, token.map_or(1, |t| t + 1)),
            LeaseWrite::Renew { token, expires } => (expires, token),
            LeaseWrite::Release { token } => (now, token),
        };
        Lease { shard, holder: me.to_owned(), expires, token }
    }
}

/// One shard's lease, as read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Lease {
    pub shard: u16,
    pub holder: ReplicaId,
    pub expires: Millis,
    /// Raised by one each time the holder changes; every conditional write names the token it
    /// read, so a write based on a lease someone has since taken fails.
    pub token: u64,
}

impl Lease {
    /// Whether `me` may write for this shard's pipelines at `now`.
    pub fn lets_write(&self, me: &str, now: Millis, times: &LeaseTimes) -> bool {
        self.holder == me && now.saturating_add(times.margin) < self.expires
    }

    fn expired(&self, now: Millis) -> bool {
        self.expires <= now
    }
}

/// The shard a pipeline is in: stable across processes, versions and restarts.
pub fn shard_of(pipeline: &str, shards: u16) -> u16 {
    (hash(&[pipeline.as_bytes()]) % u64::from(shards.max(1))) as u16
}

/// The live member a shard belongs to: the one scoring highest for it (rendezvous hashing).
pub fn assignee(shard: u16, members: &[ReplicaId]) -> Option<&ReplicaId> {
    members.iter().max_by_key(|m| (hash(&[m.as_bytes(), &shard.to_be_bytes()]), m.as_str()))
}

fn hash(parts: &[&[u8]]) -> u64 {
    let mut hasher = Sha256::new();
    for part in parts {
        hasher.update((part.len() as u64).to_be_bytes());
        hasher.update(part);
    }
    u64::from_be_bytes(hasher.finalize()[..8].try_into().expect("8 bytes"))
}

/// The conditional write a replica makes for one shard, or none.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LeaseWrite {
    /// Take the shard: absent, expired, or released. Conditional on the lease read (`token`, or
    /// none); the new lease carries `token + 1`.
    Acquire { token: Option<u64>, expires: Millis },
    /// Extend the lease it holds. Conditional on holder and token unchanged.
    Renew { token: u64, expires: Millis },
    /// Give the shard up (expiry now) once its work there has stopped. Conditional on holder and
    /// token unchanged.
    Release { token: u64 },
}

/// What `me` writes for `shard` at `now`, from the lease it read (`None`: no lease yet), whether
/// it is the shard's assignee, and whether its work on the shard has stopped (a pass in flight
/// keeps the lease until it ends).
pub fn plan_lease(me: &str, lease: Option<&Lease>, assigned: bool, idle: bool, now: Millis, times: &LeaseTimes) -> Option<LeaseWrite> {
    let expires = now + times.duration;
    match lease {
        None if assigned => Some(LeaseWrite::Acquire { token: None, expires }),
        None => None,
        Some(l) if l.holder == me => match (assigned, idle) {
            // Already expired (or released): nothing to give up.
            (false, true) if l.expired(now) => None,
            (false, true) => Some(LeaseWrite::Release { token: l.token }),
            // Renewed while it works there, even once no longer the assignee.
            _ if l.expires.saturating_sub(now) <= times.duration - times.renew_every() => {
                Some(LeaseWrite::Renew { token: l.token, expires })
            }
            _ => None,
        },
        Some(l) if assigned && l.expired(now) => Some(LeaseWrite::Acquire { token: Some(l.token), expires }),
        Some(_) => None,
    }
}

/// What one tick of a replica decides from what it read of the table.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Tick {
    /// The conditional writes to make, by shard.
    pub writes: Vec<(u16, LeaseWrite)>,
    /// The shards whose pipelines it may work on now (before those writes: a lease it is about to
    /// take counts from the next tick).
    pub held: BTreeSet<u16>,
}

/// The replicas whose heartbeat has not expired at `now`, `me` always among them, sorted.
pub fn live(members: &[(ReplicaId, Millis)], me: &str, now: Millis) -> Vec<ReplicaId> {
    let mut live: Vec<ReplicaId> = members.iter().filter(|(_, expires)| *expires > now).map(|(id, _)| id.clone()).collect();
    if !live.iter().any(|id| id == me) {
        live.push(me.to_owned());
    }
    live.sort();
    live
}

/// One tick of replica `me`: the live members (heartbeat not expired; `me` always), each shard's
/// assignee, and the lease writes that follow. `busy`: shards where a pass of `me` is in flight
/// (their lease is kept, and renewed, until it ends).
pub fn tick(
    me: &str,
    members: &[(ReplicaId, Millis)],
    leases: &[Lease],
    shards: u16,
    busy: &BTreeSet<u16>,
    now: Millis,
    times: &LeaseTimes,
) -> Tick {
    let live = live(members, me, now);
    let mut out = Tick::default();
    for shard in 0..shards.max(1) {
        let lease = leases.iter().find(|l| l.shard == shard);
        let assigned = assignee(shard, &live).is_some_and(|a| a == me);
        if let Some(write) = plan_lease(me, lease, assigned, !busy.contains(&shard), now, times) {
            out.writes.push((shard, write));
        }
        if lease.is_some_and(|l| l.lets_write(me, now, times)) {
            out.held.insert(shard);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn members(ids: &[&str]) -> Vec<ReplicaId> {
        ids.iter().map(|s| s.to_string()).collect()
    }

    fn lease(holder: &str, expires: Millis, token: u64) -> Lease {
        Lease { shard: 0, holder: holder.into(), expires, token }
    }

    #[test]
    fn shards_spread_over_the_members_and_a_leaving_member_moves_only_its_own() {
        let three = members(&["a", "b", "c"]);
        let before: Vec<&ReplicaId> = (0..64).map(|s| assignee(s, &three).unwrap()).collect();
        for m in &three {
            let held = before.iter().filter(|a| **a == m).count();
            assert!((10..=32).contains(&held), "{m} holds {held} of 64");
        }
        let two = members(&["a", "c"]);
        for (shard, was) in before.iter().enumerate() {
            let now = assignee(shard as u16, &two).unwrap();
            if *was != "b" {
                assert_eq!(now, *was, "shard {shard} moved though its member stayed");
            }
        }
        assert_eq!(assignee(3, &[]), None);
        // Stable, and spread: 1,000 pipeline names over 16 shards.
        assert_eq!(shard_of("web", 16), shard_of("web", 16));
        let mut per_shard = [0; 16];
        (0..1000).for_each(|i| per_shard[shard_of(&format!("web-{i:04}"), 16) as usize] += 1);
        assert!(per_shard.iter().all(|n| (30..=100).contains(n)), "{per_shard:?}");
    }

    #[test]
    fn a_lease_is_taken_when_free_renewed_by_its_holder_and_released_to_the_assignee() {
        let t = LeaseTimes::default();
        // No lease yet: the assignee takes it; anyone else waits.
        assert_eq!(plan_lease("a", None, true, true, 1_000, &t), Some(LeaseWrite::Acquire { token: None, expires: 31_000 }));
        assert_eq!(plan_lease("b", None, false, true, 1_000, &t), None);
        // Held by a, fresh: nothing to do; a third of the way through: renewed.
        let held = lease("a", 31_000, 7);
        assert_eq!(plan_lease("a", Some(&held), true, false, 5_000, &t), None);
        assert_eq!(plan_lease("a", Some(&held), true, false, 11_000, &t), Some(LeaseWrite::Renew { token: 7, expires: 41_000 }));
        // b became the assignee: it waits while a holds the lease; a releases once idle.
        assert_eq!(plan_lease("b", Some(&held), true, true, 11_000, &t), None);
        assert_eq!(plan_lease("a", Some(&held), false, false, 11_000, &t), Some(LeaseWrite::Renew { token: 7, expires: 41_000 }));
        assert_eq!(plan_lease("a", Some(&held), false, true, 11_000, &t), Some(LeaseWrite::Release { token: 7 }));
        let released = lease("a", 11_000, 7);
        assert_eq!(plan_lease("a", Some(&released), false, true, 12_000, &t), None, "released once, not again");
        // Expired (a died): the assignee takes it, conditional on the token it read.
        assert_eq!(plan_lease("b", Some(&held), true, true, 31_000, &t), Some(LeaseWrite::Acquire { token: Some(7), expires: 61_000 }));
        assert_eq!(plan_lease("c", Some(&held), false, true, 31_000, &t), None, "only the assignee takes it");
    }

    #[test]
    fn a_holder_stops_writing_before_its_lease_ends_and_a_paused_one_wakes_up_unable_to() {
        let t = LeaseTimes::default();
        let held = lease("a", 31_000, 7);
        assert!(held.lets_write("a", 1_000, &t));
        assert!(held.lets_write("a", 25_999, &t));
        assert!(!held.lets_write("a", 26_000, &t), "within the margin of its expiry");
        assert!(!held.lets_write("a", 90_000, &t), "paused past its expiry (SIGSTOP), then woken");
        assert!(!held.lets_write("b", 1_000, &t), "not the holder");
    }

    #[test]
    fn three_replicas_split_the_shards_and_a_dead_ones_shards_go_to_the_others_after_its_lease() {
        let t = LeaseTimes::default();
        let ids = ["a", "b", "c"];
        let mut leases: Vec<Lease> = Vec::new();
        let mut members: Vec<(ReplicaId, Millis)> = ids.iter().map(|id| (id.to_string(), 31_000)).collect();
        // Each replica ticks once and its writes all succeed (no two take one shard: one assignee each).
        let apply = |leases: &mut Vec<Lease>, me: &str, tick: &Tick| {
            for (shard, write) in &tick.writes {
                leases.retain(|l| l.shard != *shard);
                leases.push(write.written(*shard, me, 0));
            }
        };
        for id in ids {
            let tick = tick(id, &members, &leases, 16, &BTreeSet::new(), 1_000, &t);
            apply(&mut leases, id, &tick);
        }
        let held: Vec<BTreeSet<u16>> = ids.iter().map(|id| tick(id, &members, &leases, 16, &BTreeSet::new(), 2_000, &t).held).collect();
        assert_eq!(held.iter().map(BTreeSet::len).sum::<usize>(), 16, "every shard held once: {held:?}");
        assert!(held.iter().all(|h| !h.is_empty()));
        // c stops (no heartbeat, no renewals); a and b renew theirs and, once c's leases expire,
        // take its shards.
        members.retain(|(id, _)| id != "c");
        members.iter_mut().for_each(|m| m.1 = 100_000);
        for now in [15_000, 32_000] {
            for id in ["a", "b"] {
                let tick = tick(id, &members, &leases, 16, &BTreeSet::new(), now, &t);
                apply(&mut leases, id, &tick);
            }
        }
        let after: Vec<BTreeSet<u16>> =
            ["a", "b"].iter().map(|id| tick(id, &members, &leases, 16, &BTreeSet::new(), 33_000, &t).held).collect();
        assert_eq!(after[0].len() + after[1].len(), 16, "c's shards taken within one lease: {after:?}");
        assert!(after[0].is_superset(&held[0]) && after[1].is_superset(&held[1]), "a and b kept what they held");
    }
}
