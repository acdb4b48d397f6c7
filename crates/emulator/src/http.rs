//! The HTTP plumbing both stand-ins share: a loopback listener whose accept loop owns its
//! connections (aborting it closes them all), the response body type, query and path decoding,
//! and the stats document.

use std::collections::{HashMap, VecDeque};
use std::convert::Infallible;
use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use bytes::Bytes;
use http_body::{Frame, SizeHint};
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use tokio::net::TcpListener;
use tokio::task::{JoinHandle, JoinSet};

use crate::stats::Stats;

/// Path of the stats document on every listener.
pub const STATS_PATH: &str = "/_emulator/stats";

/// A response body: nothing, one buffer, or a run of buffers (a stored object's chunks, sent
/// without copying them into one).
#[derive(Debug, Default)]
pub enum Body {
    /// No bytes.
    #[default]
    Empty,
    /// One buffer (taken when sent).
    Full(Option<Bytes>),
    /// Buffers in order.
    Chunks(VecDeque<Bytes>),
}

impl Body {
    /// One buffer.
    pub fn full(bytes: impl Into<Bytes>) -> Body {
        Body::Full(Some(bytes.into()))
    }

    /// Bytes still to send.
    fn remaining(&self) -> u64 {
        match self {
            Body::Empty => 0,
            Body::Full(b) => b.as_ref().map_or(0, |b| b.len() as u64),
            Body::Chunks(c) => c.iter().map(|b| b.len() as u64).sum(),
        }
    }
}

impl http_body::Body for Body {
    type Data = Bytes;
    type Error = Infallible;

    fn poll_frame(
        self: Pin<&mut Self>,
        _cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Infallible>>> {
        let next = match self.get_mut() {
            Body::Empty => None,
            Body::Full(b) => b.take(),
            Body::Chunks(c) => c.pop_front(),
        };
        Poll::Ready(next.map(|b| Ok(Frame::data(b))))
    }

    fn is_end_stream(&self) -> bool {
        self.remaining() == 0
    }

    fn size_hint(&self) -> SizeHint {
        SizeHint::with_exact(self.remaining())
    }
}

/// Bind 127.0.0.1:`port` (0: any free port).
pub(crate) async fn bind(port: u16) -> std::io::Result<(TcpListener, SocketAddr)> {
    let listener = TcpListener::bind(("127.0.0.1", port)).await?;
    let addr = listener.local_addr()?;
    Ok((listener, addr))
}

/// Serve `handler` on `listener` (HTTP/1.1, keep-alive) until the returned task is aborted,
/// which also ends every open connection.
pub(crate) fn serve<H, F>(listener: TcpListener, handler: H) -> JoinHandle<()>
where
    H: Fn(Request<Incoming>) -> F + Clone + Send + Sync + 'static,
    F: Future<Output = Response<Body>> + Send + 'static,
{
    tokio::spawn(async move {
        let mut connections = JoinSet::new();
        while let Ok((stream, _)) = listener.accept().await {
            // Small answers (errors, listings) must not wait for Nagle.
            let _ = stream.set_nodelay(true);
            let handler = handler.clone();
            connections.spawn(async move {
                let service = service_fn(move |req| {
                    let answer = handler(req);
                    async move { Ok::<_, Infallible>(answer.await) }
                });
                let _ = http1::Builder::new()
                    .serve_connection(TokioIo::new(stream), service)
                    .await;
            });
            while connections.try_join_next().is_some() {}
        }
    })
}

/// A response from a builder, or a bare 500 when a header value was not valid.
pub(crate) fn build(builder: http::response::Builder, body: Body) -> Response<Body> {
    builder.body(body).unwrap_or_else(|_| {
        let mut response = Response::new(Body::full("invalid response header"));
        *response.status_mut() = StatusCode::INTERNAL_SERVER_ERROR;
        response
    })
}

/// The stats document, or `None` when `req` does not ask for it.
pub(crate) fn stats_answer(stats: &Arc<Stats>, req: &Request<Incoming>) -> Option<Response<Body>> {
    if req.uri().path() != STATS_PATH {
        return None;
    }
    let json = serde_json::to_string(&stats.snapshot()).unwrap_or_default();
    Some(build(
        Response::builder().header("content-type", "application/json"),
        Body::full(json),
    ))
}

/// The query string's parameters, decoded (a key without `=` maps to "").
pub(crate) fn query(req: &Request<Incoming>) -> HashMap<String, String> {
    req.uri()
        .query()
        .unwrap_or_default()
        .split('&')
        .filter(|kv| !kv.is_empty())
        .map(|kv| match kv.split_once('=') {
            Some((k, v)) => (percent_decode(k), percent_decode(v)),
            None => (percent_decode(kv), String::new()),
        })
        .collect()
}

/// `%XX` decoded (AWS's SigV4 encoding writes a space as `%20`, so `+` is left as it is).
pub(crate) fn percent_decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%'
            && let Some(byte) = s
                .get(i + 1..i + 3)
                .and_then(|h| u8::from_str_radix(h, 16).ok())
        {
            out.push(byte);
            i += 3;
            continue;
        }
        out.push(bytes[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percent_decoding() {
        assert_eq!(percent_decode("a%20b%2Fc+d"), "a b/c+d");
        assert_eq!(percent_decode("100%"), "100%");
        assert_eq!(percent_decode("%zz"), "%zz");
    }
}
