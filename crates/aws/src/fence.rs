//! Fencing: with several replicas, a write for a pipeline is sent only while this replica holds
//! the lease of the pipeline's shard (`slipway_core::lease`).
//!
//! The controller runs each pipeline's reconcile inside [`scope`] with the [`Fence`] of its shard.
//! An SDK interceptor on every client checks it just before each attempt of every mutating call
//! is sent (after signing, so also before each SDK retry): when the lease no longer lets this
//! replica write, the call fails with [`ErrorKind::Fenced`](crate::ErrorKind::Fenced) without
//! reaching AWS. Reads are never fenced. Calls made outside a scope (the lease table's own
//! writes, one-shot CLI commands, a single replica) are not checked.
//!
//! The [`Board`] holds the leases as this replica last read or wrote them; the replica's lease
//! task keeps it current, and drops a lease the moment a renewal finds it lost.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{SystemTime, UNIX_EPOCH};

use aws_smithy_runtime_api::box_error::BoxError;
use aws_smithy_runtime_api::client::interceptors::Intercept;
use aws_smithy_runtime_api::client::interceptors::context::BeforeTransmitInterceptorContextRef;
use aws_smithy_runtime_api::client::orchestrator::Metadata;
use aws_smithy_runtime_api::client::runtime_components::RuntimeComponents;
use aws_smithy_types::config_bag::ConfigBag;
use slipway_core::lease::{Lease, LeaseTimes, Millis, ReplicaId};

use crate::calls::is_read_only;

tokio::task_local! {
    static FENCE: Fence;
}

/// The leases of one replica, as it last read or wrote them.
#[derive(Debug)]
pub struct Board {
    pub me: ReplicaId,
    pub times: LeaseTimes,
    leases: Mutex<HashMap<u16, Lease>>,
}

impl Board {
    pub fn new(me: ReplicaId, times: LeaseTimes) -> Board {
        Board { me, times, leases: Mutex::default() }
    }

    /// Records a lease as read or written.
    pub fn set(&self, lease: Lease) {
        self.leases.lock().expect("lease board lock").insert(lease.shard, lease);
    }

    /// Forgets a shard's lease (lost or released): nothing more is written for it.
    pub fn drop_shard(&self, shard: u16) {
        self.leases.lock().expect("lease board lock").remove(&shard);
    }

    /// Whether this replica holds `shard`'s lease as last read or written, however close to its
    /// expiry.
    pub fn holds(&self, shard: u16) -> bool {
        self.leases.lock().expect("lease board lock").get(&shard).is_some_and(|l| l.holder == self.me)
    }

    /// The fencing token of the lease this replica holds on `shard`.
    pub fn token(&self, shard: u16) -> Option<u64> {
        self.leases.lock().expect("lease board lock").get(&shard).filter(|l| l.holder == self.me).map(|l| l.token)
    }

    /// Whether this replica may write for `shard`'s pipelines at `now`.
    pub fn lets_write(&self, shard: u16, now: Millis) -> bool {
        self.leases.lock().expect("lease board lock").get(&shard).is_some_and(|l| l.lets_write(&self.me, now, &self.times))
    }
}

/// The lease a pipeline's writes depend on.
#[derive(Debug, Clone)]
pub struct Fence {
    pub shard: u16,
    pub board: Arc<Board>,
}

/// Runs `work` with every mutating call it makes checked against `fence` (none: unchecked).
pub async fn scope<F: std::future::Future>(fence: Option<Fence>, work: F) -> F::Output {
    match fence {
        Some(fence) => FENCE.scope(fence, work).await,
        None => work.await,
    }
}

/// Unix time now, in milliseconds.
pub fn now_millis() -> Millis {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_millis() as Millis)
}

/// A write refused because the replica no longer holds the lease of the pipeline's shard.
#[derive(Debug, thiserror::Error)]
#[error("not sent: this replica ({replica}) no longer holds the lease of shard {shard}")]
pub struct Fenced {
    pub replica: ReplicaId,
    pub shard: u16,
}

/// Whether `err` (or what caused it) is a refusal by the fence.
pub(crate) fn is_fenced(err: &(dyn std::error::Error + 'static)) -> bool {
    let mut next = Some(err);
    while let Some(e) = next {
        if e.is::<Fenced>() {
            return true;
        }
        next = e.source();
    }
    false
}

/// The interceptor on every client.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct FenceCheck;

impl Intercept for FenceCheck {
    fn name(&self) -> &'static str {
        "slipway-fence"
    }

    fn read_before_transmit(
        &self,
        _: &BeforeTransmitInterceptorContextRef<'_>,
        _: &RuntimeComponents,
        cfg: &mut ConfigBag,
    ) -> Result<(), BoxError> {
        let Some(meta) = cfg.load::<Metadata>() else { return Ok(()) };
        if is_read_only(meta.name()) {
            return Ok(());
        }
        let refused = FENCE
            .try_with(|f| (!f.board.lets_write(f.shard, now_millis())).then(|| Fenced { replica: f.board.me.clone(), shard: f.shard }));
        match refused {
            Ok(Some(fenced)) => Err(Box::new(fenced)),
            _ => Ok(()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_board_lets_its_holder_write_until_the_margin_and_never_after_the_lease_is_dropped() {
        let board = Board::new("a".into(), LeaseTimes::default());
        assert!(!board.lets_write(3, 1_000), "no lease read yet");
        board.set(Lease { shard: 3, holder: "a".into(), expires: 31_000, token: 2 });
        assert!(board.lets_write(3, 1_000));
        assert!(!board.lets_write(3, 26_000), "within the margin");
        assert!(!board.lets_write(4, 1_000), "another shard");
        board.drop_shard(3);
        assert!(!board.lets_write(3, 1_000), "lost");
        let err = Fenced { replica: "a".into(), shard: 3 };
        assert!(is_fenced(&err));
    }
}
