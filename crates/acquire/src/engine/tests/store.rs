//! The memory store as the engine tests see it: counts part-checkpoint GETs (and the most in
//! flight at once) and part uploads in flight (each takes a moment, so others can start). A
//! killed process is the memory store's own `dying_when` handle.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use forensnap_store::{
    Called, CloudError, CompletedObject, EvidenceRead, EvidenceWrite, MemoryStore, PartBody,
    Stored, StoredPart, Upload,
};

#[derive(Clone, Default)]
pub(super) struct TestStore {
    pub(super) inner: MemoryStore,
    checkpoint_gets: Arc<AtomicUsize>,
    in_flight: Arc<AtomicUsize>,
    peak_in_flight: Arc<AtomicUsize>,
    uploading: Arc<AtomicUsize>,
    peak_uploading: Arc<AtomicUsize>,
}

impl TestStore {
    /// Counting the calls to `inner`.
    pub(super) fn new(inner: MemoryStore) -> Self {
        TestStore {
            inner,
            ..TestStore::default()
        }
    }

    pub(super) fn checkpoint_gets(&self) -> usize {
        self.checkpoint_gets.load(Ordering::SeqCst)
    }

    /// Most part-checkpoint GETs in flight at once.
    pub(super) fn peak_in_flight(&self) -> usize {
        self.peak_in_flight.load(Ordering::SeqCst)
    }

    /// Most part uploads in flight at once.
    pub(super) fn peak_uploading(&self) -> usize {
        self.peak_uploading.load(Ordering::SeqCst)
    }

    pub(super) fn reset(&self) {
        self.checkpoint_gets.store(0, Ordering::SeqCst);
        self.peak_in_flight.store(0, Ordering::SeqCst);
    }
}

impl EvidenceRead for TestStore {
    async fn get(&self, key: &str) -> Result<Option<Vec<u8>>, CloudError> {
        if !key.contains("acquisition/parts/") {
            return self.inner.get(key).await;
        }
        self.checkpoint_gets.fetch_add(1, Ordering::SeqCst);
        let now = self.in_flight.fetch_add(1, Ordering::SeqCst) + 1;
        self.peak_in_flight.fetch_max(now, Ordering::SeqCst);
        // A real GET takes a round trip: let the other reads start meanwhile.
        tokio::task::yield_now().await;
        let got = self.inner.get(key).await;
        self.in_flight.fetch_sub(1, Ordering::SeqCst);
        got
    }

    async fn get_range(&self, key: &str, start: u64, len: u64) -> Result<Vec<u8>, CloudError> {
        self.inner.get_range(key, start, len).await
    }

    async fn list(&self, prefix: &str) -> Result<Vec<String>, CloudError> {
        self.inner.list(prefix).await
    }
}

impl EvidenceWrite for TestStore {
    fn bucket(&self) -> &str {
        self.inner.bucket()
    }

    async fn put_new(
        &self,
        key: &str,
        bytes: Vec<u8>,
        content_type: &str,
    ) -> Result<Called<Stored>, CloudError> {
        self.inner.put_new(key, bytes, content_type).await
    }

    async fn put_version(
        &self,
        key: &str,
        bytes: Vec<u8>,
        content_type: &str,
    ) -> Result<Called<Stored>, CloudError> {
        self.inner.put_version(key, bytes, content_type).await
    }

    async fn pending_uploads(
        &self,
        prefix: &str,
    ) -> Result<Vec<forensnap_store::PendingUpload>, CloudError> {
        self.inner.pending_uploads(prefix).await
    }

    async fn abort_upload(&self, key: &str, upload_id: &str) -> Result<Called<()>, CloudError> {
        self.inner.abort_upload(key, upload_id).await
    }

    async fn open_upload(&self, key: &str) -> Result<(Upload, Vec<StoredPart>), CloudError> {
        self.inner.open_upload(key).await
    }

    async fn upload_part(
        &self,
        key: &str,
        upload: &Upload,
        number: u32,
        body: PartBody,
    ) -> Result<StoredPart, CloudError> {
        let now = self.uploading.fetch_add(1, Ordering::SeqCst) + 1;
        self.peak_uploading.fetch_max(now, Ordering::SeqCst);
        // An upload takes a while: let the pipeline start others meanwhile.
        tokio::time::sleep(Duration::from_millis(2)).await;
        let stored = self.inner.upload_part(key, upload, number, body).await;
        self.uploading.fetch_sub(1, Ordering::SeqCst);
        stored
    }

    async fn complete_upload(
        &self,
        key: &str,
        upload: &Upload,
        parts: &[StoredPart],
    ) -> Result<CompletedObject, CloudError> {
        self.inner.complete_upload(key, upload, parts).await
    }

    async fn head(&self, key: &str) -> Result<Option<CompletedObject>, CloudError> {
        self.inner.head(key).await
    }
}
