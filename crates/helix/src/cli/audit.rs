//! `helix audit`: walk the audit log's hash chain, sign checkpoints of its head, make keys.

use std::path::PathBuf;

use helix_store::audit::{self, AuditHead};
use helix_store::Store;

use super::Failure;
use crate::config::{Config, ServiceEnv};
use crate::shared::checkpoint::{self, Checkpoint, SIGNING_KEY_VAR};

/// Entries read per round trip while walking the log.
const PAGE: u32 = 5_000;

#[derive(Debug, clap::Args)]
pub struct Args {
    #[command(subcommand)]
    pub command: AuditCommand,
}

#[derive(Debug, clap::Subcommand)]
pub enum AuditCommand {
    /// Walk the hash chain and report the first broken link (edited, deleted or reordered entry)
    Verify {
        /// Also prove the log still holds this signed checkpoint (was not cut short since)
        #[arg(long, value_name = "FILE")]
        checkpoint: Option<PathBuf>,
        /// The public key to trust for the checkpoint [default: derived from HELIX_AUDIT_SIGNING_KEY]
        #[arg(long, value_name = "HEX")]
        public_key: Option<String>,
    },
    /// Print a signed checkpoint of the log's head (JSON); store it somewhere else
    Checkpoint,
    /// Print a new signing key for HELIX_AUDIT_SIGNING_KEY, and its public key
    Keygen,
}

pub async fn run(config: Config, args: Args) -> Result<(), Failure> {
    if let AuditCommand::Keygen = args.command {
        let seed = checkpoint::generate();
        let public = checkpoint::signing_key(&seed)
            .map_err(anyhow::Error::from)?
            .verifying_key();
        println!("{SIGNING_KEY_VAR}={seed}");
        println!(
            "# public key (give this to whoever verifies checkpoints): {}",
            hex::encode(public.as_bytes())
        );
        return Ok(());
    }
    let (store, env) = super::schema_owner::open(&config).await?;
    let result = match args.command {
        AuditCommand::Verify {
            checkpoint,
            public_key,
        } => verify(&*store, &env, checkpoint, public_key).await,
        AuditCommand::Checkpoint => sign(&*store, &env).await,
        AuditCommand::Keygen => unreachable!("handled above"),
    };
    store.close().await;
    result
}

async fn verify(
    store: &dyn Store,
    env: &ServiceEnv,
    checkpoint: Option<PathBuf>,
    public_key: Option<String>,
) -> Result<(), Failure> {
    let expected = match &checkpoint {
        Some(path) => Some(load_checkpoint(path, env, public_key)?),
        None => None,
    };
    let mut head: Option<AuditHead> = None;
    let mut seen_checkpoint = false;
    loop {
        let after = head.as_ref().map_or(0, |h| h.seq);
        let page = store
            .audit()
            .page(after, PAGE)
            .await
            .map_err(anyhow::Error::from)?;
        if page.is_empty() {
            break;
        }
        if let Some(cp) = &expected {
            if let Some(e) = page.iter().find(|e| e.seq == cp.seq) {
                seen_checkpoint = e.hash == cp.hash;
            }
        }
        head = match audit::verify(head.as_ref(), &page) {
            Ok(h) => h,
            Err(broken) => {
                println!("BROKEN: {broken}");
                return Err(Failure::Reported);
            }
        };
        if page.len() as u32 == PAGE {
            eprintln!("… {} entries verified", head.as_ref().map_or(0, |h| h.seq));
        }
    }
    match &head {
        Some(h) => println!("audit log intact: {} entries, head {}", h.seq, h.hash),
        None => println!("audit log intact: empty"),
    }
    if let Some(cp) = expected {
        if !seen_checkpoint {
            println!(
                "BROKEN: the log no longer holds checkpoint entry {} with hash {} (cut short or rewritten)",
                cp.seq, cp.hash
            );
            return Err(Failure::Reported);
        }
        println!(
            "checkpoint of entry {} (signed {}) is still in the log",
            cp.seq,
            cp.at.to_rfc3339()
        );
    }
    Ok(())
}

fn load_checkpoint(
    path: &PathBuf,
    env: &ServiceEnv,
    public_key: Option<String>,
) -> Result<Checkpoint, Failure> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| anyhow::anyhow!("cannot read checkpoint {}: {e}", path.display()))?;
    let cp = Checkpoint::parse(&text).map_err(anyhow::Error::from)?;
    let trusted = match public_key {
        Some(hex_key) => checkpoint::verifying_key(&hex_key).map_err(anyhow::Error::from)?,
        None => configured_key(env)?.verifying_key(),
    };
    cp.verify(&trusted).map_err(anyhow::Error::from)?;
    Ok(cp)
}

async fn sign(store: &dyn Store, env: &ServiceEnv) -> Result<(), Failure> {
    let key = configured_key(env)?;
    let Some(head) = store.audit().head().await.map_err(anyhow::Error::from)? else {
        return Err(anyhow::anyhow!("the audit log is empty; nothing to checkpoint").into());
    };
    let cp = Checkpoint::sign(&head, &key);
    println!(
        "{}",
        serde_json::to_string_pretty(&cp).map_err(anyhow::Error::from)?
    );
    Ok(())
}

fn configured_key(env: &ServiceEnv) -> Result<ed25519_dalek::SigningKey, Failure> {
    let seed = env.get(SIGNING_KEY_VAR).ok_or_else(|| {
        anyhow::anyhow!("{SIGNING_KEY_VAR} is not set (create one with `helix audit keygen`)")
    })?;
    Ok(checkpoint::signing_key(seed).map_err(anyhow::Error::from)?)
}
