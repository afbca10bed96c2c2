//! The engine side of `npm run bench` (bench/run.mjs): runs jobs in-process on command and answers
//! one JSON line per command. Build: `cargo build --release -p imgbind-engine --example bench_jobs`.
//!
//! Commands on stdin, one per line, fields separated by tabs. A job is given by the same strings the
//! wire carries (`output_format`, `output_quality`, `transforms` JSON) and the source files:
//!
//! - `latency RUNS OUT FORMAT QUALITY STEPS SOURCE...`: RUNS jobs one after another, each allowed
//!   every core (`Limits::threads`, as the server gives a job that starts on an idle machine);
//!   writes the last result to OUT (`-` for none); answers the times in ms, size and dimensions.
//! - `throughput THREADS SECONDS FORMAT QUALITY STEPS SOURCE...`: THREADS threads each run the job
//!   back to back, one thread each (as the server's jobs at full load), until SECONDS have passed;
//!   answers images completed and the wall time they took.
//! - `reset-peak`: resets this process's peak RSS (VmHWM) so the next answers show one job's peak.
//!
//! Every answer carries `vm_hwm_kib`, the process's peak resident set size since the last reset.
//! A failed job answers `{"error": CODE, "message": …}` (AVIF output answers 9520 today).

use std::io::{BufRead, Write};
use std::time::{Duration, Instant};

use imgbind_engine::{run, Job, Limits, Source};
use imgbind_wire::{parse_steps, Error, OutputFields, OutputOptions};

/// One job as the wire describes it, with its source bytes read.
struct Spec {
    sources: Vec<bytes::Bytes>,
    steps: Vec<imgbind_wire::Step>,
    output: OutputOptions,
}

impl Spec {
    /// Parses `FORMAT QUALITY STEPS SOURCE...` and reads the sources.
    fn parse(fields: &[&str]) -> Result<Spec, String> {
        let [format, quality, steps, sources @ ..] = fields else {
            return Err("expected FORMAT QUALITY STEPS SOURCE...".into());
        };
        let quality = (*quality != "-").then_some(*quality);
        let output = OutputOptions::from_fields(&OutputFields {
            format: Some(format.to_string()),
            quality: quality.map(String::from),
            ..Default::default()
        })
        .map_err(|e| e.body_text())?;
        let steps = parse_steps(steps, sources.len()).map_err(|e| e.body_text())?;
        let sources = sources
            .iter()
            .map(|path| {
                std::fs::read(path)
                    .map(bytes::Bytes::from)
                    .map_err(|e| format!("{path}: {e}"))
            })
            .collect::<Result<Vec<_>, _>>()?;
        Ok(Spec {
            sources,
            steps,
            output,
        })
    }

    /// Runs the job once. Cloning `Bytes` shares the input, so only the work is timed.
    fn run(&self, limits: &Limits) -> Result<imgbind_engine::Encoded, Error> {
        run(
            Job {
                sources: self
                    .sources
                    .iter()
                    .map(|b| Source::Image(b.clone()))
                    .collect(),
                steps: self.steps.clone(),
                output: self.output.clone(),
            },
            limits,
        )
    }
}

fn main() {
    let limits = Limits::default();
    // One job in flight: the idle cores are all its own.
    let alone = Limits {
        threads: std::thread::available_parallelism().unwrap_or(std::num::NonZeroUsize::MIN),
        ..Limits::default()
    };
    let stdin = std::io::stdin();
    let mut stdout = std::io::stdout().lock();
    for line in stdin.lock().lines() {
        let line = line.expect("stdin");
        let fields: Vec<&str> = line.split('\t').collect();
        let answer = match fields.as_slice() {
            ["latency", runs, out, rest @ ..] => latency(runs, out, rest, &alone),
            ["throughput", threads, seconds, rest @ ..] => {
                throughput(threads, seconds, rest, &limits)
            }
            ["reset-peak"] => reset_peak().map(|()| String::new()),
            [] | [""] => continue,
            _ => Err(format!("unknown command {:?}", fields[0])),
        };
        let peak = peak_rss_kib();
        let line = match answer {
            Ok(body) => format!("{{{body}{}\"vm_hwm_kib\":{peak}}}", sep(&body)),
            Err(message) => format!("{{\"error\":0,\"message\":{}}}", json_string(&message)),
        };
        writeln!(stdout, "{line}").expect("stdout");
        stdout.flush().expect("stdout");
    }
}

