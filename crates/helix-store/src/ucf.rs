//! The UCF metrics contract: samples of the platform's six gauges (harmony, resilience, prana,
//! drishti, klesha, zoom) and a consciousness level, reported by agents; stored as history and
//! read back whole or averaged into time buckets.

use async_trait::async_trait;
use serde::{Deserialize, Serialize};
use sqlx::{ColumnIndex, Decode, Row, Type};

use crate::StoreError;

/// One reported sample. Values are checked by the caller (finite, in range).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct UcfSample {
    pub agent_id: String,
    pub consciousness_level: f64,
    pub harmony: f64,
    pub resilience: f64,
    pub prana: f64,
    pub drishti: f64,
    pub klesha: f64,
    pub zoom: f64,
    /// Microseconds since the Unix epoch.
    pub at_us: i64,
}

/// The average of the samples in one time bucket.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct UcfPoint {
    /// Start of the bucket, microseconds since the Unix epoch.
    pub bucket_us: i64,
    pub samples: i64,
    pub consciousness_level: f64,
    pub harmony: f64,
    pub resilience: f64,
    pub prana: f64,
    pub drishti: f64,
    pub klesha: f64,
    pub zoom: f64,
}

/// Which history to read: samples with `from_us <= at_us < to_us`, in buckets of `step_us`.
#[derive(Debug, Clone, PartialEq)]
pub struct HistoryQuery {
    pub agent_id: Option<String>,
    pub from_us: i64,
    pub to_us: i64,
    pub step_us: i64,
}

#[async_trait]
pub trait UcfMetrics: Send + Sync {
    /// Store samples, all or none (one statement per batch).
    async fn record_samples(&self, samples: &[UcfSample]) -> Result<(), StoreError>;

    /// The newest sample (of one agent, or of any), for when no cache holds it.
    async fn latest_sample(&self, agent_id: Option<&str>) -> Result<Option<UcfSample>, StoreError>;

    /// Averages per bucket, oldest first; empty buckets are left out.
    async fn history(&self, query: &HistoryQuery) -> Result<Vec<UcfPoint>, StoreError>;
}

/// The history query of both engines; `text` is how the dialect types a text parameter in an
/// `IS NULL` test (`$3::text` on PostgreSQL, `$3` on SQLite). Parameters: from, to, agent, step.
pub(crate) fn history_sql(text: &str) -> String {
    format!(
        "SELECT (at_us / $4) * $4 AS bucket_us, COUNT(*) AS samples, \
         AVG(consciousness_level) AS consciousness_level, AVG(harmony) AS harmony, \
         AVG(resilience) AS resilience, AVG(prana) AS prana, AVG(drishti) AS drishti, \
         AVG(klesha) AS klesha, AVG(zoom) AS zoom \
         FROM ucf_samples WHERE at_us >= $1 AND at_us < $2 AND ({text} IS NULL OR agent_id = $3) \
         GROUP BY 1 ORDER BY 1"
    )
}

/// The newest-sample query of both engines (parameter: agent).
pub(crate) fn latest_sql(text: &str) -> String {
    format!(
        "SELECT {SAMPLE_COLUMNS} FROM ucf_samples WHERE ({text} IS NULL OR agent_id = $1) \
         ORDER BY at_us DESC, id DESC LIMIT 1"
    )
}

/// A history row, on either engine.
pub(crate) fn point<R>(row: &R) -> Result<UcfPoint, sqlx::Error>
where
    R: Row,
    for<'r> i64: Decode<'r, R::Database> + Type<R::Database>,
    for<'r> f64: Decode<'r, R::Database> + Type<R::Database>,
    for<'a> &'a str: ColumnIndex<R>,
{
    Ok(UcfPoint {
        bucket_us: row.try_get("bucket_us")?,
        samples: row.try_get("samples")?,
        consciousness_level: row.try_get("consciousness_level")?,
        harmony: row.try_get("harmony")?,
        resilience: row.try_get("resilience")?,
        prana: row.try_get("prana")?,
        drishti: row.try_get("drishti")?,
        klesha: row.try_get("klesha")?,
        zoom: row.try_get("zoom")?,
    })
}

/// A sample row, on either engine.
pub(crate) fn sample<R>(row: &R) -> Result<UcfSample, sqlx::Error>
where
    R: Row,
    for<'r> i64: Decode<'r, R::Database> + Type<R::Database>,
    for<'r> f64: Decode<'r, R::Database> + Type<R::Database>,
    for<'r> String: Decode<'r, R::Database> + Type<R::Database>,
    for<'a> &'a str: ColumnIndex<R>,
{
    Ok(UcfSample {
        agent_id: row.try_get("agent_id")?,
        consciousness_level: row.try_get("consciousness_level")?,
        harmony: row.try_get("harmony")?,
        resilience: row.try_get("resilience")?,
        prana: row.try_get("prana")?,
        drishti: row.try_get("drishti")?,
        klesha: row.try_get("klesha")?,
        zoom: row.try_get("zoom")?,
        at_us: row.try_get("at_us")?,
    })
}

pub(crate) const SAMPLE_COLUMNS: &str = "agent_id, consciousness_level, harmony, resilience, \
     prana, drishti, klesha, zoom, at_us";
