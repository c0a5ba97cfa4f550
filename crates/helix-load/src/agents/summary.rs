//! Printing `agents`' result like the other commands': aligned lines for people, then one
//! `SUMMARY {json}` line for scripts (`grep '^SUMMARY' | cut -c9- | jq`). The verdict decides the
//! exit status, after both are printed.

use anyhow::{bail, Result};
use serde_json::{json, Map, Value};

use super::contend;
use super::lifecycle::{RunResult, Step};
use super::verify::Verdict;
use super::Plan;
use crate::report;
use crate::stats::Tally;
use crate::target::Target;

/// Print the result; `Err` when the run did not do what it should have.
pub fn print(plan: &Plan, target: &Target, result: &RunResult, verdict: &Verdict) -> Result<()> {
    let secs = result.elapsed.as_secs_f64().max(f64::EPSILON);
    println!(
        "helix-load agents: {} task lifecycles (create → claim → start → complete) by {} agents \
         × {} workers each on {}",
        plan.tasks, plan.agents, plan.per_agent, target.base
    );
    println!(
        "  run           {} of {} lifecycles completed in {secs:.3} s: {:.1} lifecycles/s, \
         {:.1} requests/s",
        result.completed,
        plan.tasks,
        result.completed as f64 / secs,
        result.steps.requests() as f64 / secs
    );
    print_latencies(plan, result);
    print_errors(result);
    if plan.contend > 0 {
        print_contention(&result.contention);
    }
    print_verdict(verdict);
    if let Some(cores) = result.client_cores {
        println!("  client CPU    {cores:.2} cores used by helix-load itself");
    }
    if errors(result).iter().any(|(_, failures)| has_429(failures)) {
        println!(
            "  note          429s: start the servers with a higher HELIX_RATE_LIMIT_PER_MINUTE \
             (it limits the admin's token and each agent's key)"
        );
    }
    println!("SUMMARY {}", Value::Object(summary(plan, result, verdict)));
    outcome(plan, result, verdict)
}

/// The steps reported: the contended claim only when there were any.
fn steps(plan: &Plan) -> impl Iterator<Item = Step> + '_ {
    Step::ALL
        .into_iter()
        .filter(|step| *step != Step::ContendedClaim || plan.contend > 0)
}

fn print_latencies(plan: &Plan, result: &RunResult) {
    for step in steps(plan) {
        let tally = result.steps.get(step);
        let label = match step {
            Step::ContendedClaim => "claim×3 ms".to_owned(),
            _ => format!("{} ms", step.name()),
        };
        println!(
            "  {label:<13} {}   ({} ok)",
            report::percentiles(&tally.latency),
            tally.ok()
        );
    }
}

/// Non-2xx outcomes of `tally` by kind; `expected` (the losers' 409s of contended claims) left out.
fn failures(tally: &Tally, expected: Option<u16>) -> Vec<(String, u64)> {
    let mut failures: Vec<(String, u64)> = tally
        .error_statuses()
        .filter(|(code, _)| Some(*code as u16) != expected)
        .map(|(code, n)| (code.to_string(), n))
        .collect();
    let others = [
        ("429", tally.status(429)),
        ("connection_errors", tally.transport_errors),
        ("timeouts", tally.timeouts),
    ];
    failures.extend(
        others
            .into_iter()
            .filter(|(_, n)| *n > 0)
            .map(|(kind, n)| (kind.to_owned(), n)),
    );
    failures
}

/// Each step's failures, for the steps that had any.
fn errors(result: &RunResult) -> Vec<(Step, Vec<(String, u64)>)> {
    Step::ALL
        .into_iter()
        .map(|step| {
            let expected = (step == Step::ContendedClaim).then_some(409);
            (step, failures(result.steps.get(step), expected))
        })
        .filter(|(_, failures)| !failures.is_empty())
        .collect()
}

fn has_429(failures: &[(String, u64)]) -> bool {
    failures.iter().any(|(kind, _)| kind == "429")
}

fn print_errors(result: &RunResult) {
    let errors = errors(result);
    let line = if errors.is_empty() {
        "none".to_owned()
    } else {
        let steps: Vec<String> = errors
            .iter()
            .map(|(step, failures)| {
                let parts: Vec<String> =
                    failures.iter().map(|(k, n)| format!("{k} ×{n}")).collect();
                format!("{}: {}", step.name(), parts.join(", "))
            })
            .collect();
        steps.join("; ")
    };
    println!("  errors        {line}");
    if result.bad_answers > 0 {
        println!(
            "  bad answers   {} 2xx answers without the task in the expected status",
            result.bad_answers
        );
    }
}

