#!/usr/bin/env python
# Copyright (c) 2026 gpuops.mig contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Compare mig_info's answer with nvidia-smi's on the same host.

Usage: compare.py [--no-identity] OUTDIR
OUTDIR holds mig_info.json, smi_q.txt, lgip.txt, lgipp.txt from run.sh. Prints one line per check and
exits 1 if any disagrees. --no-identity skips the GPU UUID and PCI bus ID, for comparing the simulator's
model of a card with readings taken on a real one (tests/integration/targets/hardware_replay).
"""

from __future__ import annotations

import json
import re
import sys


def parse_lgip(text: str) -> dict[int, dict[int, dict[str, object]]]:
    """GPU index -> profile ID -> fields, from `nvidia-smi mig -lgip`."""
    out: dict[int, dict[int, dict[str, object]]] = {}
    lines = text.splitlines()
    for i, line in enumerate(lines):
        m = re.match(r'^\|\s+(\d+)\s+MIG (\S+)\s+(\d+)\s+(\d+)/(\d+)\s+([\d.]+)\s+(\w+)\s+(\d+)\s+(\d+)\s+(\d+)\s+\|', line)
        if not m:
            continue
        n = re.match(r'^\|\s+(\d+)\s+(\d+)\s+(\d+)\s+\|', lines[i + 1])
        gpu, name, pid = int(m.group(1)), m.group(2), int(m.group(3))
        out.setdefault(gpu, {})[pid] = {
            'name': name, 'free': int(m.group(4)), 'total': int(m.group(5)), 'memory_gib': m.group(6),
            'multiprocessors': int(m.group(8)), 'decoders': int(m.group(9)), 'encoders': int(m.group(10)),
            'copy_engines': int(n.group(1)) if n else None, 'jpeg_decoders': int(n.group(2)) if n else None,
            'ofa_engines': int(n.group(3)) if n else None,
        }
    return out


def parse_lgipp(text: str) -> dict[int, dict[int, list[dict[str, int]]]]:
    out: dict[int, dict[int, list[dict[str, int]]]] = {}
    for m in re.finditer(r'GPU\s+(\d+) Profile ID\s+(\d+) Placements?\s*:\s*\{([\d,]+)\}:(\d+)', text):
        size = int(m.group(4))
        out.setdefault(int(m.group(1)), {})[int(m.group(2))] = [
            {'start': int(s), 'size': size} for s in m.group(3).split(',')]
    return out


def parse_smi_q(text: str) -> dict[str, object]:
    def field(name: str) -> str | None:
        m = re.search(r'^\s*%s\s+:\s+(.*)$' % re.escape(name), text, re.M)
        return m.group(1).strip() if m else None

    mig = re.findall(r'MIG Mode\s*\n\s+Current\s+:\s+(\w+)\s*\n\s+Pending\s+:\s+(\w+)', text)
    return {
        'driver_version': field('Driver Version'), 'cuda_version': field('CUDA Version'),
        'products': re.findall(r'^\s+Product Name\s+:\s+(.*)$', text, re.M),
        'uuids': re.findall(r'^\s+GPU UUID\s+:\s+(.*)$', text, re.M),
        'bus_ids': re.findall(r'^GPU ([0-9A-Fa-f:.]+)$', text, re.M),
        'mig_modes': [{'current': c.lower(), 'pending': p.lower()} for c, p in mig],
    }


def main(outdir: str, identity: bool = True) -> int:
    with open('%s/mig_info.json' % outdir) as f:
        info = json.load(f)
    with open('%s/smi_q.txt' % outdir) as f:
        smi = parse_smi_q(f.read())
    with open('%s/lgip.txt' % outdir) as f:
        lgip = parse_lgip(f.read())
    with open('%s/lgipp.txt' % outdir) as f:
        lgipp = parse_lgipp(f.read())
    failures = 0

    def check(what: str, ours: object, theirs: object) -> None:
        nonlocal failures
        ok = ours == theirs
        failures += 0 if ok else 1
        print('%s %s: mig_info=%s nvidia-smi=%s' % ('PASS' if ok else 'FAIL', what, ours, theirs))

    check('driver version', info['driver_version'], smi['driver_version'])
    check('CUDA version', info['cuda_driver_version'], smi['cuda_version'])
    check('GPU count', len(info['gpus']), len(smi['uuids']))
    for n, gpu in enumerate(info['gpus']):
        g = gpu['index']
        check('GPU %d name' % g, gpu['name'], smi['products'][n])
        if identity:
            check('GPU %d UUID' % g, gpu['uuid'], smi['uuids'][n])
            check('GPU %d PCI bus ID' % g, gpu['pci_bus_id'].upper(), smi['bus_ids'][n].upper())
        check('GPU %d MIG mode' % g, gpu['mig_mode'], smi['mig_modes'][n])
        ours = {p['id']: p for p in gpu['profiles']}
        check('GPU %d profile IDs' % g, sorted(ours), sorted(lgip.get(g, {})))
        for pid, row in sorted(lgip.get(g, {}).items()):
            p = ours.get(pid)
            if p is None:
                continue
            check('GPU %d profile %d name' % (g, pid), p['name'], row['name'])
            check('GPU %d profile %s instances' % (g, row['name']), (p['remaining'], p['max_instances']), (row['free'], row['total']))
            check('GPU %d profile %s memory GiB' % (g, row['name']), '%.2f' % (p['memory_mib'] / 1024.0), row['memory_gib'])
            for key in ('multiprocessors', 'decoders', 'encoders', 'copy_engines', 'jpeg_decoders', 'ofa_engines'):
                check('GPU %d profile %s %s' % (g, row['name'], key), p[key], row[key])
            check('GPU %d profile %s placements' % (g, row['name']), p['placements'], lgipp.get(g, {}).get(pid))
    print('%d checks failed' % failures if failures else 'all checks passed')
    return 1 if failures else 0


if __name__ == '__main__':
    args = sys.argv[1:]
    if len(args) == 2 and args[0] == '--no-identity':
        sys.exit(main(args[1], identity=False))
    if len(args) != 1 or args[0].startswith('-'):
        sys.exit('usage: compare.py [--no-identity] OUTDIR')
    sys.exit(main(args[0]))
