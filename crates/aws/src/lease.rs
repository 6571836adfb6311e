//! Adapter: the lease table of several replicas (`--ha-table`; the rules are
//! `slipway_core::lease`). One item per replica, `member#<id>` (its heartbeat's expiry), and one
//! per shard, `shard#<n>` (holder, expiry, fencing token), under the partition key `pk`. Every
//! write of a shard is conditional on the lease the replica read: a failed condition means
//! another replica got there first, [`Written::Lost`], not an error.

use std::collections::HashMap;

use aws_sdk_dynamodb::types::{AttributeDefinition, AttributeValue, BillingMode, KeySchemaElement, KeyType, ScalarAttributeType};
use slipway_core::lease::{Lease, LeaseWrite, Millis, ReplicaId};

use crate::{Aws, AwsError, ErrorKind, absent_if_not_found, aws_err};

const KEY: &str = "pk";
const MEMBER: &str = "member#";
const SHARD: &str = "shard#";

/// What a replica read of the table.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Snapshot {
    /// Each replica's heartbeat expiry.
    pub members: Vec<(ReplicaId, Millis)>,
    pub leases: Vec<Lease>,
}

/// Whether a conditional write went through.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Written {
    Done,
    /// The lease is no longer as read: another replica took, renewed or released it.
    Lost,
}

/// Makes sure the table exists; creates it (on-demand billing, key `pk`) when `create` is set.
pub async fn ensure_table(aws: &Aws, table: &str, create: bool) -> Result<(), AwsError> {
    let found =
        absent_if_not_found(aws.dynamodb.describe_table().table_name(table).send().await.map_err(aws_err("dynamodb", "DescribeTable")))?;
    if found.is_some() {
        return Ok(());
    }
    if !create {
        return Err(AwsError::refused(
            "dynamodb",
            "DescribeTable",
            format!("the lease table {table} does not exist; create it (see README) or let slipway (--ha-create-table)"),
        ));
    }
    let key = |t| AttributeDefinition::builder().attribute_name(KEY).attribute_type(t).build().expect("name and type");
    let created = aws
        .dynamodb
        .create_table()
        .table_name(table)
        .attribute_definitions(key(ScalarAttributeType::S))
        .key_schema(KeySchemaElement::builder().attribute_name(KEY).key_type(KeyType::Hash).build().expect("name and type"))
        .billing_mode(BillingMode::PayPerRequest)
        .send()
        .await
        .map_err(aws_err("dynamodb", "CreateTable"));
    match created {
        // Another replica, started at the same time, created it first.
        Err(err) if err.kind == ErrorKind::Conflict => {}
        other => drop(other?),
    }
    // On-demand tables take seconds to become active: writes fail until then, and the caller
    // retries its renewal loop as for any failed write.
    Ok(())
}

/// Reads every member and lease, consistently (the table holds a few dozen items).
pub async fn read(aws: &Aws, table: &str) -> Result<Snapshot, AwsError> {
    let mut snapshot = Snapshot::default();
    let mut start: Option<HashMap<String, AttributeValue>> = None;
    loop {
        let page = aws
            .dynamodb
            .scan()
            .table_name(table)
            .consistent_read(true)
            .set_exclusive_start_key(start)
            .send()
            .await
            .map_err(aws_err("dynamodb", "Scan"))?;
        for item in page.items.unwrap_or_default() {
            let Some(pk) = item.get(KEY).and_then(|v| v.as_s().ok()) else { continue };
            let number = |name: &str| item.get(name).and_then(|v| v.as_n().ok()).and_then(|n| n.parse::<u64>().ok());
            if let Some(id) = pk.strip_prefix(MEMBER) {
                snapshot.members.push((id.to_owned(), number("expires").unwrap_or(0)));
            } else if let Some(shard) = pk.strip_prefix(SHARD).and_then(|s| s.parse().ok()) {
                let holder = item.get("holder").and_then(|v| v.as_s().ok()).cloned().unwrap_or_default();
                snapshot.leases.push(Lease { shard, holder, expires: number("expires").unwrap_or(0), token: number("token").unwrap_or(0) });
            }
        }
        start = page.last_evaluated_key.filter(|k| !k.is_empty());
        if start.is_none() {
            snapshot.members.sort();
            snapshot.leases.sort_by_key(|l| l.shard);
            return Ok(snapshot);
        }
    }
}

