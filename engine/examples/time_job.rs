//! Times one resize job: `cargo run --release -p imgbind-engine --example time_job -- FILE WIDTH [jpeg|png|webp] [RUNS]`.

use std::time::Instant;

use imgbind_engine::{run, Job, Limits, Source};
use imgbind_wire::{parse_steps, OutputFormat, OutputOptions};

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let (Some(path), Some(width)) = (args.get(1), args.get(2)) else {
        eprintln!("usage: time_job FILE WIDTH [jpeg|png|webp] [RUNS]");
        std::process::exit(2);
    };
    let format = OutputFormat::parse(&format!(
        "image/{}",
        args.get(3).map_or("jpeg", String::as_str)
    ))
    .expect("format");
    let runs: usize = args.get(4).map_or(5, |r| r.parse().expect("runs"));
    let bytes = bytes::Bytes::from(std::fs::read(path).expect("read"));
    let steps = parse_steps(&format!(r#"[{{"imageIndex":0,"width":{width}}}]"#), 1).expect("steps");
    let mut times = Vec::new();
    for _ in 0..runs {
        let job = Job {
            sources: vec![Source::Image(bytes.clone())],
            steps: steps.clone(),
            output: OutputOptions::new(format),
        };
        let started = Instant::now();
        let out = run(job, &Limits::default()).expect("run");
        times.push(started.elapsed().as_secs_f64() * 1000.0);
        eprintln!("{}x{} {} bytes", out.width, out.height, out.bytes.len());
    }
    times.sort_by(f64::total_cmp);
    println!(
        "median {:.1} ms, min {:.1} ms over {runs} runs",
        times[runs / 2],
        times[0]
    );
}
