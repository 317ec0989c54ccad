//! Stop requests from the operating system: SIGTERM (systemd, `docker stop`, Kubernetes) and SIGINT (Ctrl-C),
//! forwarded as messages to the scheduler loop (which decides what a first and a second request mean).

use tokio::sync::mpsc;

/// Listens for SIGTERM and SIGINT from now on (call inside the runtime); each one sends its name.
pub fn listen() -> std::io::Result<mpsc::Receiver<String>> {
    let (tx, rx) = mpsc::channel(8);
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        let mut term = signal(SignalKind::terminate())?;
        let mut int = signal(SignalKind::interrupt())?;
        tokio::spawn(async move {
            loop {
                let name = tokio::select! {
                    Some(()) = term.recv() => "SIGTERM",
                    Some(()) = int.recv() => "SIGINT",
                    else => break,
                };
                if tx.send(name.to_string()).await.is_err() {
                    break;
                }
            }
        });
    }
    #[cfg(not(unix))]
    {
        tokio::spawn(async move {
            while tokio::signal::ctrl_c().await.is_ok() {
                if tx.send("Ctrl-C".to_string()).await.is_err() {
                    break;
                }
            }
        });
    }
    Ok(rx)
}
