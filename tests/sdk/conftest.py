"""Starts the fake Google API and a real gemgate binary in front of it.

The binaries come from `cargo build --bins --examples` (tests/run.sh does
that); GEMGATE_BIN and FAKE_UPSTREAM_BIN point elsewhere if needed.
"""

import os
import socket
import subprocess
import tempfile
import time
import urllib.request
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
TARGET = Path(os.environ.get("CARGO_TARGET_DIR", ROOT / "target"))
GEMGATE_BIN = os.environ.get("GEMGATE_BIN", str(TARGET / "debug" / "gemgate"))
FAKE_BIN = os.environ.get("FAKE_UPSTREAM_BIN", str(TARGET / "debug" / "examples" / "fake_upstream"))
CLIENT_KEY = "sdk-test-client-key-0123456789"


def fake_key(token: str, n: int) -> str:
    """A Google-shaped key whose name tells the fake how to behave."""
    head = f"AIza{token}-"
    return head + str(n).rjust(39 - len(head), "0")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture(scope="session")
def fake_upstream():
    proc = subprocess.Popen([FAKE_BIN, "--port", "0"], stdout=subprocess.PIPE, text=True)
    line = proc.stdout.readline().strip()
    assert line.startswith("fake upstream listening on "), line
    yield line.rsplit(" ", 1)[1]
    proc.terminate()
    proc.wait(timeout=10)


class Gemgate:
    """A gemgate process with its own keys and data folders."""

    def __init__(self, upstream: str, keys: list[str], extra_env: dict | None = None, config: str | None = None,
                 files: dict | None = None):
        self.dir = tempfile.TemporaryDirectory()
        folder = Path(self.dir.name)
        self.folder = folder
        for name, text in (files or {}).items():
            (folder / name).write_text(text)
        (folder / "keys").mkdir()
        (folder / "keys" / "sdk.txt").write_text("\n".join(keys) + "\n")
        self.port = free_port()
        self.base_url = f"http://127.0.0.1:{self.port}"
        env = dict(os.environ)
        env.update({
            "GEMGATE_SERVER__LISTEN": f"127.0.0.1:{self.port}",
            "GEMGATE_UPSTREAM__BASE_URL": upstream,
            "GEMGATE_AUTH__CLIENT_KEYS": CLIENT_KEY,
            "GEMGATE_KEYS__DIR": str(folder / "keys"),
            "GEMGATE_STORE__DATA_DIR": str(folder / "data"),
            "GEMGATE_SCAN__INTERVAL_SECS": "0",
            "RUST_LOG": "warn",
        })
        env.update(extra_env or {})
        self.log = open(folder / "gemgate.log", "w")
        args = [GEMGATE_BIN]
        if config is not None:
            # A real config file, so the admin can edit it.
            (folder / "config.toml").write_text(config)
            args += ["--config", str(folder / "config.toml")]
        self.proc = subprocess.Popen(args, cwd=folder, env=env, stdout=self.log, stderr=subprocess.STDOUT)
        self._wait_ready()

    def _wait_ready(self):
        deadline = time.time() + 20
        while time.time() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"gemgate exited: {Path(self.dir.name, 'gemgate.log').read_text()}")
            try:
                urllib.request.urlopen(f"{self.base_url}/v1beta/models", timeout=1)
            except urllib.error.HTTPError:
                return  # it answers (401 without a key): ready
            except OSError:
                time.sleep(0.05)
                continue
            return
        raise RuntimeError("gemgate did not start in time")

    def stop(self):
        self.proc.terminate()
        self.proc.wait(timeout=15)
        self.log.close()
        self.dir.cleanup()


@pytest.fixture
def gemgate(fake_upstream):
    started = []

    def start(keys, config=None, files=None, **extra_env):
        server = Gemgate(fake_upstream, keys, extra_env, config, files)
        started.append(server)
        return server

    yield start
    for server in started:
        server.stop()


def pytest_sessionstart(session):
    """Under CI=true a missing prerequisite fails the run instead of skipping suites."""
    if os.environ.get("CI") != "true":
        return
    import shutil

    needed = {
        "node": shutil.which("node"),
        "chromium (apt-get install chromium)": Path(os.environ.get("CHROMIUM", "/usr/bin/chromium")).exists(),
        "schemathesis (pip install -r tests/sdk/requirements.txt)": shutil.which("st"),
    }
    missing = [name for name, found in needed.items() if not found]
    if missing:
        raise pytest.UsageError(f"CI=true but these are missing: {', '.join(missing)}")
