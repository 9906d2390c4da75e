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

/// Starts `ochre run` on `data` at a free loopback port, with token auth (`token`) and no
/// embedding model, and waits until it accepts connections.
pub fn serve(data: &Path, token: &str) -> Server {
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
