# Copyright (c) 2026 gpuops.mig contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Run ansible-playbook (from PATH) for the benchmarks and collect wall time, CPU time and per-task times."""

from __future__ import annotations

import json
import os
import resource
import shutil
import subprocess
import sys
import time
import typing as t

import common


def ansible_playbook() -> str:
    exe = shutil.which('ansible-playbook')
    if not exe:
        raise SystemExit('ansible-playbook is not on PATH (make bench puts the project venv first)')
    return exe


def ansible_python() -> str:
    """The interpreter ansible-playbook runs with (it has pynvml: nvidia-ml-py is in the dev requirements)."""
    with open(ansible_playbook(), encoding='utf-8', errors='replace') as f:
        first = f.readline()
    if first.startswith('#!'):
        exe = first[2:].strip().split()[0]
        if os.path.basename(exe) != 'env' and os.access(exe, os.X_OK):
            return exe
    return sys.executable


def ansible_version() -> str:
    out = subprocess.run([ansible_playbook(), '--version'], capture_output=True, text=True, check=False).stdout
    return out.splitlines()[0].strip() if out else 'unknown'


def base_env(work: str, forks: int = 5) -> dict[str, str]:
    cfg = os.path.join(work, 'ansible.cfg')
    if not os.path.exists(cfg):
        with open(cfg, 'w', encoding='utf-8') as f:
            f.write('[defaults]\n')
    env = dict(os.environ)
    for k in list(env):
        if k.startswith('ANSIBLE_') or k in ('MIGSIM_STATE',):
            del env[k]
    env.update({
        'ANSIBLE_CONFIG': cfg,
        'ANSIBLE_COLLECTIONS_PATH': os.environ['BENCH_COLLECTIONS'],
        'ANSIBLE_CALLBACK_PLUGINS': os.path.join(common.HERE, 'callback_plugins'),
        'ANSIBLE_CALLBACKS_ENABLED': 'bench_timer',
        'ANSIBLE_STDOUT_CALLBACK': 'default',
        'ANSIBLE_DISPLAY_OK_HOSTS': '0',
        'ANSIBLE_DISPLAY_SKIPPED_HOSTS': '0',
        'ANSIBLE_NOCOLOR': '1',
        'ANSIBLE_FORCE_COLOR': '0',
        'ANSIBLE_RETRY_FILES_ENABLED': '0',
        'ANSIBLE_HOST_KEY_CHECKING': '0',
        'ANSIBLE_DEPRECATION_WARNINGS': '0',
        'ANSIBLE_LOCALHOST_WARNING': '0',
        'ANSIBLE_INVENTORY_UNPARSED_WARNING': '0',
        'ANSIBLE_PIPELINING': '1',
        'ANSIBLE_FORKS': str(forks),
        'ANSIBLE_LOCAL_TEMP': os.path.join(work, 'ansible-local'),
        'ANSIBLE_REMOTE_TEMP': os.path.join(work, 'ansible-remote'),
        'ANSIBLE_HOME': os.path.join(work, 'ansible-home'),
    })
    return env


def run_playbook(playbook: str, inventory: str, env: dict[str, str], log: str,
                 extra: t.Sequence[str] = ()) -> dict[str, t.Any]:
    """Run one playbook; returns rc, wall seconds, CPU seconds of all its processes, the timer's data."""
    timer = log + '.timer.json'
    if os.path.exists(timer):
        os.unlink(timer)
    env = dict(env, BENCH_TIMER_OUT=timer)
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    with open(log, 'w', encoding='utf-8') as f:
        rc = subprocess.run([ansible_playbook(), '-i', inventory, playbook] + list(extra), env=env, stdout=f,
                            stderr=subprocess.STDOUT, check=False).returncode
    wall = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    data: dict[str, t.Any] = {}
    if os.path.exists(timer):
        with open(timer, encoding='utf-8') as f:
            data = json.load(f)
    return {
        'rc': rc,
        'wall': wall,
        'cpu': (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime),
        'timer': data,
        'log': log,
    }


def check(res: dict[str, t.Any], what: str) -> None:
    if res['rc'] != 0:
        with open(res['log'], encoding='utf-8', errors='replace') as f:
            tail = f.read()[-3000:]
        raise SystemExit('%s: ansible-playbook exited %d; log %s:\n%s' % (what, res['rc'], res['log'], tail))
    bad = [r for tk in res['timer'].get('tasks', []) for r in tk['results'] if r['status'] not in ('ok', 'skipped')]
    if bad:
        raise SystemExit('%s: %d host results not ok (log %s)' % (what, len(bad), res['log']))
