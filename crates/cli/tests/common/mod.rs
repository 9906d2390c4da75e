//! What the CLI's integration tests share: a running `ochre run` on a data directory.

#![allow(
    clippy::unwrap_used,
    dead_code,
    reason = "test code; each test file uses part of it"
)]

use std::path::Path;
use std::process::Command;

/// A running `ochre run`, killed on drop.
pub struct Server {
    child: std::process::Child,
    pub url: String,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Server {
    /// Stops the server as an operator would (SIGTERM) and waits for it to exit (a minute at
    /// most: a server that does not stop fails the test, killed).
    pub fn terminate(mut self) -> std::process::ExitStatus {
        let pid = self.child.id().to_string();
        let sent = Command::new("kill").args(["-TERM", &pid]).status().unwrap();
        assert!(sent.success(), "kill -TERM {pid}");
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                return status;
            }
            assert!(
                std::time::Instant::now() < deadline,
                "ochre run did not stop within a minute of SIGTERM"
            );
            std::thread::sleep(std::time::Duration::from_millis(20));
        }
    }
}

/// Starts `ochre run` on `data` at a free loopback port, with token auth (`token`) and no
/// embedding model, and waits until it accepts connections.
pub fn serve(data: &Path, token: &str) -> Server {
    serve_with(data, token, &[])
}

/// [`serve`] with more environment variables.
pub fn serve_with(data: &Path, token: &str, env: &[(&str, &str)]) -> Server {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let child = Command::new(env!("CARGO_BIN_EXE_ochre"))
        .args([
            "run",
            "--path",
            data.to_str().unwrap(),
            "--host",
            "127.0.0.1",
        ])
        .args(["--port", &port.to_string()])
        .env("OCHRE_AUTH_TOKENS", token)
        .env_remove("OCHRE_MODEL_DIR")
        // Traces go only where a test sends them, never to a collector of the developer's.
        .env_remove("CHROMA_OPEN_TELEMETRY__ENDPOINT")
        .env_remove("CHROMA_OPEN_TELEMETRY__SERVICE_NAME")
        .env_remove("OTEL_EXPORTER_OTLP_HEADERS")
        .envs(env.iter().copied())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let server = Server {
        child,
        url: format!("http://127.0.0.1:{port}"),
    };
    for _ in 0..200 {
        if std::net::TcpStream::connect(("127.0.0.1", port)).is_ok() {
            return server;
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    panic!("ochre run did not start");
}
