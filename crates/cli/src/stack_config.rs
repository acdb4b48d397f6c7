//! `forensnap config from-stack`: a config written from the forensic-vpc stacks' outputs.

use std::collections::BTreeMap;
use std::path::PathBuf;

use anyhow::{Context, bail};
use forensnap_config::stacks::{StackFile, config_from_stacks, parse};

/// Arguments of `forensnap config from-stack`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// `aws cloudformation describe-stacks --stack-name NAME` output of the forensic-account
    /// stack (forensic-vpc/forensic-account.yaml), saved to a file.
    #[arg(long)]
    pub forensic: PathBuf,
    /// The same for one member-role stack (forensic-vpc/member-role.yaml); repeat per account.
    #[arg(long)]
    pub member: Vec<PathBuf>,
    /// ACCOUNT=EXTERNAL_ID of each member role (CloudFormation never prints the NoEcho
    /// ExternalId back); repeat per account.
    #[arg(long = "external-id", value_name = "ACCOUNT=ID")]
    pub external_ids: Vec<String>,
    /// Write the config here (refused if the file exists) instead of to standard output.
    #[arg(long)]
    pub out: Option<PathBuf>,
}

fn read(path: &PathBuf) -> anyhow::Result<StackFile> {
    let file = path.display().to_string();
    let json = std::fs::read_to_string(path)
        .with_context(|| format!("reading stack description {file}"))?;
    Ok(StackFile {
        stack: parse(&json, &file)?,
        file,
    })
}

/// Write the config.
pub fn run(args: Args) -> anyhow::Result<()> {
    let forensic = read(&args.forensic)?;
    let members = args
        .member
        .iter()
        .map(read)
        .collect::<anyhow::Result<Vec<_>>>()?;
    let mut external_ids = BTreeMap::new();
    for pair in &args.external_ids {
        let Some((account, id)) = pair.split_once('=') else {
            bail!(
                "--external-id {pair:?} is not ACCOUNT=ID. Next: write it as 111111111111=the-external-id"
            );
        };
        external_ids.insert(account.to_string(), id.to_string());
    }
    let text = config_from_stacks(&forensic, &members, &external_ids)?;
    match &args.out {
        None => print!("{text}"),
        Some(path) => {
            let mut file = std::fs::OpenOptions::new()
                .write(true)
                .create_new(true)
                .open(path)
                .with_context(|| {
                    format!(
                        "creating {} (an existing config is never overwritten; choose another --out)",
                        path.display()
                    )
                })?;
            std::io::Write::write_all(&mut file, text.as_bytes())
                .with_context(|| format!("writing {}", path.display()))?;
            eprintln!("wrote {}", path.display());
        }
    }
    Ok(())
}
