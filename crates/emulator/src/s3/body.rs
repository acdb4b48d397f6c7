//! Request bodies as S3 receives them: plain, or `aws-chunked` (the SDK's encoding for a streamed
//! body whose checksum follows as a trailer: `hex-size[;chunk-signature=..]\r\n data \r\n ...
//! 0\r\n x-amz-checksum-crc64nvme:BASE64\r\n \r\n`), hashed as the bytes arrive with only the
//! algorithms the request announces (SHA-256, CRC-64/NVME; a body announcing neither is not
//! hashed), kept or only counted, and cut when the client sends nothing for the idle timeout
//! (S3's `RequestTimeout`).

use std::time::Duration;

use bytes::Bytes;
use crc_fast::CrcAlgorithm;
use http_body_util::BodyExt;
use hyper::body::Incoming;
use sha2::{Digest as _, Sha256};

use super::model::Sums;

/// Longest size or trailer line accepted in an aws-chunked body.
const MAX_LINE: usize = 4096;
/// Largest capacity reserved up front from a declared length (a liar gets a growing buffer).
const MAX_RESERVE: u64 = 256 << 20;

/// The digests to compute of a body: those its request announces.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct Hashes {
    /// SHA-256.
    pub(crate) sha256: bool,
    /// CRC-64/NVME.
    pub(crate) crc64nvme: bool,
}

/// How to read one body.
#[derive(Debug, Clone, Copy)]
pub(crate) struct ReadOptions {
    /// The body is aws-chunked.
    pub(crate) chunked: bool,
    /// Keep the bytes (else only their length and digests).
    pub(crate) keep: bool,
    /// Digests to compute.
    pub(crate) hashes: Hashes,
    /// Cut the body when no byte arrives for this long.
    pub(crate) idle: Option<Duration>,
    /// Bytes announced (decoded length), to reserve.
    pub(crate) announced: u64,
    /// Most bytes accepted.
    pub(crate) limit: u64,
}

/// A body received.
#[derive(Debug)]
pub(crate) struct Received {
    /// The bytes, when kept.
    pub(crate) data: Option<Bytes>,
    /// Decoded length.
    pub(crate) len: u64,
    /// Digests of the decoded bytes (those asked for).
    pub(crate) computed: Sums,
    /// Trailers (aws-chunked or HTTP), names lower-case.
    pub(crate) trailers: Vec<(String, String)>,
}

impl Received {
    /// A trailer's value.
    pub(crate) fn trailer(&self, name: &str) -> Option<&str> {
        self.trailers
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }
}

/// Why a body could not be read.
#[derive(Debug, thiserror::Error)]
pub(crate) enum ReadError {
    /// Nothing arrived for the idle timeout.
    #[error("no request body bytes for {0:?}")]
    Idle(Duration),
    /// Not valid aws-chunked.
    #[error("malformed aws-chunked body: {0}")]
    Malformed(String),
    /// More than the limit.
    #[error("body longer than {0} bytes")]
    TooLong(u64),
    /// The connection failed.
    #[error("reading the body: {0}")]
    Transport(String),
}

/// Where decoded bytes go.
struct Sink {
    /// Running SHA-256, when asked for.
    sha256: Option<Sha256>,
    /// Running CRC-64/NVME, when asked for.
    crc64nvme: Option<crc_fast::Digest>,
    /// Bytes so far.
    len: u64,
    /// Kept bytes.
    kept: Option<Vec<u8>>,
    /// Most bytes accepted.
    limit: u64,
}

impl Sink {
    fn take(&mut self, bytes: &[u8]) -> Result<(), ReadError> {
        self.len += bytes.len() as u64;
        if self.len > self.limit {
            return Err(ReadError::TooLong(self.limit));
        }
        if let Some(sha256) = self.sha256.as_mut() {
            sha256.update(bytes);
        }
        if let Some(crc) = self.crc64nvme.as_mut() {
            crc.update(bytes);
        }
        if let Some(kept) = self.kept.as_mut() {
            kept.extend_from_slice(bytes);
        }
        Ok(())
    }

    /// The digests computed.
    fn sums(&self) -> Sums {
        Sums {
            sha256: self.sha256.as_ref().map(|h| h.clone().finalize().into()),
            crc64nvme: self.crc64nvme.as_ref().map(crc_fast::Digest::finalize),
        }
    }
}

