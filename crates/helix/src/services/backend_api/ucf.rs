//! The platform's UCF gauges: agents report samples (`POST /api/metrics`, or up to
//! [`MAX_BATCH`] at once with `POST /api/metrics/batch`), clients read the latest one and a
//! downsampled history.
//!
//! Data flow of a report: validate every value (finite, in range) → store the batch in one
//! statement → keep the newest as "latest" in the bus's key/value store (Redis at scale), per
//! agent and overall → publish each sample on `consciousness:stream` in the platform's old JSON
//! shape (`agent_id`, `consciousness_level`, `ucf_metrics`, `timestamp`). Reading "latest" falls
//! back to the database when the key/value store has lost it (a Redis restart).

use std::collections::BTreeMap;

use axum::extract::rejection::QueryRejection;
use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::Json;
use bytes::Bytes;
use chrono::{DateTime, TimeDelta, Utc};
use helix_bus::{Bus, Retention};
use helix_store::ucf::{HistoryQuery, UcfPoint, UcfSample};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use super::accounts::store;
use super::schema::ErrorBody;
use crate::services::ServiceState;
use crate::shared::auth::{Principal, Scope};
use crate::shared::error::ApiError;
use crate::shared::json::ApiJson;

/// Where every sample is published, as the platform's streaming clients expect.
pub const STREAM_CHANNEL: &str = "consciousness:stream";
/// Samples per batch report.
pub const MAX_BATCH: usize = 1000;
/// A batch's body at most: [`MAX_BATCH`] samples of about 250 bytes, with room to spare.
pub const MAX_BATCH_BYTES: usize = 512 * 1024;
/// Points per history answer: a longer range gets a wider step.
pub const MAX_POINTS: i64 = 1000;
/// Every gauge and the consciousness level lie in this range.
const RANGE: std::ops::RangeInclusive<f64> = 0.0..=10.0;
const MAX_AGENT_ID: usize = 64;
/// A sample may be stamped at most this far ahead of the server's clock.
const MAX_CLOCK_SKEW: TimeDelta = TimeDelta::minutes(5);
const MAX_HISTORY: TimeDelta = TimeDelta::days(366);

/// The six gauges, as the platform names them.
#[derive(Debug, Clone, Copy, Deserialize, Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Gauges {
    harmony: f64,
    resilience: f64,
    prana: f64,
    drishti: f64,
    klesha: f64,
    zoom: f64,
}

