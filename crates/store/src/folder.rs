//! A case downloaded to a folder (`aws s3 sync s3://BUCKET/cases/CASE/ DIR`), read as S3 is
//! read: keys are paths relative to the folder, with `/` separators. A folder has no versions
//! and no Object Lock: [`EvidenceAudit::versions`] is empty and the lock calls are refused, so
//! offline verification checks everything but retention.
//!
//! The folder is untrusted input (`verify --offline` of a case someone handed over): keys never
//! leave it (no `..`, `.` or empty component), symbolic links are refused wherever they are
//! under the folder (a link could lead out of it, to a copy that matches), and no file larger
//! than [`MAX_WHOLE_READ`] is read whole.

use std::io::{Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};

use crate::{
    BucketLock, Called, CloudError, ErrorKind, EvidenceAudit, EvidenceRead, LockState, Version,
};

/// Files read whole at most (events, manifests, block maps; data objects are read by ranges).
pub const MAX_WHOLE_READ: u64 = 1 << 30;

/// A downloaded case folder.
#[derive(Debug, Clone)]
pub struct FolderStore {
    /// The folder holding `custody/` and `evidence/`.
    root: PathBuf,
}

impl FolderStore {
    /// The case folder `root`.
    pub fn new(root: &Path) -> Self {
        FolderStore { root: root.into() }
    }

    /// The folder.
    pub fn root(&self) -> &Path {
        &self.root
    }

    fn path(&self, key: &str) -> Result<PathBuf, CloudError> {
        if key.contains('\0')
            || key
                .split('/')
                .any(|c| c == ".." || c == "." || c.is_empty())
        {
            return Err(CloudError::new(
                ErrorKind::Invalid,
                "read",
                format!("{key:?} is not a path inside the case folder"),
            ));
        }
        Ok(self.root.join(key))
    }
}

/// Refuse `path` when it, or a folder between `root` and it, is a symbolic link. A path that
/// does not exist passes (the read then finds nothing).
fn no_links(root: &Path, path: &Path) -> Result<(), CloudError> {
    let Ok(rel) = path.strip_prefix(root) else {
        return Err(CloudError::new(
            ErrorKind::Invalid,
            "read",
            format!("{} is not inside the case folder", path.display()),
        ));
    };
    let mut at = root.to_path_buf();
    for part in rel.components() {
        at.push(part);
        match std::fs::symlink_metadata(&at) {
            Ok(meta) if meta.file_type().is_symlink() => return Err(link_refused(&at)),
            Ok(_) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
            Err(e) => return Err(io_error(&at, e)),
        }
    }
    Ok(())
}

fn link_refused(path: &Path) -> CloudError {
    CloudError::new(
        ErrorKind::Invalid,
        "read",
        format!(
            "{} is a symbolic link: a downloaded case holds only files and folders, and a link may lead out of the case folder; download the case again (aws s3 sync) and verify that copy",
            path.display()
        ),
    )
}

fn io_error(path: &Path, e: std::io::Error) -> CloudError {
    let kind = match e.kind() {
        std::io::ErrorKind::NotFound => ErrorKind::NotFound,
        std::io::ErrorKind::PermissionDenied => ErrorKind::Denied,
        _ => ErrorKind::Other,
    };
    CloudError::new(kind, "read", format!("{}: {e}", path.display()))
}

async fn blocking<T: Send + 'static>(
    work: impl FnOnce() -> Result<T, CloudError> + Send + 'static,
) -> Result<T, CloudError> {
    tokio::task::spawn_blocking(work).await.map_err(|e| {
        CloudError::new(ErrorKind::Other, "read", format!("reading the folder: {e}"))
    })?
}

impl EvidenceRead for FolderStore {
    async fn get(&self, key: &str) -> Result<Option<Vec<u8>>, CloudError> {
        let path = self.path(key)?;
        let root = self.root.clone();
        blocking(move || {
            no_links(&root, &path)?;
            let size = match std::fs::metadata(&path) {
                Ok(meta) => meta.len(),
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
                Err(e) => return Err(io_error(&path, e)),
            };
            if size > MAX_WHOLE_READ {
                return Err(CloudError::new(
                    ErrorKind::Invalid,
                    "read",
                    format!(
                        "{} holds {size} bytes, more than the {MAX_WHOLE_READ} a file read whole may hold: it is not a file forensnap wrote",
                        path.display()
                    ),
                ));
            }
            match std::fs::read(&path) {
                Ok(bytes) => Ok(Some(bytes)),
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
                Err(e) => Err(io_error(&path, e)),
            }
        })
        .await
    }

    async fn get_range(&self, key: &str, start: u64, len: u64) -> Result<Vec<u8>, CloudError> {
        let path = self.path(key)?;
        let root = self.root.clone();
        blocking(move || {
            no_links(&root, &path)?;
            let fail = |e: std::io::Error| io_error(&path, e);
            let mut file = std::fs::File::open(&path).map_err(fail)?;
            file.seek(SeekFrom::Start(start)).map_err(fail)?;
            let mut bytes = Vec::with_capacity(len.min(1 << 26) as usize);
            file.take(len).read_to_end(&mut bytes).map_err(fail)?;
            Ok(bytes)
        })
        .await
    }

