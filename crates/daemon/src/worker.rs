//! One message, from intake to its outcome (see the crate docs for the steps).

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use forensnap_core::intake::{self, CaseRequest, Refusal};
use forensnap_ports::{
    CaseState, CaseTable, Claim, Lease, LeaseError, Message, RequestQueue, Target,
};
use tokio::task::JoinSet;
use tracing::Instrument;

use crate::{Collector, ItemSink, Metrics, Outcome, Shared, Shutdown, now_ms};

/// What becomes of the message once a request is done with.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Disposition {
    /// The outcome is recorded: delete the message.
    Done,
    /// The collection failed: the request goes to the dead-letter queue for a person.
    Failed(String),
    /// Stopped for shutdown: the message is made visible again for another daemon.
    Interrupted,
    /// The lease went to another holder, who owns the case and (after its visibility
    /// lapses) the message: touch neither.
    Lost,
}

/// Handle one received message to the end.
pub(crate) async fn handle<Q, T, C>(shared: &Arc<Shared<Q, T, C>>, message: Message, stop: Shutdown)
where
    Q: RequestQueue + 'static,
    T: CaseTable + 'static,
    C: Collector,
{
    let requests = match intake::parse(&message.body, &shared.settings.rules) {
        Ok(requests) => requests,
        Err(Refusal::NotTriggering(why)) => {
            shared.metrics.refused("not-triggering");
            tracing::info!(message_id = %message.id, reason = %why, "request not collected (the intake rules leave it out); deleted");
            delete(shared, &shared.current(&message)).await;
            return;
        }
        Err(refusal) => {
            shared.metrics.refused(refusal.code());
            tracing::warn!(message_id = %message.id, code = refusal.code(), reason = %refusal, "request refused; moved to the dead-letter queue");
            if let Err(e) = shared
                .queue
                .dead_letter(
                    &shared.current(&message),
                    refusal.code(),
                    &refusal.to_string(),
                )
                .await
            {
                tracing::error!(message_id = %message.id, error = %e, "cannot move the refused request to the dead-letter queue; it stays in the queue and is redriven there after its receive limit");
            }
            return;
        }
    };
    // A Security Hub action naming several instances: their cases run side by side.
    let mut cases = JoinSet::new();
    for request in requests {
        let shared = Arc::clone(shared);
        let message = message.clone();
        let stop = stop.clone();
        cases.spawn(async move { work(&shared, &request, &message, stop).await });
    }
    let mut worst = Disposition::Done;
    while let Some(joined) = cases.join_next().await {
        let disposition = joined.unwrap_or_else(|e| {
            Disposition::Failed(format!("the case task ended abnormally: {e}"))
        });
        worst = match (worst, disposition) {
            (Disposition::Lost, _) | (_, Disposition::Lost) => Disposition::Lost,
            (Disposition::Interrupted, _) | (_, Disposition::Interrupted) => {
                Disposition::Interrupted
            }
            (Disposition::Failed(a), _) => Disposition::Failed(a),
            (_, Disposition::Failed(b)) => Disposition::Failed(b),
            _ => Disposition::Done,
        };
    }
    match worst {
        Disposition::Done => delete(shared, &shared.current(&message)).await,
        Disposition::Failed(why) => {
            if let Err(e) = shared
                .queue
                .dead_letter(&shared.current(&message), "collection-failed", &why)
                .await
            {
                tracing::error!(message_id = %message.id, error = %e, "cannot move the failed request to the dead-letter queue; it reappears after its visibility timeout");
            }
        }
        Disposition::Interrupted => {
            let current = shared.current(&message);
            if let Err(e) = shared.queue.extend(&current.receipt, Duration::ZERO).await {
                tracing::warn!(message_id = %message.id, error = %e, "cannot make the interrupted request visible again; it reappears after its visibility timeout");
            }
        }
        Disposition::Lost => {}
    }
}

async fn delete<Q: RequestQueue, T, C>(shared: &Shared<Q, T, C>, message: &Message) {
    if let Err(e) = shared.queue.delete(&message.receipt).await {
        tracing::warn!(message_id = %message.id, error = %e, "cannot delete the handled request; a re-delivery finds its case done or merges into it");
    }
}

/// One instance's case: claim, lease, collect under the heartbeat, record the outcome.
async fn work<Q, T, C>(
    shared: &Arc<Shared<Q, T, C>>,
    request: &CaseRequest,
    message: &Message,
    stop: Shutdown,
) -> Disposition
where
    Q: RequestQueue + 'static,
    T: CaseTable + 'static,
    C: Collector,
{
    let case = request.case.as_str();
    let target = Target {
        account: request.account.clone(),
        region: request.region.clone(),
        instance: request.instance.clone(),
    };
    let span =
        tracing::info_span!("case", case, account = %target.account, instance = %target.instance);
    work_case(shared, request, message, stop, target)
        .instrument(span)
        .await
}

