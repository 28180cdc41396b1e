"""Runs the openai and @anthropic-ai/sdk npm packages' tests (tests/sdk/js) against real gemgates."""

import os
import shutil
import subprocess
from pathlib import Path

import pytest

from conftest import CLIENT_KEY, fake_key

JS = Path(__file__).parent / "js"


@pytest.mark.skipif(shutil.which("node") is None, reason="node is not installed")
def test_openai_npm_package(gemgate):
    if not (JS / "node_modules" / "openai").is_dir() or not (JS / "node_modules" / "@anthropic-ai" / "sdk").is_dir():
        subprocess.run(["npm", "install", "--no-audit", "--no-fund"], cwd=JS, check=True)
    healthy = gemgate([fake_key("ok", 1), fake_key("ok", 2)])
    cooling = gemgate([fake_key("rpm", 1)])
    env = dict(os.environ, GEMGATE_URL=healthy.base_url, GEMGATE_COOLING_URL=cooling.base_url, GEMGATE_KEY=CLIENT_KEY)
    result = subprocess.run(["node", "--test", "openai.test.mjs", "anthropic.test.mjs"], cwd=JS, env=env, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stdout + result.stderr
