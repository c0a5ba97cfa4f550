//! `helix-load hash`: how long one password hash takes here with the server's exact Argon2id
//! parameters. Signup and login each cost one such hash (or verification, the same work), so
//! hashes/s per core times the server's cores bounds its logins/s whatever else is tuned.
//!
//! The parameters are restated here rather than imported from `helix`, so the load tool builds
//! without the server; the PHC prefix check below catches a drift between the two.

use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use argon2::password_hash::{PasswordHasher, SaltString};
use argon2::{Algorithm, Argon2, Params, Version};
use clap::Args;
use serde_json::json;

use crate::cpu;

/// Must match `crates/helix/src/shared/auth/password.rs`: OWASP's minimum for Argon2id.
const MEMORY_KIB: u32 = 19 * 1024;
const PASSES: u32 = 2;
const LANES: u32 = 1;
/// What the server's stored hashes start with.
const PHC_PREFIX: &str = "$argon2id$v=19$m=19456,t=2,p=1$";

#[derive(Args)]
pub struct HashArgs {
    /// Timed hashes per thread.
    #[arg(long, default_value_t = 20)]
    iterations: u32,
    /// Untimed hashes first (page faults on the 19 MiB buffer, CPU frequency ramp-up).
    #[arg(long, default_value_t = 2)]
    warmup_iterations: u32,
    /// Hash on this many threads at once, to see how throughput scales across cores.
    #[arg(long, default_value_t = 1)]
    threads: u32,
}

pub fn run(args: &HashArgs) -> Result<()> {
    if !(1..=100_000).contains(&args.iterations) || !(1..=256).contains(&args.threads) {
        bail!("--iterations must be 1..=100000 and --threads 1..=256");
    }
    let phc = hash_once()?;
    if !phc.starts_with(PHC_PREFIX) {
        bail!("hash parameters drifted from the server's: got {phc}, expected {PHC_PREFIX}…");
    }
    for _ in 0..args.warmup_iterations {
        hash_once()?;
    }
    let cpu_before = cpu::process_cpu_time()?;
    let started = Instant::now();
    let mut times = run_threads(args.threads, args.iterations)?;
    let wall = started.elapsed();
    let cpu = cpu::process_cpu_time()?.saturating_sub(cpu_before);
    times.sort();
    print(args, &times, wall, cpu);
    Ok(())
}

/// One hash exactly as the server makes it: fresh hasher, random 16-byte salt, PHC string out.
fn hash_once() -> Result<String> {
    let params = Params::new(MEMORY_KIB, PASSES, LANES, None).context("Argon2 parameters")?;
    let argon2 = Argon2::new(Algorithm::Argon2id, Version::V0x13, params);
    let salt = SaltString::generate(&mut rand::rngs::OsRng);
    let hash = argon2
        .hash_password(b"correct horse battery staple", &salt)
        .map_err(|err| anyhow::anyhow!("Argon2 hashing failed: {err}"))?;
    Ok(hash.to_string())
}

/// Each thread times its own hashes; all durations come back together.
fn run_threads(threads: u32, iterations: u32) -> Result<Vec<Duration>> {
    std::thread::scope(|scope| {
        let workers: Vec<_> = (0..threads)
            .map(|_| {
                scope.spawn(move || {
                    (0..iterations)
                        .map(|_| {
                            let one = Instant::now();
                            hash_once().map(|_| one.elapsed())
                        })
                        .collect::<Result<Vec<_>>>()
                })
            })
            .collect();
        let mut times = Vec::new();
        for worker in workers {
            let joined = worker
                .join()
                .map_err(|_| anyhow::anyhow!("a hashing thread panicked"))?;
            times.extend(joined?);
        }
        Ok(times)
    })
}

fn print(args: &HashArgs, sorted: &[Duration], wall: Duration, cpu: Duration) {
    let count = sorted.len() as f64;
    let ms = |d: Duration| d.as_secs_f64() * 1000.0;
    let mean = ms(sorted.iter().sum::<Duration>()) / count;
    let at = |share: f64| ms(sorted[((count - 1.0) * share).round() as usize]);
    let per_core = 1000.0 / mean;
    let aggregate = count / wall.as_secs_f64();
    let cpu_per_hash = ms(cpu) / count;
    let (threads, iterations) = (args.threads, args.iterations);
    println!(
        "helix-load hash: Argon2id v0x13, m={MEMORY_KIB} KiB, t={PASSES}, p={LANES} (the \
         server's parameters)"
    );
    println!(
        "  runs          {iterations} timed hashes × {threads} thread(s), after {} warm-up",
        args.warmup_iterations
    );
    println!(
        "  wall ms/hash  mean {mean:.2}  min {:.2}  p50 {:.2}  p90 {:.2}  max {:.2}",
        at(0.0),
        at(0.5),
        at(0.9),
        at(1.0)
    );
    println!("  per core      {per_core:.1} hashes/s (1000 / mean wall ms)");
    if threads > 1 {
        println!("  aggregate     {aggregate:.1} hashes/s on {threads} threads");
    }
    println!(
        "  CPU ms/hash   {cpu_per_hash:.2} (process user+system time, {} ms resolution over \
         {:.2} s; CPU/wall {:.2} per thread)",
        cpu::RESOLUTION.as_millis(),
        ms(cpu) / 1000.0,
        cpu.as_secs_f64() / wall.as_secs_f64() / f64::from(threads)
    );
    let summary = json!({
        "command": "hash",
        "memory_kib": MEMORY_KIB, "passes": PASSES, "lanes": LANES,
        "iterations": iterations, "threads": threads,
        "mean_ms": round2(mean), "p50_ms": round2(at(0.5)), "max_ms": round2(at(1.0)),
        "hashes_per_s_per_core": round2(per_core),
        "hashes_per_s": round2(aggregate),
        "cpu_ms_per_hash": round2(cpu_per_hash),
    });
    println!("SUMMARY {summary}");
}

fn round2(value: f64) -> f64 {
    (value * 100.0).round() / 100.0
}
