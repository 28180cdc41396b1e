"""/metrics parses with Prometheus' own OpenMetrics parser and moves with traffic."""

import urllib.request
from pathlib import Path

from google import genai
from google.genai import types
from prometheus_client.openmetrics.parser import text_string_to_metric_families

from conftest import CLIENT_KEY, fake_key


def scrape(server):
    admin_key = (Path(server.dir.name) / "data" / "admin-key").read_text().strip()
    request = urllib.request.Request(f"{server.base_url}/metrics", headers={"Authorization": f"Bearer {admin_key}"})
    with urllib.request.urlopen(request) as response:
        families = {f.name: f for f in text_string_to_metric_families(response.read().decode())}
    return families


def total(families, name, **labels):
    """Sum of a counter's samples matching labels (0 before its first sample)."""
    family = families.get(name)
    samples = family.samples if family else []
    return sum(s.value for s in samples if s.name.endswith("_total") and all(s.labels.get(k) == v for k, v in labels.items()))


def test_metrics_parse_and_count(gemgate):
    server = gemgate([fake_key("internal", 1), fake_key("ok", 2)])
    before = scrape(server)
    assert total(before, "gemgate_requests") == 0
    sdk = genai.Client(api_key=CLIENT_KEY, http_options=types.HttpOptions(base_url=server.base_url))
    for _ in range(4):
        sdk.models.generate_content(model="gemini-2.5-flash", contents="count me")
    after = scrape(server)
    assert total(after, "gemgate_requests", route="generateContent", status="200") == 4
    assert total(after, "gemgate_upstream_attempts", outcome="server_error") >= 1
    assert total(after, "gemgate_upstream_attempts", outcome="success") == 4
    assert "gemgate_request_duration_seconds" in after and "gemgate_keys" in after
