#!/usr/bin/env bash
# The whole test suite: Rust unit and end-to-end tests, then the official
# google-genai and openai SDKs (Python) and the openai npm package against a
# real gemgate binary in front of the fake Google, schemathesis against the
# admin API's OpenAPI document, and the dashboard in headless Chromium.
# Python packages: pip install -r tests/sdk/requirements.txt
# Browser: Debian's chromium (apt-get install chromium); npm packages install themselves.
set -euo pipefail
cd "$(dirname "$0")/.."
cargo build --bins --examples
cargo test
python3 -m pytest tests/sdk -q
