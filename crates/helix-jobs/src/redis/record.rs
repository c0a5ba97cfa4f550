//! The two per-job values the scripts keep (see `lua/common.lua`):
//! - the data (`<prefix>jobs:data`): what never changes after enqueue, packed here and read back
//!   only here; the scripts store and return it whole;
//! - the record (`<prefix>jobs:state`): what every step reads and rewrites, packed by the
//!   scripts with Lua's `struct` as `>BIdbdddddiIc0Ic0` (see `lua/common.lua`) and read here.

use crate::model::JobState;
use crate::{JobError, NewJob};

fn malformed(what: &str) -> JobError {
    JobError::Backend(format!("unreadable job {what} in Redis"))
}

/// A job's fixed part: `<timeout ms>|<unique key bytes>|<unique key><kind bytes>|<kind><payload>`
/// (an empty timeout for none). Lengths, not separators, bound the key and the kind, so either
/// may hold any character; the payload is kept verbatim.
pub(super) fn pack_data(job: &NewJob) -> Vec<u8> {
    let timeout = job
        .timeout
        .map(|t| t.as_millis().to_string())
        .unwrap_or_default();
    let key = job.unique.as_ref().map(|u| u.key.as_str()).unwrap_or("");
    let mut out = Vec::with_capacity(job.payload.len() + job.kind.len() + key.len() + 24);
    out.extend_from_slice(format!("{timeout}|{}|{key}{}|", key.len(), job.kind.len()).as_bytes());
    out.extend_from_slice(job.kind.as_bytes());
    out.extend_from_slice(job.payload.as_bytes());
    out
}

/// What [`pack_data`] packed.
#[derive(Debug, PartialEq)]
pub(super) struct Data {
    pub(super) timeout_ms: Option<u64>,
    pub(super) unique_key: Option<String>,
    pub(super) kind: String,
    pub(super) payload: String,
}

pub(super) fn unpack_data(packed: String) -> Result<Data, JobError> {
    let bad = || malformed("data");
    let (timeout, rest) = packed.split_once('|').ok_or_else(bad)?;
    let timeout_ms = match timeout {
        "" => None,
        ms => Some(ms.parse().map_err(|_| bad())?),
    };
    let (key, rest) = sized(rest).ok_or_else(bad)?;
    let (kind, payload) = sized(rest).ok_or_else(bad)?;
    Ok(Data {
        timeout_ms,
        unique_key: Some(key.to_owned()).filter(|k| !k.is_empty()),
        kind: kind.to_owned(),
        payload: payload.to_owned(),
    })
}

/// `<n>|` then n bytes: those bytes and what follows.
fn sized(text: &str) -> Option<(&str, &str)> {
    let (len, rest) = text.split_once('|')?;
    let len: usize = len.parse().ok()?;
    Some((rest.get(..len)?, rest.get(len..)?))
}

/// A job's record, as the scripts wrote it.
#[derive(Debug, PartialEq)]
pub(super) struct Record {
    pub(super) state: JobState,
    pub(super) attempts: u32,
    pub(super) priority: i32,
    pub(super) run_at: i64,
    pub(super) created_at: i64,
    pub(super) updated_at: i64,
    pub(super) lease_until: Option<i64>,
    pub(super) finished_at: Option<i64>,
    pub(super) max_attempts: Option<u32>,
    pub(super) queue: String,
    /// Who took it last (the scripts leave it when the job moves on).
    pub(super) worker: String,
}

/// The state codes of the record, in the order `lua/common.lua` numbers them from 1.
const STATES: [JobState; 7] = [
    JobState::Scheduled,
    JobState::Available,
    JobState::Running,
    JobState::Retryable,
    JobState::Completed,
    JobState::Failed,
    JobState::Cancelled,
];

/// Reads big-endian fields off the front of a record.
struct Fields<'a>(&'a [u8]);

impl<'a> Fields<'a> {
    fn take<const N: usize>(&mut self) -> Option<[u8; N]> {
        let (head, rest) = self.0.split_first_chunk::<N>()?;
        self.0 = rest;
        Some(*head)
    }

    fn u8(&mut self) -> Option<u8> {
        self.take::<1>().map(|[b]| b)
    }

    fn i8(&mut self) -> Option<i8> {
        self.take().map(i8::from_be_bytes)
    }

    fn u32(&mut self) -> Option<u32> {
        self.take().map(u32::from_be_bytes)
    }

