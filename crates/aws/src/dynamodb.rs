//! [`CaseTable`] over DynamoDB: the case table of `forensic-vpc/forensic-account.yaml`
//! (`case_id` partition key, `item` sort key), written only with conditional writes, so that
//! several daemons and the command line agree on who works a case without talking to each
//! other. The rules are those of [`forensnap_ports::state`], as condition expressions:
//!
//! * take (a case, or one item of it): `attribute_not_exists(expires) OR owner = :me OR
//!   expires < :now`, token `ADD 1`;
//! * renew, set state: `owner = :me AND token = :token AND expires >= :now`;
//! * release: `owner = :me AND token = :token` (a lease already gone is not an error);
//! * item progress: `attribute_not_exists(token) OR token <= :token` (fencing);
//! * claim: `attribute_not_exists(case_id) OR claimed = :case OR done = :true`.
//!
//! Reads of a case are strongly consistent. Every attribute name goes through an expression
//! attribute name (`#o`, `#s`, ...): several are DynamoDB reserved words.

use std::collections::HashMap;

use aws_sdk_dynamodb::types::{AttributeValue, ReturnValue};
use forensnap_ports::state::{
    CASE_ROW, CLAIM_ROW, CaseRecord, CaseState, CaseTable, Claim, ItemRecord, Lease, LeaseError,
    Target,
};
use forensnap_store::{CloudError, ErrorKind};

use crate::errors::aws_error;

type Row = HashMap<String, AttributeValue>;

/// The case table.
#[derive(Debug, Clone)]
pub struct DynamoCaseTable {
    client: aws_sdk_dynamodb::Client,
    table: String,
}

impl DynamoCaseTable {
    /// The table `table`.
    pub fn new(client: aws_sdk_dynamodb::Client, table: &str) -> Self {
        DynamoCaseTable {
            client,
            table: table.to_string(),
        }
    }

    fn key(case: &str, item: &str) -> Row {
        HashMap::from([
            ("case_id".to_string(), s(case)),
            ("item".to_string(), s(item)),
        ])
    }

    async fn get(&self, case: &str, item: &str) -> Result<Option<Row>, CloudError> {
        let out = self
            .client
            .get_item()
            .table_name(&self.table)
            .set_key(Some(Self::key(case, item)))
            .consistent_read(true)
            .send()
            .await
            .map_err(|e| aws_error("GetItem", e))?;
        Ok(out.item().cloned())
    }

    /// Set the case's state (and message) under its lease, and with `release` give the lease
    /// up in the same write.
    async fn write_state(
        &self,
        lease: &Lease,
        state: CaseState,
        message: Option<&str>,
        now_ms: u64,
        release: bool,
    ) -> Result<(), LeaseError> {
        let mut set = vec!["#s = :state", "#u = :now"];
        let mut remove = Vec::new();
        if message.is_some() {
            set.push("#m = :message");
        } else {
            remove.push("#m");
        }
        if release {
            remove.extend(["#o", "#e"]);
        }
        let mut update = format!("SET {}", set.join(", "));
        if !remove.is_empty() {
            update.push_str(&format!(" REMOVE {}", remove.join(", ")));
        }
        let mut request = self
            .client
            .update_item()
            .table_name(&self.table)
            .set_key(Some(Self::key(&lease.case, CASE_ROW)))
            .update_expression(update)
            .condition_expression("#o = :owner AND #t = :token AND #e >= :now")
            .expression_attribute_names("#o", "owner")
            .expression_attribute_names("#e", "expires")
            .expression_attribute_names("#t", "token")
            .expression_attribute_names("#s", "state")
            .expression_attribute_names("#u", "updated")
            .expression_attribute_names("#m", "message")
            .expression_attribute_values(":owner", s(&lease.owner))
            .expression_attribute_values(":token", n(lease.token))
            .expression_attribute_values(":now", n(now_ms))
            .expression_attribute_values(":state", s(state.as_str()));
        if let Some(m) = message {
            request = request.expression_attribute_values(":message", s(m));
        }
        match request.send().await {
            Ok(_) => Ok(()),
            Err(e) => {
                let err = aws_error("UpdateItem", e);
                Err(if refused(&err) {
                    lost(lease)
                } else {
                    err.into()
                })
            }
        }
    }

