//! One message, from intake to its outcome (see the crate docs for the steps).

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use forensnap_core::intake::{self, CaseRequest, ItemRequest, Refusal};
use forensnap_ports::state::CASE_ROW;
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
    /// Not now: the message reappears after this long.
    Retry(Duration),
}

/// Handle one received message to the end.
pub(crate) async fn handle<Q, T, C>(shared: &Arc<Shared<Q, T, C>>, message: Message, stop: Shutdown)
where
    Q: RequestQueue + 'static,
    T: CaseTable + 'static,
    C: Collector,
{
    let item = match intake::parse_item(&message.body, &shared.settings.rules) {
        Some(Ok(item)) => Some(item),
        Some(Err(refusal)) => {
            refuse(shared, &message, &refusal).await;
            return;
        }
        None => None,
    };
    let worst = match item {
        Some(item) => work_item(shared, &item, &message, stop).await,
        None => match requests_of(shared, &message, stop).await {
            Some(worst) => worst,
            None => return,
        },
    };
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
        Disposition::Retry(after) => {
            let current = shared.current(&message);
            if let Err(e) = shared.queue.extend(&current.receipt, after).await {
                tracing::warn!(message_id = %message.id, error = %e, "cannot reschedule the request; it reappears after its visibility timeout");
            }
        }
        Disposition::Lost => {}
    }
}

/// The case requests of a message (not an item request), each worked to its end; `None` when
/// the message was refused or left out (already dealt with).
async fn requests_of<Q, T, C>(
    shared: &Arc<Shared<Q, T, C>>,
    message: &Message,
    stop: Shutdown,
) -> Option<Disposition>
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
            delete(shared, &shared.current(message)).await;
            return None;
        }
        Err(refusal) => {
            refuse(shared, message, &refusal).await;
            return None;
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
            (Disposition::Retry(a), _) => Disposition::Retry(a),
            (_, Disposition::Retry(b)) => Disposition::Retry(b),
            (Disposition::Interrupted, _) | (_, Disposition::Interrupted) => {
                Disposition::Interrupted
            }
            (Disposition::Failed(a), _) => Disposition::Failed(a),
            (_, Disposition::Failed(b)) => Disposition::Failed(b),
            _ => Disposition::Done,
        };
    }
    Some(worst)
}

