//! `helix-load hooks-in`: signed events sent to zapier-integration's `POST /api/hooks/{source}`,
//! each with its own `webhook-id` and a Standard Webhooks signature computed here as a sender
//! computes it; the server verifies, stores and queues every one before answering. The body is a
//! small CRM-style event of about 200 bytes.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use anyhow::{Context, Result};
use base64::Engine;
use bytes::Bytes;
use hmac::{Hmac, Mac};
use http_body_util::Full;
use hyper::header::HeaderValue;
use hyper::StatusCode;
use serde_json::{json, Map};
use sha2::Sha256;

use crate::drive::{self, Workload};
use crate::http::RequestTemplate;
use crate::report::{self, Heading};
use crate::setup;
use crate::target::Target;
use crate::LoadArgs;

#[derive(clap::Args)]
pub struct HooksInArgs {
    #[command(flatten)]
    pub load: LoadArgs,
    /// The source posted to (`/api/hooks/<source>`); the server must hold its secret in
    /// HELIX_HOOK_SECRETS.
    #[arg(long, default_value = "bench")]
    pub source: String,
    /// That source's secret (`whsec_<base64>`), as in HELIX_HOOK_SECRETS.
    #[arg(long, default_value = "whsec_YmVuY2gtc2lnbmluZy1rZXk=")]
    pub secret: String,
}

/// Signs one message per call: a fresh id, the current second, the body.
pub(super) struct Signer {
    key: Vec<u8>,
    run: String,
    next: AtomicU64,
}

impl Signer {
    pub(super) fn new(secret: &str) -> Result<Signer> {
        let b64 = secret
            .strip_prefix("whsec_")
            .context("--secret must be whsec_<base64>")?;
        let key = base64::engine::general_purpose::STANDARD
            .decode(b64)
            .context("--secret: the part after whsec_ is not base64")?;
        Ok(Signer {
            key,
            run: uuid::Uuid::new_v4().simple().to_string()[..8].to_owned(),
            next: AtomicU64::new(0),
        })
    }

    /// `(webhook-id, webhook-timestamp, webhook-signature, body)` of the next event.
    fn next(&self) -> (String, String, String, Bytes) {
        let n = self.next.fetch_add(1, Ordering::Relaxed);
        let id = format!("msg_{}_{n}", self.run);
        let t = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap_or_default()
            .as_secs()
            .to_string();
        let body = format!(
            r#"{{"type":"lead.created","id":"{id}","lead":{{"name":"Load {n}","email":"load{n}@bench.local","source":"helix-load","score":{}}}}}"#,
            n % 100
        );
        let signature = self.sign(&id, &t, body.as_bytes());
        (id, t, signature, Bytes::from(body))
    }

    /// The `webhook-signature` of a message.
    pub(super) fn sign(&self, id: &str, t: &str, body: &[u8]) -> String {
        let mut mac = Hmac::<Sha256>::new_from_slice(&self.key).expect("any key length");
        mac.update(format!("{id}.{t}.").as_bytes());
        mac.update(body);
        format!(
            "v1,{}",
            base64::engine::general_purpose::STANDARD.encode(mac.finalize().into_bytes())
        )
    }

    /// A fresh message id of this run.
    pub(super) fn id(&self) -> String {
        let n = self.next.fetch_add(1, Ordering::Relaxed);
        format!("msg_{}_{n}", self.run)
    }
}

pub(super) fn value(text: &str) -> HeaderValue {
    HeaderValue::from_str(text).expect("ASCII header value")
}

pub async fn run(args: HooksInArgs) -> Result<()> {
    let plan = args.load.plan()?;
    let target = Target::resolve(&args.load.url).await?;
    let path = format!("/api/hooks/{}", args.source);
    let template = RequestTemplate::post_json(&target, &path, &json!({}))?;
    let signer = Arc::new(Signer::new(&args.secret)?);
    let make = {
        let signer = signer.clone();
        move || {
            let (id, t, signature, body) = signer.next();
            let mut request = template.build();
            *request.body_mut() = Full::new(body);
            let headers = request.headers_mut();
            headers.insert("webhook-id", value(&id));
            headers.insert("webhook-timestamp", value(&t));
            headers.insert("webhook-signature", value(&signature));
            request
        }
    };
    setup::expect_request(&target, make(), StatusCode::OK, "a signed event").await?;
    let heading = Heading {
        command: "hooks-in",
        what: format!("POST {} (signed, each a new event)", target.url(&path)),
        limit_hint: "check HELIX_HOOK_SECRETS holds the --source and --secret".to_owned(),
        extra: Map::from_iter([("source".to_owned(), json!(args.source))]),
    };
    let workload: Workload = Arc::new(make);
    let result = drive::run(target, &plan, workload).await?;
    report::print(heading, &plan, &result);
    Ok(())
}
