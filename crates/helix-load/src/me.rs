//! `helix-load me`: the authenticated read path. One user is set up, then every connection sends
//! `GET /api/me` with the same credential: a JWT (signature check only) or an `hx_` API key
//! (a key lookup), so the two auth paths can be compared under the same load.

use std::sync::Arc;

use anyhow::Result;
use hyper::StatusCode;
use serde_json::{json, Map};

use crate::drive::{self, Workload};
use crate::http::RequestTemplate;
use crate::report::{self, Heading};
use crate::setup::{self, Account};
use crate::target::Target;
use crate::{AuthKind, MeArgs};

pub async fn run(args: MeArgs) -> Result<()> {
    let plan = args.load.plan()?;
    let target = Target::resolve(&args.load.url).await?;
    let account = Account::generate();
    let tokens = setup::signup(&target, &account).await?;
    let credential = match args.auth {
        AuthKind::Jwt => {
            warn_if_token_expires(
                tokens.expires_in,
                (plan.warmup + plan.duration).as_secs_f64(),
            );
            tokens.access_token
        }
        AuthKind::Key => setup::create_key(&target, &tokens.access_token).await?,
    };
    let request = RequestTemplate::get(&target, "/api/me")?.bearer(&credential)?;
    setup::expect(&target, &request, StatusCode::OK, "GET /api/me").await?;

    let auth = match args.auth {
        AuthKind::Jwt => "jwt",
        AuthKind::Key => "key",
    };
    let heading = Heading {
        command: "me",
        what: format!("GET {}, auth {auth}", target.url("/api/me")),
        limit_hint: "start the server with a higher HELIX_RATE_LIMIT_PER_MINUTE".to_owned(),
        extra: Map::from_iter([("auth".to_owned(), json!(auth))]),
    };
    let workload: Workload = Arc::new(move || request.build());
    let result = drive::run(target, &plan, workload).await?;
    report::print(heading, &plan, &result);
    Ok(())
}

/// A JWT that expires mid-run turns the rest of the run into 401s; say so up front.
pub fn warn_if_token_expires(expires_in: Option<u64>, run_secs: f64) {
    if let Some(expires_in) = expires_in {
        if (expires_in as f64) < run_secs {
            eprintln!(
                "warning: the access token expires after {expires_in} s but the run lasts \
                 {run_secs:.0} s: expect 401s at the end (use --auth key, or a shorter run)"
            );
        }
    }
}
