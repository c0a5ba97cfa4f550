//! `helix-load login`: the password path. K accounts are created, then connections log in
//! round-robin across them. Each login costs the server one Argon2id verification, so compare the
//! result with `helix-load hash` (hashes/s per core × server cores is the ceiling). Spreading
//! logins over accounts keeps the per-account limit out of the way unless K is small.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use anyhow::{bail, Result};
use futures::{StreamExt, TryStreamExt};
use hyper::StatusCode;
use serde_json::{json, Map};

use crate::drive::{self, Workload};
use crate::http::RequestTemplate;
use crate::report::{self, Heading};
use crate::setup::{self, Account};
use crate::target::Target;
use crate::LoginArgs;

/// Signups in flight at once: each is an Argon2 hash on the server, so more would only queue.
const SIGNUP_CONCURRENCY: usize = 4;

pub async fn run(args: LoginArgs) -> Result<()> {
    if !(1..=100_000).contains(&args.accounts) {
        bail!("--accounts must be between 1 and 100000");
    }
    let plan = args.load.plan()?;
    let target = Target::resolve(&args.load.url).await?;
    let requests = create_accounts(&target, args.accounts).await?;
    setup::expect(&target, &requests[0], StatusCode::OK, "login").await?;

    let per_account = match plan.rate {
        Some(rate) => format!("~{:.0} logins/min", rate * 60.0 / args.accounts as f64),
        None => format!("1/{} of the logins/s × 60 per minute", args.accounts),
    };
    let heading = Heading {
        command: "login",
        what: format!(
            "POST {}, {} accounts",
            target.url("/api/auth/login"),
            args.accounts
        ),
        limit_hint: format!(
            "start the server with higher HELIX_AUTH_LIMIT_PER_IP_PER_MINUTE and \
             HELIX_LOGIN_LIMIT_PER_ACCOUNT_PER_MINUTE (each account saw {per_account}), \
             or use more --accounts"
        ),
        extra: Map::from_iter([("accounts".to_owned(), json!(args.accounts))]),
    };
    let next = AtomicUsize::new(0);
    // One shared counter, so the accounts take turns evenly whatever the connection count.
    let workload: Workload =
        Arc::new(move || requests[next.fetch_add(1, Ordering::Relaxed) % requests.len()].build());
    let result = drive::run(target, &plan, workload).await?;
    report::print(heading, &plan, &result);
    Ok(())
}

/// Sign up `count` fresh accounts; the login request for each, built once.
async fn create_accounts(target: &Target, count: usize) -> Result<Vec<RequestTemplate>> {
    eprintln!("creating {count} accounts…");
    futures::stream::iter(0..count)
        .map(|_| async {
            let account = Account::generate();
            setup::signup(target, &account).await?;
            RequestTemplate::post_json(target, "/api/auth/login", &account.login_body())
        })
        .buffer_unordered(SIGNUP_CONCURRENCY)
        .try_collect()
        .await
}
