//! A fast EBS direct-API emulator for benchmarks and fault injection: synthetic snapshots served
//! from a pool of precomputed blocks (so the server spends its CPU on HTTP, not on making data),
//! ListSnapshotBlocks with index paging, GetSnapshotBlock with AWS's checksum headers, and
//! optional throttling (`RequestThrottledException`) at a given probability. The Python local
//! world is faithful but serves ~300 blocks/s; this serves the read path at loopback speed.

use std::collections::HashMap;
use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;

use base64::Engine as _;
use bytes::Bytes;
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Request, Response};
use hyper_util::rt::TokioIo;
use sha2::{Digest, Sha256};
use tokio::net::TcpListener;

/// EBS block size.
const BLOCK: usize = 524_288;
/// Distinct block contents served (index modulo this).
const POOL: usize = 64;

/// A synthetic snapshot.
#[derive(Debug, Clone)]
pub struct Snapshot {
    /// Id.
    pub id: String,
    /// Volume size, GiB.
    pub volume_gib: u64,
    /// Listed (data) blocks, ascending.
    pub blocks: Vec<u64>,
}

impl Snapshot {
    /// A snapshot of `volume_gib` whose every `stride`-th block holds data, up to `data_blocks`.
    pub fn spread(id: &str, volume_gib: u64, data_blocks: u64) -> Snapshot {
        let total = volume_gib * (1 << 30) / BLOCK as u64;
        let stride = (total / data_blocks.max(1)).max(1);
        Snapshot {
            id: id.into(),
            volume_gib,
            blocks: (0..data_blocks.min(total)).map(|i| i * stride).collect(),
        }
    }
}

struct State {
    snapshots: HashMap<String, Snapshot>,
    pool: Vec<(Bytes, String)>,
    throttle: f64,
}

/// The bytes and base64 SHA-256 of block `index` as the emulator serves it.
pub fn block(index: u64) -> Vec<u8> {
    let seed = (index as usize % POOL) as u8;
    (0..BLOCK)
        .map(|i| (i as u8).wrapping_mul(31).wrapping_add(seed) ^ (i >> 9) as u8)
        .collect()
}

/// A running emulator; it stops when dropped.
pub struct Emulator {
    /// Its address on loopback.
    pub addr: SocketAddr,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for Emulator {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl Emulator {
    /// Serve `snapshots` on 127.0.0.1, throttling each block read with probability `throttle`.
    pub async fn start(snapshots: Vec<Snapshot>, throttle: f64) -> std::io::Result<Emulator> {
        let pool = (0..POOL as u64)
            .map(|i| {
                let data = block(i);
                let checksum =
                    base64::engine::general_purpose::STANDARD.encode(Sha256::digest(&data));
                (Bytes::from(data), checksum)
            })
            .collect();
        let state = Arc::new(State {
            snapshots: snapshots.into_iter().map(|s| (s.id.clone(), s)).collect(),
            pool,
            throttle,
        });
        let listener = TcpListener::bind("127.0.0.1:0").await?;
        let addr = listener.local_addr()?;
        let task = tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                let state = state.clone();
                tokio::spawn(async move {
                    let service = service_fn(move |req| {
                        let state = state.clone();
                        async move { Ok::<_, Infallible>(handle(&state, req)) }
                    });
                    let _ = http1::Builder::new()
                        .serve_connection(TokioIo::new(stream), service)
                        .await;
                });
            }
        });
        Ok(Emulator { addr, task })
    }

    /// The endpoint URL.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }
}

fn error(status: u16, kind: &str, message: &str) -> Response<Full<Bytes>> {
    Response::builder()
        .status(status)
        .header("content-type", "application/json")
        .header("x-amzn-ErrorType", kind)
        .body(Full::new(Bytes::from(
            serde_json::json!({"message": message, "Reason": "ACCOUNT_THROTTLED"}).to_string(),
        )))
        .unwrap_or_default()
}

fn query(req: &Request<Incoming>) -> HashMap<String, String> {
    req.uri()
        .query()
        .unwrap_or_default()
        .split('&')
        .filter_map(|kv| kv.split_once('='))
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

fn handle(state: &State, req: Request<Incoming>) -> Response<Full<Bytes>> {
    let path: Vec<&str> = req.uri().path().trim_matches('/').split('/').collect();
    let Some(snapshot) = path.get(1).and_then(|id| state.snapshots.get(*id)) else {
        return error(404, "ResourceNotFoundException", "no such snapshot");
    };
    let q = query(&req);
    match path.as_slice() {
        ["snapshots", _, "blocks"] => {
            let start: u64 = q
                .get("startingBlockIndex")
                .and_then(|v| v.parse().ok())
                .unwrap_or(0);
            let max: usize = q
                .get("maxResults")
                .and_then(|v| v.parse().ok())
                .unwrap_or(10_000);
            let from = snapshot.blocks.partition_point(|&b| b < start);
            let chosen = &snapshot.blocks[from..(from + max).min(snapshot.blocks.len())];
            let mut body = serde_json::json!({
                "Blocks": chosen.iter().map(|i| serde_json::json!({"BlockIndex": i, "BlockToken": format!("t{i}")})).collect::<Vec<_>>(),
                "ExpiryTime": 4_102_444_800u64,
                "VolumeSize": snapshot.volume_gib,
                "BlockSize": BLOCK,
            });
            if from + max < snapshot.blocks.len() {
                body["NextToken"] = serde_json::json!(format!("n{}", snapshot.blocks[from + max]));
            }
            Response::builder()
                .header("content-type", "application/json")
                .body(Full::new(Bytes::from(body.to_string())))
                .unwrap_or_default()
        }
        ["snapshots", _, "blocks", index] => {
            if state.throttle > 0.0 && fastrand::f64() < state.throttle {
                return error(400, "RequestThrottledException", "throttled (emulated)");
            }
            let Ok(index) = index.parse::<usize>() else {
                return error(400, "ValidationException", "bad block index");
            };
            let (data, checksum) = &state.pool[index % POOL];
            Response::builder()
                .header("content-type", "application/octet-stream")
                .header("x-amz-Data-Length", BLOCK.to_string())
                .header("x-amz-Checksum", checksum)
                .header("x-amz-Checksum-Algorithm", "SHA256")
                .body(Full::new(data.clone()))
                .unwrap_or_default()
        }
        _ => error(400, "ValidationException", "unknown operation"),
    }
}
