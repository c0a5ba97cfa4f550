//! Contended claims: for `--contend N` of the tasks, the worker fires its claim together with two
//! more by the same agent on two other connections. Every move is one compare-and-set on the
//! server, so exactly one of the three may get 200; the others should get 409
//! `illegal_transition` naming the status they lost to (`claimed`: the winner cannot have started
//! yet, since the worker waits for all three answers).

use serde::Deserialize;

use crate::stats::Outcome;

/// Claims fired at once for a contended task: the real one and two extra.
pub const CLAIMS: usize = 3;

/// Whether task number `n` (of `tasks`) is one of the `contend` contended ones: they are spread
/// evenly, exactly `contend` of them.
pub fn picked(n: u64, tasks: u64, contend: u64) -> bool {
    let share = |k: u64| u128::from(k) * u128::from(contend) / u128::from(tasks.max(1));
    n < tasks && share(n + 1) > share(n)
}

/// How one of the racing claims ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Claim {
    /// 2xx: this claim moved the task.
    Won,
    /// 409 `illegal_transition`, with the status the task was found in.
    Lost(Option<String>),
    /// Anything else (another status, a dropped connection, a timeout).
    Failed,
}

#[derive(Deserialize)]
struct ErrorBody {
    error: ErrorDetail,
}

#[derive(Deserialize)]
struct ErrorDetail {
    code: String,
    #[serde(default)]
    fields: serde_json::Map<String, serde_json::Value>,
}

impl Claim {
    pub fn of(outcome: Outcome, body: Option<&[u8]>) -> Claim {
        match outcome {
            Outcome::Status(200..=299) => Claim::Won,
            Outcome::Status(409) => body.map_or(Claim::Failed, lost),
            _ => Claim::Failed,
        }
    }
}

/// A 409's body: `illegal_transition` and the task's current status, or [`Claim::Failed`].
fn lost(body: &[u8]) -> Claim {
    match serde_json::from_slice::<ErrorBody>(body) {
        Ok(body) if body.error.code == "illegal_transition" => {
            let status = body.error.fields.get("status").and_then(|s| s.as_str());
            Claim::Lost(status.map(str::to_owned))
        }
        _ => Claim::Failed,
    }
}

/// Contended tasks and how their races ended.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Count {
    pub contended: u64,
    /// Races with exactly one 2xx.
    pub one_winner: u64,
    pub no_winner: u64,
    /// Races with two or more 2xx: the compare-and-set failed.
    pub several_winners: u64,
    /// Losing claims answered 409 `illegal_transition` with status `claimed`.
    pub clean_losers: u64,
    /// Losing claims answered any other way.
    pub other_losers: u64,
}

impl Count {
    /// Record one race; whether somebody won it (so the lifecycle can go on).
    pub fn add(&mut self, claims: &[Claim]) -> bool {
        let winners = claims.iter().filter(|c| **c == Claim::Won).count();
        let clean = |c: &&Claim| matches!(c, Claim::Lost(Some(status)) if status == "claimed");
        let clean = claims.iter().filter(clean).count();
        self.contended += 1;
        match winners {
            0 => self.no_winner += 1,
            1 => self.one_winner += 1,
            _ => self.several_winners += 1,
        }
        self.clean_losers += clean as u64;
        self.other_losers += (claims.len() - winners - clean) as u64;
        winners > 0
    }

    pub fn merge(&mut self, other: &Count) {
        self.contended += other.contended;
        self.one_winner += other.one_winner;
        self.no_winner += other.no_winner;
        self.several_winners += other.several_winners;
        self.clean_losers += other.clean_losers;
        self.other_losers += other.other_losers;
    }

    /// Every race had exactly one winner.
    pub fn ok(&self) -> bool {
        self.one_winner == self.contended
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exactly_contend_tasks_are_picked_spread_out() {
        for (tasks, contend) in [(10, 0), (10, 3), (10, 10), (7, 7), (10_000, 100), (1, 1)] {
            let picked: Vec<u64> = (0..tasks).filter(|&n| picked(n, tasks, contend)).collect();
            assert_eq!(
                picked.len() as u64,
                contend,
                "{tasks} tasks, {contend} contended"
            );
        }
        let every_hundredth: Vec<u64> = (0..1000).filter(|&n| picked(n, 1000, 10)).collect();
        assert_eq!(
            every_hundredth,
            (0..10).map(|k| k * 100 + 99).collect::<Vec<_>>()
        );
        assert!(!picked(10, 10, 10), "past the last task");
    }

    #[test]
    fn a_409_names_the_status_it_lost_to() {
        let body = br#"{"error":{"code":"illegal_transition","message":"x","fields":{"status":"claimed"}}}"#;
        let claim = Claim::of(Outcome::Status(409), Some(body));
        assert_eq!(claim, Claim::Lost(Some("claimed".to_owned())));
        let other = br#"{"error":{"code":"conflict","message":"x"}}"#;
        assert_eq!(Claim::of(Outcome::Status(409), Some(other)), Claim::Failed);
        assert_eq!(Claim::of(Outcome::Status(200), None), Claim::Won);
        assert_eq!(Claim::of(Outcome::Status(429), None), Claim::Failed);
        assert_eq!(Claim::of(Outcome::Timeout, None), Claim::Failed);
    }

    #[test]
    fn races_are_judged_by_their_winners() {
        let lost = || Claim::Lost(Some("claimed".to_owned()));
        let mut count = Count::default();
        assert!(count.add(&[lost(), Claim::Won, lost()]));
        assert!(count.ok());
        assert!(count.add(&[Claim::Won, Claim::Won, Claim::Lost(None)]));
        assert!(!count.add(&[lost(), Claim::Failed, lost()]));
        let expected = Count {
            contended: 3,
            one_winner: 1,
            no_winner: 1,
            several_winners: 1,
            clean_losers: 4,
            other_losers: 2,
        };
        assert_eq!(count, expected);
        assert!(!count.ok());
    }
}
