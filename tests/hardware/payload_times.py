#!/usr/bin/env python
# Copyright (c) 2026 gpuops.mig contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Split the no-op overhead into the module process and Ansible's own handling of the task.

Usage: payload_times.py REMOTE_TMP ROUNDS

REMOTE_TMP holds the AnsiballZ files of one run of tests/hardware/overhead.yml made with
ANSIBLE_KEEP_REMOTE_FILES=1 and pipelining off (tests/hardware/run.sh does that). Each payload
carries its task's arguments, check mode included, so running it again is the same read-only module
run: the `mig_layout` one is the check-mode no-op of overhead.yml. The three payloads are run
ROUNDS times, interleaved, each as a fresh process (as Ansible runs them), and compared: the module
process alone against `command: /bin/true`'s. A task's time minus its payload's is what Ansible
spends around the module (worker, payload transfer, result handling).
"""

from __future__ import annotations

import importlib.util
import json
import os
import pathlib
import statistics
import subprocess
import sys
import time

MODULES = ('command', 'mig_layout', 'mig_info')
COLLECTION = 'ansible_collections.gpuops.mig.plugins.module_utils.'


def payloads(tmp: pathlib.Path) -> dict[str, pathlib.Path]:
    found: dict[str, pathlib.Path] = {}
    for path in sorted(tmp.glob('ansible-tmp-*/AnsiballZ_*.py'), key=lambda p: p.stat().st_mtime):
        name = path.name[len('AnsiballZ_'):-len('.py')]
        if name in MODULES:
            found[name] = path  # the last one of each: a task of the timed rounds
    missing = [m for m in MODULES if m not in found]
    if missing:
        raise SystemExit('no AnsiballZ file for %s under %s' % (', '.join(missing), tmp))
    return found


def run_once(path: pathlib.Path) -> tuple[float, dict]:
    start = time.perf_counter()
    proc = subprocess.run([sys.executable, str(path)], capture_output=True, text=True, check=False)
    took = (time.perf_counter() - start) * 1000.0
    try:
        result = json.loads(proc.stdout)
    except ValueError:
        raise SystemExit('%s printed no JSON (rc %d): %s' % (path.name, proc.returncode, proc.stderr[-2000:]))
    if result.get('failed') or result.get('changed') and path.name != 'AnsiballZ_command.py':
        raise SystemExit('%s did not return a no-op result: %s' % (path.name, json.dumps(result)[:2000]))
    return took, result


def import_costs(path: pathlib.Path) -> tuple[list[tuple[str, int]], int]:
    """Cumulative import times (us) of one run under ``-X importtime``, and the collection's total
    (its outermost module_utils imports: nested ones are inside their parent's time)."""
    proc = subprocess.run([sys.executable, '-X', 'importtime', str(path)], capture_output=True, text=True, check=False)
    wanted = ('ansible.module_utils.basic', 'pynvml', COLLECTION)
    costs: dict[str, tuple[int, int]] = {}
    for line in proc.stderr.splitlines():
        parts = line.split('|')
        if len(parts) != 3 or not parts[1].strip().isdigit():
            continue
        name = parts[2].strip()
        if name.startswith(wanted) and name not in costs:
            costs[name] = (int(parts[1]), len(parts[2]) - len(parts[2].lstrip()))
    ours = [v for k, v in costs.items() if k.startswith(COLLECTION)]
    outer = min((level for dummy, level in ours), default=0)
    total = sum(us for us, level in ours if level == outer)
    return sorted(((k, v[0]) for k, v in costs.items()), key=lambda kv: -kv[1]), total


def interpreter() -> str:
    try:
        import pynvml  # pylint: disable=import-outside-toplevel
        where = pynvml.__file__ or '?'
        cached = os.path.exists(importlib.util.cache_from_source(where))
    except ImportError:
        where, cached = 'not importable', False
    return '%s (Python %s); pynvml %s (%s); PYTHONDONTWRITEBYTECODE=%s PYTHONPYCACHEPREFIX=%s' % (
        sys.executable, sys.version.split()[0], where, 'its bytecode cached' if cached else 'no bytecode cache: compiled on every import',
        os.environ.get('PYTHONDONTWRITEBYTECODE', ''), os.environ.get('PYTHONPYCACHEPREFIX', ''))


def main(tmp: str, rounds: int) -> int:
    found = payloads(pathlib.Path(tmp))
    times: dict[str, list[float]] = {m: [] for m in MODULES}
    sizes: dict[str, int] = {}
    for dummy in range(rounds):
        for name in MODULES:
            took, result = run_once(found[name])
            times[name].append(took)
            sizes[name] = len(json.dumps(result))
    floor = statistics.median(times['command'])
    print('# Module processes run directly (python AnsiballZ_<module>.py, the payload of the task), %d rounds' % rounds)
    print('%-12s %7s %7s %7s %6s %9s  %s' % ('payload', 'median', 'min', 'max', 'ratio', 'result', 'payload size'))
    for name in MODULES:
        v = times[name]
        print('%-12s %5.0fms %5.0fms %5.0fms %6.2f %8dB  %dB' % (
            name, statistics.median(v), min(v), max(v), statistics.median(v) / floor, sizes[name],
            os.path.getsize(found[name])))
    print('# interpreter: %s' % interpreter())
    costs, ours = import_costs(found['mig_layout'])
    print('# imports of one mig_layout payload run (-X importtime, cumulative, nested ones inside their parent;'
          ' the collection\'s module_utils in all: %.1f ms, pynvml included where they import it):' % (ours / 1000.0))
    for name, us in costs:
        print('#   %-70s %6.1f ms' % (name, us / 1000.0))
    return 0


if __name__ == '__main__':
    if len(sys.argv) != 3:
        sys.exit('usage: payload_times.py REMOTE_TMP ROUNDS')
    sys.exit(main(sys.argv[1], int(sys.argv[2])))
