#!/usr/bin/env bash
# Re-pins the locks from pyproject.toml (needs the package index): requirements.txt for
# development, tests and benchmarks (every extra), requirements-serve.txt for the server
# alone. Run after changing a dependency in pyproject.toml; `./telemed` installs the lock.
# Extra arguments go to uv, e.g. `scripts/lock.sh --upgrade-package aiohttp`.
set -euo pipefail
cd "$(dirname "$0")/.."
.venv/bin/python -m uv --version >/dev/null 2>&1 || .venv/bin/pip install -q uv==0.13.8
# The local client (clients/python) is on pytest's path in the tree; it is not pinned.
common=(--quiet --python-version 3.12 --python-platform x86_64-manylinux_2_28 --no-emit-package telemed-client "$@")
.venv/bin/python -m uv pip compile pyproject.toml --extra test --extra bench "${common[@]}" \
  --custom-compile-command scripts/lock.sh -o requirements.txt
.venv/bin/python -m uv pip compile pyproject.toml "${common[@]}" \
  --custom-compile-command scripts/lock.sh -o requirements-serve.txt
# uv keeps the versions already in these files (preferences) unless told to upgrade.
for lock in requirements.txt requirements-serve.txt; do
  sed -i '2a # Do not edit: add or change a dependency in pyproject.toml, then run scripts/lock.sh.' "$lock"
done
