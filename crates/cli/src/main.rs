//! `forensnap`: the command line. A thin binary: it parses arguments, builds the AWS adapters
//! from the config, runs the library crates and prints results; all logic lives in the crates.

mod collect;
mod daemon;
mod export;
mod forensic;
mod lease;
mod leftovers;
mod memory;
mod progress;
mod report;
mod stack_config;
mod trail;
mod verify;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand, ValueEnum};

/// Preserve AWS EC2 evidence into an Object Lock bucket, hashed, with a chain of custody.
#[derive(Debug, Parser)]
#[command(name = "forensnap", version, about, long_about = None)]
struct Cli {
    /// Log format on stderr.
    #[arg(long, global = true, value_enum, default_value_t = LogFormat::Text)]
    log_format: LogFormat,
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
enum LogFormat {
    Text,
    Json,
}

/// How results are printed on stdout.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Output {
    /// For people.
    Text,
    /// One JSON object.
    Json,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Preserve an instance: record it, snapshot every volume, copy the snapshots re-encrypted
    /// into the forensic account, with a custody event for every step. Safe to run again: it
    /// resumes the case.
    Collect(collect::Args),
    /// Stream a volume evidence item out of S3 into a raw (sparse) image file, checking every
    /// hash (tag manifest, manifest, each block, block map, image); recorded in the custody log.
    Export(export::Args),
    /// Check a case end to end: every object re-read and re-hashed, block maps, the custody chain,
    /// signed checkpoints and signatures, Object Lock retention. Online (S3, recorded in the
    /// custody log) or --offline on a downloaded case folder. Exit status 0 only when all holds.
    Verify(verify::Args),
    /// Write a custody report of a case (PDF/A-3b with its evidence files attached, CSV or
    /// JSON) from a fresh verification; online it is stored in the case under Object Lock and
    /// recorded in the custody chain, --offline it reads a downloaded case folder.
    Report(report::Args),
    /// Preserve the case's CloudTrail evidence alone (collect does it beside the volumes):
    /// LookupEvents pages of the instance and named principals, each with its exact request;
    /// the trail's log and digest files, validated as `aws cloudtrail validate-logs` does; the
    /// timeline with persistence and defence-evasion actions flagged.
    Trail(trail::Args),
    /// Capture an instance's memory alone (collect --memory does it before the snapshots):
    /// through SSM Run Command with the pinned AVML build, streamed into the case through
    /// presigned part URLs (no credentials reach the host), the host's SHA-256 compared with
    /// S3's. Linux only. A root user watching the host can see an SSM command run.
    Memory(memory::Args),
    /// List what an abandoned case left open or shared: open multipart uploads in the evidence
    /// bucket, member snapshots still shared with the forensic account, intermediate copies.
    /// With --end, end them (under the case's lease), each recorded in the custody chain.
    Leftovers(leftovers::Args),
    /// Run the daemon: take case requests from the request queue (forensnap's own, Security
    /// Hub custom actions, GuardDuty findings) and collect them under leases in the case table,
    /// beside any number of other daemons. SIGTERM or Ctrl-C stops it at a resumable point.
    Daemon(daemon::DaemonArgs),
    /// Send a collection request to the daemons' queue.
    Submit(daemon::SubmitArgs),
    /// Show each case's state (queued, running, completed, failed) and its items' progress
    /// from the case table.
    Status(daemon::StatusArgs),
    /// Configuration helpers.
    #[command(subcommand)]
    Config(ConfigCommand),
}

#[derive(Debug, Subcommand)]
enum ConfigCommand {
    /// Write a config from the forensic-vpc stacks' outputs (`aws cloudformation
    /// describe-stacks` JSON of the forensic stack and each member stack) and the member roles'
    /// ExternalIds; every other key keeps its default.
    FromStack(stack_config::Args),
}

/// Shared by every subcommand.
#[derive(Debug, clap::Args)]
pub struct Common {
    /// forensnap config file (see config/forensnap.toml).
    #[arg(long, env = "FORENSNAP_CONFIG")]
    pub config: PathBuf,
    /// Case id, e.g. IR-2026-0042.
    #[arg(long)]
    pub case: String,
    /// Result format.
    #[arg(long, value_enum, default_value_t = Output::Text)]
    pub output: Output,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    init_tracing(cli.log_format);
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("forensnap: cannot start the async runtime: {e}");
            return ExitCode::from(2);
        }
    };
    let result = runtime.block_on(async {
        match cli.command {
            Command::Collect(args) => collect::run(args).await,
            Command::Export(args) => export::run(args).await,
            Command::Verify(args) => verify::run(args).await,
            Command::Report(args) => report::run(args).await,
            Command::Trail(args) => trail::run(args).await,
            Command::Memory(args) => memory::run(args).await,
            Command::Leftovers(args) => leftovers::run(args).await,
            Command::Daemon(args) => daemon::run(args).await,
            Command::Submit(args) => daemon::submit(args).await,
            Command::Status(args) => daemon::status(args).await,
            Command::Config(ConfigCommand::FromStack(args)) => stack_config::run(args),
        }
    });
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("forensnap: error: {err}");
            for cause in err.chain().skip(1) {
                eprintln!("  caused by: {cause}");
            }
            ExitCode::FAILURE
        }
    }
}

fn init_tracing(format: LogFormat) {
    let filter = tracing_subscriber::EnvFilter::try_from_env("FORENSNAP_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    match format {
        LogFormat::Text => builder.init(),
        LogFormat::Json => builder.json().init(),
    }
}
