//! The emulator's own ceiling: an in-process load generator (hyper client, keep-alive
//! connections, each with one GetSnapshotBlock in flight) against an emulator with no latency
//! and no quota, counting answers and bytes for a fixed time. Client and server share the
//! machine, so the figure is what both together reach: a floor for the server alone.

use std::time::{Duration, Instant};

use anyhow::Context as _;
use bytes::Bytes;
use http_body_util::{BodyExt, Empty};
use hyper::client::conn::http1;
use hyper_util::rt::TokioIo;
use serde::Serialize;
use tokio::net::TcpStream;

use crate::snapshot::{BLOCK_SIZE, Snapshot};
use crate::{EbsConfig, Emulator, EmulatorConfig};

/// Id of the snapshot read.
const SNAPSHOT: &str = "snap-ceiling000000";

/// What a run measured.
#[derive(Debug, Clone, Serialize)]
pub struct CeilingReport {
    /// Seconds measured.
    pub seconds: f64,
    /// Keep-alive connections, one request in flight on each.
    pub connections: usize,
    /// GetSnapshotBlock answered with a block.
    pub requests: u64,
    /// Block bytes received.
    pub bytes: u64,
    /// Answers that were not a block (should be 0).
    pub errors: u64,
    /// Blocks per second.
    pub requests_per_second: f64,
    /// MiB of blocks per second.
    pub mib_per_second: f64,
    /// Cores available to client and server together.
    pub cores: usize,
}

/// Measure for `duration` with `connections` keep-alive connections.
pub async fn ceiling(duration: Duration, connections: usize) -> anyhow::Result<CeilingReport> {
    let snapshot = Snapshot::spread(SNAPSHOT, 1, 2048);
    let emulator = Emulator::launch(EmulatorConfig {
        ebs: EbsConfig::new(vec![snapshot]),
        ..EmulatorConfig::default()
    })
    .await
    .context("starting the emulator to measure")?;
    let started = Instant::now();
    let deadline = started + duration;
    let workers: Vec<_> = (0..connections.max(1))
        .map(|n| tokio::spawn(worker(emulator.addr, n as u64, deadline)))
        .collect();
    let (mut requests, mut bytes, mut errors) = (0, 0, 0);
    for worker in workers {
        let (r, b, e) = worker
            .await
            .context("a load connection panicked")?
            .context("a load connection failed")?;
        requests += r;
        bytes += b;
        errors += e;
    }
    let seconds = started.elapsed().as_secs_f64();
    Ok(CeilingReport {
        seconds: (seconds * 100.0).round() / 100.0,
        connections: connections.max(1),
        requests,
        bytes,
        errors,
        requests_per_second: (requests as f64 / seconds).round(),
        mib_per_second: (bytes as f64 / 1_048_576.0 / seconds).round(),
        cores: std::thread::available_parallelism().map_or(1, |n| n.get()),
    })
}

/// One keep-alive connection reading blocks until `deadline`: (blocks, bytes, errors).
async fn worker(
    addr: std::net::SocketAddr,
    first: u64,
    deadline: Instant,
) -> anyhow::Result<(u64, u64, u64)> {
    let stream = TcpStream::connect(addr)
        .await
        .with_context(|| format!("connecting to {addr}"))?;
    stream.set_nodelay(true).context("setting TCP_NODELAY")?;
    let (mut sender, connection) = http1::handshake(TokioIo::new(stream))
        .await
        .context("HTTP/1 handshake")?;
    let driver = tokio::spawn(connection);
    let (mut requests, mut bytes, mut errors) = (0u64, 0u64, 0u64);
    let mut index = first * 31;
    while Instant::now() < deadline {
        index = (index + 1) % 2048;
        let request = hyper::Request::get(format!(
            "/snapshots/{SNAPSHOT}/blocks/{index}?blockToken=t{index}"
        ))
        .header("host", addr.to_string())
        .body(Empty::<Bytes>::new())
        .context("building a request")?;
        sender.ready().await.context("waiting for the connection")?;
        let response = sender
            .send_request(request)
            .await
            .context("sending GetSnapshotBlock")?;
        let ok = response.status().is_success();
        let mut body = response.into_body();
        let mut got = 0u64;
        while let Some(frame) = body.frame().await {
            if let Ok(data) = frame.context("reading a block")?.into_data() {
                got += data.len() as u64;
            }
        }
        if ok && got == BLOCK_SIZE as u64 {
            requests += 1;
            bytes += got;
        } else {
            errors += 1;
        }
    }
    drop(sender);
    driver.abort();
    Ok((requests, bytes, errors))
}