/// One sample in the platform's JSON shape; each value finite and within 0 to 10.
#[derive(Debug, Clone, Deserialize, Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Sample {
    agent_id: String,
    consciousness_level: f64,
    ucf_metrics: Gauges,
    /// When it was measured (default: when it arrived); at most 5 minutes ahead.
    timestamp: Option<DateTime<Utc>>,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Batch {
    /// 1 to 1000 samples, stored all or none.
    samples: Vec<Sample>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct Recorded {
    pub recorded: usize,
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct LatestQuery {
    /// One agent's latest (default: any agent's).
    agent_id: Option<String>,
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct HistoryParams {
    /// Start (RFC 3339, inclusive); default: an hour before `to`.
    from: Option<DateTime<Utc>>,
    /// End (RFC 3339, exclusive); default: now.
    to: Option<DateTime<Utc>>,
    /// Bucket width in seconds; widened so that at most 1000 points come back. Default: the
    /// range in 100 buckets.
    step: Option<i64>,
    agent_id: Option<String>,
}

/// One bucket of history: the average of its samples.
#[derive(Debug, Serialize, ToSchema)]
pub struct Point {
    /// Start of the bucket.
    pub at: DateTime<Utc>,
    pub samples: i64,
    pub consciousness_level: f64,
    #[schema(value_type = Gauges)]
    pub ucf_metrics: serde_json::Value,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct History {
    pub from: DateTime<Utc>,
    pub to: DateTime<Utc>,
    /// The bucket width used, in seconds.
    pub step: i64,
    /// Oldest first; buckets without samples are left out.
    pub points: Vec<Point>,
}

/// Record one sample (an admin, or an API key with the admin scope: agents and services).
#[utoipa::path(post, path = "/api/metrics", tag = "metrics", request_body = Sample, security(("bearer" = []), ("api_key" = [])), responses(
    (status = 201, body = Recorded),
    (status = 403, description = "Not an admin or admin-scoped key", body = ErrorBody),
    (status = 422, description = "A value is not finite or out of range", body = ErrorBody),
))]
pub async fn record(
    State(state): State<ServiceState>,
    principal: Principal,
    ApiJson(sample): ApiJson<Sample>,
) -> Result<(StatusCode, Json<Recorded>), ApiError> {
    ingest(&state, &principal, vec![sample]).await
}

/// Record up to 1000 samples at once, all or none.
#[utoipa::path(post, path = "/api/metrics/batch", tag = "metrics", request_body = Batch, security(("bearer" = []), ("api_key" = [])), responses(
    (status = 201, body = Recorded),
    (status = 422, description = "A value is not finite or out of range (the field names the sample)", body = ErrorBody),
))]
pub async fn record_batch(
    State(state): State<ServiceState>,
    principal: Principal,
    ApiJson(batch): ApiJson<Batch>,
) -> Result<(StatusCode, Json<Recorded>), ApiError> {
    if batch.samples.is_empty() || batch.samples.len() > MAX_BATCH {
        return Err(ApiError::unprocessable("samples", "give 1 to 1000 samples"));
    }
    ingest(&state, &principal, batch.samples).await
}

/// The latest sample (of one agent, or of any).
#[utoipa::path(get, path = "/api/metrics/latest", tag = "metrics", params(LatestQuery), security(("bearer" = []), ("api_key" = [])), responses(
    (status = 200, body = Sample),
    (status = 404, description = "No sample yet", body = ErrorBody),
))]
pub async fn latest(
    State(state): State<ServiceState>,
    principal: Principal,
    query: Result<Query<LatestQuery>, QueryRejection>,
) -> Result<Json<Sample>, ApiError> {
    principal.require(Scope::Read)?;
    let Query(query) = query.map_err(|e| ApiError::unprocessable("query", &e.body_text()))?;
    if let Some(bus) = state.bus() {
        if let Some(sample) = latest_on_bus(&**bus, query.agent_id.as_deref()).await {
            return Ok(Json(sample));
        }
    }
    let found = store(&state)?
        .ucf()
        .latest_sample(query.agent_id.as_deref())
        .await
        .map_err(ApiError::store)?;
    found.map(|s| Json(Sample::from(s))).ok_or_else(|| {
        ApiError::new(
            StatusCode::NOT_FOUND,
            "no_samples",
            "no sample recorded yet",
        )
    })
}

/// The latest sample as kept on the bus (`None` when missing, unreadable or unreachable).
pub(crate) async fn latest_on_bus(bus: &dyn Bus, agent_id: Option<&str>) -> Option<Sample> {
    match bus.get(&latest_key(agent_id)).await {
        Ok(bytes) => bytes.and_then(|b| serde_json::from_slice::<Sample>(&b).ok()),
        Err(error) => {
            tracing::warn!(%error, "reading the latest UCF sample from the bus");
            None
        }
    }
}