/// Read `body` to its end.
pub(crate) async fn read(mut body: Incoming, options: ReadOptions) -> Result<Received, ReadError> {
    let hashes = options.hashes;
    let mut sink = Sink {
        sha256: hashes.sha256.then(Sha256::new),
        crc64nvme: hashes
            .crc64nvme
            .then(|| crc_fast::Digest::new(CrcAlgorithm::Crc64Nvme)),
        len: 0,
        kept: options
            .keep
            .then(|| Vec::with_capacity(options.announced.min(MAX_RESERVE) as usize)),
        limit: options.limit,
    };
    let mut decoder = options.chunked.then(Decoder::default);
    let mut trailers = Vec::new();
    loop {
        let next = match options.idle {
            Some(idle) => tokio::time::timeout(idle, body.frame())
                .await
                .map_err(|_| ReadError::Idle(idle))?,
            None => body.frame().await,
        };
        let Some(frame) = next else { break };
        let frame = frame.map_err(|e| ReadError::Transport(e.to_string()))?;
        match frame.into_data() {
            Ok(data) => match decoder.as_mut() {
                Some(decoder) => decoder.feed(&data, &mut sink)?,
                None => sink.take(&data)?,
            },
            Err(frame) => {
                if let Ok(headers) = frame.into_trailers() {
                    trailers.extend(headers.iter().filter_map(|(n, v)| {
                        Some((n.as_str().to_string(), v.to_str().ok()?.to_string()))
                    }));
                }
            }
        }
    }
    if let Some(decoder) = decoder {
        trailers.extend(decoder.finish()?);
    }
    Ok(Received {
        computed: sink.sums(),
        data: sink.kept.map(Bytes::from),
        len: sink.len,
        trailers,
    })
}

/// Where an aws-chunked decoder is.
#[derive(Debug, Default, PartialEq, Eq)]
enum State {
    /// Reading a chunk-size line.
    #[default]
    Size,
    /// Inside a chunk: bytes still to come.
    Data(u64),
    /// After a chunk's data: its CRLF.
    DataEnd,
    /// After the last (empty) chunk: trailer lines up to an empty line.
    Trailers,
    /// Finished.
    Done,
}

/// An incremental aws-chunked decoder.
#[derive(Debug, Default)]
struct Decoder {
    /// Where it is.
    state: State,
    /// A partial line (or CRLF) carried between frames.
    line: Vec<u8>,
    /// Trailers read.
    trailers: Vec<(String, String)>,
}

impl Decoder {
    /// Decode `input`, sending chunk data to `sink`.
    fn feed(&mut self, mut input: &[u8], sink: &mut Sink) -> Result<(), ReadError> {
        while !input.is_empty() {
            match self.state {
                State::Data(remaining) => {
                    let n = remaining.min(input.len() as u64) as usize;
                    sink.take(&input[..n])?;
                    input = &input[n..];
                    self.state = if remaining == n as u64 {
                        State::DataEnd
                    } else {
                        State::Data(remaining - n as u64)
                    };
                }
                State::DataEnd => {
                    let n = (2 - self.line.len()).min(input.len());
                    self.line.extend_from_slice(&input[..n]);
                    input = &input[n..];
                    if self.line.len() == 2 {
                        if self.line != b"\r\n" {
                            return Err(malformed("chunk data not followed by CRLF"));
                        }
                        self.line.clear();
                        self.state = State::Size;
                    }
                }
                State::Size | State::Trailers => {
                    let Some(end) = input.iter().position(|&b| b == b'\n') else {
                        self.push_line(input)?;
                        return Ok(());
                    };
                    self.push_line(&input[..=end])?;
                    input = &input[end + 1..];
                    let line = std::mem::take(&mut self.line);
                    let line = line
                        .strip_suffix(b"\r\n")
                        .ok_or_else(|| malformed("line not ended by CRLF"))?;
                    self.line_done(line)?;
                }
                State::Done => {
                    return Err(malformed("bytes after the final CRLF"));
                }
            }
        }
        Ok(())
    }

    /// Carry part of a line.
    fn push_line(&mut self, part: &[u8]) -> Result<(), ReadError> {
        if self.line.len() + part.len() > MAX_LINE {
            return Err(malformed("line too long"));
        }
        self.line.extend_from_slice(part);
        Ok(())
    }

