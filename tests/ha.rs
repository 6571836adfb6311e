//! Several replicas (issue 12, in progress): the lease table against moto's DynamoDB, whose
//! conditional writes are what keeps two replicas from holding one shard.

mod common;

use common::Moto;
use slipway_aws::lease::{self, Written};
use slipway_core::lease::{LeaseTimes, LeaseWrite, plan_lease};

const TABLE: &str = "slipway-leases";

#[tokio::test]
async fn conditional_writes_let_one_replica_hold_a_shard_and_fence_a_stale_holder() {
    let moto = Moto::start();
    let aws = moto.aws().await;
    assert!(lease::ensure_table(&aws, TABLE, false).await.unwrap_err().to_string().contains("does not exist"));
    lease::ensure_table(&aws, TABLE, true).await.unwrap();
    lease::ensure_table(&aws, TABLE, true).await.unwrap();
    let t = LeaseTimes::default();

    // Both replicas see no lease and both try to take shard 0: one wins.
    lease::heartbeat(&aws, TABLE, "a", 31_000).await.unwrap();
    lease::heartbeat(&aws, TABLE, "b", 31_000).await.unwrap();
    let take = plan_lease("a", None, true, true, 1_000, &t).unwrap();
    assert_eq!(lease::write(&aws, TABLE, 0, "a", &take, 1_000).await.unwrap(), Written::Done);
    assert_eq!(lease::write(&aws, TABLE, 0, "b", &take, 1_000).await.unwrap(), Written::Lost);
    let read = lease::read(&aws, TABLE).await.unwrap();
    assert_eq!(read.members, [("a".to_string(), 31_000), ("b".to_string(), 31_000)]);
    let held = read.leases[0].clone();
    assert_eq!((held.holder.as_str(), held.expires, held.token), ("a", 31_000, 1));

    // Only the holder renews; b cannot take an unexpired lease.
    let renew = plan_lease("a", Some(&held), true, false, 11_000, &t).unwrap();
    assert_eq!(lease::write(&aws, TABLE, 0, "b", &renew, 11_000).await.unwrap(), Written::Lost);
    assert_eq!(lease::write(&aws, TABLE, 0, "a", &renew, 11_000).await.unwrap(), Written::Done);
    let early = LeaseWrite::Acquire { token: Some(1), expires: 70_000 };
    assert_eq!(lease::write(&aws, TABLE, 0, "b", &early, 20_000).await.unwrap(), Written::Lost, "not expired yet");

    // a is paused past its lease; b takes the shard; a wakes up and its renewal is refused.
    let expired = lease::read(&aws, TABLE).await.unwrap().leases[0].clone();
    let takeover = plan_lease("b", Some(&expired), true, true, 45_000, &t).unwrap();
    assert_eq!(lease::write(&aws, TABLE, 0, "b", &takeover, 45_000).await.unwrap(), Written::Done);
    assert_eq!(lease::write(&aws, TABLE, 0, "a", &renew, 46_000).await.unwrap(), Written::Lost, "fenced by the token");
    let now_b = lease::read(&aws, TABLE).await.unwrap().leases[0].clone();
    assert_eq!((now_b.holder.as_str(), now_b.token), ("b", 2));

    // b releases it: the next assignee takes it at once.
    let release = LeaseWrite::Release { token: 2 };
    assert_eq!(lease::write(&aws, TABLE, 0, "b", &release, 50_000).await.unwrap(), Written::Done);
    let released = lease::read(&aws, TABLE).await.unwrap().leases[0].clone();
    let again = plan_lease("a", Some(&released), true, true, 50_000, &t).unwrap();
    assert_eq!(lease::write(&aws, TABLE, 0, "a", &again, 50_000).await.unwrap(), Written::Done);
    assert_eq!(lease::read(&aws, TABLE).await.unwrap().leases[0].token, 3);
}
