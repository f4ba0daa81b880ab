//! Graceful shutdown as a value: a [`CancellationToken`] cancelled by SIGTERM or Ctrl-C,
//! passed into every task, which stops accepting work and drains.

pub use tokio_util::sync::CancellationToken;

/// How long roles get to drain after the signal before the process exits anyway.
pub const DRAIN_DEADLINE: std::time::Duration = std::time::Duration::from_secs(10);

/// Returns a token cancelled on SIGTERM or Ctrl-C.
pub fn on_signal() -> CancellationToken {
    let token = CancellationToken::new();
    let t = token.clone();
    tokio::spawn(async move {
        wait_for_signal().await;
        tracing::info!("shutdown signal received; draining");
        t.cancel();
    });
    token
}

async fn wait_for_signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        match signal(SignalKind::terminate()) {
            Ok(mut term) => {
                tokio::select! {
                    _ = term.recv() => {}
                    _ = tokio::signal::ctrl_c() => {}
                }
            }
            Err(_) => {
                let _ = tokio::signal::ctrl_c().await;
            }
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
    }
}