    /// The holder of a case whose take was refused.
    async fn held(&self, case: &str) -> Result<LeaseError, LeaseError> {
        let row = self.get(case, CASE_ROW).await?.unwrap_or_default();
        Ok(LeaseError::Held {
            case: case.to_string(),
            owner: text(&row, "owner").unwrap_or_default(),
            expires_ms: number(&row, "expires").unwrap_or_default(),
            token: number(&row, "token").unwrap_or_default(),
        })
    }
}

fn s(v: &str) -> AttributeValue {
    AttributeValue::S(v.to_string())
}

fn n(v: u64) -> AttributeValue {
    AttributeValue::N(v.to_string())
}

fn text(row: &Row, name: &str) -> Option<String> {
    row.get(name).and_then(|v| v.as_s().ok()).cloned()
}

fn number(row: &Row, name: &str) -> Option<u64> {
    row.get(name)
        .and_then(|v| v.as_n().ok())
        .and_then(|v| v.parse().ok())
}

/// Whether the error is a refused condition.
fn refused(err: &CloudError) -> bool {
    err.kind == ErrorKind::Exists
}

fn lost(lease: &Lease) -> LeaseError {
    LeaseError::Lost {
        case: lease.case.clone(),
        owner: lease.owner.clone(),
        token: lease.token,
    }
}

fn case_record(row: &Row) -> Option<CaseRecord> {
    let target = match (
        text(row, "account"),
        text(row, "region"),
        text(row, "instance"),
    ) {
        (Some(account), Some(region), Some(instance)) => Some(Target {
            account,
            region,
            instance,
        }),
        _ => None,
    };
    Some(CaseRecord {
        case: text(row, "case_id")?,
        state: text(row, "state")
            .as_deref()
            .and_then(CaseState::parse)
            .unwrap_or(CaseState::Idle),
        target,
        owner: text(row, "owner"),
        expires_ms: number(row, "expires"),
        token: number(row, "token").unwrap_or_default(),
        requests: number(row, "requests").unwrap_or_default(),
        updated_ms: number(row, "updated").unwrap_or_default(),
        message: text(row, "message"),
    })
}

fn item_record(row: &Row) -> Option<ItemRecord> {
    Some(ItemRecord {
        case: text(row, "case_id")?,
        item: text(row, "item")?,
        step: text(row, "step").unwrap_or_default(),
        done_bytes: number(row, "done").unwrap_or_default(),
        total_bytes: number(row, "total").unwrap_or_default(),
        owner: text(row, "owner").unwrap_or_default(),
        token: number(row, "token").unwrap_or_default(),
        expires_ms: number(row, "expires"),
        updated_ms: number(row, "updated").unwrap_or_default(),
    })
}

impl CaseTable for DynamoCaseTable {
    fn name(&self) -> &str {
        &self.table
    }

    async fn take(
        &self,
        case: &str,
        owner: &str,
        ttl_ms: u64,
        now_ms: u64,
        target: Option<&Target>,
    ) -> Result<Lease, LeaseError> {
        let mut update =
            "SET #o = :owner, #e = :expires, #u = :now, #s = if_not_exists(#s, :idle) \
                          ADD #t :one, #r :zero"
                .to_string();
        let mut request = self
            .client
            .update_item()
            .table_name(&self.table)
            .set_key(Some(Self::key(case, CASE_ROW)))
            .condition_expression("attribute_not_exists(#e) OR #o = :owner OR #e < :now")
            .expression_attribute_names("#o", "owner")
            .expression_attribute_names("#e", "expires")
            .expression_attribute_names("#u", "updated")
            .expression_attribute_names("#s", "state")
            .expression_attribute_names("#t", "token")
            .expression_attribute_names("#r", "requests")
            .expression_attribute_values(":owner", s(owner))
            .expression_attribute_values(":expires", n(now_ms + ttl_ms))
            .expression_attribute_values(":now", n(now_ms))
            .expression_attribute_values(":idle", s(CaseState::Idle.as_str()))
            .expression_attribute_values(":one", n(1))
            .expression_attribute_values(":zero", n(0))
            .return_values(ReturnValue::AllNew);
        if let Some(t) = target {
            update = update.replacen(
                " ADD",
                ", #a = if_not_exists(#a, :account), #g = if_not_exists(#g, :region), #i = if_not_exists(#i, :instance) ADD",
                1,
            );
            request = request
                .expression_attribute_names("#a", "account")
                .expression_attribute_names("#g", "region")
                .expression_attribute_names("#i", "instance")
                .expression_attribute_values(":account", s(&t.account))
                .expression_attribute_values(":region", s(&t.region))
                .expression_attribute_values(":instance", s(&t.instance));
        }
        match request.update_expression(update).send().await {
            Ok(out) => {
                let row = out.attributes().cloned().unwrap_or_default();
                Ok(Lease {
                    case: case.to_string(),
                    row: CASE_ROW.to_string(),
                    owner: owner.to_string(),
                    token: number(&row, "token").unwrap_or(1),
                    expires_ms: now_ms + ttl_ms,
                })
            }
            Err(e) => {
                let err = aws_error("UpdateItem", e);
                if refused(&err) {
                    Err(self.held(case).await?)
                } else {
                    Err(err.into())
                }
            }
        }
    }

