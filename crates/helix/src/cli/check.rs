//! `helix check`: validate the manifest and environment against the connection matrix; with
//! `--probe`, also connect to PostgreSQL and Redis and call every service's `/health`.

use clap::builder::PossibleValuesParser;

use super::Failure;
use crate::config::resolve::Mode;
use crate::config::Config;
use crate::platform::catalog;
use crate::platform::deployment::{Deployment, Generate};
use crate::platform::probe;

#[derive(Debug, clap::Args)]
pub struct Args {
    /// Also probe PostgreSQL, Redis and every service's /health
    #[arg(long)]
    pub probe: bool,
    /// Check one service as its own container sees the environment (as `helix serve` would)
    #[arg(long, value_parser = PossibleValuesParser::new(catalog::names()))]
    pub service: Option<String>,
    /// Where to look for running services when probing
    #[arg(long, default_value = "127.0.0.1")]
    pub host: String,
}

pub async fn run(config: Config, args: Args) -> Result<(), Failure> {
    let deployment = match &args.service {
        Some(name) => {
            let spec = catalog::find(name).expect("clap accepted only catalog names");
            Deployment::plan(
                &config,
                Mode::Serve(name.clone()),
                Default::default(),
                &[spec],
                Generate::ReadOnly,
            )
        }
        None => Deployment::plan_all(&config, Mode::Up, Generate::ReadOnly),
    };
    let errors = deployment.problems.iter().filter(|p| p.is_error()).count();
    let warnings = deployment.problems.len() - errors;
    for p in &deployment.problems {
        println!("{p}");
    }
    let source = config
        .manifest
        .path
        .as_ref()
        .map_or_else(|| "no helix.toml".to_owned(), |p| p.display().to_string());
    println!(
        "{} service(s) checked ({source}, {}): {errors} error(s), {warnings} warning(s)",
        deployment.services.len(),
        if deployment.embedded {
            "embedded default"
        } else {
            "external database"
        },
    );
    let mut healthy = true;
    if args.probe {
        let rows = probe::run(&deployment, &args.host).await;
        println!();
        print!("{}", probe::render(&rows, colour()));
        healthy = probe::all_healthy(&rows);
    }
    if errors > 0 || !healthy {
        return Err(Failure::Reported);
    }
    Ok(())
}

fn colour() -> bool {
    use std::io::IsTerminal;
    std::io::stdout().is_terminal() && std::env::var_os("NO_COLOR").is_none()
}
