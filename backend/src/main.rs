//! `imgbind serve`: parse the flags, set up logging, run the server until SIGTERM/SIGINT.

use std::process::ExitCode;

use clap::Parser;
use imgbind_backend::{shutdown_signal, Cli, Command, Server};
use tracing_subscriber::EnvFilter;

fn main() -> ExitCode {
    let Cli {
        command: Command::Serve(args),
    } = Cli::parse();
    let filter = EnvFilter::try_new(&args.log).unwrap_or_else(|e| {
        eprintln!(
            "imgbind: bad --log filter {:?} ({e}); using \"info\"",
            args.log
        );
        EnvFilter::new("info")
    });
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        // Colour only on a terminal: logs piped to files or journald stay plain text.
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .init();
    let config = args.into_config();

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
