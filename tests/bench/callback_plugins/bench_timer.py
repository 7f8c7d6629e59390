# Copyright (c) 2026 gpuops.mig contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Benchmark-only callback: per-task and per-host wall times, written as JSON to $BENCH_TIMER_OUT."""

from __future__ import annotations

DOCUMENTATION = r"""
name: bench_timer
type: aggregate
short_description: Per-task wall times for the gpuops.mig benchmarks
description:
  - Records, for every task, when it started and when each host's result arrived, and writes them as JSON to the
    file named by the environment variable BENCH_TIMER_OUT at the end of the playbook.
requirements:
  - enabled in callbacks_enabled
"""

import json
import os
import time

from ansible.plugins.callback import CallbackBase


class CallbackModule(CallbackBase):
    CALLBACK_VERSION = 2.0
    CALLBACK_TYPE = 'aggregate'
    CALLBACK_NAME = 'bench_timer'
    CALLBACK_NEEDS_ENABLED = True

    def __init__(self):
        super().__init__()
        self.start = time.perf_counter()
        self.tasks = []
        self.current = None

    def _close(self):
        if self.current is not None:
            self.tasks.append(self.current)
            self.current = None

    def v2_playbook_on_task_start(self, task, is_conditional):
        self._close()
        self.current = {'name': task.get_name(), 'action': task.action, 'start': time.perf_counter() - self.start,
                        'results': []}

    def _result(self, result, status):
        if self.current is None:
            return
        self.current['results'].append({
            'host': result._host.get_name(),
            'status': status,
            'changed': bool(result._result.get('changed', False)),
            'end': time.perf_counter() - self.start,
        })

    def v2_runner_on_ok(self, result):
        self._result(result, 'ok')

    def v2_runner_on_failed(self, result, ignore_errors=False):
        self._result(result, 'failed')

    def v2_runner_on_unreachable(self, result):
        self._result(result, 'unreachable')

    def v2_runner_on_skipped(self, result):
        self._result(result, 'skipped')

    def v2_playbook_on_stats(self, stats):
        self._close()
        out = os.environ.get('BENCH_TIMER_OUT')
        if not out:
            return
        for task in self.tasks:
            ends = [r['end'] for r in task['results']]
            task['end'] = max(ends) if ends else task['start']
            task['seconds'] = task['end'] - task['start']
        with open(out, 'w', encoding='utf-8') as f:
            json.dump({'playbook_seconds': time.perf_counter() - self.start, 'tasks': self.tasks}, f)
