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
    /// Probe `/healthz` of the minute on `PORT` (the container HEALTHCHECK; no shell needed).
    Healthcheck,
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
    if cli.role == Some(Role::Healthcheck) {
        return healthcheck(&env);
    }
    match runtime.block_on(roles::run(cli.role.unwrap_or(Role::All), env)) {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("minute: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}

/// Exit 0 when `GET http://127.0.0.1:$PORT/healthz` answers 200 within 2 s.
fn healthcheck(env: &minute_kit::config::Env) -> std::process::ExitCode {
    use std::io::{Read, Write};
    let port = env
        .get("PORT")
        .and_then(|p| p.parse::<u16>().ok())
        .unwrap_or(8080);
    let probe = || -> std::io::Result<bool> {
        let addr = std::net::SocketAddr::from(([127, 0, 0, 1], port));
        let timeout = std::time::Duration::from_secs(2);
        let mut s = std::net::TcpStream::connect_timeout(&addr, timeout)?;
        s.set_read_timeout(Some(timeout))?;
        s.write_all(b"GET /healthz HTTP/1.1\r\nhost: localhost\r\nconnection: close\r\n\r\n")?;
        let mut head = [0u8; 12];
        s.read_exact(&mut head)?;
        Ok(head.starts_with(b"HTTP/1.1 200"))
    };
    match probe() {
        Ok(true) => std::process::ExitCode::SUCCESS,
        _ => std::process::ExitCode::FAILURE,
    }
}
