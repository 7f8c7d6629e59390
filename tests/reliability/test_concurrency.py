# Copyright (c) 2026 gpuops.mig contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Part 3: concurrency. Several mig_layout runs at once on one simulated host share one lock file.

Promises: the host lock serialises them (while another process holds it, no run makes any NVML
call); every run succeeds and ends with its own layout; the final state equals one of the
requested layouts exactly (profiles, placements, CI structure), never a mix. A process SIGKILLed
while holding the lock does not block the next run.
"""

from __future__ import annotations

import collections
import os
import signal
import subprocess
import sys
import time
import typing as t

import pytest

import relib
import report
from conftest import converge_in_process, module_proc, module_result, run_module
from conftest import run_playbook

from ansible_collections.gpuops.mig.plugins.module_utils._lock import host_lock

# Fully declared layouts: the final state of each is one exact signature whatever it started from.
LAYOUTS = {
    'two-3g': [{'profile': '3g.40gb', 'placement': 0}, {'profile': '3g.40gb', 'placement': 4}],
    '4g-2g-1g': [{'profile': '4g.40gb', 'placement': 0}, {'profile': '2g.20gb', 'placement': 4}, {'profile': '1g.10gb', 'placement': 6}],
    'seven-1g': [{'profile': '1g.10gb', 'placement': s} for s in range(7)],
    '2g-2g-3gci': [{'profile': '2g.20gb', 'placement': 0}, {'profile': '2g.20gb', 'placement': 2},
                   {'profile': '3g.40gb', 'placement': 4, 'compute_instances': ['1c.3g.40gb'] * 3}],
}
START = [{'devices': 'all', 'mig_enabled': True, 'mig_devices': {'1g.10gb': 2, '2g.20gb': 1, '3g.40gb': 1}}]
FIG = report.FIGURES.setdefault('concurrency', {'rounds': collections.Counter(), 'final_ok': 0, 'mixed': 0})


def layouts_of(name: str) -> list[dict[str, t.Any]]:
    return [{'devices': 'all', 'mig_enabled': True, 'instances': LAYOUTS[name]}]


@pytest.fixture(scope='module')
def expected(tmp_path_factory: pytest.TempPathFactory) -> dict[str, t.Any]:
    """The exact signature of each layout, applied alone."""
    out = {}
    for name in LAYOUTS:
        state = str(tmp_path_factory.mktemp('expected') / 'state.json')
        relib.migsim('init', state, '--gpus', 'h100-80gb:1')
        res = converge_in_process(state, layouts_of(name))
        assert res['ok'], res
        out[name] = relib.signature(relib.show(state)['gpus'][0])
    assert len({repr(s) for s in out.values()}) == len(out)
    return out


def fresh_host(tmp_path: t.Any) -> str:
    state = str(tmp_path / 'state.json')
    relib.migsim('init', state, '--gpus', 'h100-80gb:1')
    assert converge_in_process(state, START)['ok']
    return state


# (layouts run at once, whether this test holds the lock while they start)
ROUNDS = [
    (('two-3g', '4g-2g-1g'), True), (('seven-1g', '2g-2g-3gci'), True), (('4g-2g-1g', 'seven-1g'), False),
    (('two-3g', '4g-2g-1g', 'seven-1g', '2g-2g-3gci'), True), (('2g-2g-3gci', 'seven-1g', 'two-3g', '4g-2g-1g'), True),
    (('seven-1g', 'two-3g', '2g-2g-3gci', '4g-2g-1g'), False)]


@pytest.mark.parametrize('names,hold', ROUNDS, ids=['%d-runs-%s-%d' % (len(n), 'held' if h else 'race', i) for i, (n, h) in enumerate(ROUNDS)])
def test_concurrent_module_runs(tmp_path: t.Any, expected: dict[str, t.Any], names: tuple[str, ...], hold: bool) -> None:
    state = fresh_host(tmp_path)
    lock = str(tmp_path / 'host.lock')
    procs = []
    if hold:
        # Hold the lock while all runs start, so they really contend for it; none may touch NVML meanwhile.
        with host_lock(lock, timeout=5):
            calls_before = relib.calls(state)
            for name in names:
                procs.append((name, module_proc({'layouts': layouts_of(name), 'lock_file': lock, 'lock_timeout': 120}, state, str(tmp_path))[0]))
            time.sleep(2.0)
            assert all(p.poll() is None for _name, p in procs), 'a run did not wait for the lock'
            assert relib.calls(state) == calls_before, 'a run used NVML while another process held the lock'
    else:
        for name in names:
            procs.append((name, module_proc({'layouts': layouts_of(name), 'lock_file': lock, 'lock_timeout': 120}, state, str(tmp_path))[0]))
    results = [(name, module_result(p, timeout=300)) for name, p in procs]
    for name, res in results:
        assert res['_rc'] == 0 and not res.get('failed'), (name, res.get('msg'), res['_raw'][-2000:])
        # Under the lock nobody else changed the GPU between this run's plan and its end.
        assert relib.signature(res['gpus'][0]) == expected[name], (name, res['gpus'][0]['gpu_instances'])
    final = relib.signature(relib.show(state)['gpus'][0])
    matches = [n for n in names if expected[n] == final]
    FIG['rounds']['%d runs' % len(names)] += 1
    FIG['final_ok' if matches else 'mixed'] += 1
    assert matches, 'final state %s is none of the requested layouts' % final


def test_concurrent_playbooks(tmp_path: t.Any, expected: dict[str, t.Any]) -> None:
    """Two ansible-playbook runs at once (the representative path through Ansible)."""
    state = fresh_host(tmp_path)
    lock = str(tmp_path / 'host.lock')
    names = ('two-3g', 'seven-1g')
    import threading  # pylint: disable=import-outside-toplevel
    out: dict[str, t.Any] = {}

    def play(name: str) -> None:
        d = tmp_path / name
        d.mkdir()
        out[name] = run_playbook([{'name': 'converge', 'gpuops.mig.mig_layout': {
            'layouts': layouts_of(name), 'lock_file': lock, 'lock_timeout': 120}}], state, d)

    threads = [threading.Thread(target=play, args=(n,)) for n in names]
    for th in threads:
        th.start()
    for th in threads:
        th.join(timeout=300)
    for name in names:
        res = out[name]['results']['converge']
        assert out[name]['rc'] == 0 and not res.get('failed'), (name, res.get('msg'), out[name]['raw'][-2000:])
        assert relib.signature(res['gpus'][0]) == expected[name]
    final = relib.signature(relib.show(state)['gpus'][0])
    FIG['rounds']['2 playbooks'] += 1
    ok = any(expected[n] == final for n in names)
    FIG['final_ok' if ok else 'mixed'] += 1
    assert ok


HOLDER = '''
import sys, time
from ansible_collections.gpuops.mig.plugins.module_utils._lock import host_lock
with host_lock(sys.argv[1], timeout=5):
    print('held', flush=True)
    time.sleep(300)
'''


def test_sigkilled_lock_holder_does_not_block(tmp_path: t.Any, expected: dict[str, t.Any]) -> None:
    state = fresh_host(tmp_path)
    lock = str(tmp_path / 'host.lock')
    holder = subprocess.Popen([sys.executable, '-c', HOLDER, lock], stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == 'held'
        # While it lives, a run with a short timeout is refused with a lock message (the lock is real).
        res = run_module({'layouts': layouts_of('two-3g'), 'lock_file': lock, 'lock_timeout': 1}, state, str(tmp_path))
        assert res.get('failed') and 'lock_file' in res['msg'] and 'another MIG change' in res['msg'], res
        assert res.get('field') == 'lock_file'
    finally:
        os.kill(holder.pid, signal.SIGKILL)
        holder.wait()
    assert holder.returncode == -signal.SIGKILL
    assert os.path.exists(lock), 'the dead holder left its lock file behind (as flock holders do)'
    start = time.monotonic()
    res = run_module({'layouts': layouts_of('two-3g'), 'lock_file': lock, 'lock_timeout': 300}, state, str(tmp_path))
    elapsed = time.monotonic() - start
    FIG['after_sigkill_s'] = round(elapsed, 1)
    assert res['_rc'] == 0 and not res.get('failed'), res.get('msg')
    assert relib.signature(relib.show(state)['gpus'][0]) == expected['two-3g']
    assert elapsed < 60, 'the next run waited %.1fs for a dead holder' % elapsed    # lock_timeout is 300
