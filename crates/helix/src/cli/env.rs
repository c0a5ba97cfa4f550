//! `helix env <service>`: the resolved environment of one service, and where each value came
//! from. Secrets are shown as «hidden» (URLs keep everything but the password) unless
//! `--show-secrets`.

use clap::builder::PossibleValuesParser;

use super::Failure;
use crate::config::resolve::{Mode, Resolved, Source};
use crate::config::Config;
use crate::platform::catalog;
use crate::platform::deployment::{Deployment, Generate};
use crate::platform::table::Table;
use crate::shared::redact;

#[derive(Debug, clap::Args)]
pub struct Args {
    /// The service
    #[arg(value_parser = PossibleValuesParser::new(catalog::names()))]
    pub service: String,
    /// Show secret values in clear
    #[arg(long)]
    pub show_secrets: bool,
    /// Print `NAME=value` lines only (for a container's env file)
    #[arg(long)]
    pub dotenv: bool,
    /// Resolve as `helix serve` would in that service's container (its PORT from the
    /// environment applies) rather than as `helix up`
    #[arg(long)]
    pub serve: bool,
}

pub fn run(config: Config, args: Args) -> Result<(), Failure> {
    let spec = catalog::find(&args.service).expect("clap accepted only catalog names");
    let mode = if args.serve {
        Mode::Serve(spec.name.to_owned())
    } else {
        Mode::Up
    };
    let deployment = Deployment::plan(
        &config,
        mode,
        Default::default(),
        &[spec],
        Generate::ReadOnly,
    );
    let planned = &deployment.services[0];
    if args.dotenv {
        for r in planned.env.vars.iter().filter(|r| r.value.is_some()) {
            println!("{}={}", r.spec.name, shown(r, args.show_secrets));
        }
    } else {
        let mut table = Table::new(&["VARIABLE", "VALUE", "SOURCE"]);
        for r in &planned.env.vars {
            table.row(vec![
                r.spec.name.to_owned(),
                shown(r, args.show_secrets),
                source(r),
            ]);
        }
        print!("{}", table.render());
    }
    for p in deployment
        .problems
        .iter()
        .filter(|p| p.service.as_deref().is_none_or(|s| s == spec.name))
    {
        eprintln!("{p}");
    }
    Ok(())
}

fn shown(r: &Resolved, show_secrets: bool) -> String {
    match &r.value {
        None if r.source == Source::Generated => "(generated at first start)".into(),
        None => "(unset)".into(),
        Some(v) if !r.spec.secret || show_secrets => v.clone(),
        Some(v) if v.contains("://") => redact::url(v),
        Some(_) => redact::HIDDEN.into(),
    }
}

fn source(r: &Resolved) -> String {
    match (&r.source, r.spec.required, &r.value) {
        (Source::Unset, true, None) => "unset (required!)".into(),
        (s, _, _) => s.describe(),
    }
}