    async fn take_item(
        &self,
        case: &str,
        item: &str,
        owner: &str,
        ttl_ms: u64,
        now_ms: u64,
    ) -> Result<Lease, LeaseError> {
        let result = self
            .client
            .update_item()
            .table_name(&self.table)
            .set_key(Some(Self::key(case, item)))
            .update_expression(
                "SET #o = :owner, #e = :expires, #u = :now, #p = if_not_exists(#p, :pending) ADD #t :one",
            )
            .condition_expression("attribute_not_exists(#e) OR #o = :owner OR #e < :now")
            .expression_attribute_names("#o", "owner")
            .expression_attribute_names("#e", "expires")
            .expression_attribute_names("#u", "updated")
            .expression_attribute_names("#p", "step")
            .expression_attribute_names("#t", "token")
            .expression_attribute_values(":owner", s(owner))
            .expression_attribute_values(":expires", n(now_ms + ttl_ms))
            .expression_attribute_values(":now", n(now_ms))
            .expression_attribute_values(":pending", s("pending"))
            .expression_attribute_values(":one", n(1))
            .return_values(ReturnValue::AllNew)
            .send()
            .await;
        match result {
            Ok(out) => {
                let row = out.attributes().cloned().unwrap_or_default();
                Ok(Lease {
                    case: case.to_string(),
                    row: item.to_string(),
                    owner: owner.to_string(),
                    token: number(&row, "token").unwrap_or(1),
                    expires_ms: now_ms + ttl_ms,
                })
            }
            Err(e) => {
                let err = aws_error("UpdateItem", e);
                if !refused(&err) {
                    return Err(err.into());
                }
                let row = self.get(case, item).await?.unwrap_or_default();
                Err(LeaseError::Held {
                    case: format!("{case} item {item}"),
                    owner: text(&row, "owner").unwrap_or_default(),
                    expires_ms: number(&row, "expires").unwrap_or_default(),
                    token: number(&row, "token").unwrap_or_default(),
                })
            }
        }
    }

    async fn renew(&self, lease: &Lease, ttl_ms: u64, now_ms: u64) -> Result<Lease, LeaseError> {
        let result = self
            .client
            .update_item()
            .table_name(&self.table)
            .set_key(Some(Self::key(&lease.case, &lease.row)))
            .update_expression("SET #e = :expires")
            .condition_expression("#o = :owner AND #t = :token AND #e >= :now")
            .expression_attribute_names("#o", "owner")
            .expression_attribute_names("#e", "expires")
            .expression_attribute_names("#t", "token")
            .expression_attribute_values(":owner", s(&lease.owner))
            .expression_attribute_values(":token", n(lease.token))
            .expression_attribute_values(":expires", n(now_ms + ttl_ms))
            .expression_attribute_values(":now", n(now_ms))
            .send()
            .await;
        match result {
            Ok(_) => Ok(Lease {
                expires_ms: now_ms + ttl_ms,
                ..lease.clone()
            }),
            Err(e) => {
                let err = aws_error("UpdateItem", e);
                Err(if refused(&err) {
                    lost(lease)
                } else {
                    err.into()
                })
            }
        }
    }

