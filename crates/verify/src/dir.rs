//! A case downloaded to a folder (`aws s3 sync s3://BUCKET/cases/CASE/ DIR`), read as the
//! verifier reads S3: keys are paths relative to the folder, with `/` separators.

use std::io::{Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};

use forensnap_acquire::sink::{EvidenceReader, SinkError};

use crate::{CaseFiles, LockState, Version};

/// A downloaded case folder.
#[derive(Debug, Clone)]
pub struct CaseDir {
    /// The folder holding `custody/` and `evidence/`.
    root: PathBuf,
}

impl CaseDir {
    /// The case folder `root`.
    pub fn new(root: &Path) -> Self {
        CaseDir { root: root.into() }
    }

    fn path(&self, key: &str) -> Result<PathBuf, SinkError> {
        if key.split('/').any(|c| c == ".." || c.is_empty()) {
            return Err(SinkError(format!(
                "{key:?} is not a path inside the case folder"
            )));
        }
        Ok(self.root.join(key))
    }
}

async fn blocking<T: Send + 'static>(
    work: impl FnOnce() -> Result<T, SinkError> + Send + 'static,
) -> Result<T, SinkError> {
    tokio::task::spawn_blocking(work)
        .await
        .map_err(|e| SinkError(format!("reading the folder: {e}")))?
}

impl EvidenceReader for CaseDir {
    async fn get_range(&self, key: &str, start: u64, len: u64) -> Result<Vec<u8>, SinkError> {
        let path = self.path(key)?;
        blocking(move || {
            let fail = |e: std::io::Error| SinkError(format!("{}: {e}", path.display()));
            let mut file = std::fs::File::open(&path).map_err(fail)?;
            file.seek(SeekFrom::Start(start)).map_err(fail)?;
            let mut bytes = Vec::with_capacity(len as usize);
            file.take(len).read_to_end(&mut bytes).map_err(fail)?;
            Ok(bytes)
        })
        .await
    }

    async fn get(&self, key: &str) -> Result<Option<Vec<u8>>, SinkError> {
        let path = self.path(key)?;
        blocking(move || match std::fs::read(&path) {
            Ok(bytes) => Ok(Some(bytes)),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(SinkError(format!("{}: {e}", path.display()))),
        })
        .await
    }
}

impl CaseFiles for CaseDir {
    async fn list(&self, prefix: &str) -> Result<Vec<String>, SinkError> {
        let root = self.root.clone();
        let prefix = prefix.to_string();
        blocking(move || {
            let mut keys = Vec::new();
            let mut folders = vec![root.clone()];
            while let Some(folder) = folders.pop() {
                let entries = std::fs::read_dir(&folder)
                    .map_err(|e| SinkError(format!("{}: {e}", folder.display())))?;
                for entry in entries {
                    let entry =
                        entry.map_err(|e| SinkError(format!("{}: {e}", folder.display())))?;
                    let path = entry.path();
                    if path.is_dir() {
                        folders.push(path);
                    } else if let Ok(rel) = path.strip_prefix(&root) {
                        let key = rel
                            .components()
                            .map(|c| c.as_os_str().to_string_lossy().into_owned())
                            .collect::<Vec<_>>()
                            .join("/");
                        if key.starts_with(&prefix) {
                            keys.push(key);
                        }
                    }
                }
            }
            keys.sort();
            Ok(keys)
        })
        .await
    }

    /// A folder has no versions and no Object Lock: offline verification skips retention.
    async fn versions(&self, _: &str) -> Result<Vec<Version>, SinkError> {
        Ok(Vec::new())
    }

    async fn lock(&self, key: &str, _: &str) -> Result<LockState, SinkError> {
        Err(SinkError(format!("{key}: a folder has no Object Lock")))
    }
}
