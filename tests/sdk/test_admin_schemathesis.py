"""schemathesis fuzzes the admin API from its own OpenAPI document: no answer
may be a 5xx, and every documented answer must match its schema."""

import json
import shutil
import subprocess
import urllib.request

import pytest
from openapi_spec_validator import validate

from conftest import ROOT, fake_key

ADMIN_KEY = "schemathesis-admin-key-0123456789"
CONFIG = f"""
[auth]
admin_key = "{ADMIN_KEY}"
[policy]
file = "policy.rhai"
"""


def test_the_openapi_document_is_valid(gemgate):
    server = gemgate([fake_key("ok", 1)], config=CONFIG, files={"policy.rhai": "fn on_error(ctx) { ctx.builtin }"})
    with urllib.request.urlopen(f"{server.base_url}/admin/api/openapi.json", timeout=10) as response:
        document = json.load(response)
    validate(document)
    assert {"/keys", "/keys/import", "/clients", "/stats", "/logs/errors", "/config", "/policy"} <= set(document["paths"])
    assert document["components"]["securitySchemes"]["AdminKey"]["scheme"] == "bearer"


@pytest.mark.skipif(shutil.which("st") is None, reason="schemathesis is not installed (pip install schemathesis)")
def test_admin_api_against_its_openapi_document(gemgate, tmp_path):
    policy = (ROOT / "policies" / "default.rhai").read_text()
    keys = [fake_key("ok", 1), fake_key("ok", 2), fake_key("rpm", 1), fake_key("invalid", 1)]
    server = gemgate(keys, config=CONFIG, files={"policy.rhai": policy})
    result = subprocess.run(
        [
            "st", "run", f"{server.base_url}/admin/api/openapi.json",
            "--url", f"{server.base_url}/admin/api",
            "--header", f"Authorization: Bearer {ADMIN_KEY}",
            "--checks", "not_a_server_error,response_schema_conformance",
            "--max-examples", "15",
            "--request-timeout", "30",
            "--output-truncate", "true",
            "--report-dir", str(tmp_path),
        ],
        capture_output=True, text=True, timeout=600,
    )
    summary = result.stdout[-6000:] + result.stderr[-2000:]
    assert result.returncode == 0, summary
    assert "passed" in result.stdout, summary
