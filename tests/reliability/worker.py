# Copyright (c) 2026 gpuops.mig contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Reliability worker: runs a chunk of fault-injection or crash cases against the simulator in-process.

    python worker.py TASK.json OUT.json

Started by the tests as a subprocess whose environment holds ``migsim env STATE`` (LD_LIBRARY_PATH
must be set before the process starts, so that pynvml loads the simulated libnvidia-ml.so.1). It
drives ``_converge.converge`` with the real ``NvmlAdapter`` and writes raw observations (plans,
messages, ``migsim show`` before and after, leftover faults). It judges nothing: the pytest files
check the observations, so a broken promise fails a named test.
"""

from __future__ import annotations

import json
import os
import signal
import sys
import time
import traceback
import typing as t

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import corpus  # noqa: E402  pylint: disable=wrong-import-position
import relib  # noqa: E402  pylint: disable=wrong-import-position

from ansible_collections.gpuops.mig.plugins.module_utils._converge import ConvergeError, converge  # noqa: E402
from ansible_collections.gpuops.mig.plugins.module_utils._lock import host_lock  # noqa: E402
from ansible_collections.gpuops.mig.plugins.module_utils._nvml import NvmlAdapter  # noqa: E402


def log(msg: str) -> None:
    sys.stderr.write('[worker %d] %s\n' % (os.getpid(), msg))
    sys.stderr.flush()


def attempt(state: str, layouts: list[t.Any], check_mode: bool = False) -> dict[str, t.Any]:
    """One converge run; never raises."""
    out: dict[str, t.Any] = {}
    try:
        with NvmlAdapter() as nvml:
            res = converge(nvml, layouts=layouts, check_mode=check_mode)
        out.update(ok=True, changed=res['changed'], reset_required=res['reset_required'], plan=res['plan'])
    except ConvergeError as exc:
        out.update(ok=False, type='ConvergeError', msg=str(exc), field=exc.field)
    except Exception as exc:  # pylint: disable=broad-except
        out.update(ok=False, type=type(exc).__name__, msg=str(exc), traceback=traceback.format_exc())
    out['show'] = relib.show(state)['gpus']
    out['left_faults'] = relib.pending_faults(state)
    return out


def setup_transition(tr: dict[str, t.Any], state: str) -> dict[str, t.Any]:
    """Apply layout A, optionally put a process on a kept instance, dry-run B. Returns the record."""
    rec: dict[str, t.Any] = {'id': tr['id'], 'seq': tr['seq'], 'model': tr['model'], 'gpus': tr['gpus'], 'names': tr['names']}
    relib.migsim('init', state, '--gpus', '%s:%d' % (tr['model'], tr['gpus']))
    a_layouts = corpus.layouts_arg(tr['a'])
    b_layouts = corpus.layouts_arg(tr['b'])
    rec['apply_a'] = attempt(state, a_layouts)
    dry = attempt(state, b_layouts, check_mode=True)
    rec['process'] = None
    if tr['with_process'] and dry['ok']:
        shown = relib.show(state)
        for gplan in dry['plan']:
            destroyed_cis = {(a['gpu_instance_id'], a['compute_instance_id']) for a in gplan['actions']
                             if a['action'] == 'destroy' and a['target'] == 'compute_instance'}
            kept = [a['gpu_instance_id'] for a in gplan['actions'] if a['action'] == 'keep']
            gpu = relib.gpu_by_index(shown, gplan['index'])
            for gi in gpu['gpu_instances']:
                if gi['id'] not in kept:
                    continue
                cis = [c for c in gi['compute_instances'] if (gi['id'], c['id']) not in destroyed_cis]
                if not cis:
                    continue
                proc = {'gpu': gplan['index'], 'gi': gi['id'], 'ci': cis[0]['id'], 'pid': 40000 + tr['seq']}
                relib.migsim('process', 'add', state, '--gpu', proc['gpu'], '--gi', proc['gi'], '--ci', proc['ci'], '--pid', proc['pid'])
                again = attempt(state, b_layouts, check_mode=True)
                still_kept = again['ok'] and any(
                    a['action'] == 'keep' and a['gpu_instance_id'] == proc['gi']
                    for p in again['plan'] if p['index'] == proc['gpu'] for a in p['actions'])
                if still_kept:
                    rec['process'] = proc
                    dry = again
                else:
                    relib.migsim('process', 'clear', state)
                break
            if rec['process']:
                break
    rec['dry_run'] = dry
    rec['show_a'] = relib.show(state)['gpus']
    return rec


def run_faults(tr: dict[str, t.Any], state: str, full: bool, rollback_faults: bool) -> dict[str, t.Any]:
    rec = setup_transition(tr, state)
    dry = rec['dry_run']
    rec['runs'] = []
    rec['rollback_runs'] = []
    if not (rec['apply_a']['ok'] and dry['ok']):
        return rec
    b_layouts = corpus.layouts_arg(tr['b'])
    snap = relib.snapshot(state)
    base = attempt(state, b_layouts)
    base['again'] = attempt(state, b_layouts, check_mode=True)
    base['again'].pop('show', None)
    rec['baseline'] = base
    points = relib.plan_calls(dry['plan'])
    rec['points'] = [(g, fn, k) for g, fn, k, _act in points]
    for n, pi in enumerate(relib.select_points(points, tr['seq'], full)):
        gidx, fn, k, act = points[pi]
        for err in relib.errors_for(tr['seq'], n, fn, full):
            relib.restore(state, snap)
            relib.migsim('fault', 'add', state, '--call', fn, '--nth', k, '--error', err)
            run = attempt(state, b_layouts)
            run.update(gpu=gidx, call=fn, nth=k, error=err, point=pi, action=act)
            rec['runs'].append(run)
    if rollback_faults:
        # A second fault on the first call of the rollback: the forward call at point pi fails,
        # then undoing the action at point pi-1 (same GPU) fails too.
        cands = [pi for pi in range(1, len(points)) if points[pi][0] == points[pi - 1][0]]
        picks = sorted({cands[-1], cands[len(cands) // 2]}) if cands else []
        if len(points) > 1 and points[0][1] == relib.SET_MODE and points[1][0] == points[0][0]:
            picks = sorted(set(picks) | {1})     # undoing the MIG mode change fails
        for n, pi in enumerate(picks):
            gidx, fn, k, act = points[pi]
            undo_fn = relib.UNDO_CALL[points[pi - 1][1]]
            forward_undo_calls = sum(1 for _gpu, f, _k, _act in points[:pi + 1] if f == undo_fn)
            nth2 = relib.rollback_nth(fn, k, undo_fn, 0, forward_undo_calls)
            errs = [relib.ROLLBACK_ERRORS[(tr['seq'] + n) % len(relib.ROLLBACK_ERRORS)]]
            if undo_fn == relib.SET_MODE:
                errs.append(relib.PENDING)
            for err2 in errs:
                relib.restore(state, snap)
                relib.migsim('fault', 'add', state, '--call', fn, '--nth', k, '--error', 'UNKNOWN')
                relib.migsim('fault', 'add', state, '--call', undo_fn, '--nth', nth2, '--error', err2)
                run = attempt(state, b_layouts)
                run.update(gpu=gidx, call=fn, nth=k, error='UNKNOWN', point=pi, action=act,
                           undo_call=undo_fn, undo_nth=nth2, undo_error=err2, undo_action=points[pi - 1][3])
                # After an unfinished rollback, a normal run must still reach layout B.
                run['rerun'] = attempt(state, b_layouts)
                rec['rollback_runs'].append(run)
    return rec


def run_crash(tr: dict[str, t.Any], state: str, lock_file: str) -> dict[str, t.Any]:
    """Kill the converging process after each mutating call of the plan, then converge again."""
    import crash_adapter  # pylint: disable=import-outside-toplevel
    tr = dict(tr, with_process=False)
    rec = setup_transition(tr, state)
    rec['kills'] = []
    if not (rec['apply_a']['ok'] and rec['dry_run']['ok']):
        return rec
    b_layouts = corpus.layouts_arg(tr['b'])
    snap = relib.snapshot(state)
    base = attempt(state, b_layouts)
    rec['baseline'] = base
    points = relib.plan_calls(rec['dry_run']['plan'])
    for k in range(1, len(points) + 1):
        relib.restore(state, snap)
        relib.migsim('calls', state, '--clear')
        sys.stdout.flush()
        sys.stderr.flush()
        pid = os.fork()
        if pid == 0:    # child: converge with the adapter that kills this process after mutation k
            try:
                crash_adapter.converge_and_die(b_layouts, k, lock_file)
            finally:
                os._exit(97)    # reached only if the kill did not happen
        status = os.waitpid(pid, 0)[1]
        kill = {'k': k, 'after_call': points[k - 1][1], 'signaled': os.WIFSIGNALED(status),
                'signal': os.WTERMSIG(status) if os.WIFSIGNALED(status) else None,
                'exit': os.WEXITSTATUS(status) if os.WIFEXITED(status) else None,
                'mutations_seen': relib.mutating_calls(state)}
        kill['show_mid'] = relib.show(state)['gpus']
        start = time.monotonic()
        try:
            with host_lock(lock_file, timeout=10):
                kill['lock_wait_s'] = round(time.monotonic() - start, 3)
                kill['rerun'] = attempt(state, b_layouts)
                kill['again'] = attempt(state, b_layouts, check_mode=True)
                kill['again'].pop('show', None)
        except Exception as exc:  # pylint: disable=broad-except
            kill['lock_error'] = '%s: %s' % (type(exc).__name__, exc)
        rec['kills'].append(kill)
    return rec


def main(argv: list[str]) -> int:
    task_path, out_path = argv
    with open(task_path, encoding='utf-8') as f:
        task = json.load(f)
    state = os.environ['MIGSIM_STATE']
    results = []
    start = time.monotonic()
    for n, tr in enumerate(task['transitions']):
        if task['mode'] == 'faults':
            rec = run_faults(tr, state, task.get('full', False), tr['seq'] in set(task.get('rollback_seqs', ())))
        else:
            rec = run_crash(tr, state, task['lock_file'])
        results.append(rec)
        if n % 10 == 9:
            log('%s: %d/%d transitions, %.0fs' % (task['mode'], n + 1, len(task['transitions']), time.monotonic() - start))
            relib.write_json(out_path, results)
    relib.write_json(out_path, results)
    return 0


if __name__ == '__main__':
    signal.signal(signal.SIGINT, signal.SIG_DFL)
    sys.exit(main(sys.argv[1:]))
