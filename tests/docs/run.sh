#!/usr/bin/env bash
# Copyright (c) gpuops.mig contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
#
# `make docs-test`: the shell blocks of README.md and docs/getting-started.md, run verbatim and in
# order in one bash session (set -euo pipefail), in a fresh copy of the repository with nothing
# beside it, as a newcomer would type them: a clean environment (no venv active, no Ansible
# variables, PATH of the system), HOME in the work directory. Blocks marked
# `<!-- docs-test: skip (reason) -->` (real GPUs, make test itself) are listed and left out.
#
# Two shortcuts that do not change what the docs say: the copy's .venv is the checkout's venv
# ($GPUOPS_VENV, else ./.venv; `make venv` would install the same pinned set), and pip uses the
# pins of tests/ci/constraints.txt (PIP_CONSTRAINT) and the usual pip cache. DOCS_TEST_DIR moves the
# work directory (default build/docs-test); DOCS_TEST_KEEP=1 keeps it; DOCS_TEST_FILES="a.md b.md"
# tests other Markdown files of the repository.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
VENV=${GPUOPS_VENV:-$ROOT/.venv}
WORK=${DOCS_TEST_DIR:-$ROOT/build/docs-test}
read -r -a DOCS <<<"${DOCS_TEST_FILES:-README.md docs/getting-started.md}"
[ -x "$VENV/bin/python" ] || { echo "docs-test: no venv at $VENV (make venv)" >&2; exit 2; }

rm -rf "$WORK"
mkdir -p "$WORK/home" "$WORK/parent"
CLONE=$WORK/parent/gpuops-mig
# The files git would see (tracked and untracked-but-not-ignored), so uncommitted doc edits are
# tested too; mtimes kept, so that make sees the copied venv as up to date.
mkdir -p "$CLONE"
if git -C "$ROOT" rev-parse --is-inside-work-tree >/dev/null 2>&1; then
  (cd "$ROOT" && git ls-files -z --cached --others --exclude-standard \
    | while IFS= read -r -d '' f; do if [ -e "$f" ] || [ -L "$f" ]; then printf '%s\0' "$f"; fi; done \
    | tar --null --no-recursion -T - -cf -) | tar -C "$CLONE" -xf -
else
  tar -C "$ROOT" --exclude=./build --exclude=./.venv --exclude=./.git --exclude=./tests/output -cf - . | tar -C "$CLONE" -xf -
fi
git -C "$CLONE" init -q
git -C "$CLONE" add -A
git -C "$CLONE" -c user.name=docs-test -c user.email=docs-test@localhost commit -q -m "docs-test copy"
ln -s "$VENV" "$CLONE/.venv"

"$VENV/bin/python" "$ROOT/tests/docs/extract.py" --list "${DOCS[@]/#/$CLONE/}" | sed "s|$CLONE/||"
(cd "$CLONE" && "$VENV/bin/python" "$ROOT/tests/docs/extract.py" "${DOCS[@]}") > "$WORK/docs.sh"

start=$(date +%s)
rc=0
(cd "$CLONE" && env -i HOME="$WORK/home" PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin \
    LANG=C.UTF-8 TERM=dumb CI="${CI:-}" \
    PIP_CONSTRAINT="$CLONE/tests/ci/constraints.txt" PIP_CACHE_DIR="${PIP_CACHE_DIR:-$HOME/.cache/pip}" \
    PIP_DISABLE_PIP_VERSION_CHECK=1 ${PIP_CERT:+PIP_CERT="$PIP_CERT"} ${PIP_INDEX_URL:+PIP_INDEX_URL="$PIP_INDEX_URL"} \
    bash "$WORK/docs.sh") > "$WORK/docs.log" 2>&1 || rc=$?
secs=$(( $(date +%s) - start ))
if [ "$rc" -ne 0 ]; then
  tail -n 60 "$WORK/docs.log"
  echo "docs-test: FAILED after ${secs}s in $(grep '^docs-test: run' "$WORK/docs.log" | tail -n 1 | cut -d' ' -f3) (log $WORK/docs.log)" >&2
  exit 1
fi
grep '^docs-test:' "$WORK/docs.log"
status=$(git -C "$CLONE" status --porcelain --untracked-files=no)
[ -z "$status" ] || { echo "docs-test: the docs' commands modified tracked files: $status" >&2; exit 1; }
ran=$(grep -c '^docs-test: run' "$WORK/docs.log")
[ "${DOCS_TEST_KEEP:-0}" = 1 ] || rm -rf "$WORK"
echo "docs-test: $ran blocks of ${DOCS[*]} ran in ${secs}s, the copy unmodified"