async fn work_case<Q, T, C>(
    shared: &Arc<Shared<Q, T, C>>,
    request: &CaseRequest,
    message: &Message,
    stop: Shutdown,
    target: Target,
) -> Disposition
where
    Q: RequestQueue + 'static,
    T: CaseTable + 'static,
    C: Collector,
{
    let case = request.case.as_str();
    let table = &shared.table;
    let settings = &shared.settings;
    let ttl = settings.lease.as_millis() as u64;

    // 1. The instance: one unfinished case per instance; a second request is merged.
    match table.claim(&target, case, now_ms()).await {
        Ok(Claim::Ours) => {}
        Ok(Claim::Other(holder)) => return merge(shared, &holder, request).await,
        Err(e) => {
            tracing::warn!(error = %e, "cannot claim the instance in the case table; the request is retried after its visibility timeout");
            return Disposition::Lost;
        }
    }
    // The account's slot (the daemon's own slot is held for the message), before the lease:
    // a case waiting here holds nothing another daemon could use.
    let slots = shared.account_slots(&target.account);
    let mut waiting = stop.clone();
    let _account_slot = tokio::select! {
        slot = slots.acquire_owned() => match slot {
            Ok(slot) => slot,
            Err(_) => return Disposition::Interrupted,
        },
        _ = stopped(&mut waiting) => return Disposition::Interrupted,
    };
    // A second request for a case a task of this daemon works (EventBridge and SQS deliver at
    // least once): the lease cannot tell its own holder's tasks apart, so this set does.
    let Some(_running) = shared.start_case(case) else {
        return merge(shared, case, request).await;
    };
    // 2. The lease.
    let lease = match table
        .take(case, &settings.owner, ttl, now_ms(), Some(&target))
        .await
    {
        Ok(lease) => lease,
        Err(LeaseError::Held { owner, .. }) => {
            tracing::info!(holder = %owner, "the case is being worked by another holder; request merged into it");
            return merge(shared, case, request).await;
        }
        Err(e) => {
            tracing::warn!(error = %e, "cannot take the case's lease; the request is retried after its visibility timeout");
            return Disposition::Lost;
        }
    };
    match table.case(case).await {
        Ok(Some((record, _))) if record.state == CaseState::Completed => {
            tracing::info!("the case is already completed: a repeated request; deleted");
            shared.metrics.merged();
            let _ = table.end_claim(&target, case, now_ms()).await;
            let _ = table.release(&lease, now_ms()).await;
            return Disposition::Done;
        }
        Ok(_) => {}
        Err(e) => tracing::warn!(error = %e, "cannot read the case's row; working it anyway"),
    }
    if let Err(e) = table
        .set_state(&lease, CaseState::Running, None, now_ms())
        .await
    {
        tracing::warn!(error = %e, "cannot mark the case running");
        return Disposition::Lost;
    }
    let _ = table.count_request(case, now_ms()).await;
    shared.metrics.started(&target.account);

    // 3. Work, under the heartbeat.
    let sink = Arc::new(Progress::new(Arc::clone(&shared.metrics)));
    let result = {
        let collect = shared
            .collector
            .collect(request, Arc::clone(&sink) as Arc<dyn ItemSink>);
        let heartbeat = heartbeat(shared, lease.clone(), message, &sink);
        let mut stop = stop;
        tokio::select! {
            outcome = collect => Ok(outcome),
            lost = heartbeat => Err(Some(lost)),
            _ = stopped(&mut stop) => Err(None),
        }
    };
    shared.metrics.finished(&target.account);
    // 4. The outcome.
    let now = now_ms();
    let lease = match result {
        Err(Some(lost)) => {
            tracing::warn!(error = %lost, "lease lost: the work stopped; the new holder resumes the case");
            shared.metrics.lease_lost();
            shared.item_steps(case, None);
            return Disposition::Lost;
        }
        Err(None) => {
            shared.collector.stopped(request).await;
            tracing::info!(
                "shutdown: the case stopped at a resumable point; its lease is released and its request made visible again"
            );
            let _ = table
                .set_state(
                    &lease,
                    CaseState::Queued,
                    Some("interrupted by a daemon shutdown; resumes when taken again"),
                    now,
                )
                .await;
            flush(shared, &lease, &sink).await;
            shared.item_steps(case, None);
            let _ = table.release(&lease, now).await;
            return Disposition::Interrupted;
        }
        Ok(outcome) => {
            flush(shared, &lease, &sink).await;
            shared.item_steps(case, None);
            (lease, outcome)
        }
    };
    let (lease, outcome) = lease;
    let disposition = match &outcome {
        Outcome::Completed => {
            shared.metrics.completed();
            tracing::info!("case completed");
            if let Err(e) = table
                .set_state(&lease, CaseState::Completed, None, now)
                .await
            {
                tracing::warn!(error = %e, "cannot mark the case completed; its custody chain says so");
            }
            if let Err(e) = table.end_claim(&target, case, now).await {
                tracing::warn!(error = %e, "cannot end the instance's claim; a new request for it merges into this completed case");
            }
            Disposition::Done
        }
        Outcome::Failed(why) => {
            shared.metrics.failed();
            tracing::warn!(error = %why, "case failed; the request goes to the dead-letter queue (redriving it resumes the case)");
            if let Err(e) = table
                .set_state(&lease, CaseState::Failed, Some(why), now)
                .await
            {
                tracing::warn!(error = %e, "cannot mark the case failed");
            }
            Disposition::Failed(format!("case {case}: {why}"))
        }
    };
    if let Err(e) = table.release(&lease, now_ms()).await {
        tracing::warn!(error = %e, "cannot release the lease; it lapses by itself");
    }
    disposition
}

