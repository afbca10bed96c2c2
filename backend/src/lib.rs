//! The imgbind server: hyper on a Unix socket and/or TCP, answering the Images-binding wire
//! protocol (`POST /transform`, `POST /info`, `GET /healthz`, `GET /metrics`) with
//! `imgbind-engine`. Operating it: `docs/OPERATIONS.md`.
//!
//! The binary (`imgbind serve`) is a thin shell over [`Server`]; tests start it in-process:
//!
//! ```no_run
//! # async fn example() -> std::io::Result<()> {
//! let config = imgbind_backend::Config {
//!     listen: Some("127.0.0.1:0".parse().unwrap()),
//!     ..Default::default()
//! };
//! let server = imgbind_backend::Server::bind(&config).await?;
//! let addr = server.tcp_addr();
//! server.run_until(imgbind_backend::shutdown_signal()).await
//! # }
//! ```

mod budget;
mod config;
mod connection;
mod drain;
mod exchange;
mod handler;
mod hosted;
mod jobs;
mod memory;
mod metrics;
mod op_summary;
mod probe;
mod receive;
mod respond;
mod server;
mod streaming;
mod telemetry;

pub use config::{
    Cli, Command, Config, HealthArgs, HostedArgs, HostedConfig, LogFormat, ServeArgs, StoreChoice,
    Variant, DEFAULT_LISTEN, DEFAULT_PORT,
};
pub use jobs::{Engine, PixelEngine};
pub use memory::memory_limit;
pub use probe::probe;
pub use receive::parse_transform_request;
pub use server::{shutdown_signal, Server};
pub use telemetry::init_logging;