    fn i32(&mut self) -> Option<i32> {
        self.take().map(i32::from_be_bytes)
    }

    /// A whole number the scripts keep as a double (exact below 2^53).
    fn f64(&mut self) -> Option<i64> {
        self.take().map(|b| f64::from_be_bytes(b) as i64)
    }

    /// A length, then that many bytes of text.
    fn text(&mut self) -> Option<String> {
        let len = usize::try_from(self.u32()?).ok()?;
        if self.0.len() < len {
            return None;
        }
        let (text, rest) = self.0.split_at(len);
        self.0 = rest;
        String::from_utf8(text.to_vec()).ok()
    }
}

pub(super) fn unpack_record(bytes: &[u8]) -> Result<Record, JobError> {
    parse_record(bytes).ok_or_else(|| malformed("record"))
}

fn parse_record(bytes: &[u8]) -> Option<Record> {
    let mut f = Fields(bytes);
    let state = *STATES.get(usize::from(f.u8()?).checked_sub(1)?)?;
    let attempts = f.u32()?;
    let _token = f.f64()?;
    let priority = i32::from(f.i8()?);
    let [run_at, created_at, updated_at, lease_until, finished_at] =
        [f.f64()?, f.f64()?, f.f64()?, f.f64()?, f.f64()?];
    let max_attempts = f.i32()?;
    let queue = f.text()?;
    let worker = f.text()?;
    if !f.0.is_empty() {
        return None;
    }
    Some(Record {
        state,
        attempts,
        priority,
        run_at,
        created_at,
        updated_at,
        lease_until: Some(lease_until).filter(|t| *t > 0),
        finished_at: Some(finished_at).filter(|t| *t > 0),
        max_attempts: u32::try_from(max_attempts).ok(),
        queue,
        worker,
    })
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;
    use crate::{JobId, Unique};

    #[test]
    fn data_round_trips_any_text() {
        let job = NewJob {
            id: JobId::new(),
            kind: "kind|with|bars".into(),
            queue: "q".into(),
            payload: r#"{"a":"|1|","ü":"✓"}"#.into(),
            priority: 0,
            delay: Duration::ZERO,
            max_attempts: Some(3),
            timeout: Some(Duration::from_millis(1500)),
            unique: Some(Unique {
                key: "12|ä|".into(),
                window: Duration::from_secs(1),
            }),
        };
        let packed = String::from_utf8(pack_data(&job)).unwrap();
        let data = unpack_data(packed).unwrap();
        assert_eq!(data.timeout_ms, Some(1500));
        assert_eq!(data.unique_key.as_deref(), Some("12|ä|"));
        assert_eq!(data.kind, job.kind);
        assert_eq!(data.payload, job.payload);
        let plain = NewJob {
            timeout: None,
            unique: None,
            payload: String::new(),
            ..job
        };
        let data = unpack_data(String::from_utf8(pack_data(&plain)).unwrap()).unwrap();
        assert_eq!(
            (data.timeout_ms, data.unique_key, data.payload),
            (None, None, "".into())
        );
    }

    #[test]
    fn records_parse_as_the_scripts_pack_them() {
        // struct.pack('>BIdbdddddiIc0Ic0', 3, 2, 7, -5, 10, 9, 11, 70, 0, -1, 3, 'a|b', 2, 'w1')
        let mut bytes = vec![3u8];
        bytes.extend(2u32.to_be_bytes());
        bytes.extend(7f64.to_be_bytes());
        bytes.extend((-5i8).to_be_bytes());
        for t in [10f64, 9.0, 11.0, 70.0, 0.0] {
            bytes.extend(t.to_be_bytes());
        }
        bytes.extend((-1i32).to_be_bytes());
        bytes.extend(3u32.to_be_bytes());
        bytes.extend(b"a|b");
        bytes.extend(2u32.to_be_bytes());
        bytes.extend(b"w1");
        let record = unpack_record(&bytes).unwrap();
        assert_eq!(record.state, JobState::Running);
        assert_eq!((record.attempts, record.priority), (2, -5));
        assert_eq!(
            (record.run_at, record.created_at, record.updated_at),
            (10, 9, 11)
        );
        assert_eq!((record.lease_until, record.finished_at), (Some(70), None));
        assert_eq!((record.max_attempts, record.queue.as_str()), (None, "a|b"));
        assert_eq!(record.worker, "w1");
        assert!(unpack_record(&bytes[..20]).is_err());
    }
}