    async fn set_state(
        &self,
        lease: &Lease,
        state: CaseState,
        message: Option<&str>,
        now_ms: u64,
    ) -> Result<(), LeaseError> {
        self.write_state(lease, state, message, now_ms, false).await
    }

    async fn end(
        &self,
        lease: &Lease,
        state: CaseState,
        message: Option<&str>,
        now_ms: u64,
    ) -> Result<(), LeaseError> {
        self.write_state(lease, state, message, now_ms, true).await
    }

    async fn release(&self, lease: &Lease, now_ms: u64) -> Result<(), LeaseError> {
        let result = self
            .client
            .update_item()
            .table_name(&self.table)
            .set_key(Some(Self::key(&lease.case, &lease.row)))
            .update_expression("SET #u = :now REMOVE #o, #e")
            .condition_expression("#o = :owner AND #t = :token")
            .expression_attribute_names("#o", "owner")
            .expression_attribute_names("#e", "expires")
            .expression_attribute_names("#t", "token")
            .expression_attribute_names("#u", "updated")
            .expression_attribute_values(":owner", s(&lease.owner))
            .expression_attribute_values(":token", n(lease.token))
            .expression_attribute_values(":now", n(now_ms))
            .send()
            .await;
        match result {
            Ok(_) => Ok(()),
            Err(e) => {
                let err = aws_error("UpdateItem", e);
                if refused(&err) {
                    Ok(())
                } else {
                    Err(err.into())
                }
            }
        }
    }

    async fn set_item(
        &self,
        lease: &Lease,
        item: &str,
        step: &str,
        done_bytes: u64,
        total_bytes: u64,
        now_ms: u64,
    ) -> Result<(), LeaseError> {
        let result = self
            .client
            .update_item()
            .table_name(&self.table)
            .set_key(Some(Self::key(&lease.case, item)))
            .update_expression(
                "SET #p = :step, #d = :done, #n = :total, #o = :owner, #t = :token, #u = :now",
            )
            .condition_expression("attribute_not_exists(#t) OR #t <= :token")
            .expression_attribute_names("#p", "step")
            .expression_attribute_names("#d", "done")
            .expression_attribute_names("#n", "total")
            .expression_attribute_names("#o", "owner")
            .expression_attribute_names("#t", "token")
            .expression_attribute_names("#u", "updated")
            .expression_attribute_values(":step", s(step))
            .expression_attribute_values(":done", n(done_bytes))
            .expression_attribute_values(":total", n(total_bytes))
            .expression_attribute_values(":owner", s(&lease.owner))
            .expression_attribute_values(":token", n(lease.token))
            .expression_attribute_values(":now", n(now_ms))
            .send()
            .await;
        match result {
            Ok(_) => Ok(()),
            Err(e) => {
                let err = aws_error("UpdateItem", e);
                Err(if refused(&err) {
                    lost(lease)
                } else {
                    err.into()
                })
            }
        }
    }

    async fn count_request(&self, case: &str, now_ms: u64) -> Result<(), CloudError> {
        let result = self
            .client
            .update_item()
            .table_name(&self.table)
            .set_key(Some(Self::key(case, CASE_ROW)))
            .update_expression("SET #u = :now ADD #r :one")
            .condition_expression("attribute_exists(#k)")
            .expression_attribute_names("#k", "case_id")
            .expression_attribute_names("#u", "updated")
            .expression_attribute_names("#r", "requests")
            .expression_attribute_values(":now", n(now_ms))
            .expression_attribute_values(":one", n(1))
            .send()
            .await;
        match result {
            Ok(_) => Ok(()),
            Err(e) => {
                let err = aws_error("UpdateItem", e);
                if refused(&err) { Ok(()) } else { Err(err) }
            }
        }
    }