/// History averaged into buckets, at most 1000 points.
#[utoipa::path(get, path = "/api/metrics/history", tag = "metrics", params(HistoryParams), security(("bearer" = []), ("api_key" = [])), responses(
    (status = 200, body = History),
    (status = 422, description = "from not before to, a range over 366 days, a step under 1 s", body = ErrorBody),
))]
pub async fn history(
    State(state): State<ServiceState>,
    principal: Principal,
    query: Result<Query<HistoryParams>, QueryRejection>,
) -> Result<Json<History>, ApiError> {
    principal.require(Scope::Read)?;
    let Query(params) = query.map_err(|e| ApiError::unprocessable("query", &e.body_text()))?;
    let to = params.to.unwrap_or_else(Utc::now);
    let from = params.from.unwrap_or(to - TimeDelta::hours(1));
    if from >= to {
        return Err(ApiError::unprocessable("from", "must be before to"));
    }
    if to - from > MAX_HISTORY {
        return Err(ApiError::unprocessable(
            "from",
            "the range may span at most 366 days",
        ));
    }
    let span = (to - from).num_seconds().max(1);
    let step = match params.step {
        Some(step) if step < 1 => {
            return Err(ApiError::unprocessable("step", "must be at least 1 second"))
        }
        Some(step) => step,
        None => (span / 100).max(1),
    };
    // Why widen instead of refuse: a dashboard asking for a month at 1 s wants a chart, not an error.
    let step = step.max((span + MAX_POINTS - 1) / MAX_POINTS);
    // A step longer than the range gives one bucket, as the range itself would (and keeps the
    // microsecond arithmetic below far from overflowing).
    let step = step.min(span);
    let query = HistoryQuery {
        agent_id: params.agent_id,
        from_us: from.timestamp_micros(),
        to_us: to.timestamp_micros(),
        step_us: step * 1_000_000,
    };
    let points = store(&state)?
        .ucf()
        .history(&query)
        .await
        .map_err(ApiError::store)?;
    Ok(Json(History {
        from,
        to,
        step,
        points: points.into_iter().map(Point::from).collect(),
    }))
}

async fn ingest(
    state: &ServiceState,
    principal: &Principal,
    samples: Vec<Sample>,
) -> Result<(StatusCode, Json<Recorded>), ApiError> {
    principal.require(Scope::Admin)?;
    let now = Utc::now();
    let rows = samples
        .iter()
        .enumerate()
        .map(|(i, s)| checked(s, now, i))
        .collect::<Result<Vec<_>, _>>()?;
    store(state)?
        .ucf()
        .record_samples(&rows)
        .await
        .map_err(ApiError::store)?;
    if let Some(bus) = state.bus() {
        announce(&**bus, &rows, &Retention::default()).await;
    }
    Ok((
        StatusCode::CREATED,
        Json(Recorded {
            recorded: rows.len(),
        }),
    ))
}

/// Keep the newest sample as latest (overall and for each agent of the batch) and publish every
/// sample. After the commit and best-effort: a failure is logged; the history has the sample
/// either way.
pub(crate) async fn announce(bus: &dyn Bus, rows: &[UcfSample], retention: &Retention) {
    let shaped: Vec<Sample> = rows.iter().cloned().map(Sample::from).collect();
    let payloads: Vec<Bytes> = shaped
        .iter()
        .map(|s| Bytes::from(serde_json::to_vec(s).expect("a sample serialises")))
        .collect();
    let mut newest: BTreeMap<Option<&str>, usize> = BTreeMap::new();
    for (i, row) in rows.iter().enumerate() {
        for key in [None, Some(row.agent_id.as_str())] {
            let best = newest.entry(key).or_insert(i);
            if row.at_us > rows[*best].at_us {
                *best = i;
            }
        }
    }
    let latest = newest
        .iter()
        .map(|(agent, &i)| keep_if_newer(bus, latest_key(*agent), rows[i].at_us, &payloads[i]));
    let publishes = payloads
        .iter()
        .map(|p| bus.append(STREAM_CHANNEL, p.clone(), retention));
    let results = futures::future::join(
        futures::future::join_all(latest),
        futures::future::join_all(publishes),
    )
    .await;
    let appended = results.1.into_iter().map(|r| r.map(|_| ()));
    for result in results.0.into_iter().chain(appended) {
        if let Err(error) = result {
            tracing::warn!(%error, "announcing a UCF sample failed");
        }
    }
}

