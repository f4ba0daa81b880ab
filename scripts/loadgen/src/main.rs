//! `minute-loadgen`: the load generator behind `scripts/bench`.
//!
//! It drives Minute only through its public API (api.md): GraphQL over HTTP at `/graphql`
//! and the `/ws` endpoint speaking `graphql-transport-ws`. Latencies go into HdrHistograms
//! and are measured from the *intended* send time of an open-loop schedule, so a stalled
//! server cannot hide its stall by slowing the generator down (coordinated omission).
//! Every scenario also measures a baseline in the same run — a bare WebSocket server
//! ([`bare`]) started as a child process, raw argon2id, or the same query on a smaller
//! input — and writes one JSON part that `report` merges into `report.json` and `report.md`.

mod api;
mod bare;
mod report;
mod scenario;
mod stats;
mod ws;

use std::path::PathBuf;

use clap::{Parser, Subcommand};

/// Load generator and report writer for `scripts/bench`.
#[derive(Debug, Parser)]
#[command(name = "minute-loadgen", version, about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// A bare WebSocket server on loopback (the baselines): echoes every text frame, and a
    /// frame starting with `B` is broadcast to every open socket. Prints `LISTENING <port>`.
    BareServer {
        /// Port to bind on 127.0.0.1 (0 = any free port).
        #[arg(long, default_value_t = 0)]
        port: u16,
    },
    /// Runs one scenario against a running Minute and writes its part of the report.
    Run(scenario::RunArgs),
    /// The delivery scenario against a peer, a Matrix homeserver running on loopback, so
    /// Minute and the peer are measured side by side in one run.
    PeerMatrix(scenario::peer::PeerArgs),
    /// Merges the parts in `--dir` into `report.json` and `report.md`.
    Report {
        /// Directory holding `<scenario>.json` parts; the reports are written beside them.
        #[arg(long)]
        dir: PathBuf,
        /// Output directory of `report.json` and `report.md`.
        #[arg(long)]
        out: PathBuf,
        /// Git commit the binaries were built from.
        #[arg(long, default_value = "unknown")]
        commit: String,
        /// Build profile of the binaries (`release` or `debug`).
        #[arg(long, default_value = "release")]
        profile: String,
        /// Smoke run: numbers are not meaningful and are not judged.
        #[arg(long)]
        smoke: bool,
    },
}

fn main() -> std::process::ExitCode {
    let cli = Cli::parse();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("minute-loadgen: cannot start the async runtime: {e}");
            return std::process::ExitCode::FAILURE;
        }
    };
    let result = runtime.block_on(async move {
        match cli.command {
            Command::BareServer { port } => bare::serve(port).await,
            Command::Run(args) => scenario::run(args).await,
            Command::PeerMatrix(args) => scenario::peer::run(args).await,
            Command::Report {
                dir,
                out,
                commit,
                profile,
                smoke,
            } => report::write(&dir, &out, &commit, &profile, smoke),
        }
    });
    match result {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("minute-loadgen: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}
