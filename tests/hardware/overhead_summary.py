#!/usr/bin/env python
# Copyright (c) 2026 gpuops.mig contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Summarise tests/hardware/overhead.yml: median task times and their ratio to `command: /bin/true`.

Usage: overhead_summary.py TIMER_JSON   (written by the bench_timer callback)
"""

from __future__ import annotations

import json
import statistics
import sys

ACTIONS = ('ansible.builtin.command', 'gpuops.mig.mig_layout', 'gpuops.mig.mig_info')


def main(path: str) -> int:
    with open(path, encoding='utf-8') as f:
        tasks = json.load(f)['tasks']
    times: dict[str, list[float]] = {a: [] for a in ACTIONS}
    seen_round = False
    for task in tasks:
        # The first mig_info reads the state (warm-up); only tasks of the rounds count.
        if task['action'] == 'ansible.builtin.command':
            seen_round = True
        if seen_round and task['action'] in times and task['results']:
            if any(r['status'] != 'ok' for r in task['results']):
                print('a timed task did not succeed: %s' % task['name'])
                return 1
            times[task['action']].append(task['seconds'] * 1000.0)
    if min(len(v) for v in times.values()) < 3:
        print('too few rounds: %s' % {a: len(v) for a, v in times.items()})
        return 1
    floor = statistics.median(times['ansible.builtin.command'])
    print('%-26s %7s %7s %7s %6s  %s' % ('task', 'median', 'min', 'max', 'ratio', 'samples'))
    for action in ACTIONS:
        v = times[action]
        print('%-26s %5.0fms %5.0fms %5.0fms %6.2f  %d' % (
            action, statistics.median(v), min(v), max(v), statistics.median(v) / floor, len(v)))
    return 0


if __name__ == '__main__':
    if len(sys.argv) != 2:
        sys.exit('usage: overhead_summary.py TIMER_JSON')
    sys.exit(main(sys.argv[1]))
