//! `helix-load ucf`: metrics ingest. An admin (the server's `HELIX_CREATOR_EMAIL`) posts batches of
//! UCF samples to `POST /api/metrics/batch`; each sample is stored, kept as latest and published
//! on `consciousness:stream`. Samples/s is requests/s × `--batch`.

use std::sync::Arc;

use anyhow::{bail, Context, Result};
use hyper::StatusCode;
use serde::Deserialize;
use serde_json::{json, Map};

use crate::drive::{self, Workload};
use crate::http::RequestTemplate;
use crate::report::{self, Heading};
use crate::setup;
use crate::target::Target;
use crate::UcfArgs;

#[derive(Deserialize)]
struct Tokens {
    access_token: String,
}

pub async fn run(args: UcfArgs) -> Result<()> {
    if !(1..=1000).contains(&args.batch) {
        bail!("--batch must be 1 to 1000");
    }
    let plan = args.load.plan()?;
    let target = Target::resolve(&args.load.url).await?;
    let token = admin_token(&target, &args.admin_email, &args.admin_password).await?;
    let samples: Vec<_> = (0..args.batch)
        .map(|n| {
            json!({
                "agent_id": format!("agent-{}", n % 14),
                "consciousness_level": 5.0 + (n % 10) as f64 / 10.0,
                "ucf_metrics": {"harmony": 0.6, "resilience": 0.8, "prana": 0.5,
                                "drishti": 0.7, "klesha": 0.2, "zoom": 1.0},
            })
        })
        .collect();
    let request =
        RequestTemplate::post_json(&target, "/api/metrics/batch", &json!({"samples": samples}))?
            .bearer(&token)?;
    setup::expect(&target, &request, StatusCode::CREATED, "posting a batch").await?;
    let heading = Heading {
        command: "ucf",
        what: format!(
            "POST {}, {} samples per request",
            target.url("/api/metrics/batch"),
            args.batch
        ),
        limit_hint: "start the server with a higher HELIX_RATE_LIMIT_PER_MINUTE".to_owned(),
        extra: Map::from_iter([("batch".to_owned(), json!(args.batch))]),
    };
    let workload: Workload = Arc::new(move || request.build());
    let result = drive::run(target, &plan, workload).await?;
    let samples_per_sec =
        result.tally.ok() as f64 * args.batch as f64 / result.window.as_secs_f64();
    report::print(heading, &plan, &result);
    println!("  samples       {samples_per_sec:.0} samples/s stored and published");
    Ok(())
}

/// Sign up the admin account, or log in when it exists from an earlier run.
pub async fn admin_token(target: &Target, email: &str, password: &str) -> Result<String> {
    let credentials = json!({"email": email, "password": password});
    let mut signup = credentials.clone();
    signup["display_name"] = json!("helix-load admin");
    let request = RequestTemplate::post_json(target, "/api/auth/signup", &signup)?;
    let response = match setup::expect(target, &request, StatusCode::CREATED, "admin signup").await
    {
        Ok(response) => response,
        Err(_) => {
            let login = RequestTemplate::post_json(target, "/api/auth/login", &credentials)?;
            setup::expect(target, &login, StatusCode::OK, "admin login").await?
        }
    };
    let tokens: Tokens = serde_json::from_slice(&response.body).context("an access token")?;
    Ok(tokens.access_token)
}