/// Set `key` to `payload` unless it already holds a later sample (a backfilled batch must not
/// replace a newer latest). Two batches racing can still both write; the later write wins.
async fn keep_if_newer(
    bus: &dyn Bus,
    key: String,
    at_us: i64,
    payload: &Bytes,
) -> Result<(), helix_bus::BusError> {
    let held = bus.get(&key).await?;
    let held_at = held
        .and_then(|raw| serde_json::from_slice::<Sample>(&raw).ok())
        .and_then(|s| s.timestamp)
        .map(|t| t.timestamp_micros());
    if held_at.is_some_and(|held_at| held_at > at_us) {
        return Ok(());
    }
    bus.set(&key, payload.clone(), None).await
}

pub(crate) fn latest_key(agent_id: Option<&str>) -> String {
    match agent_id {
        Some(agent) => format!("ucf:latest:{agent}"),
        None => "ucf:latest".into(),
    }
}

/// A valid sample as a row; 422 naming the value (and, in a batch, the sample's index).
pub(crate) fn checked(s: &Sample, now: DateTime<Utc>, index: usize) -> Result<UcfSample, ApiError> {
    let field = |name: &str| {
        if index == 0 {
            name.to_owned()
        } else {
            format!("samples[{index}].{name}")
        }
    };
    let id_ok = !s.agent_id.is_empty()
        && s.agent_id.len() <= MAX_AGENT_ID
        && s.agent_id
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c));
    if !id_ok {
        return Err(ApiError::unprocessable(
            &field("agent_id"),
            "must be 1 to 64 letters, digits, '-', '_' or '.'",
        ));
    }
    let g = s.ucf_metrics;
    let values = [
        ("consciousness_level", s.consciousness_level),
        ("ucf_metrics.harmony", g.harmony),
        ("ucf_metrics.resilience", g.resilience),
        ("ucf_metrics.prana", g.prana),
        ("ucf_metrics.drishti", g.drishti),
        ("ucf_metrics.klesha", g.klesha),
        ("ucf_metrics.zoom", g.zoom),
    ];
    for (name, value) in values {
        if !value.is_finite() || !RANGE.contains(&value) {
            return Err(ApiError::unprocessable(
                &field(name),
                "must be a finite number from 0 to 10",
            ));
        }
    }
    let at = s.timestamp.unwrap_or(now);
    if at > now + MAX_CLOCK_SKEW {
        return Err(ApiError::unprocessable(
            &field("timestamp"),
            "is more than 5 minutes in the future",
        ));
    }
    Ok(UcfSample {
        agent_id: s.agent_id.clone(),
        consciousness_level: s.consciousness_level,
        harmony: g.harmony,
        resilience: g.resilience,
        prana: g.prana,
        drishti: g.drishti,
        klesha: g.klesha,
        zoom: g.zoom,
        at_us: at.timestamp_micros(),
    })
}

impl From<UcfSample> for Sample {
    fn from(s: UcfSample) -> Self {
        Self {
            agent_id: s.agent_id,
            consciousness_level: s.consciousness_level,
            ucf_metrics: Gauges {
                harmony: s.harmony,
                resilience: s.resilience,
                prana: s.prana,
                drishti: s.drishti,
                klesha: s.klesha,
                zoom: s.zoom,
            },
            timestamp: DateTime::from_timestamp_micros(s.at_us),
        }
    }
}

impl From<UcfPoint> for Point {
    fn from(p: UcfPoint) -> Self {
        Self {
            at: DateTime::from_timestamp_micros(p.bucket_us).unwrap_or_default(),
            samples: p.samples,
            consciousness_level: p.consciousness_level,
            ucf_metrics: serde_json::json!({
                "harmony": p.harmony, "resilience": p.resilience, "prana": p.prana,
                "drishti": p.drishti, "klesha": p.klesha, "zoom": p.zoom,
            }),
        }
    }
}