    async fn claim(&self, target: &Target, case: &str, now_ms: u64) -> Result<Claim, CloudError> {
        let key = target.claim_key();
        // A claim that changes between the refused write and the read is tried again.
        for _ in 0..3 {
            let result = self
                .client
                .put_item()
                .table_name(&self.table)
                .item("case_id", s(&key))
                .item("item", s(CLAIM_ROW))
                .item("claimed", s(case))
                .item("done", AttributeValue::Bool(false))
                .item("updated", n(now_ms))
                .condition_expression("attribute_not_exists(#k) OR #c = :case OR #d = :done")
                .expression_attribute_names("#k", "case_id")
                .expression_attribute_names("#c", "claimed")
                .expression_attribute_names("#d", "done")
                .expression_attribute_values(":case", s(case))
                .expression_attribute_values(":done", AttributeValue::Bool(true))
                .send()
                .await;
            match result {
                Ok(_) => return Ok(Claim::Ours),
                Err(e) => {
                    let err = aws_error("PutItem", e);
                    if !refused(&err) {
                        return Err(err);
                    }
                }
            }
            let row = self.get(&key, CLAIM_ROW).await?.unwrap_or_default();
            let done = matches!(row.get("done"), Some(AttributeValue::Bool(true)));
            if let Some(holder) = text(&row, "claimed")
                && !done
                && holder != case
            {
                return Ok(Claim::Other(holder));
            }
        }
        Err(CloudError::new(
            ErrorKind::Transient,
            "PutItem",
            format!("the claim on {key} kept changing; try again"),
        ))
    }

    async fn end_claim(&self, target: &Target, case: &str, now_ms: u64) -> Result<(), CloudError> {
        let result = self
            .client
            .update_item()
            .table_name(&self.table)
            .set_key(Some(Self::key(&target.claim_key(), CLAIM_ROW)))
            .update_expression("SET #d = :done, #u = :now")
            .condition_expression("#c = :case")
            .expression_attribute_names("#d", "done")
            .expression_attribute_names("#u", "updated")
            .expression_attribute_names("#c", "claimed")
            .expression_attribute_values(":done", AttributeValue::Bool(true))
            .expression_attribute_values(":now", n(now_ms))
            .expression_attribute_values(":case", s(case))
            .send()
            .await;
        match result {
            Ok(_) => Ok(()),
            Err(e) => {
                let err = aws_error("UpdateItem", e);
                if refused(&err) { Ok(()) } else { Err(err) }
            }
        }
    }

    async fn case(&self, case: &str) -> Result<Option<(CaseRecord, Vec<ItemRecord>)>, CloudError> {
        let mut rows = Vec::new();
        let mut start: Option<Row> = None;
        loop {
            let out = self
                .client
                .query()
                .table_name(&self.table)
                .key_condition_expression("#k = :case")
                .expression_attribute_names("#k", "case_id")
                .expression_attribute_values(":case", s(case))
                .consistent_read(true)
                .set_exclusive_start_key(start.take())
                .send()
                .await
                .map_err(|e| aws_error("Query", e))?;
            rows.extend(out.items().iter().cloned());
            match out.last_evaluated_key() {
                Some(key) if !key.is_empty() => start = Some(key.clone()),
                _ => break,
            }
        }
        let Some(record) = rows
            .iter()
            .find(|r| text(r, "item").as_deref() == Some(CASE_ROW))
            .and_then(case_record)
        else {
            return Ok(None);
        };
        let items = rows
            .iter()
            .filter(|r| text(r, "item").as_deref() != Some(CASE_ROW))
            .filter_map(item_record)
            .collect();
        Ok(Some((record, items)))
    }

    async fn cases(&self) -> Result<Vec<CaseRecord>, CloudError> {
        let mut records = Vec::new();
        let mut start: Option<Row> = None;
        loop {
            let out = self
                .client
                .scan()
                .table_name(&self.table)
                .filter_expression("#k = :case_row")
                .expression_attribute_names("#k", "item")
                .expression_attribute_values(":case_row", s(CASE_ROW))
                .set_exclusive_start_key(start.take())
                .send()
                .await
                .map_err(|e| aws_error("Scan", e))?;
            records.extend(out.items().iter().filter_map(case_record));
            match out.last_evaluated_key() {
                Some(key) if !key.is_empty() => start = Some(key.clone()),
                _ => break,
            }
        }
        records.sort_by(|a, b| a.case.cmp(&b.case));
        Ok(records)
    }
}
