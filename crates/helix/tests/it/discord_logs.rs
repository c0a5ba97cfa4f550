//! discord-bot's channel logging end to end: messages queued as `discord.post` jobs by the bot
//! and posted by a worker to a local server playing Discord's channel webhooks. The JSON Discord
//! takes; no secret in what is queued or sent; a 429 waited out; an exhausted rate-limit bucket
//! waited for before sending; a 404 disabling its channel and no other; the heartbeat, slash
//! commands and health alerts arriving on their channels.

use std::collections::BTreeMap;
use std::time::Duration;

use helix::services::discord_bot::logs::{Channel, Embed, Field, Logger, Message};
use helix_jobs::{Job, JobId, JobState};
use serde_json::json;

use crate::support::discord::{command, fresh_id, public_key, send};
use crate::support::discord_webhook::{Answer, FakeWebhooks};
use crate::support::spawn_app::{spawn_app_with, spawn_sibling, TestApp};
use crate::support::{eventually, TestBackends};

/// The value of a secret variable (JWT_SECRET), registered for redaction at start.
const PLANTED_TOKEN: &str = "planted-jwt-secret-MTIzNDU2Nzg5YWJjZGVm";
/// A JSON Web Token nobody registered.
const PLANTED_JWT: &str = "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJwbGFudGVkIn0.cGxhbnRlZC1zaWduYXR1cmU";

struct World {
    bot: TestApp,
    _worker: TestApp,
    discord: FakeWebhooks,
    logger: Logger,
}

/// discord-bot with webhooks for `channels` on a fake Discord, and a worker on the `discord`
/// queue.
async fn world(channels: &[Channel], extra: &[(&str, &str)]) -> World {
    let discord = FakeWebhooks::start().await;
    let mut env = BTreeMap::from([
        ("DISCORD_PUBLIC_KEY".to_owned(), public_key()),
        ("JWT_SECRET".to_owned(), PLANTED_TOKEN.to_owned()),
    ]);
    for channel in channels {
        env.insert(channel.var().to_owned(), discord.url(channel.name()));
    }
    env.extend(
        extra
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned())),
    );
    let bot = spawn_app_with("discord-bot", TestBackends::new(), env).await;
    let worker = spawn_sibling(
        &bot,
        "worker",
        &[("HELIX_WORKER_QUEUES", "discord:concurrency=2")],
    )
    .await;
    helix::services::start(&worker.state).expect("the worker starts");
    let logger = Logger::new(&bot.state);
    World {
        bot,
        _worker: worker,
        discord,
        logger,
    }
}

impl World {
    async fn log(&self, channel: Channel, message: Message) -> JobId {
        self.logger
            .log(channel, message, None)
            .await
            .expect("the message is queued")
    }

    async fn job(&self, id: JobId) -> Job {
        let jobs = self.bot.state.jobs().expect("discord-bot has a queue");
        jobs.backend()
            .get(id)
            .await
            .unwrap()
            .expect("the job exists")
    }

    /// Wait until the job has finished (completed or failed), and return it.
    async fn finished(&self, id: JobId) -> Job {
        eventually("the job finishing", async || {
            matches!(
                self.job(id).await.state,
                JobState::Completed | JobState::Failed
            )
        })
        .await;
        self.job(id).await
    }

