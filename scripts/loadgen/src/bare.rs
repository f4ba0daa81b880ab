//! The baseline server: a bare WebSocket server on loopback doing the least a chat socket
//! can do — echo a frame, or broadcast it to every open socket — with the same read buffer
//! and frame limit as Minute's `/ws` (512 bytes, 64 KiB), one task per socket. It runs as
//! its own process (`minute-loadgen bare-server`) so its RSS can be measured alone.

use std::io::{BufRead, BufReader, Write};
use std::process::{Child, Command, Stdio};

use anyhow::Context;
use futures_util::{SinkExt, StreamExt};
use tokio::net::TcpListener;
use tokio::sync::broadcast;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::handshake::server::{Request, Response};
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;

/// Read buffer per socket, as `REALTIME_READ_BUFFER_BYTES` defaults to.
pub(crate) const READ_BUFFER: usize = 512;

/// Serves until killed.
pub(crate) async fn serve(port: u16) -> anyhow::Result<()> {
    let listener = TcpListener::bind(("127.0.0.1", port))
        .await
        .with_context(|| format!("bind 127.0.0.1:{port}"))?;
    println!("LISTENING {}", listener.local_addr()?.port());
    std::io::stdout().flush()?;
    let (tx, _) = broadcast::channel::<String>(1024);
    loop {
        let (stream, _) = match listener.accept().await {
            Ok(s) => s,
            Err(e) => {
                // Out of file descriptors: wait instead of spinning.
                eprintln!("bare-server: accept: {e}");
                tokio::time::sleep(std::time::Duration::from_millis(100)).await;
                continue;
            }
        };
        let _ = stream.set_nodelay(true);
        let tx = tx.clone();
        tokio::spawn(async move {
            let config = WebSocketConfig::default()
                .read_buffer_size(READ_BUFFER)
                .write_buffer_size(0)
                .max_message_size(Some(64 << 10))
                .max_frame_size(Some(64 << 10));
            // The callback's error type is tungstenite's (an HTTP response), not ours.
            #[allow(clippy::result_large_err)]
            let select_protocol = |req: &Request, mut res: Response| {
                if let Some(p) = req.headers().get("sec-websocket-protocol") {
                    res.headers_mut()
                        .insert("sec-websocket-protocol", p.clone());
                }
                Ok(res)
            };
            let Ok(mut ws) = tokio_tungstenite::accept_hdr_async_with_config(
                stream,
                select_protocol,
                Some(config),
            )
            .await
            else {
                return;
            };
            let mut rx = tx.subscribe();
            loop {
                tokio::select! {
                    m = ws.next() => match m {
                        Some(Ok(Message::Text(t))) => {
                            let reply = if t.as_str().starts_with('B') {
                                let _ = tx.send(t.as_str().to_owned());
                                continue;
                            } else {
                                Message::Text(t)
                            };
                            if ws.send(reply).await.is_err() {
                                return;
                            }
                        }
                        Some(Ok(Message::Close(_))) | None | Some(Err(_)) => return,
                        Some(Ok(_)) => {}
                    },
                    b = rx.recv() => match b {
                        Ok(text) => {
                            if ws.send(Message::text(text)).await.is_err() {
                                return;
                            }
                        }
                        Err(broadcast::error::RecvError::Lagged(_)) => {}
                        Err(broadcast::error::RecvError::Closed) => return,
                    },
                }
            }
        });
    }
}

/// A bare server child process, killed on drop.
pub(crate) struct BareServer {
    child: Child,
    pub(crate) port: u16,
}

impl BareServer {
    /// Starts `minute-loadgen bare-server` (this executable) and waits for its port.
    pub(crate) fn start() -> anyhow::Result<Self> {
        let exe = std::env::current_exe().context("own executable")?;
        let mut child = Command::new(exe)
            .arg("bare-server")
            .stdout(Stdio::piped())
            .stdin(Stdio::null())
            .spawn()
            .context("start the bare WebSocket server")?;
        let stdout = child.stdout.take().context("child stdout")?;
        let mut line = String::new();
        BufReader::new(stdout).read_line(&mut line)?;
        let port = line
            .trim()
            .strip_prefix("LISTENING ")
            .and_then(|p| p.parse().ok())
            .with_context(|| format!("bare server said {line:?}"))?;
        Ok(Self { child, port })
    }

    pub(crate) fn pid(&self) -> u32 {
        self.child.id()
    }

    pub(crate) fn url(&self) -> String {
        format!("ws://127.0.0.1:{}/ws", self.port)
    }
}

impl Drop for BareServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