/// Writes this replica's heartbeat (its own item: unconditional).
pub async fn heartbeat(aws: &Aws, table: &str, me: &str, expires: Millis) -> Result<(), AwsError> {
    aws.dynamodb
        .put_item()
        .table_name(table)
        .item(KEY, AttributeValue::S(format!("{MEMBER}{me}")))
        .item("expires", number(expires))
        .send()
        .await
        .map_err(aws_err("dynamodb", "PutItem"))?;
    Ok(())
}

fn number(n: u64) -> AttributeValue {
    AttributeValue::N(n.to_string())
}

/// Makes one conditional write of `shard`'s lease for `me` at `now`.
pub async fn write(aws: &Aws, table: &str, shard: u16, me: &str, lease_write: &LeaseWrite, now: Millis) -> Result<Written, AwsError> {
    let pk = AttributeValue::S(format!("{SHARD}{shard}"));
    let sent = match *lease_write {
        LeaseWrite::Acquire { token, expires } => {
            let put = aws
                .dynamodb
                .put_item()
                .table_name(table)
                .item(KEY, pk)
                .item("holder", AttributeValue::S(me.to_owned()))
                .item("expires", number(expires))
                .item("token", number(token.map_or(1, |t| t + 1)));
            let put = match token {
                None => put.condition_expression("attribute_not_exists(#pk)").expression_attribute_names("#pk", KEY),
                Some(t) => put
                    .condition_expression("#token = :token AND #expires <= :now")
                    .expression_attribute_names("#token", "token")
                    .expression_attribute_names("#expires", "expires")
                    .expression_attribute_values(":token", number(t))
                    .expression_attribute_values(":now", number(now)),
            };
            put.send().await.map(drop).map_err(aws_err("dynamodb", "PutItem"))
        }
        LeaseWrite::Renew { token, expires } => update(aws, table, pk, me, token, expires).await,
        LeaseWrite::Release { token } => update(aws, table, pk, me, token, now).await,
    };
    match sent {
        Ok(()) => Ok(Written::Done),
        Err(err) if err.kind == ErrorKind::Conflict => Ok(Written::Lost),
        Err(err) => Err(err),
    }
}

/// Sets the expiry of a lease `me` holds with `token`.
async fn update(aws: &Aws, table: &str, pk: AttributeValue, me: &str, token: u64, expires: Millis) -> Result<(), AwsError> {
    aws.dynamodb
        .update_item()
        .table_name(table)
        .key(KEY, pk)
        .update_expression("SET #expires = :expires")
        .condition_expression("#holder = :me AND #token = :token")
        .expression_attribute_names("#expires", "expires")
        .expression_attribute_names("#holder", "holder")
        .expression_attribute_names("#token", "token")
        .expression_attribute_values(":expires", number(expires))
        .expression_attribute_values(":me", AttributeValue::S(me.to_owned()))
        .expression_attribute_values(":token", number(token))
        .send()
        .await
        .map(drop)
        .map_err(aws_err("dynamodb", "UpdateItem"))
}

/// Deletes the item of a replica gone since before `before` (a pod of an earlier rollout), so the
/// table does not grow with every replica ever started. Conditional: a replica that came back
/// keeps its item.
pub async fn forget_member(aws: &Aws, table: &str, id: &str, before: Millis) -> Result<Written, AwsError> {
    let sent = aws
        .dynamodb
        .delete_item()
        .table_name(table)
        .key(KEY, AttributeValue::S(format!("{MEMBER}{id}")))
        .condition_expression("#expires < :before")
        .expression_attribute_names("#expires", "expires")
        .expression_attribute_values(":before", number(before))
        .send()
        .await
        .map(drop)
        .map_err(aws_err("dynamodb", "DeleteItem"));
    match sent {
        Ok(()) => Ok(Written::Done),
        Err(err) if err.kind == ErrorKind::Conflict => Ok(Written::Lost),
        Err(err) => Err(err),
    }
}
