//! The world's server process: locate the Python environment, start, wait for ready, stop.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{OnceLock, mpsc};
use std::time::Duration;

/// How long a cold moto import plus server start may take before we give up.
const READY_TIMEOUT: Duration = Duration::from_secs(90);

/// What can go wrong while running the local world; every message names the next step.
#[derive(Debug, thiserror::Error)]
pub enum WorldError {
    /// The Python side (venv, moto) could not be found or installed.
    #[error(
        "local AWS world: cannot find its Python environment: {0}. Run `scripts/emulator python-path` to install it."
    )]
    Python(String),
    /// The server process failed to start or to report ready.
    #[error("local AWS world: the server did not start: {0}")]
    Start(String),
    /// Seeding a world file failed.
    #[error("local AWS world: seeding {path} failed: {message}")]
    Seed {
        /// The world file.
        path: PathBuf,
        /// What the seed printed.
        message: String,
    },
    /// A control API call failed.
    #[error("local AWS world: control call {call} failed: {message}")]
    Control {
        /// Which endpoint.
        call: String,
        /// The server's answer or the transport error.
        message: String,
    },
}

/// A running local AWS world. Dropping it stops the server.
pub struct World {
    /// The server process; killed on drop.
    child: Child,
    /// `http://127.0.0.1:PORT`, the endpoint for every SDK client.
    endpoint: String,
    /// The Python interpreter of the world's venv (used again for seeding).
    python: PathBuf,
    /// The repository root (for `localworld/` on PYTHONPATH).
    repo: PathBuf,
}

impl World {
    /// Start a fresh, empty world on a free loopback port and wait until it answers.
    pub fn start() -> Result<World, WorldError> {
        let repo = repo_root();
        let python = python_path(&repo)?;
        let mut child = Command::new(&python)
            .args([
                "-m",
                "forensnap_world",
                "serve",
                "--port",
                "0",
                "--parent-pid",
            ])
            .arg(std::process::id().to_string())
            .env("PYTHONPATH", repo.join("localworld"))
            .env("MOTO_EC2_LOAD_DEFAULT_AMIS", "false")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .map_err(|e| WorldError::Start(format!("{}: {e}", python.display())))?;
        let stdout = child
            .stdout
            .take()
            .ok_or_else(|| WorldError::Start("no stdout".into()))?;
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if let Some(url) = line.strip_prefix("FORENSNAP_WORLD_READY ") {
                    let _ = tx.send(url.trim().to_string());
                }
            }
        });
        match rx.recv_timeout(READY_TIMEOUT) {
            Ok(endpoint) => Ok(World {
                child,
                endpoint,
                python,
                repo,
            }),
            Err(_) => {
                let _ = child.kill();
                let status = child.wait().map(|s| s.to_string()).unwrap_or_default();
                Err(WorldError::Start(format!(
                    "no ready line within {READY_TIMEOUT:?} (process {status}); see stderr above"
                )))
            }
        }
    }

    /// The endpoint URL every SDK client of this world uses.
    pub fn endpoint(&self) -> &str {
        &self.endpoint
    }

    /// The repository root this world runs from.
    pub fn repo(&self) -> &Path {
        &self.repo
    }

    pub(crate) fn python(&self) -> &Path {
        &self.python
    }
}

impl Drop for World {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The repository root: `FORENSNAP_REPO`, else two levels above this crate.
fn repo_root() -> PathBuf {
    if let Ok(dir) = std::env::var("FORENSNAP_REPO") {
        return PathBuf::from(dir);
    }
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../..")
        .canonicalize()
        .unwrap_or_else(|_| Path::new(env!("CARGO_MANIFEST_DIR")).join("../.."))
}

/// The local world's Python (its venv also holds the auditors' tools, such as `bagit.py`).
pub fn world_python() -> Result<PathBuf, WorldError> {
    python_path(&repo_root())
}

/// `FORENSNAP_WORLD_PYTHON`, else whatever `scripts/emulator python-path` installs and prints
/// (asked once per process).
fn python_path(repo: &Path) -> Result<PathBuf, WorldError> {
    static PYTHON: OnceLock<Result<PathBuf, String>> = OnceLock::new();
    PYTHON
        .get_or_init(|| find_python(repo).map_err(|e| e.to_string()))
        .clone()
        .map_err(WorldError::Python)
}

fn find_python(repo: &Path) -> Result<PathBuf, WorldError> {
    if let Ok(python) = std::env::var("FORENSNAP_WORLD_PYTHON") {
        return Ok(PathBuf::from(python));
    }
    let output = Command::new("bash")
        .arg(repo.join("scripts/emulator"))
        .arg("python-path")
        .stderr(Stdio::inherit())
        .output()
        .map_err(|e| WorldError::Python(e.to_string()))?;
    if !output.status.success() {
        return Err(WorldError::Python(format!(
            "scripts/emulator python-path exited {}",
            output.status
        )));
    }
    let text = String::from_utf8_lossy(&output.stdout);
    let line = text.lines().last().unwrap_or_default().trim();
    if line.is_empty() {
        return Err(WorldError::Python(
            "scripts/emulator python-path printed nothing".into(),
        ));
    }
    Ok(PathBuf::from(line))
}