/// Merge `request` into case `into`: recorded in that case's custody chain and counted.
async fn merge<Q, T, C>(
    shared: &Arc<Shared<Q, T, C>>,
    into: &str,
    request: &CaseRequest,
) -> Disposition
where
    T: CaseTable,
    C: Collector,
{
    match shared.collector.merged(into, request).await {
        Ok(()) => {
            shared.metrics.merged();
            let _ = shared.table.count_request(into, now_ms()).await;
            tracing::info!(into, "request merged into the case that holds the instance");
            Disposition::Done
        }
        Err(e) => {
            tracing::warn!(into, error = %e, "cannot record the merged request; it is retried after its visibility timeout");
            Disposition::Lost
        }
    }
}

async fn stopped(stop: &mut Shutdown) {
    while !*stop.borrow() {
        if stop.changed().await.is_err() {
            // The sender is gone: nobody can ask to stop any more.
            std::future::pending::<()>().await;
        }
    }
}

/// Every third of the lease: renew it, keep the message invisible, write item progress.
/// Returns only when the lease is lost.
async fn heartbeat<Q, T, C>(
    shared: &Arc<Shared<Q, T, C>>,
    mut lease: Lease,
    message: &Message,
    sink: &Progress,
) -> LeaseError
where
    Q: RequestQueue,
    T: CaseTable,
{
    let every = shared.settings.lease / 3;
    let ttl = shared.settings.lease.as_millis() as u64;
    // The message's visibility now matches the lease (it was received with it; a wait for an
    // account slot may have used part of it).
    if let Err(e) = shared
        .queue
        .extend(&shared.current(message).receipt, shared.settings.lease)
        .await
    {
        tracing::warn!(message_id = %message.id, error = %e, "cannot extend the request's visibility");
    }
    loop {
        tokio::time::sleep(every).await;
        match shared.table.renew(&lease, ttl, now_ms()).await {
            Ok(renewed) => lease = renewed,
            Err(lost @ LeaseError::Lost { .. }) => return lost,
            // The table is unreachable: keep working while the lease is still ours.
            Err(e) if now_ms() < lease.expires_ms => {
                tracing::warn!(error = %e, "cannot renew the lease; trying again at the next beat");
                continue;
            }
            Err(e) => return e,
        }
        if let Err(e) = shared
            .queue
            .extend(&shared.current(message).receipt, shared.settings.lease)
            .await
        {
            tracing::warn!(message_id = %message.id, error = %e, "cannot extend the request's visibility");
        }
        flush(shared, &lease, sink).await;
    }
}

async fn flush<Q, T: CaseTable, C>(shared: &Shared<Q, T, C>, lease: &Lease, sink: &Progress) {
    let table = &shared.table;
    let latest = sink.take();
    let steps: BTreeMap<String, String> = latest
        .iter()
        .map(|(item, (step, _, _))| (item.clone(), step.clone()))
        .collect();
    shared.item_steps(&lease.case, Some(&steps));
    for (item, (step, done, total)) in latest {
        if let Err(e) = table
            .set_item(lease, &item, &step, done, total, now_ms())
            .await
        {
            tracing::warn!(item, error = %e, "cannot record item progress");
        }
    }
}

/// The latest progress of each item since the last flush; bytes done feed the metrics.
struct Progress {
    items: Mutex<BTreeMap<String, (String, u64, u64)>>,
    seen: Mutex<BTreeMap<String, u64>>,
    metrics: Arc<Metrics>,
}

impl Progress {
    fn new(metrics: Arc<Metrics>) -> Self {
        Progress {
            items: Mutex::new(BTreeMap::new()),
            seen: Mutex::new(BTreeMap::new()),
            metrics,
        }
    }

    fn take(&self) -> BTreeMap<String, (String, u64, u64)> {
        std::mem::take(&mut *self.items.lock().unwrap_or_else(|p| p.into_inner()))
    }
}

impl ItemSink for Progress {
    fn item(&self, item: &str, step: &str, done: u64, total: u64) {
        {
            let mut seen = self.seen.lock().unwrap_or_else(|p| p.into_inner());
            let before = seen.insert(item.to_string(), done).unwrap_or(0);
            self.metrics.acquired(done.saturating_sub(before));
        }
        self.items
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(item.to_string(), (step.to_string(), done, total));
    }
}
