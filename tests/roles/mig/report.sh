#!/usr/bin/env bash
# Renders playbooks/report.yml for a simulated inventory and checks the HTML in headless Chromium:
# a non-trivial screenshot, and one .gpu-grid element per GPU of the inventory.
# Chromium: the Debian package `chromium` (apt-get install -y chromium).
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../../.." && pwd)
MIGSIM=$ROOT/tests/nvml_sim/migsim
WORK=${REPORT_WORK:-$(mktemp -d "${TMPDIR:-/tmp}/gpuops-mig-report.XXXXXX")}
PY=$(command -v python3)
die() { echo "FAIL: $*" >&2; exit 1; }
command -v chromium >/dev/null || die "chromium is not installed (apt-get install -y chromium)"

# Reuse the demo inventory (3 hosts, 14 GPUs), with one busy instance to show processes.
DEMO_DIR=$WORK/demo "$ROOT/tests/demo/run.sh" > "$WORK/demo.log" 2>&1 || { tail -n 40 "$WORK/demo.log"; die "demo run"; }
gi=$("$MIGSIM" show "$WORK/demo/hosts/gpu-h100-01.json" | "$PY" -c 'import json,sys; print(json.load(sys.stdin)["gpus"][4]["gpu_instances"][0]["id"])')
"$MIGSIM" process add "$WORK/demo/hosts/gpu-h100-01.json" --gpu 4 --gi "$gi" --pid 31337
export ANSIBLE_COLLECTIONS_PATH=$WORK/demo/collections
[ -n "${GPUOPS_COLLECTIONS_PATH:-}" ] && export ANSIBLE_COLLECTIONS_PATH=$GPUOPS_COLLECTIONS_PATH
ansible-playbook -i "$WORK/demo/inventory" "$ROOT/playbooks/report.yml" -e gpuops_mig_report_dir="$WORK/report" \
  > "$WORK/report.log" 2>&1 || { tail -n 40 "$WORK/report.log"; die "report.yml"; }
html=$WORK/report/index.html
{ [ -s "$html" ] && [ -s "$WORK/report/summary.md" ]; } || die "report files missing"
! grep -Eq '(src|href)="(https?:)?//' "$html" || die "report references external assets"

gpus=$(for h in gpu-h100-01 gpu-a100-01 gpu-h200-01; do "$MIGSIM" show "$WORK/demo/hosts/$h.json"; done \
       | "$PY" -c 'import json,sys; d=sys.stdin.read(); dec=json.JSONDecoder(); n=i=0
while i < len(d):
    if d[i].isspace(): i += 1; continue
    o, i = dec.raw_decode(d, i); n += len(o["gpus"])
print(n)')
CHROME=(chromium --headless --no-sandbox --disable-gpu --disable-quic --no-first-run --disable-background-networking
        --disable-component-update --disable-sync --user-data-dir="$(mktemp -d)")
timeout 120 "${CHROME[@]}" --dump-dom "file://$html" > "$WORK/dom.html" 2> "$WORK/chromium-dom.log" || die "chromium --dump-dom"
grids=$(grep -o 'class="gpu-grid"' "$WORK/dom.html" | wc -l)
[ "$grids" = "$gpus" ] || die "$grids .gpu-grid elements for $gpus GPUs"
grep -q '31337' "$WORK/dom.html" || die "process 31337 not shown"
timeout 120 "${CHROME[@]}" --screenshot="$WORK/report.png" --window-size=1400,2000 "file://$html" > "$WORK/chromium-shot.log" 2>&1 || die "chromium --screenshot"
size=$(stat -c %s "$WORK/report.png")
[ "$size" -gt 50000 ] || die "screenshot is only $size bytes"
"$PY" - "$WORK/report.png" <<'PY' || die "screenshot looks blank"
import struct, sys, zlib
data = open(sys.argv[1], 'rb').read()
assert data[:8] == b'\x89PNG\r\n\x1a\n'
w, h = struct.unpack('>II', data[16:24])
assert (w, h) == (1400, 2000), (w, h)
PY
echo "PASS: report: $gpus GPUs -> $grids .gpu-grid elements, process shown, screenshot $WORK/report.png ($size bytes)"
