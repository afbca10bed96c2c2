//! `imgbind serve`: parse the flags, set up logging, run the server until SIGTERM/SIGINT.
//! `imgbind health`: probe a running server (a container healthcheck).

use std::process::ExitCode;

use clap::parser::ValueSource;
use clap::{CommandFactory, FromArgMatches};
use imgbind_backend::{init_logging, probe, shutdown_signal, Cli, Command, Server};

fn main() -> ExitCode {
    let matches = Cli::command().get_matches();
    let args = match Cli::from_arg_matches(&matches).unwrap_or_else(|e| e.exit()) {
        Cli {
            command: Command::Serve(args),
        } => *args,
        Cli {
            command: Command::Health(args),
        } => {
            return match probe(&args) {
                Ok(status) => {
                    println!("{status}");
                    ExitCode::SUCCESS
                }
                Err(error) => {
                    eprintln!("imgbind health: {error}");
                    ExitCode::FAILURE
                }
            }
        }
    };
    // --log-level / IMGBIND_LOG win; without either, RUST_LOG is honoured before the default.
    let defaulted = matches
        .subcommand_matches("serve")
        .and_then(|serve| serve.value_source("log_level"))
        == Some(ValueSource::DefaultValue);
    let filter = match std::env::var("RUST_LOG") {
        Ok(rust_log) if defaulted && !rust_log.is_empty() => rust_log,
        _ => args.log_level.clone(),
    };
    init_logging(&filter, args.log_format);
    let config = args.into_config();
    // What the server was sized to: in a container this shows the cgroup limit was seen.
    tracing::info!(
        jobs = config.jobs,
        memory_budget_mib = config.memory_budget >> 20,
        upload_budget_mib = config.upload_budget >> 20,
        "budgets"
    );

    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(error) => {
            tracing::error!(%error, "cannot start the async runtime");
            return ExitCode::FAILURE;
        }
    };
    let result = runtime.block_on(async {
        let server = Server::bind(&config).await?;
        server.run_until(shutdown_signal()).await
    });
    // Jobs still running on the blocking pool past the shutdown timeout are not waited for.
    runtime.shutdown_timeout(std::time::Duration::from_secs(1));
    match result {
        Ok(()) => {
            tracing::info!("stopped");
            ExitCode::SUCCESS
        }
        Err(error) => {
            tracing::error!(%error, "imgbind failed");
            ExitCode::FAILURE
        }
    }
}
