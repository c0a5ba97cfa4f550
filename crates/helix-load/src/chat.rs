//! `helix-load append` and `helix-load messages`: the conversation paths. U users are signed up and
//! C conversations created round-robin among them; then every request goes to the next
//! conversation in turn (with its owner's token), so load spreads over all of them as the platform's
//! many chats spread it.
//!
//! `append` posts a message (store + per-conversation `seq` + publish on `conversation:<id>`);
//! `messages` first seeds each conversation with `--seed` messages, then reads the newest 50.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use anyhow::{bail, Context, Result};
use futures::{StreamExt, TryStreamExt};
use hyper::StatusCode;
use serde::Deserialize;
use serde_json::{json, Map};

use crate::drive::{self, Workload};
use crate::http::RequestTemplate;
use crate::report::{self, Heading};
use crate::setup::{self, Account};
use crate::target::Target;
use crate::ChatArgs;

/// Signups in flight at once (each is an Argon2 hash on the server).
const SIGNUP_CONCURRENCY: usize = 4;
/// Other setup requests in flight at once.
const SETUP_CONCURRENCY: usize = 16;
/// What every appended message says: about the size of a short chat turn.
const CONTENT: &str = "The quick brown fox jumps over the lazy dog; a benchmark message of about \
     one hundred and fifty bytes, as a short chat turn would be, sent by helix-load.";

/// One conversation and its owner's access token.
struct Chat {
    id: String,
    token: String,
}

#[derive(Deserialize)]
struct Created {
    id: String,
}

pub async fn append(args: ChatArgs) -> Result<()> {
    let plan = args.load.plan()?;
    let target = Target::resolve(&args.load.url).await?;
    let chats = set_up(&target, &args).await?;
    let requests = chats
        .iter()
        .map(|chat| append_request(&target, chat))
        .collect::<Result<Vec<_>>>()?;
    setup::expect(
        &target,
        &requests[0],
        StatusCode::CREATED,
        "appending a message",
    )
    .await?;
    let heading = heading(
        &args,
        "append",
        format!("POST {}", target.url("/api/conversations/{id}/messages")),
    );
    let result = drive::run(target, &plan, round_robin(requests)).await?;
    report::print(heading, &plan, &result);
    Ok(())
}

pub async fn messages(args: ChatArgs) -> Result<()> {
    let plan = args.load.plan()?;
    let target = Target::resolve(&args.load.url).await?;
    let chats = set_up(&target, &args).await?;
    seed(&target, &chats, args.seed).await?;
    let requests = chats
        .iter()
        .map(|chat| {
            let path = format!("/api/conversations/{}/messages?limit=50", chat.id);
            RequestTemplate::get(&target, &path)?.bearer(&chat.token)
        })
        .collect::<Result<Vec<_>>>()?;
    setup::expect(&target, &requests[0], StatusCode::OK, "reading messages").await?;
    let what = format!(
        "GET {} (newest 50 of {})",
        target.url("/api/conversations/{id}/messages?limit=50"),
        args.seed
    );
    let heading = heading(&args, "messages", what);
    let result = drive::run(target, &plan, round_robin(requests)).await?;
    report::print(heading, &plan, &result);
    Ok(())
}

fn heading(args: &ChatArgs, command: &'static str, what: String) -> Heading<'static> {
    Heading {
        command,
        what: format!(
            "{what}, {} conversations of {} users",
            args.conversations, args.users
        ),
        limit_hint: "start the server with a higher HELIX_RATE_LIMIT_PER_MINUTE (and, for \
                     append, HELIX_TIER_FREE_MESSAGES_PER_DAY=unlimited)"
            .to_owned(),
        extra: Map::from_iter([
            ("conversations".to_owned(), json!(args.conversations)),
            ("users".to_owned(), json!(args.users)),
        ]),
    }
}

/// Each call takes the next template, so every conversation gets its turn.
fn round_robin(requests: Vec<RequestTemplate>) -> Workload {
    let next = AtomicUsize::new(0);
    Arc::new(move || requests[next.fetch_add(1, Ordering::Relaxed) % requests.len()].build())
}

fn append_request(target: &Target, chat: &Chat) -> Result<RequestTemplate> {
    let path = format!("/api/conversations/{}/messages", chat.id);
    let body = json!({"role": "user", "content": CONTENT});
    RequestTemplate::post_json(target, &path, &body)?.bearer(&chat.token)
}

/// Sign up the users and create the conversations round-robin among them.
async fn set_up(target: &Target, args: &ChatArgs) -> Result<Vec<Chat>> {
    if !(1..=10_000).contains(&args.users) || !(1..=100_000).contains(&args.conversations) {
        bail!("--users must be 1 to 10000 and --conversations 1 to 100000");
    }
    eprintln!("signing up {} users…", args.users);
    let tokens: Vec<String> = futures::stream::iter(0..args.users)
        .map(|_| async {
            Ok::<_, anyhow::Error>(
                setup::signup(target, &Account::generate())
                    .await?
                    .access_token,
            )
        })
        .buffer_unordered(SIGNUP_CONCURRENCY)
        .try_collect()
        .await?;
    eprintln!("creating {} conversations…", args.conversations);
    futures::stream::iter(0..args.conversations)
        .map(|n| {
            let token = tokens[n % tokens.len()].clone();
            async move {
                let id = create_conversation(target, &token, &format!("bench {n}")).await?;
                Ok(Chat { id, token })
            }
        })
        .buffer_unordered(SETUP_CONCURRENCY)
        .try_collect()
        .await
}

/// `POST /api/conversations` as the holder of `token`; the new conversation's id.
pub async fn create_conversation(target: &Target, token: &str, title: &str) -> Result<String> {
    let body = json!({ "title": title });
    let request = RequestTemplate::post_json(target, "/api/conversations", &body)?.bearer(token)?;
    let response = setup::expect(
        target,
        &request,
        StatusCode::CREATED,
        "creating a conversation",
    )
    .await?;
    let created: Created = serde_json::from_slice(&response.body).context("a conversation id")?;
    Ok(created.id)
}

/// Append `per_chat` messages to every conversation before a read benchmark.
async fn seed(target: &Target, chats: &[Chat], per_chat: usize) -> Result<()> {
    eprintln!(
        "seeding {per_chat} messages into each of {} conversations…",
        chats.len()
    );
    let requests = chats
        .iter()
        .map(|chat| append_request(target, chat))
        .collect::<Result<Vec<_>>>()?;
    futures::stream::iter((0..per_chat).flat_map(|_| requests.iter()))
        .map(|request| setup::expect(target, request, StatusCode::CREATED, "seeding a message"))
        .buffer_unordered(SETUP_CONCURRENCY)
        .try_for_each(|_| async { Ok(()) })
        .await
}
