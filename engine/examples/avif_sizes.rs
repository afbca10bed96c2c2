//! AVIF size and time per quality, to calibrate the quality mapping against sharp (docs/FORMATS.md):
//! `cargo run --release -p imgbind-engine --example avif_sizes -- FILE WIDTH [QUALITY…]`.

use std::time::Instant;

use imgbind_engine::{run, Job, Limits, Source};
use imgbind_wire::{parse_steps, OutputFormat, OutputOptions};

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let (Some(path), Some(width)) = (args.get(1), args.get(2)) else {
        eprintln!("usage: avif_sizes FILE WIDTH [QUALITY…]");
        std::process::exit(2);
    };
    let bytes = bytes::Bytes::from(std::fs::read(path).expect("read"));
    let steps = parse_steps(&format!(r#"[{{"imageIndex":0,"width":{width}}}]"#), 1).expect("steps");
    let qualities: Vec<u8> = if args.len() > 3 {
        args[3..]
            .iter()
            .map(|q| q.parse().expect("quality"))
            .collect()
    } else {
        vec![50, 80, 85]
    };
    for quality in qualities {
        let mut times = Vec::new();
        let mut size = 0;
        for _ in 0..3 {
            let mut output = OutputOptions::new(OutputFormat::Avif);
            output.quality = Some(quality);
            let job = Job {
                sources: vec![Source::Image(bytes.clone())],
                steps: steps.clone(),
                output,
            };
            let started = Instant::now();
            size = run(job, &Limits::default()).expect("run").bytes.len();
            times.push(started.elapsed().as_secs_f64() * 1000.0);
        }
        times.sort_by(f64::total_cmp);
        println!("quality {quality}: {size} bytes, median {:.0} ms", times[1]);
    }
}
