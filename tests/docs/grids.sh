#!/usr/bin/env bash
# Copyright (c) gpuops.mig contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
#
# The grid pictures in docs/getting-started.md and docs/planner.md are what the code prints: make
# them again with mig_info and mig_layout on the simulator (tests/docs/grids.yml) and find each one,
# verbatim, in the docs. Part of `make docs-test`; about 15 s.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
MIGSIM=$ROOT/tests/nvml_sim/migsim
WORK=$(mktemp -d "${TMPDIR:-/tmp}/gpuops-docs-grids.XXXXXX")
trap 'rm -rf "$WORK"' EXIT
PY=$(command -v python3)

mkdir -p "$WORK/collections/ansible_collections/gpuops"
ln -s "$ROOT" "$WORK/collections/ansible_collections/gpuops/mig"
"$MIGSIM" init "$WORK/state.json" --gpus h100-80gb:2 >/dev/null
"$MIGSIM" init "$WORK/state1.json" --gpus h100-80gb:1 >/dev/null
eval "$("$MIGSIM" env "$WORK/state.json")"
ANSIBLE_COLLECTIONS_PATH=$WORK/collections ANSIBLE_NOCOLOR=1 ANSIBLE_LOCAL_TEMP=$WORK/tmp \
  ansible-playbook -i localhost, -c local -e ansible_python_interpreter="$PY" \
  -e grids_state="$WORK/state.json" -e grids_state1="$WORK/state1.json" -e grids_lock="$WORK/lock" -e grids_migsim="$MIGSIM" -e grids_out="$WORK/grids.txt" \
  "$ROOT/tests/docs/grids.yml" > "$WORK/grids.log" 2>&1 || { tail -n 40 "$WORK/grids.log" >&2; echo "docs grids: playbook failed" >&2; exit 1; }

"$PY" - "$WORK/grids.txt" "$ROOT/docs/getting-started.md" "$ROOT/docs/planner.md" <<'PY'
import json
import sys
pictures = ['\n'.join(lines) for lines in json.load(open(sys.argv[1], encoding='utf-8'))]
docs = {path: open(path, encoding='utf-8').read() for path in sys.argv[2:]}
where = ['docs/getting-started.md', 'docs/getting-started.md', 'docs/planner.md', 'docs/planner.md']
bad = 0
for picture, doc in zip(pictures, where):
    text = next(t for p, t in docs.items() if p.endswith(doc))
    # The picture ends a fenced block (the plan's picture follows the plan's actions in its block).
    block = '\n' + picture.strip('\n') + '\n```'
    if block not in text:
        bad += 1
        print('docs grids: %s lacks this picture, as the code prints it:\n%s' % (doc, block), file=sys.stderr)
print('docs grids: %d of %d pictures are what mig_info / mig_layout print' % (len(pictures) - bad, len(pictures)))
sys.exit(1 if bad or len(pictures) != 4 else 0)
PY