fn sep(body: &str) -> &'static str {
    if body.is_empty() {
        ""
    } else {
        ","
    }
}

fn latency(runs: &str, out: &str, job: &[&str], limits: &Limits) -> Result<String, String> {
    let runs: usize = runs.parse().map_err(|_| "RUNS must be a number")?;
    let spec = Spec::parse(job)?;
    let mut times = Vec::with_capacity(runs);
    let mut last = None;
    for _ in 0..runs {
        let started = Instant::now();
        let result = spec.run(limits);
        times.push(started.elapsed().as_secs_f64() * 1000.0);
        match result {
            Ok(encoded) => last = Some(encoded),
            Err(e) => return Ok(job_error(&e)),
        }
    }
    let Some(encoded) = last else {
        return Err("RUNS must be at least 1".into());
    };
    if out != "-" {
        std::fs::write(out, &encoded.bytes).map_err(|e| format!("{out}: {e}"))?;
    }
    let times: Vec<String> = times.iter().map(|t| format!("{t:.3}")).collect();
    Ok(format!(
        "\"ms\":[{}],\"bytes\":{},\"width\":{},\"height\":{}",
        times.join(","),
        encoded.bytes.len(),
        encoded.width,
        encoded.height
    ))
}

fn throughput(
    threads: &str,
    seconds: &str,
    job: &[&str],
    limits: &Limits,
) -> Result<String, String> {
    let threads: usize = threads.parse().map_err(|_| "THREADS must be a number")?;
    let seconds: f64 = seconds.parse().map_err(|_| "SECONDS must be a number")?;
    let spec = Spec::parse(job)?;
    let budget = Duration::from_secs_f64(seconds);
    let started = Instant::now();
    let results: Vec<Result<usize, Error>> = std::thread::scope(|scope| {
        let workers: Vec<_> = (0..threads)
            .map(|_| {
                scope.spawn(|| {
                    let mut done = 0;
                    while started.elapsed() < budget {
                        spec.run(limits)?;
                        done += 1;
                    }
                    Ok(done)
                })
            })
            .collect();
        workers
            .into_iter()
            .map(|w| w.join().expect("worker thread"))
            .collect()
    });
    let wall = started.elapsed().as_secs_f64();
    let mut images = 0;
    for result in results {
        match result {
            Ok(done) => images += done,
            Err(e) => return Ok(job_error(&e)),
        }
    }
    Ok(format!("\"images\":{images},\"seconds\":{wall:.4}"))
}

fn job_error(e: &Error) -> String {
    format!(
        "\"error\":{},\"message\":{}",
        e.code().as_u16(),
        json_string(e.message())
    )
}

/// Writing 5 to `/proc/self/clear_refs` resets VmHWM to the current RSS (Linux ≥ 4.0).
fn reset_peak() -> Result<(), String> {
    std::fs::write("/proc/self/clear_refs", "5").map_err(|e| format!("clear_refs: {e}"))
}

/// VmHWM from `/proc/self/status`, in KiB (0 where there is no procfs).
fn peak_rss_kib() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|status| {
            status
                .lines()
                .find_map(|l| l.strip_prefix("VmHWM:"))
                .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        })
        .unwrap_or(0)
}

fn json_string(text: &str) -> String {
    let mut out = String::with_capacity(text.len() + 2);
    out.push('"');
    for c in text.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            c if (c as u32) < 0x20 => out.push_str(&format!("\\u{:04x}", c as u32)),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}
