"""The admin dashboard in headless Chromium (tests/sdk/js/dashboard.test.mjs).

Needs Debian's chromium (.ci/run installs it) and node; screenshots of every
page land in target/dashboard-screenshots.
"""

import json
import os
import shutil
import subprocess
import urllib.request
from pathlib import Path

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


@pytest.mark.skipif(shutil.which("node") is None, reason="node is not installed")
@pytest.mark.skipif(not Path(CHROMIUM).exists(), reason="chromium is not installed (apt-get install chromium)")
def test_dashboard_in_chromium(gemgate, tmp_path):
    if not (JS / "node_modules" / "playwright-core").is_dir():
        subprocess.run(["npm", "install", "--no-audit", "--no-fund"], cwd=JS, check=True)
    keys = [fake_key("ok", 1), fake_key("ok", 2), fake_key("rpm", 1), fake_key("invalid", 1)]
    policy = (ROOT / "policies" / "default.rhai").read_text()
    server = gemgate(keys, config=CONFIG, files={"policy.rhai": policy})
    traffic(server.base_url, 24)
    shots = ROOT / "target" / "dashboard-screenshots"
    env = dict(
        os.environ,
        GEMGATE_URL=server.base_url,
        GEMGATE_ADMIN_KEY=ADMIN_KEY,
        NEW_KEYS=f"{fake_key('ok', 31)},{fake_key('ok', 32)}",
        SCREENSHOT_DIR=str(shots),
        CHROMIUM=CHROMIUM,
    )
    result = subprocess.run(
        ["node", "--test", "dashboard.test.mjs"], cwd=JS, env=env, capture_output=True, text=True, timeout=180
    )
    assert result.returncode == 0, result.stdout + result.stderr
    for name in ["login", "overview", "keys", "logs-errors", "settings", "clients", "overview-zh", "keys-phone"]:
        assert (shots / f"{name}.png").stat().st_size > 5000, name
    if os.environ.get("UPDATE_DOCS_SCREENSHOTS"):
        for name in ["overview", "keys"]:
            shutil.copy(shots / f"{name}.png", ROOT / "docs" / "screenshots" / f"{name}.png")
