"""The admin dashboard in headless Chromium (tests/sdk/js/dashboard.test.mjs).

Needs Debian's chromium (.ci/run installs it) and node; screenshots of every
page land in target/dashboard-screenshots.
"""

import hashlib
import http.client
import json
import os
import shutil
import subprocess
import threading
import urllib.error
import urllib.request
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import urlsplit

import pytest

from conftest import CLIENT_KEY, ROOT, fake_key

JS = Path(__file__).parent / "js"
CHROMIUM = os.environ.get("CHROMIUM", "/usr/bin/chromium")
ADMIN_KEY = "browser-admin-key-0123456789"
CONFIG = f"""
[auth]
admin_key = "{ADMIN_KEY}"
[retry]
overload_backoff_ms = 10
[policy]
file = "policy.rhai"
"""


def traffic(base_url: str, count: int):
    body = json.dumps({"contents": [{"parts": [{"text": "hi"}]}]}).encode()
    for n in range(count):
        model = "gemini-2.5-pro" if n % 3 == 0 else "gemini-2.5-flash"
        request = urllib.request.Request(
            f"{base_url}/v1beta/models/{model}:generateContent",
            data=body,
            headers={"x-goog-api-key": CLIENT_KEY, "content-type": "application/json"},
        )
        urllib.request.urlopen(request, timeout=10).read()


def fingerprint(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()[:12]


def admin(base_url: str, path: str, body: dict):
    request = urllib.request.Request(
        f"{base_url}/admin/api/{path}",
        data=json.dumps(body).encode(),
        headers={"authorization": f"Bearer {ADMIN_KEY}", "content-type": "application/json"},
    )
    return json.loads(urllib.request.urlopen(request, timeout=10).read() or b"null")


def failed_over_three_times(base_url: str, keys: dict):
    """One request that tries exactly three keys: while only the rate-limited,
    the daily-quota and the overloaded key are enabled, every attempt fails
    and no fourth key is left. The keys for other checks wait disabled."""
    waiting = [fingerprint(keys[name]) for name in ("ok1", "ok2", "invalid", "denied")]
    admin(base_url, "keys/disable", {"fingerprints": waiting})
    body = json.dumps({"contents": [{"parts": [{"text": "trace me"}]}]}).encode()
    request = urllib.request.Request(
        f"{base_url}/v1beta/models/gemini-2.5-flash:generateContent",
        data=body,
        headers={"x-goog-api-key": CLIENT_KEY, "content-type": "application/json"},
    )
    with pytest.raises(urllib.error.HTTPError):
        urllib.request.urlopen(request, timeout=30)
    # The denied key stays out of traffic: the browser's scan disables it.
    admin(base_url, "keys/enable", {"fingerprints": waiting[:3]})


class PrefixProxy:
    """A reverse proxy serving gemgate under /gg/ (the prefix is stripped),
    as nginx `location /gg/ { proxy_pass http://gemgate/; }` would."""

    def __init__(self, upstream: str):
        target = urlsplit(upstream)

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def forward(self):
                if not self.path.startswith("/gg/"):
                    self.send_error(404, "outside the prefix")
                    return
                length = int(self.headers.get("content-length") or 0)
                body = self.rfile.read(length) if length else None
                conn = http.client.HTTPConnection(target.hostname, target.port, timeout=30)
                headers = {k: v for k, v in self.headers.items() if k.lower() not in ("host", "connection")}
                conn.request(self.command, self.path[3:], body=body, headers=headers)
                reply = conn.getresponse()
                data = reply.read()
                self.send_response(reply.status)
                for name, value in reply.getheaders():
                    if name.lower() not in ("transfer-encoding", "connection", "content-length"):
                        self.send_header(name, value)
                self.send_header("content-length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)
                conn.close()

            do_GET = do_POST = do_PUT = do_DELETE = forward

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/gg"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def stop(self):
        self.server.shutdown()


@pytest.mark.skipif(shutil.which("node") is None, reason="node is not installed")
@pytest.mark.skipif(not Path(CHROMIUM).exists(), reason="chromium is not installed (apt-get install chromium)")
def test_dashboard_in_chromium(gemgate, tmp_path):
    if not (JS / "node_modules" / "playwright-core").is_dir():
        subprocess.run(["npm", "install", "--no-audit", "--no-fund"], cwd=JS, check=True)
    named = {
        "ok1": fake_key("ok", 1),
        "ok2": fake_key("ok", 2),
        "rpm": fake_key("rpm", 1),
        "invalid": fake_key("invalid", 1),
        "rpd": fake_key("rpd", 1),
        "overload": fake_key("overload", 1),
        "denied": fake_key("denied", 1),
    }
    policy = (ROOT / "policies" / "default.rhai").read_text()
    server = gemgate(list(named.values()), config=CONFIG, files={"policy.rhai": policy})
    failed_over_three_times(server.base_url, named)
    traffic(server.base_url, 24)
    admin(server.base_url, "keys/enable", {"fingerprints": [fingerprint(named["denied"])]})
    proxy = PrefixProxy(server.base_url)
    shots = ROOT / "target" / "dashboard-screenshots"
    env = dict(
        os.environ,
        GEMGATE_URL=server.base_url,
        GEMGATE_ADMIN_KEY=ADMIN_KEY,
        NEW_KEYS=f"{fake_key('ok', 31)},{fake_key('ok', 32)}",
        SCREENSHOT_DIR=str(shots),
        CHROMIUM=CHROMIUM,
        PREFIX_URL=proxy.url,
        DAILY_FP=fingerprint(named["rpd"]),
        DENIED_FP=fingerprint(named["denied"]),
        RPM_FP=fingerprint(named["rpm"]),
    )
    result = subprocess.run(
        ["node", "--test", "dashboard.test.mjs"], cwd=JS, env=env, capture_output=True, text=True, timeout=180
    )
    proxy.stop()
    assert result.returncode == 0, result.stdout + result.stderr
    for name in ["login", "overview", "overview-split", "keys", "key-panel-daily", "key-panel-scan-disabled",
                 "logs-errors", "logs-trace", "settings", "clients", "usage", "egress", "overview-zh", "keys-zh", "keys-phone"]:
        assert (shots / f"{name}.png").stat().st_size > 5000, name
    if os.environ.get("UPDATE_DOCS_SCREENSHOTS"):
        for shot, name in [("overview", "overview"), ("keys", "keys"), ("key-panel-daily", "key-panel"),
                           ("logs-trace", "logs-trace")]:
            shutil.copy(shots / f"{shot}.png", ROOT / "docs" / "screenshots" / f"{name}.png")
