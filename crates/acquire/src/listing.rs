//! Paging through a snapshot's listed blocks, resumable from a block index.
//!
//! A NextToken is valid for 60 minutes, and a crash can happen at any time, so the position that
//! matters is the next block index. The lister uses a page token only while it is fresh (and
//! needs it only to get past empty pages); otherwise it lists from the saved index.

use std::time::Duration;

use tokio::time::Instant;

use forensnap_ports::{BlockPage, BlockSource, SourceError};

/// A page token is reused only while younger than this (AWS: 60 minutes).
const TOKEN_TRUST: Duration = Duration::from_secs(50 * 60);

/// Walks the listed blocks of one snapshot.
pub struct Lister {
    snapshot_id: String,
    /// First index not yet listed.
    next_index: u64,
    /// Page token and when it was received.
    token: Option<(String, Instant)>,
    /// Entries per page (100..=10,000).
    max_results: u32,
    /// No more pages.
    done: bool,
}

impl Lister {
    /// Start (or resume) at `next_index`.
    pub fn new(snapshot_id: &str, next_index: u64, max_results: u32) -> Self {
        Lister {
            snapshot_id: snapshot_id.into(),
            next_index,
            token: None,
            max_results: max_results.clamp(100, 10_000),
            done: false,
        }
    }

    /// First index not yet listed: the resume point.
    pub fn position(&self) -> u64 {
        self.next_index
    }

    /// Whether the last page has been listed.
    pub fn is_done(&self) -> bool {
        self.done
    }

    /// The next page, or `None` after the last.
    pub async fn next<S: BlockSource>(
        &mut self,
        source: &S,
    ) -> Result<Option<BlockPage>, SourceError> {
        if self.done {
            return Ok(None);
        }
        let token = self
            .token
            .as_ref()
            .filter(|(_, at)| at.elapsed() < TOKEN_TRUST)
            .map(|(t, _)| t.as_str());
        let page = source
            .list(&self.snapshot_id, self.next_index, token, self.max_results)
            .await?;
        if let Some(last) = page.blocks.last() {
            self.next_index = last.index + 1;
        }
        self.token = page.next_token.clone().map(|t| (t, Instant::now()));
        self.done = page.next_token.is_none();
        Ok(Some(page))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::memory::MemorySource;

    #[tokio::test]
    async fn pages_cover_every_listed_block_once_and_resume_from_an_index() {
        let indexes: Vec<u64> = (3..253).collect();
        let source = MemorySource::pattern(512, 4096, &indexes);
        let mut lister = Lister::new("snap-1", 0, 100);
        let mut seen = Vec::new();
        let mut pages = 0;
        while let Some(page) = lister.next(&source).await.expect("page") {
            pages += 1;
            seen.extend(page.blocks.iter().map(|b| b.index));
        }
        assert_eq!((pages, seen.clone()), (3, indexes.clone()));

        let mut resumed = Lister::new("snap-1", 200, 100);
        let mut rest = Vec::new();
        while let Some(page) = resumed.next(&source).await.expect("page") {
            rest.extend(page.blocks.iter().map(|b| b.index));
        }
        assert_eq!(rest, (200..253).collect::<Vec<_>>());
        assert_eq!(resumed.position(), 253);
    }
}
