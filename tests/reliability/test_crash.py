# Copyright (c) 2026 gpuops.mig contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Part 4: crash consistency. SIGKILL the converging process right after each mutating call of a plan.

The converging process holds the host lock and uses crash_adapter.CrashAfter (the real
NvmlAdapter, which SIGKILLs its own process after its K-th mutation: no rollback, no cleanup,
lock still held). Then a normal run takes the lock at once and converges. Promises: it reaches
the desired layout with no leaked or duplicated instances (per GPU instance profile, the number
of instances and their compute instances equal those of a run that was never interrupted;
placements too where the layout declares all of them), MIG mode as desired, and a further dry
run has nothing to change.
"""

from __future__ import annotations

import signal
import typing as t

import pytest

import corpus
import relib
import report
from conftest import run_workers, split, workers

SELECTED = [tr for tr in corpus.transitions() if tr['seq'] % 5 == 1]


def fully_declared(per_gpu: list[dict[str, t.Any]]) -> bool:
    return all(spec.get('instances') is not None and all('placement' in i for i in spec['instances'])
               for spec in per_gpu if spec['mig_enabled'])


@pytest.fixture(scope='module')
def records(work_dir: str) -> dict[str, dict[str, t.Any]]:
    chunks = split(SELECTED, workers(), weight=lambda tr: 1.0 * tr['gpus'])
    recs = {r['id']: r for r in run_workers(work_dir, 'crash', chunks, {})}
    kills = [k for r in recs.values() for k in r.get('kills', [])]
    fig = report.FIGURES.setdefault('crash', {})
    fig['transitions'] = len(recs)
    fig['kills'] = len(kills)
    fig['converged'] = sum(1 for k in kills if k.get('rerun', {}).get('ok') and not k.get('again', {}).get('changed', True))
    fig['max_lock_wait_s'] = max((k.get('lock_wait_s', 0) for k in kills), default=0)
    fig['leaks'] = 0
    return recs


def test_selection(records: dict[str, dict[str, t.Any]]) -> None:
    assert len(records) >= 15
    assert {r['model'] for r in records.values()} >= {'h100-80gb', 'a100-40gb', 'a30-24gb', 'rtx-pro-6000'}
    assert sum(len(r['kills']) for r in records.values()) >= 100


@pytest.mark.parametrize('tid', [tr['id'] for tr in SELECTED])
def test_kill_after_each_call_then_rerun(records: dict[str, dict[str, t.Any]], tid: str) -> None:
    rec = records[tid]
    tr = next(x for x in SELECTED if x['id'] == tid)
    assert rec['apply_a']['ok'] and rec['dry_run']['ok'], rec['apply_a'].get('msg') or rec['dry_run'].get('msg')
    base = rec['baseline']
    assert base['ok'], base.get('msg')
    want = {g['index']: g for g in base['show']}
    assert len(rec['kills']) == len(relib.plan_calls(rec['dry_run']['plan']))
    problems = []
    for kill in rec['kills']:
        where = 'killed after call %d (%s)' % (kill['k'], kill['after_call'])
        if not (kill['signaled'] and kill['signal'] == signal.SIGKILL):
            problems.append('%s: the process was not killed (exit %s)' % (where, kill['exit']))
            continue
        made = sum(kill['mutations_seen'].values())
        if made != kill['k']:
            problems.append('%s: %d mutating calls reached NVML, expected %d' % (where, made, kill['k']))
        if 'lock_error' in kill:
            problems.append('%s: the next run could not take the lock: %s' % (where, kill['lock_error']))
            continue
        rerun = kill['rerun']
        if not rerun['ok']:
            problems.append('%s: the rerun failed: %s' % (where, rerun.get('msg')))
            continue
        if kill['again']['changed'] or not kill['again']['ok']:
            problems.append('%s: a dry run after the rerun still plans changes' % where)
        for gpu in rerun['show']:
            exp = want[gpu['index']]
            got_c, want_c = relib.counts(gpu), relib.counts(exp)
            if got_c != want_c:
                report.FIGURES['crash']['leaks'] += 1
                problems.append('%s: GPU %d holds %s, expected %s' % (where, gpu['index'], got_c, want_c))
            if gpu['mig_mode'] != exp['mig_mode']:
                problems.append('%s: GPU %d MIG mode %s, expected %s' % (where, gpu['index'], gpu['mig_mode'], exp['mig_mode']))
            if fully_declared(tr['b']) and relib.signature(gpu) != relib.signature(exp):
                problems.append('%s: GPU %d placements differ from the declared layout' % (where, gpu['index']))
        if kill['lock_wait_s'] > 5:
            problems.append('%s: waited %.1fs for the dead process\'s lock' % (where, kill['lock_wait_s']))
    assert not problems, '\n'.join(problems)
