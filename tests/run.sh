#!/usr/bin/env bash
# The whole test suite: Rust unit and end-to-end tests, then the official
# google-genai and openai SDKs (Python) and the openai npm package against a
# real gemgate binary in front of the fake Google, schemathesis against the
# admin API's OpenAPI document, and the dashboard in headless Chromium.
#
# It sets itself up: the Python packages go into a virtualenv of its own
# (target/sdk-venv, so a system Python that refuses `pip install` is no
# obstacle) and the npm packages install themselves. The one system package
# it cannot install is Chromium: without it the dashboard test is skipped
# locally, and under CI=true the run fails.
set -euo pipefail
cd "$(dirname "$0")/.."
venv=target/sdk-venv
if [ ! -x "$venv/bin/python" ]; then
  python3 -m venv "$venv"
fi
"$venv/bin/python" -m pip install --quiet --disable-pip-version-check -r tests/sdk/requirements.txt
if [ ! -x "${CHROMIUM:-/usr/bin/chromium}" ]; then
  echo "Chromium is missing (apt-get install chromium): the dashboard's browser test cannot run." >&2
  if [ "${CI:-}" = true ]; then exit 1; fi
fi
cargo build --bins --examples
cargo test
PATH="$PWD/$venv/bin:$PATH" "$venv/bin/python" -m pytest tests/sdk -q
