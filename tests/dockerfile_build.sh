#!/usr/bin/env bash
# No Docker engine runs on our machines, so the Dockerfile is checked the
# other way: hadolint lints it, and its build command runs natively, with the
# same flags, and the binary it makes must start and answer.
set -euo pipefail
cd "$(dirname "$0")/.."
hadolint Dockerfile
build=$(sed -n 's/^RUN \(cargo build[^\\&]*\).*/\1/p' Dockerfile | head -n 1)
[ -n "$build" ] || { echo "no 'RUN cargo build' line in the Dockerfile" >&2; exit 1; }
echo "building as the Dockerfile does: $build"
eval "$build"
./target/release/gemgate --version
./target/release/gemgate check --config config.toml
echo "dockerfile build: ok"
