# Copyright (c) 2026 gpuops.mig contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Part 1: fault injection on every kind of mutating NVML call of >= 100 layout transitions.

For each transition A -> B (corpus.py): apply A, maybe start a process on an instance that B
keeps, dry-run B to get the plan, then for the k-th call of each mutating NVML function in the
plan inject an error with ``migsim fault add`` and converge to B. Promises checked:

* the run fails with ConvergeError naming the GPU, the NVML call and the error (a mode change
  left pending instead reports reset_required and does not fail);
* the GPU's layout (MIG mode, profiles, placements, CI structure; migsim show) equals the one
  before the run, or the message says the rollback could not finish and lists exactly what
  exists (checked against migsim show);
* no instance with processes is destroyed; GPUs converged earlier in the run hold layout B;
* with a second fault on the rollback's own first call, the message says so and lists what
  exists, and a normal rerun still reaches B.
"""

from __future__ import annotations

import collections
import json
import os
import re
import sys
import typing as t

import pytest

import corpus
import relib
import report
from conftest import run_playbook, run_workers, split, workers

TRANSITIONS = corpus.transitions()
FULL = os.environ.get('RELIABILITY_FULL') == '1'
ROLLBACK_SEQS = [tr['seq'] for tr in TRANSITIONS if tr['seq'] % 8 == 3 or tr['gpus'] > 1]


@pytest.fixture(scope='module')
def records(work_dir: str) -> dict[str, dict[str, t.Any]]:
    chunks = split(TRANSITIONS, workers(), weight=lambda tr: 2.0 * tr['gpus'])
    recs = run_workers(work_dir, 'faults', chunks, {'full': FULL, 'rollback_seqs': ROLLBACK_SEQS})
    by_id = {r['id']: r for r in recs}
    _figures(by_id)
    return by_id


def _reason(msg: str) -> str:
    m = re.search(r'Rollback could not finish \((.*?)\)\. GPU \d+ now holds', msg)
    text = m.group(1) if m else msg
    return re.sub(r'\d+', 'N', text)[:160]


def _figures(by_id: dict[str, dict[str, t.Any]]) -> None:
    fig = report.FIGURES.setdefault('faults', {})
    runs = [run for r in by_id.values() for run in r.get('runs', [])]
    rb_runs = [run for r in by_id.values() for run in r.get('rollback_runs', [])]
    fig['transitions'] = len(by_id)
    fig['models'] = sorted({r['model'] for r in by_id.values()})
    fig['two_gpu_transitions'] = sum(1 for r in by_id.values() if r['gpus'] > 1)
    fig['with_process'] = sum(1 for r in by_id.values() if r.get('process'))
    fig['runs_with_process'] = sum(len(r.get('runs', [])) + len(r.get('rollback_runs', []))
                                   for r in by_id.values() if r.get('process'))
    fig['injection_points'] = sum(len(r.get('points', [])) for r in by_id.values())
    fig['points_tried'] = len({(r['id'], run['point']) for r in by_id.values() for run in r.get('runs', [])})
    fig['full_product'] = sum(len(relib.ERRORS) + (fn == relib.SET_MODE)
                              for r in by_id.values() for _gpu, fn, _k in r.get('points', []))
    fig['sampled'] = not FULL
    fig['faults_injected'] = len(runs) + 2 * len(rb_runs)
    fig['single_fault_runs'] = len(runs)
    fig['by_call'] = dict(collections.Counter(run['call'] for run in runs))
    fig['by_error'] = dict(collections.Counter(run['error'] for run in runs))
    fig['states_verified'] = len(runs) + len(rb_runs)
    fig['pending_reported'] = sum(1 for run in runs if run['error'] == relib.PENDING and run.get('ok'))
    fig['rollback_complete'] = sum(1 for run in runs if 'original layout again' in run.get('msg', ''))
    fig['rollback_incomplete'] = sum(1 for run in runs if 'Rollback could not finish' in run.get('msg', ''))
    fig['incomplete_reasons'] = dict(collections.Counter(_reason(run['msg']) for run in runs
                                                         if 'Rollback could not finish' in run.get('msg', '')))
    fig['rollback_fault_runs'] = len(rb_runs)
    fig['rollback_fault_incomplete_reported'] = sum(1 for run in rb_runs if 'Rollback could not finish' in run.get('msg', ''))
    fig['rollback_fault_reruns_ok'] = sum(1 for run in rb_runs if run.get('rerun', {}).get('ok'))
    fig['rollback_fault_reasons'] = dict(collections.Counter(_reason(run.get('msg', '')) for run in rb_runs))
    fig['tracebacks'] = sum(1 for run in runs + rb_runs if run.get('traceback'))


# --- checks -----------------------------------------------------------------------------------------

def _by_index(gpus: list[dict[str, t.Any]]) -> dict[int, dict[str, t.Any]]:
    return {g['index']: g for g in gpus}


def _changed_gpus(rec: dict[str, t.Any]) -> list[int]:
    return sorted({g for g, _fn, _k in rec['points']})


def check_processes(rec: dict[str, t.Any], after: list[dict[str, t.Any]]) -> list[str]:
    """Every process of the state before the run still runs on the same GPU/compute instance."""
    problems = []
    before = _by_index(rec['show_a'])
    now = _by_index(after)
    for idx, gpu in before.items():
        for proc in gpu['processes']:
            gi_b = next(g for g in gpu['gpu_instances'] if g['id'] == proc['gi'])
            gi_a = next((g for g in now[idx]['gpu_instances'] if g['id'] == proc['gi']), None)
            if gi_a is None or relib.gi_key(gi_a)[:3] != relib.gi_key(gi_b)[:3]:
                problems.append('GPU %d: GPU instance %d with process %d was destroyed or changed' % (idx, proc['gi'], proc['pid']))
                continue
            ci_b = next(c for c in gi_b['compute_instances'] if c['id'] == proc['ci'])
            ci_a = next((c for c in gi_a['compute_instances'] if c['id'] == proc['ci']), None)
            if ci_a is None or (ci_a['profile_id'], ci_a['placement']) != (ci_b['profile_id'], ci_b['placement']):
                problems.append('GPU %d: compute instance %d/%d with process %d was destroyed' % (idx, proc['gi'], proc['ci'], proc['pid']))
            if proc not in now[idx]['processes']:
                problems.append('GPU %d: process %d vanished' % (idx, proc['pid']))
    return problems


def check_claim(msg: str, after: dict[int, dict[str, t.Any]]) -> list[str]:
    """The layout the message states equals migsim show (GPU instance IDs, profiles, slots, CIs)."""
    claim = relib.parse_holds(msg)
    if claim is None:
        return ['message states no layout: %s' % msg]
    idx, holds = claim
    actual = relib.holds_from_show(after[idx])
    if holds != actual:
        return ['message claims GPU %d holds %s but migsim show has %s' % (idx, holds, actual)]
    return []


def check_fault_run(rec: dict[str, t.Any], run: dict[str, t.Any]) -> list[str]:
    where = '%s %s #%d %s' % (rec['id'], run['call'], run['nth'], run['error'])
    problems = []
    gi = run['gpu']
    before = _by_index(rec['show_a'])
    base = _by_index(rec['baseline']['show'])
    after = _by_index(run['show'])
    if run['left_faults']:
        problems.append('the fault never fired (plan and calls disagree): %s' % run['left_faults'])
    if run.get('traceback'):
        problems.append('%s escaped converge:\n%s' % (run['type'], run['traceback']))
    if run['error'] == relib.PENDING:
        desired = run['action']['mig_enabled']
        if not run['ok']:
            problems.append('a pending mode change failed the run: %s' % run.get('msg'))
        elif run['reset_required'] != [gi]:
            problems.append('reset_required is %s, expected [%d]' % (run['reset_required'], gi))
        mode = after[gi]['mig_mode']
        if mode['pending'] != ('enabled' if desired else 'disabled') or mode['current'] != before[gi]['mig_mode']['current']:
            problems.append('MIG mode after a pending change: %s' % mode)
        if not desired and after[gi]['gpu_instances']:
            problems.append('instances left while disabling MIG: %s' % relib.holds_from_show(after[gi]))
        for idx in after:
            if idx != gi and relib.signature(after[idx]) != relib.signature(base[idx]):
                problems.append('GPU %d does not hold layout B' % idx)
    else:
        msg = run.get('msg', '')
        if run['ok'] or run['type'] != 'ConvergeError':
            problems.append('expected ConvergeError, got %s: %s' % ('success' if run['ok'] else run['type'], msg))
            return ['%s: %s' % (where, p) for p in problems]
        for needle in (run['call'], 'NVML_ERROR_' + run['error'], 'GPU %d:' % gi):
            if needle not in msg:
                problems.append('message does not name %r: %s' % (needle, msg))
        earlier = [i for i in _changed_gpus(rec) if i < gi]
        for idx in after:
            if idx == gi:
                continue
            want = base[idx] if idx in earlier else before[idx]
            if relib.signature(after[idx]) != relib.signature(want):
                problems.append('GPU %d holds %s, expected %s' % (idx, relib.signature(after[idx]), relib.signature(want)))
        if earlier and ('before the failure: %s' % ', '.join(map(str, earlier))) not in msg:
            problems.append('message does not say GPUs %s were converged before the failure: %s' % (earlier, msg))
        if 'original layout again' in msg:
            if relib.signature(after[gi]) != relib.signature(before[gi]):
                problems.append('message says the original layout is back, but GPU %d holds %s, before %s'
                                % (gi, relib.signature(after[gi]), relib.signature(before[gi])))
        elif 'Rollback could not finish' not in msg:
            problems.append('message says neither "original layout again" nor "Rollback could not finish": %s' % msg)
        problems += check_claim(msg, after)
    problems += check_processes(rec, run['show'])
    return ['%s: %s' % (where, p) for p in problems]


def check_rollback_run(rec: dict[str, t.Any], run: dict[str, t.Any]) -> list[str]:
    where = '%s %s #%d fails, then rollback %s #%d %s' % (
        rec['id'], run['call'], run['nth'], run['undo_call'], run['undo_nth'], run['undo_error'])
    problems = []
    msg = run.get('msg', '')
    after = _by_index(run['show'])
    if run['left_faults']:
        problems.append('a fault never fired: %s' % run['left_faults'])
    if run['ok'] or run['type'] != 'ConvergeError':
        problems.append('expected ConvergeError, got %s: %s' % ('success' if run['ok'] else run['type'], msg))
        return ['%s: %s' % (where, p) for p in problems]
    if 'Rollback could not finish' not in msg:
        problems.append('message does not say the rollback could not finish: %s' % msg)
    if run['undo_error'] == relib.PENDING:
        if 'MIG mode' not in msg:
            problems.append('message does not mention the MIG mode left pending: %s' % msg)
    else:
        for needle in (run['undo_call'], 'NVML_ERROR_' + run['undo_error']):
            if needle not in msg:
                problems.append('message does not name the failed rollback call %r: %s' % (needle, msg))
    problems += check_claim(msg, after)
    problems += check_processes(rec, run['show'])
    rerun = run['rerun']
    if not rerun['ok']:
        problems.append('a normal run after the unfinished rollback failed: %s' % rerun.get('msg'))
    else:
        base = _by_index(rec['baseline']['show'])
        for idx, gpu in _by_index(rerun['show']).items():
            if relib.counts(gpu) != relib.counts(base[idx]):
                problems.append('after the rerun GPU %d holds %s, expected %s' % (idx, relib.counts(gpu), relib.counts(base[idx])))
    return ['%s: %s' % (where, p) for p in problems]


# --- tests ------------------------------------------------------------------------------------------

def test_corpus(records: dict[str, dict[str, t.Any]]) -> None:
    """>= 100 transitions over the four models, covering keeps, destroys, creates, CIs, mode changes, processes."""
    assert len(records) >= 100
    assert {r['model'] for r in records.values()} >= {'h100-80gb', 'a100-40gb', 'a30-24gb', 'rtx-pro-6000'}
    kinds: collections.Counter = collections.Counter()
    for r in records.values():
        acts = [a for p in r['dry_run'].get('plan', []) for a in p['actions']]
        kinds.update({(a['action'], a['target'], a.get('mig_enabled')) for a in acts})
    report.FIGURES.setdefault('faults', {})['plan_kinds'] = {'%s %s%s' % (a, t_, '' if m is None else ' ' + str(m)): n
                                                             for (a, t_, m), n in sorted(kinds.items(), key=str)}
    for kind in [('keep', 'gpu_instance', None), ('destroy', 'gpu_instance', None), ('create', 'gpu_instance', None),
                 ('destroy', 'compute_instance', None), ('create', 'compute_instance', None),
                 ('set_mode', 'gpu', True), ('set_mode', 'gpu', False)]:
        assert kinds[kind] >= 5, 'too few transitions with %s: %s' % (kind, dict(kinds))
    assert sum(1 for r in records.values() if r.get('process')) >= 10
    assert sum(len(r['runs']) for r in records.values()) >= 300


@pytest.mark.parametrize('tid', [tr['id'] for tr in TRANSITIONS])
def test_transition(records: dict[str, dict[str, t.Any]], tid: str) -> None:
    rec = records[tid]
    assert rec['apply_a']['ok'], 'layout A could not be applied: %s' % rec['apply_a'].get('msg')
    assert rec['dry_run']['ok'], 'dry run of B failed: %s' % rec['dry_run'].get('msg')
    base = rec['baseline']
    assert base['ok'] and not base['reset_required'], 'B without faults: %s' % base.get('msg')
    assert base['again']['ok'] and not base['again']['changed'], 'B is not idempotent: %s' % base['again']
    assert rec['points'], 'B changes nothing'
    # The plan never destroys an instance that has processes.
    for gpu in rec['show_a']:
        for proc in gpu['processes']:
            for gplan in rec['dry_run']['plan']:
                for a in gplan['actions'] if gplan['index'] == gpu['index'] else ():
                    assert not (a['action'] == 'destroy' and a['gpu_instance_id'] == proc['gi']
                                and (a['target'] == 'gpu_instance' or a['compute_instance_id'] == proc['ci'])), a
    if rec['process']:
        assert any(a['action'] == 'keep' and a['gpu_instance_id'] == rec['process']['gi']
                   for p in rec['dry_run']['plan'] for a in p['actions'])
    problems = []
    for run in rec['runs']:
        problems += check_fault_run(rec, run)
    for run in rec['rollback_runs']:
        problems += check_rollback_run(rec, run)
    assert not problems, '\n'.join(problems[:20])


def test_figures(records: dict[str, dict[str, t.Any]]) -> None:
    fig = report.FIGURES['faults']
    assert fig['tracebacks'] == 0
    assert fig['states_verified'] == fig['single_fault_runs'] + fig['rollback_fault_runs']
    assert fig['rollback_fault_runs'] >= 10
    assert fig['rollback_fault_incomplete_reported'] == fig['rollback_fault_runs']
    assert fig['by_call'].keys() >= set(relib.MUTATING)
    assert fig['by_error'].keys() >= set(relib.ERRORS) | {relib.PENDING}


def test_faults_through_the_module(tmp_path: t.Any) -> None:
    """The representative path: ansible-playbook runs mig_layout, faults come from the migsim executable.

    H100: apply "balanced"; a fault on the first GPU instance create while going to "two-3g" is
    rolled back; a second fault on the rollback's own create leaves it unfinished (said so, and
    what exists is listed); a clean run converges; a pending mode change while disabling MIG is
    reported in reset_required without failing.
    """
    state = str(tmp_path / 'state.json')
    relib.migsim_exe('init', state, '--gpus', 'h100-80gb:1')
    h100 = corpus.LAYOUTS['h100-80gb']
    lock = str(tmp_path / 'lock')

    def layout(name: str, task: str, **kw: t.Any) -> dict[str, t.Any]:
        return dict({'name': task, 'gpuops.mig.mig_layout': {'layouts': corpus.layouts_arg([h100[name]]), 'lock_file': lock}}, **kw)

    def sim(task: str, *args: t.Any) -> dict[str, t.Any]:
        return {'name': task, 'ansible.builtin.command': {'argv': [sys.executable, relib.MIGSIM, *map(str, args)]},
                'changed_when': False}

    tasks = [
        layout('balanced', 'apply A'),
        sim('show A', 'show', state),
        sim('fault 1', 'fault', 'add', state, '--call', relib.CREATE_GI, '--nth', 1, '--error', 'IN_USE'),
        layout('two-3g', 'B with a fault', ignore_errors=True),
        sim('show after the fault', 'show', state),
        sim('fault 2', 'fault', 'add', state, '--call', relib.CREATE_GI, '--nth', 1, '--error', 'UNKNOWN'),
        sim('fault 3 (hits the rollback)', 'fault', 'add', state, '--call', relib.CREATE_GI, '--nth', 1, '--error', 'GPU_IS_LOST'),
        layout('two-3g', 'B with a fault on the rollback', ignore_errors=True),
        sim('show after the unfinished rollback', 'show', state),
        layout('two-3g', 'B again'),
        sim('fault 4', 'fault', 'add', state, '--call', relib.SET_MODE, '--nth', 1, '--error', 'PENDING'),
        layout('off', 'disable, left pending'),
        sim('show after the pending change', 'show', state),
    ]
    out = run_playbook(tasks, state, tmp_path)
    r = out['results']
    assert 'Traceback (most recent' not in out['raw'] and 'MODULE FAILURE' not in out['raw'], out['raw'][-3000:]

    def gpu(task: str) -> dict[str, t.Any]:
        return json.loads(r[task]['stdout'])['gpus'][0]

    assert not r['apply A'].get('failed'), r['apply A']
    first = r['B with a fault']
    assert first.get('failed') and relib.CREATE_GI in first['msg'] and 'NVML_ERROR_IN_USE' in first['msg'], first
    assert 'original layout again' in first['msg'] and not first.get('changed')
    assert relib.signature(gpu('show after the fault')) == relib.signature(gpu('show A'))
    second = r['B with a fault on the rollback']
    assert second.get('failed') and 'Rollback could not finish' in second['msg'] and 'NVML_ERROR_GPU_IS_LOST' in second['msg'], second
    assert not check_claim(second['msg'], {0: gpu('show after the unfinished rollback')})
    assert second.get('changed'), 'an unfinished rollback changed the GPU: changed must be true'
    assert not r['B again'].get('failed') and r['B again'].get('changed'), r['B again']
    pending = r['disable, left pending']
    assert not pending.get('failed') and pending.get('reset_required') == [0], pending
    after = gpu('show after the pending change')
    assert after['mig_mode'] == {'current': 'enabled', 'pending': 'disabled'} and after['gpu_instances'] == []
    report.FIGURES.setdefault('faults', {})['module_runs'] = 'ansible-playbook: fault rolled back, rollback fault reported, pending reported'
