"""Starts `ochre run` on a free port with a fresh directory for the end-to-end tests."""
import os
import shutil
import socket
import subprocess
import tempfile
import time
import urllib.request

import pytest

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
BIN = os.environ.get("OCHRE_BIN", os.path.join(ROOT, "target", "release", "ochre"))


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Server:
    """One `ochre run` process; restartable on the same directory and port."""

    def __init__(self, path, port, config=None):
        self.path, self.port, self.config = path, port, config
        self.proc = None

    def start(self):
        args = [BIN, "run", "--path", self.path, "--host", "127.0.0.1", "--port", str(self.port)]
        if self.config:
            args.append(self.config)
        self.proc = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
        deadline = time.time() + 30
        while time.time() < deadline:
            try:
                urllib.request.urlopen(f"http://127.0.0.1:{self.port}/api/v2/heartbeat", timeout=1)
                return
            except OSError:
                if self.proc.poll() is not None:
                    raise RuntimeError(self.proc.stdout.read().decode())
                time.sleep(0.05)
        raise RuntimeError("ochre did not start")

    def stop(self):
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()  # SIGTERM: graceful shutdown
            self.proc.wait(timeout=30)
        self.proc = None


@pytest.fixture
def server():
    os.environ.setdefault("ANONYMIZED_TELEMETRY", "False")
    d = tempfile.mkdtemp(prefix="ochre-e2e-")
    cfg = os.path.join(d, "config.yaml")
    with open(cfg, "w") as f:
        f.write("allow_reset: true\n")
    s = Server(os.path.join(d, "data"), free_port(), cfg)
    s.start()
    yield s
    s.stop()
    shutil.rmtree(d, ignore_errors=True)
