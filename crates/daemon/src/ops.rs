//! The operations endpoint: `GET /healthz` (200 while the daemon takes work, 503 once it is
//! stopping) and `GET /metrics` (Prometheus text). Plain HTTP on the address the config names;
//! keep it on loopback or inside the VPC (it serves no evidence and takes no input).

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;

use bytes::Bytes;
use http_body_util::Full;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use tokio::net::TcpListener;
use tokio::task::JoinHandle;

use crate::{Metrics, Shutdown};

/// A running operations endpoint.
pub struct Ops {
    /// Where it listens.
    pub addr: SocketAddr,
    task: JoinHandle<()>,
}

impl Drop for Ops {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Serve `/healthz` and `/metrics` on `listen` until dropped.
pub async fn serve(listen: &str, metrics: Arc<Metrics>, stop: Shutdown) -> std::io::Result<Ops> {
    let listener = TcpListener::bind(listen).await?;
    let addr = listener.local_addr()?;
    let task = tokio::spawn(async move {
        loop {
            let Ok((stream, _)) = listener.accept().await else {
                continue;
            };
            let metrics = Arc::clone(&metrics);
            let stop = stop.clone();
            tokio::spawn(async move {
                let service = service_fn(move |request: Request<hyper::body::Incoming>| {
                    let metrics = Arc::clone(&metrics);
                    let stopping = *stop.borrow();
                    async move { Ok::<_, Infallible>(answer(request.uri().path(), &metrics, stopping)) }
                });
                let _ = http1::Builder::new()
                    .serve_connection(TokioIo::new(stream), service)
                    .await;
            });
        }
    });
    tracing::info!(%addr, "operations endpoint listening (/healthz, /metrics)");
    Ok(Ops { addr, task })
}

fn answer(path: &str, metrics: &Metrics, stopping: bool) -> Response<Full<Bytes>> {
    let (status, kind, body) = match path {
        "/healthz" if stopping => (
            StatusCode::SERVICE_UNAVAILABLE,
            "application/json",
            r#"{"status":"stopping"}"#.to_string(),
        ),
        "/healthz" => (
            StatusCode::OK,
            "application/json",
            r#"{"status":"ok"}"#.to_string(),
        ),
        "/metrics" => (
            StatusCode::OK,
            "text/plain; version=0.0.4; charset=utf-8",
            metrics.render(),
        ),
        _ => (
            StatusCode::NOT_FOUND,
            "text/plain",
            "not found: try /healthz or /metrics\n".to_string(),
        ),
    };
    let mut response = Response::new(Full::new(Bytes::from(body)));
    *response.status_mut() = status;
    if let Ok(value) = hyper::header::HeaderValue::from_str(kind) {
        response
            .headers_mut()
            .insert(hyper::header::CONTENT_TYPE, value);
    }
    response
}