/// Move a refused message to the dead-letter queue with its reason.
async fn refuse<Q: RequestQueue, T, C>(
    shared: &Shared<Q, T, C>,
    message: &Message,
    refusal: &Refusal,
) {
    shared.metrics.refused(refusal.code());
    tracing::warn!(message_id = %message.id, code = refusal.code(), reason = %refusal, "request refused; moved to the dead-letter queue");
    if let Err(e) = shared
        .queue
        .dead_letter(
            &shared.current(message),
            refusal.code(),
            &refusal.to_string(),
        )
        .await
    {
        tracing::error!(message_id = %message.id, error = %e, "cannot move the refused request to the dead-letter queue; it stays in the queue and is redriven there after its receive limit");
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
    let target = target_of(request);
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
    let Some(_account_slot) = account_slot(shared, &target.account, &stop).await else {
        return Disposition::Interrupted;
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

    // 3. Work, under the heartbeat: the whole case here, or its preparation here and each
    //    volume wherever a daemon is free.
    if settings.split_volumes {
        prepare(shared, request, message, stop, &target, lease).await
    } else {
        whole(shared, request, message, stop, &target, lease, false).await
    }
}

/// How work under a lease ended.
enum Guarded<T> {
    /// It finished.
    Done(T),
    /// The lease went to another holder.
    Lost(LeaseError),
    /// Shutdown.
    Stopped,
}

/// Run `work` under `lease`'s heartbeat, stopping on shutdown or a lost lease.
async fn guarded<Q, T, C, F>(
    shared: &Arc<Shared<Q, T, C>>,
    lease: &Lease,
    message: &Message,
    sink: &Progress,
    stop: &Shutdown,
    work: F,
) -> Guarded<F::Output>
where
    Q: RequestQueue,
    T: CaseTable,
    F: std::future::Future,
{
    let heartbeat = heartbeat(shared, lease.clone(), message, sink);
    let mut stop = stop.clone();
    tokio::select! {
        out = work => Guarded::Done(out),
        lost = heartbeat => Guarded::Lost(lost),
        _ = stopped(&mut stop) => Guarded::Stopped,
    }
}

/// After a lost lease: stop, touching nothing the new holder owns.
fn lease_lost<Q, T, C>(shared: &Shared<Q, T, C>, lease: &Lease, lost: &LeaseError) -> Disposition {
    tracing::warn!(error = %lost, row = %lease.row, "lease lost: the work stopped; the new holder resumes it");
    shared.metrics.lease_lost();
    shared.item_steps(&lease.case, None);
    Disposition::Lost
}

/// After shutdown stopped the work: undo what must not stay half-done, leave the row
/// resumable, release the lease.
async fn interrupted<Q, T: CaseTable, C: Collector>(
    shared: &Shared<Q, T, C>,
    request: &CaseRequest,
    lease: &Lease,
    sink: &Progress,
) -> Disposition {
    shared.collector.stopped(request).await;
    tracing::info!(row = %lease.row, "shutdown: stopped at a resumable point; the lease is released and the request made visible again");
    let now = now_ms();
    flush(shared, lease, sink).await;
    if lease.row == CASE_ROW {
        let _ = shared
            .table
            .set_state(
                lease,
                CaseState::Queued,
                Some("interrupted by a daemon shutdown; resumes when taken again"),
                now,
            )
            .await;
    } else {
        let _ = shared
            .table
            .set_item(lease, &lease.row, "pending", 0, 0, now)
            .await;
    }
    shared.item_steps(&lease.case, None);
    let _ = shared.table.release(lease, now).await;
    Disposition::Interrupted
}

/// The whole case (or, `completing`, a split case whose every volume is sealed) under the
/// case lease.
async fn whole<Q, T, C>(
    shared: &Arc<Shared<Q, T, C>>,
    request: &CaseRequest,
    message: &Message,
    stop: Shutdown,
    target: &Target,
    lease: Lease,
    completing: bool,
) -> Disposition
where
    Q: RequestQueue + 'static,
    T: CaseTable + 'static,
    C: Collector,
{
    let case = request.case.as_str();
    let table = &shared.table;
    let sink = Arc::new(Progress::new(Arc::clone(&shared.metrics)));
    shared.metrics.started(&target.account);
    let collect = async {
        if completing {
            // Every volume is sealed and its row says so: the completing run's progress
            // (preservation found done, nothing read) must not overwrite those rows.
            shared.collector.complete(request, Arc::new(Discard)).await
        } else {
            shared
                .collector
                .collect(request, Arc::clone(&sink) as Arc<dyn ItemSink>)
                .await
        }
    };
    let result = guarded(shared, &lease, message, &sink, &stop, collect).await;
    shared.metrics.finished(&target.account);
    let outcome = match result {
        Guarded::Lost(lost) => return lease_lost(shared, &lease, &lost),
        Guarded::Stopped => return interrupted(shared, request, &lease, &sink).await,
        Guarded::Done(outcome) => {
            flush(shared, &lease, &sink).await;
            shared.item_steps(case, None);
            outcome
        }
    };
    let now = now_ms();
    match &outcome {
        Outcome::Completed => {
            shared.metrics.completed();
            tracing::info!("case completed");
            if let Err(e) = table.end_claim(target, case, now).await {
                tracing::warn!(error = %e, "cannot end the instance's claim; a new request for it merges into this completed case");
            }
            if let Err(e) = table
                .end(&lease, CaseState::Completed, None, now_ms())
                .await
            {
                tracing::warn!(error = %e, "cannot mark the case completed and release it; its custody chain says so, and the lease lapses by itself");
            }
            Disposition::Done
        }
        Outcome::Failed(why) => {
            shared.metrics.failed();
            tracing::warn!(error = %why, "case failed; the request goes to the dead-letter queue (redriving it resumes the case)");
            if let Err(e) = table.end(&lease, CaseState::Failed, Some(why), now).await {
                tracing::warn!(error = %e, "cannot mark the case failed and release it; the lease lapses by itself");
            }
            Disposition::Failed(format!("case {case}: {why}"))
        }
    }
}

/// Preparation (preservation, small items) under the case lease, then one item request per
/// volume on the queue, for any daemon; the case completes when its last volume is sealed.
async fn prepare<Q, T, C>(
    shared: &Arc<Shared<Q, T, C>>,
    request: &CaseRequest,
    message: &Message,
    stop: Shutdown,
    target: &Target,
    lease: Lease,
) -> Disposition
where
    Q: RequestQueue + 'static,
    T: CaseTable + 'static,
    C: Collector,
{
    let table = &shared.table;
    let sink = Arc::new(Progress::new(Arc::clone(&shared.metrics)));
    shared.metrics.started(&target.account);
    let work = shared
        .collector
        .prepare(request, Arc::clone(&sink) as Arc<dyn ItemSink>);
    let result = guarded(shared, &lease, message, &sink, &stop, work).await;
    shared.metrics.finished(&target.account);
    let volumes = match result {
        Guarded::Lost(lost) => return lease_lost(shared, &lease, &lost),
        Guarded::Stopped => return interrupted(shared, request, &lease, &sink).await,
        Guarded::Done(Err(why)) => {
            flush(shared, &lease, &sink).await;
            shared.item_steps(&lease.case, None);
            shared.metrics.failed();
            tracing::warn!(error = %why, "case preparation failed; the request goes to the dead-letter queue (redriving it resumes the case)");
            let _ = table
                .end(&lease, CaseState::Failed, Some(&why), now_ms())
                .await;
            return Disposition::Failed(format!("case {}: {why}", lease.case));
        }
        Guarded::Done(Ok(volumes)) => volumes,
    };
    flush(shared, &lease, &sink).await;
    shared.item_steps(&lease.case, None);
    if volumes.is_empty() {
        return whole(shared, request, message, stop, target, lease, false).await;
    }
    // Every volume's row first, then the messages: a volume finished early must not see a
    // case whose other volumes have no row yet as complete.
    for volume in &volumes {
        if let Err(e) = table
            .set_item(&lease, volume, "pending", 0, 0, now_ms())
            .await
        {
            tracing::warn!(volume, error = %e, "cannot record the volume as pending; the request is retried");
            let _ = table.release(&lease, now_ms()).await;
            return Disposition::Retry(Duration::ZERO);
        }
    }
    for volume in &volumes {
        let body = ItemRequest::new(request, volume).to_json();
        if let Err(e) = shared.queue.send(&body).await {
            // The request stays: its next delivery prepares nothing again and queues the
            // volumes again (a volume queued twice is worked once, under its lease).
            tracing::warn!(volume, error = %e, "cannot queue the volume; the request is retried");
            let _ = table.release(&lease, now_ms()).await;
            return Disposition::Retry(Duration::ZERO);
        }
    }
    tracing::info!(
        volumes = volumes.len(),
        "case prepared; its volumes are queued for any daemon"
    );
    let _ = table
        .set_state(
            &lease,
            CaseState::Running,
            Some(&format!("{} volumes queued for any daemon", volumes.len())),
            now_ms(),
        )
        .await;
    let _ = table.release(&lease, now_ms()).await;
    Disposition::Done
}

/// One volume of a prepared case, under its item lease; then, if it was the last, the case's
/// completion.
async fn work_item<Q, T, C>(
    shared: &Arc<Shared<Q, T, C>>,
    item: &ItemRequest,
    message: &Message,
    stop: Shutdown,
) -> Disposition
where
    Q: RequestQueue + 'static,
    T: CaseTable + 'static,
    C: Collector,
{
    let request = &item.request;
    let span = tracing::info_span!("item", case = %request.case, item = %item.item, instance = %request.instance);
    async {
        let case = request.case.as_str();
        let table = &shared.table;
        let ttl = shared.settings.lease.as_millis() as u64;
        let Some(_account_slot) = account_slot(shared, &request.account, &stop).await else {
            return Disposition::Interrupted;
        };
        let lease = match table
            .take_item(case, &item.item, &shared.settings.owner, ttl, now_ms())
            .await
        {
            Ok(lease) => lease,
            Err(LeaseError::Held { owner, expires_ms, .. }) => {
                // Queued twice, or delivered twice: the holder works it. Look again once its
                // lease would have lapsed.
                tracing::info!(holder = %owner, "the volume is being worked by another holder");
                let wait = expires_ms.saturating_sub(now_ms()) + 5_000;
                return Disposition::Retry(Duration::from_millis(wait));
            }
            Err(e) => {
                tracing::warn!(error = %e, "cannot take the volume's lease; retried after its visibility timeout");
                return Disposition::Lost;
            }
        };
        let sealed = matches!(table.case(case).await, Ok(Some((_, items))) if items.iter().any(|i| i.item == item.item && i.step == "sealed"));
        if !sealed {
            let sink = Arc::new(Progress::new(Arc::clone(&shared.metrics)));
            shared.metrics.started(&request.account);
            let work = shared.collector.item(
                request,
                &item.item,
                Arc::clone(&sink) as Arc<dyn ItemSink>,
            );
            let result = guarded(shared, &lease, message, &sink, &stop, work).await;
            shared.metrics.finished(&request.account);
            let outcome = match result {
                Guarded::Lost(lost) => return lease_lost(shared, &lease, &lost),
                Guarded::Stopped => return interrupted(shared, request, &lease, &sink).await,
                Guarded::Done(outcome) => outcome,
            };
            let (done, total) = sink.last(&item.item);
            sink.take();
            shared.item_steps(case, None);
            let step = match &outcome {
                Outcome::Completed => "sealed",
                Outcome::Failed(_) => "failed",
            };
            if let Err(e) = table
                .set_item(&lease, &item.item, step, done, total, now_ms())
                .await
            {
                tracing::warn!(error = %e, "cannot record the volume's end; retried");
                let _ = table.release(&lease, now_ms()).await;
                return Disposition::Lost;
            }
            let _ = table.release(&lease, now_ms()).await;
            if let Outcome::Failed(why) = outcome {
                tracing::warn!(error = %why, "volume failed; its request goes to the dead-letter queue (redriving it resumes the volume)");
                let _ = finish(shared, request, message, stop).await;
                return Disposition::Failed(format!("case {case} volume {}: {why}", item.item));
            }
            tracing::info!("volume sealed");
        } else {
            let _ = table.release(&lease, now_ms()).await;
        }
        finish(shared, request, message, stop).await
    }
    .instrument(span)
    .await
}

/// Complete the case if every volume is sealed (or mark it failed if one failed and none is
/// left), under the case lease.
async fn finish<Q, T, C>(
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
    let table = &shared.table;
    let items = match table.case(case).await {
        Ok(Some((_, items))) => items,
        Ok(None) => return Disposition::Done,
        Err(e) => {
            tracing::warn!(error = %e, "cannot read the case's items; retried");
            return Disposition::Retry(Duration::from_secs(5));
        }
    };
    let volumes: Vec<_> = items
        .iter()
        .filter(|i| i.item.starts_with("vol-"))
        .collect();
    if volumes
        .iter()
        .any(|i| i.step != "sealed" && i.step != "failed")
    {
        return Disposition::Done;
    }
    let target = target_of(request);
    let ttl = shared.settings.lease.as_millis() as u64;
    let lease = match table
        .take(case, &shared.settings.owner, ttl, now_ms(), Some(&target))
        .await
    {
        Ok(lease) => lease,
        // The preparer (or another finisher) holds it: look again shortly.
        Err(LeaseError::Held { .. }) => return Disposition::Retry(Duration::from_secs(5)),
        Err(e) => {
            tracing::warn!(error = %e, "cannot take the case's lease to complete it; retried");
            return Disposition::Retry(Duration::from_secs(5));
        }
    };
    // Completed by another finisher meanwhile. (A case marked failed for a failed volume is
    // completed here once that volume, redriven, is sealed.)
    if let Ok(Some((record, _))) = table.case(case).await
        && record.state == CaseState::Completed
    {
        let _ = table.release(&lease, now_ms()).await;
        return Disposition::Done;
    }
    let failed: Vec<&str> = volumes
        .iter()
        .filter(|i| i.step == "failed")
        .map(|i| i.item.as_str())
        .collect();
    if !failed.is_empty() {
        let why = format!(
            "volume(s) {} failed (their requests are in the dead-letter queue; redriving them resumes the case)",
            failed.join(", ")
        );
        shared.metrics.failed();
        let _ = table
            .end(&lease, CaseState::Failed, Some(&why), now_ms())
            .await;
        return Disposition::Done;
    }
    tracing::info!("every volume is sealed: completing the case");
    let _ = table
        .set_state(&lease, CaseState::Running, Some("completing"), now_ms())
        .await;
    whole(shared, request, message, stop, &target, lease, true).await
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

/// The instance a request is about.
fn target_of(request: &CaseRequest) -> Target {
    Target {
        account: request.account.clone(),
        region: request.region.clone(),
        instance: request.instance.clone(),
    }
}

/// One of `account`'s slots (the daemon's own slot is held for the message), or `None` on
/// shutdown while waiting for it.
async fn account_slot<Q, T, C>(
    shared: &Shared<Q, T, C>,
    account: &str,
    stop: &Shutdown,
) -> Option<tokio::sync::OwnedSemaphorePermit> {
    let slots = shared.account_slots(account);
    let mut waiting = stop.clone();
    tokio::select! {
        slot = slots.acquire_owned() => slot.ok(),
        _ = stopped(&mut waiting) => None,
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

/// Progress nobody records.
struct Discard;

impl ItemSink for Discard {
    fn item(&self, _: &str, _: &str, _: u64, _: u64) {}
}

/// The latest progress of each item since the last flush; bytes done feed the metrics.
struct Progress {
    items: Mutex<BTreeMap<String, (String, u64, u64)>>,
    seen: Mutex<BTreeMap<String, u64>>,
    metrics: Arc<Metrics>,
}

impl Progress {
    /// The last position reported for `item` (done, total).
    fn last(&self, item: &str) -> (u64, u64) {
        let done = self
            .seen
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(item)
            .copied()
            .unwrap_or(0);
        let total = self
            .items
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(item)
            .map(|(_, _, t)| *t)
            .unwrap_or(done);
        (done, total.max(done))
    }

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