fn print_contention(count: &contend::Count) {
    println!(
        "  contention    contended claims: {}, one winner each: {} (no winner {}, several \
         winners {}; losers: {} got 409 \"claimed\", {} something else)",
        count.contended,
        count.one_winner,
        count.no_winner,
        count.several_winners,
        count.clean_losers,
        count.other_losers
    );
}

fn print_verdict(verdict: &Verdict) {
    if verdict.ok() {
        println!(
            "  verify        OK: {} tasks created (with the setup probe), each listed completed \
             exactly once; no duplicates, none in another status",
            verdict.created
        );
        return;
    }
    println!(
        "  verify        MISMATCH: created {}, listed completed {}, completed once {}, missing {}, \
         duplicates {}, unexpected {}, damaged {}, in another status {:?}",
        verdict.created,
        verdict.listed_completed,
        verdict.completed_once,
        verdict.missing,
        verdict.duplicates,
        verdict.unexpected,
        verdict.damaged,
        verdict.other_status
    );
    for line in &verdict.mismatches {
        println!("                {line}");
    }
    let undescribed = verdict.agents_off - verdict.mismatches.len() as u64;
    if undescribed > 0 {
        println!("                … and {undescribed} more agents");
    }
}

fn summary(plan: &Plan, result: &RunResult, verdict: &Verdict) -> Map<String, Value> {
    let secs = result.elapsed.as_secs_f64().max(f64::EPSILON);
    let mut fields = Map::from_iter([
        ("command".to_owned(), json!("agents")),
        ("agents".to_owned(), json!(plan.agents)),
        ("per_agent".to_owned(), json!(plan.per_agent)),
        ("workers".to_owned(), json!(plan.workers())),
        ("tasks".to_owned(), json!(plan.tasks)),
        ("contend".to_owned(), json!(plan.contend)),
        ("elapsed_s".to_owned(), json!(report::round(secs, 3))),
        ("completed".to_owned(), json!(result.completed)),
        (
            "lifecycles_per_s".to_owned(),
            json!(report::round(result.completed as f64 / secs, 1)),
        ),
        ("requests".to_owned(), json!(result.steps.requests())),
        (
            "rps".to_owned(),
            json!(report::round(result.steps.requests() as f64 / secs, 1)),
        ),
        ("bad_answers".to_owned(), json!(result.bad_answers)),
        (
            "client_cores".to_owned(),
            json!(result.client_cores.map(|cores| report::round(cores, 2))),
        ),
    ]);
    for step in steps(plan) {
        let tally = result.steps.get(step);
        let mut latency = report::latency_fields(&tally.latency);
        latency.insert("ok".to_owned(), json!(tally.ok()));
        fields.insert(step.name().to_owned(), Value::Object(latency));
    }
    fields.insert("errors".to_owned(), errors_json(result));
    if plan.contend > 0 {
        fields.insert("contention".to_owned(), contention_json(&result.contention));
    }
    fields.insert("verify".to_owned(), verdict_json(verdict));
    fields
}

/// `{"create": {"429": 3}, …}`, only the steps with failures.
fn errors_json(result: &RunResult) -> Value {
    let steps = errors(result).into_iter().map(|(step, failures)| {
        let kinds = failures.into_iter().map(|(kind, n)| (kind, json!(n)));
        (step.name().to_owned(), Value::Object(kinds.collect()))
    });
    Value::Object(steps.collect())
}

fn contention_json(count: &contend::Count) -> Value {
    json!({
        "contended_claims": count.contended,
        "one_winner": count.one_winner,
        "no_winner": count.no_winner,
        "several_winners": count.several_winners,
        "clean_losers": count.clean_losers,
        "other_losers": count.other_losers,
        "ok": count.ok(),
    })
}

fn verdict_json(verdict: &Verdict) -> Value {
    json!({
        "ok": verdict.ok(),
        "created": verdict.created,
        "listed_completed": verdict.listed_completed,
        "completed_once": verdict.completed_once,
        "missing": verdict.missing,
        "duplicates": verdict.duplicates,
        "unexpected": verdict.unexpected,
        "damaged": verdict.damaged,
        "other_status": verdict.other_status,
        "agents_off": verdict.agents_off,
    })
}

/// Whether the run did everything it set out to, and the server's listing agrees.
fn outcome(plan: &Plan, result: &RunResult, verdict: &Verdict) -> Result<()> {
    let mut problems = Vec::new();
    if result.completed != plan.tasks {
        problems.push(format!(
            "{} of {} lifecycles completed",
            result.completed, plan.tasks
        ));
    }
    if !result.contention.ok() {
        problems.push(format!(
            "{} of {} contended claims had exactly one winner",
            result.contention.one_winner, result.contention.contended
        ));
    }
    if !verdict.ok() {
        problems.push("the task listing disagrees with the run (see verify)".to_owned());
    }
    if problems.is_empty() {
        return Ok(());
    }
    bail!("verification failed: {}", problems.join("; "))
}
