#!/usr/bin/env bash
# Copyright (c) gpuops.mig contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
#
# `make ee`: the execution environment definition for AWX / Automation Platform users.
#  1. `ansible-builder create` on meta/execution-environment.yml (schema v3) writes a build context
#     whose Containerfile installs ansible-core and ansible-runner and hands the collection's Python
#     requirements (nvidia-ml-py) to ansible-builder's introspection, with those requirements copied in;
#  2. `ansible-builder introspect` on an installed copy of the collection, which is what a user's own
#     execution environment that installs gpuops.mig runs, finds nvidia-ml-py under gpuops.mig.
# No container is built (no container engine or image registry is needed); a few seconds.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
WORK=$(mktemp -d "${TMPDIR:-/tmp}/gpuops-ee.XXXXXX")
trap 'rm -rf "$WORK"' EXIT
pass=0
ok() { pass=$((pass + 1)); echo "PASS: $*"; }
die() { echo "FAIL: $*" >&2; exit 1; }
command -v ansible-builder >/dev/null || die "ansible-builder is not on PATH (make venv)"

# ---------------------------------------------------------------- 1. create
ctx=$WORK/context
ansible-builder create --file "$ROOT/meta/execution-environment.yml" --context "$ctx" --output-filename Containerfile \
  > "$WORK/create.log" 2>&1 || { cat "$WORK/create.log" >&2; die "ansible-builder create failed"; }
cf=$ctx/Containerfile
[ -f "$cf" ] || die "no Containerfile in the build context"
grep -qx 'ARG ANSIBLE_INSTALL_REFS="ansible-core>=2.16.0 ansible-runner"' "$cf" \
  || die "ansible-core/ansible-runner install line: $(grep ANSIBLE_INSTALL_REFS= "$cf")"
grep -qx 'COPY _build/requirements.txt requirements.txt' "$cf" || die "the Python requirements are not copied into the build"
grep -q 'introspect.py introspect --user-pip=requirements.txt' "$cf" || die "the Python requirements are not handed to introspection"
{ [ -f "$ctx/_build/requirements.txt" ] && [ ! -L "$ctx/_build/requirements.txt" ]; } \
  || die "_build/requirements.txt is missing or a symbolic link (it would dangle in the build)"
cmp -s "$ctx/_build/requirements.txt" "$ROOT/meta/requirements.txt" || die "_build/requirements.txt differs from meta/requirements.txt"
grep -qx 'nvidia-ml-py>=12.535.77' "$ctx/_build/requirements.txt" || die "nvidia-ml-py is not in the build's requirements"
for script in assemble introspect.py install-from-bindep check_ansible entrypoint; do
  [ -s "$ctx/_build/scripts/$script" ] || die "_build/scripts/$script missing"
done
ok "ansible-builder create: Containerfile (v3) installs ansible-core>=2.16.0 and ansible-runner, with nvidia-ml-py from meta/requirements.txt"

# ---------------------------------------------------------------- 2. introspect an installed copy
coll=$WORK/collections/ansible_collections/gpuops/mig
mkdir -p "$coll"
"$ROOT/tests/ci/sync-collection.sh" "$coll" >/dev/null
ansible-builder introspect --sanitize "$WORK/collections" > "$WORK/introspect.txt" 2>&1 \
  || { cat "$WORK/introspect.txt" >&2; die "ansible-builder introspect failed"; }
grep -q "^- 'nvidia-ml-py>=12.535.77  # from collection gpuops.mig'$" "$WORK/introspect.txt" \
  || { cat "$WORK/introspect.txt" >&2; die "introspection of the installed collection did not find nvidia-ml-py"; }
ok "ansible-builder introspect on the installed collection: nvidia-ml-py>=12.535.77 from gpuops.mig"

echo "ee: $pass checks passed"