    async fn list(&self, prefix: &str) -> Result<Vec<String>, CloudError> {
        let root = self.root.clone();
        let prefix = prefix.to_string();
        blocking(move || {
            let mut keys = Vec::new();
            let mut folders = vec![root.clone()];
            while let Some(folder) = folders.pop() {
                let entries = std::fs::read_dir(&folder).map_err(|e| io_error(&folder, e))?;
                for entry in entries {
                    let entry = entry.map_err(|e| io_error(&folder, e))?;
                    let path = entry.path();
                    // The entry's own type: a link is not followed, into a folder or a loop.
                    let kind = entry.file_type().map_err(|e| io_error(&path, e))?;
                    if kind.is_symlink() {
                        return Err(link_refused(&path));
                    } else if kind.is_dir() {
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
}

impl EvidenceAudit for FolderStore {
    async fn bucket_lock(&self) -> Result<Called<BucketLock>, CloudError> {
        Err(CloudError::new(
            ErrorKind::Invalid,
            "read",
            format!("{}: a folder has no Object Lock", self.root.display()),
        ))
    }

    /// A folder has no versions and no Object Lock: offline verification skips retention.
    async fn versions(&self, _: &str) -> Result<Vec<Version>, CloudError> {
        Ok(Vec::new())
    }

    async fn lock(&self, key: &str, _: &str) -> Result<LockState, CloudError> {
        Err(CloudError::new(
            ErrorKind::Invalid,
            "read",
            format!("{key}: a folder has no Object Lock"),
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_folder_reads_lists_and_refuses_paths_outside_it() {
        let dir = tempfile::tempdir().expect("tempdir");
        std::fs::create_dir_all(dir.path().join("custody/events")).expect("mkdir");
        std::fs::write(dir.path().join("custody/events/00000001.json"), b"{}").expect("write");
        std::fs::write(
            dir.path().join("custody/events/00000002.json"),
            b"0123456789",
        )
        .expect("write");
        let store = FolderStore::new(dir.path());
        assert_eq!(
            store.list("custody/").await.expect("list"),
            [
                "custody/events/00000001.json",
                "custody/events/00000002.json"
            ]
        );
        assert_eq!(
            store
                .get_range("custody/events/00000002.json", 3, 4)
                .await
                .expect("range"),
            b"3456"
        );
        assert_eq!(store.get("custody/missing").await.expect("get"), None);
        let outside = store.get("../etc/passwd").await.expect_err("outside");
        assert_eq!(outside.kind, ErrorKind::Invalid);
        let missing = store.get_range("nope", 0, 1).await.expect_err("missing");
        assert_eq!(missing.kind, ErrorKind::NotFound);
        assert!(store.versions("").await.expect("versions").is_empty());
    }

    #[tokio::test]
    async fn symbolic_links_under_the_folder_are_refused_wherever_they_are() {
        let dir = tempfile::tempdir().expect("tempdir");
        let (case, outside) = (dir.path().join("case"), dir.path().join("outside"));
        std::fs::create_dir_all(case.join("evidence/x/data")).expect("mkdir");
        std::fs::create_dir_all(&outside).expect("mkdir");
        std::fs::write(outside.join("copy"), b"the same bytes").expect("write");
        std::os::unix::fs::symlink(outside.join("copy"), case.join("evidence/x/data/file"))
            .expect("link a file");
        std::os::unix::fs::symlink(&outside, case.join("evidence/y")).expect("link a folder");
        let store = FolderStore::new(&case);
        for key in ["evidence/x/data/file", "evidence/y/copy"] {
            let err = store.get(key).await.expect_err(key);
            assert_eq!(err.kind, ErrorKind::Invalid, "{key}");
            assert!(err.message.contains("symbolic link"), "{key}: {err}");
            let err = store.get_range(key, 0, 4).await.expect_err(key);
            assert!(err.message.contains("symbolic link"), "{key}: {err}");
        }
        let err = store.list("").await.expect_err("list");
        assert!(err.message.contains("symbolic link"), "{err}");
        // A file too large to be one forensnap reads whole (sparse: no space taken).
        let big = std::fs::File::create(case.join("evidence/x/data/huge")).expect("create");
        big.set_len(MAX_WHOLE_READ + 1).expect("sparse");
        let err = store
            .get("evidence/x/data/huge")
            .await
            .expect_err("too large");
        assert_eq!(err.kind, ErrorKind::Invalid);
        assert!(err.message.contains("not a file forensnap wrote"), "{err}");
        for key in ["./a", "a//b", "a/./b", "a\0b"] {
            assert_eq!(
                store.get(key).await.expect_err(key).kind,
                ErrorKind::Invalid
            );
        }
    }
}