    /// A whole line (without its CRLF) in state Size or Trailers.
    fn line_done(&mut self, line: &[u8]) -> Result<(), ReadError> {
        let text = std::str::from_utf8(line).map_err(|_| malformed("line not UTF-8"))?;
        if self.state == State::Size {
            let hex = text.split(';').next().unwrap_or_default().trim();
            let size = u64::from_str_radix(hex, 16).map_err(|_| malformed("chunk size not hex"))?;
            self.state = if size == 0 {
                State::Trailers
            } else {
                State::Data(size)
            };
        } else if text.is_empty() {
            self.state = State::Done;
        } else {
            let (name, value) = text
                .split_once(':')
                .ok_or_else(|| malformed("trailer without ':'"))?;
            self.trailers
                .push((name.trim().to_ascii_lowercase(), value.trim().to_string()));
        }
        Ok(())
    }

    /// The trailers, once the body has ended (the final empty line may be missing).
    fn finish(mut self) -> Result<Vec<(String, String)>, ReadError> {
        match self.state {
            State::Done => Ok(self.trailers),
            State::Trailers => {
                let line = std::mem::take(&mut self.line);
                let line = line.strip_suffix(b"\r\n").unwrap_or(&line);
                if !line.is_empty() {
                    self.line_done(line)?;
                }
                Ok(self.trailers)
            }
            _ => Err(malformed("body ended inside a chunk")),
        }
    }
}

fn malformed(what: &str) -> ReadError {
    ReadError::Malformed(what.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sink() -> Sink {
        Sink {
            sha256: Some(Sha256::new()),
            crc64nvme: Some(crc_fast::Digest::new(CrcAlgorithm::Crc64Nvme)),
            len: 0,
            kept: Some(Vec::new()),
            limit: 1 << 20,
        }
    }

    /// Decoded bytes and trailers.
    type Decoded = (Vec<u8>, Vec<(String, String)>);

    fn decode(pieces: &[&[u8]]) -> Result<Decoded, ReadError> {
        let mut sink = sink();
        let mut decoder = Decoder::default();
        for piece in pieces {
            decoder.feed(piece, &mut sink)?;
        }
        let trailers = decoder.finish()?;
        Ok((sink.kept.unwrap_or_default(), trailers))
    }

    const BODY: &[u8] =
        b"5\r\nhello\r\nB;chunk-signature=abc\r\n, emulator!\r\n0\r\nx-amz-checksum-sha256:XYZ=\r\n\r\n";

    #[test]
    fn decodes_whole_and_split_at_every_byte() {
        let (data, trailers) = decode(&[BODY]).expect("decoded");
        assert_eq!(data, b"hello, emulator!");
        assert_eq!(
            trailers,
            vec![("x-amz-checksum-sha256".into(), "XYZ=".into())]
        );
        for cut in 1..BODY.len() {
            let (data, trailers) = decode(&[&BODY[..cut], &BODY[cut..]]).expect("decoded");
            assert_eq!(data, b"hello, emulator!", "cut at {cut}");
            assert_eq!(trailers.len(), 1, "cut at {cut}");
        }
    }

    #[test]
    fn the_final_empty_line_may_be_missing() {
        let (_, trailers) = decode(&[b"0\r\nx-amz-checksum-sha256:A\r\n"]).expect("decoded");
        assert_eq!(trailers[0].1, "A");
        let (_, trailers) = decode(&[b"0\r\nx-amz-checksum-sha256:A"]).expect("decoded");
        assert_eq!(trailers[0].1, "A");
    }

    #[test]
    fn hashes_with_the_algorithms_asked_for() {
        let mut sink = sink();
        sink.take(b"1234").expect("taken");
        sink.take(b"56789").expect("taken");
        let sums = sink.sums();
        // The check value of CRC-64/NVME (the CRC catalogue's).
        assert_eq!(sums.crc64nvme, Some(0xAE8B_1486_0A79_9888));
        assert_eq!(sums.sha256, Some(Sha256::digest(b"123456789").into()));
        let none = Sink {
            sha256: None,
            crc64nvme: None,
            ..sink
        };
        assert_eq!(none.sums(), Sums::default());
    }

    #[test]
    fn refuses_truncated_and_malformed_bodies() {
        assert!(decode(&[b"5\r\nhel"]).is_err());
        assert!(decode(&[b"zz\r\n"]).is_err());
        assert!(decode(&[b"2\r\nhiXX0\r\n\r\n"]).is_err());
    }
}
