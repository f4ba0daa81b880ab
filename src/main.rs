//! `minute`: every role of the Minute chat backend in one binary (design.md §1).
//! Thin on purpose: parse the command line, read the environment once, start the chosen
//! role(s), wait for SIGTERM / Ctrl-C, and drain within the deadline.

mod roles;

use clap::{Parser, Subcommand};

/// Minute — the open-source chat backend.
#[derive(Debug, Parser)]
#[command(name = "minute", version, about, long_about = None)]
struct Cli {
    /// The role to run; `all` when omitted.
    #[command(subcommand)]
    role: Option<Role>,
}

/// What this process runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Subcommand)]
pub(crate) enum Role {
    /// Every service and the gateway in one process on one port (default).
    All,
    /// Accounts, passwords, tokens and sessions.
    Auth,
    /// Profiles and user search.
    Users,
    /// Direct and group conversations, members and roles.
    Conversations,
    /// Messages, reactions, receipts and history.
    Messaging,
    /// The `/ws` endpoint: live events, typing and presence.
    Realtime,
    /// The federation gateway: one `/graphql` over the subgraphs.
    Gateway,
}

fn main() -> std::process::ExitCode {
    let cli = Cli::parse();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("minute: cannot start the async runtime: {e}");
            return std::process::ExitCode::FAILURE;
        }
    };
    let env = minute_kit::config::Env::load();
    match runtime.block_on(roles::run(cli.role.unwrap_or(Role::All), env)) {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("minute: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}