    async fn posts(
        &self,
        channel: Channel,
        n: usize,
    ) -> Vec<crate::support::discord_webhook::Post> {
        eventually(&format!("{n} posts on {channel}"), async || {
            self.discord.posts(channel.name()).len() >= n
        })
        .await;
        self.discord.posts(channel.name())
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_message_reaches_its_channel_as_discord_takes_it() {
    let w = world(&[Channel::Api], &[]).await;
    let long = "x".repeat(2_100);
    let message = Message {
        content: Some(long),
        embeds: vec![Embed {
            title: Some("deploy".into()),
            color: Some(0x34_98_db),
            fields: vec![Field {
                name: "service".into(),
                value: "backend-api".into(),
                inline: true,
            }],
            ..Embed::default()
        }],
    };

    let id = w.log(Channel::Api, message).await;

    let posts = w.posts(Channel::Api, 1).await;
    assert_eq!(posts[0].query, "wait=true");
    let mut content = "x".repeat(1_999);
    content.push('…');
    assert_eq!(
        posts[0].json(),
        json!({
            "content": content,
            "embeds": [{"title": "deploy", "color": 0x34_98_db,
                        "fields": [{"name": "service", "value": "backend-api", "inline": true}]}],
            "allowed_mentions": {"parse": []},
        })
    );
    assert_eq!(w.finished(id).await.state, JobState::Completed);
    assert!(
        w.discord.posts(Channel::Commands.name()).is_empty(),
        "nothing on a channel without a webhook"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slash_command_is_logged_on_the_commands_channel() {
    let w = world(&[Channel::Commands], &[]).await;
    let id = fresh_id();

    let (status, _) = send(&w.bot, &command(&id, "health")).await;

    assert_eq!(status, 200);
    let posts = w.posts(Channel::Commands, 1).await;
    let embed = &posts[0].json()["embeds"][0];
    assert_eq!(embed["title"], "/health", "{embed}");
    let body = &posts[0].body;
    assert!(!body.contains("tok-"), "no interaction token: {body}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn secrets_never_reach_the_queue_or_discord() {
    let w = world(&[Channel::Alerts], &[]).await;
    let webhook = w.discord.url(Channel::Alerts.name());
    let message = Message {
        content: Some(format!("token {PLANTED_TOKEN} and {PLANTED_JWT}")),
        embeds: vec![Embed {
            description: Some(format!("posted to {webhook}")),
            fields: vec![Field {
                name: "auth".into(),
                value: format!("Authorization: Bearer {PLANTED_JWT}"),
                inline: false,
            }],
            ..Embed::default()
        }],
    };

    let id = w.log(Channel::Alerts, message).await;

    let stored = w.job(id).await.payload;
    let posts = w.posts(Channel::Alerts, 1).await;
    let token = FakeWebhooks::token(Channel::Alerts.name());
    for (what, text) in [("queued", &stored), ("sent", &posts[0].body)] {
        for planted in [PLANTED_TOKEN, PLANTED_JWT, token.as_str()] {
            assert!(!text.contains(planted), "{planted} {what}: {text}");
        }
        assert!(text.contains("«hidden»"), "{what}: {text}");
    }
    assert!(stored.contains(r#""channel":"alerts""#), "{stored}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_429_is_waited_out_for_as_long_as_discord_asks() {
    let w = world(&[Channel::Commands], &[]).await;
    w.discord
        .script(Channel::Commands.name(), &[Answer::Throttled(1.2)]);

    let id = w.log(Channel::Commands, Message::text("once")).await;

    let posts = w.posts(Channel::Commands, 2).await;
    assert!(
        posts[1].at >= posts[0].at + Duration::from_millis(1_200),
        "sent again {:?} after the 429",
        posts[1].at - posts[0].at
    );
    assert_eq!(posts[1].json()["content"], "once");
    assert_eq!(w.finished(id).await.state, JobState::Completed);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_exhausted_bucket_is_waited_for_before_sending() {
    let w = world(&[Channel::Heartbeat], &[]).await;
    w.discord.script(
        Channel::Heartbeat.name(),
        &[Answer::Limited(0, "1.5", "bucket-a")],
    );

    let first = w.log(Channel::Heartbeat, Message::text("first")).await;
    assert_eq!(w.finished(first).await.state, JobState::Completed);
    let second = w.log(Channel::Heartbeat, Message::text("second")).await;

    let posts = w.posts(Channel::Heartbeat, 2).await;
    assert_eq!(posts.len(), 2, "never sent into the exhausted bucket");
    assert!(
        posts[1].at >= posts[0].at + Duration::from_millis(1_500),
        "sent {:?} after the bucket ran out",
        posts[1].at - posts[0].at
    );
    assert_eq!(posts[1].json()["content"], "second");
    assert_eq!(w.finished(second).await.state, JobState::Completed);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_404_disables_that_channel_only_and_a_403_fails_the_message() {
    let w = world(&[Channel::Alerts, Channel::Commands, Channel::Api], &[]).await;
    w.discord
        .script(Channel::Alerts.name(), &[Answer::Status(404)]);
    w.discord
        .script(Channel::Api.name(), &[Answer::Status(403)]);

    let gone = w.log(Channel::Alerts, Message::text("first")).await;
    assert_eq!(w.finished(gone).await.state, JobState::Completed);
    let store = w.bot.state.store().unwrap();
    let entry = store
        .meta_get("discord.webhook.alerts.disabled")
        .await
        .unwrap()
        .expect("the channel is remembered as disabled");
    assert!(
        !entry.contains("whtok-"),
        "no webhook token stored: {entry}"
    );

    let dropped = w.log(Channel::Alerts, Message::text("second")).await;
    let other = w.log(Channel::Commands, Message::text("still here")).await;
    let refused = w.log(Channel::Api, Message::text("forbidden")).await;

    assert_eq!(w.finished(dropped).await.state, JobState::Completed);
    assert_eq!(w.finished(other).await.state, JobState::Completed);
    assert_eq!(w.discord.posts(Channel::Alerts.name()).len(), 1);
    assert_eq!(w.discord.posts(Channel::Commands.name()).len(), 1);
    let failed = w.finished(refused).await;
    assert_eq!(failed.state, JobState::Failed);
    assert_eq!(failed.attempts, 1, "a 403 is not retried");
    let error = format!("{:?}", failed.errors);
    assert!(error.contains("HTTP 403"), "{error}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_heartbeat_and_health_alerts_arrive() {
    let w = world(
        &[Channel::Heartbeat, Channel::Alerts],
        &[("HELIX_DISCORD_HEARTBEAT_SECS", "1")],
    )
    .await;
    helix::services::start(&w.bot.state).expect("discord-bot starts");

    let beats = w.posts(Channel::Heartbeat, 1).await;
    let embed = &beats[0].json()["embeds"][0];
    assert!(
        embed["title"].as_str().unwrap().contains("heartbeat"),
        "{embed}"
    );

    let bus = w.bot.state.bus().unwrap().clone();
    let down = json!({"type": "service.health", "service": "claude-api", "status": "down",
                      "error": "answered 503 Service Unavailable", "url": "http://127.0.0.1:1"});
    let up = json!({"type": "service.health", "service": "voice-processing", "status": "up"});
    // The listener subscribes in its own task: publish until it has heard one.
    eventually("a health alert", async || {
        for event in [&up, &down] {
            bus.append(
                "service:health",
                event.to_string().into(),
                &helix_bus::Retention::default(),
            )
            .await
            .unwrap();
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
        !w.discord.posts(Channel::Alerts.name()).is_empty()
    })
    .await;
    for post in w.discord.posts(Channel::Alerts.name()) {
        let title = post.json()["embeds"][0]["title"].clone();
        assert_eq!(
            title, "🔴 claude-api is down",
            "only the service that went down"
        );
    }
}
