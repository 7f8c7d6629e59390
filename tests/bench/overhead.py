# Copyright (c) 2026 gpuops.mig contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Benchmark 3: overhead of gpuops.mig.mig_layout on one simulated 8-GPU host (H100 80GB x 8).

* No-op: one play alternating ``ansible.builtin.command: /bin/true`` and a ``mig_layout`` task whose
  layout is already in place; per-task wall times from the bench_timer callback.
* Where the no-op time goes: NVML calls per no-op run (simulator call counters), the module's
  Python time (``converge`` in-process with the NVML time measured around every call), the
  simulator's per-call cost, the module process run directly (interpreter start + imports + work).
* Estimate with a real driver: the no-op task with the simulator's NVML time replaced by
  calls x a real driver's per-call cost (tests/bench/data/nvml-realhw-*.json, measured by
  nvml_realhw.py on real hardware; a labelled assumption when no measurement exists).
* Reconfiguration: one ``mig_layout`` task that changes all 8 GPUs (balanced <-> 7 x 1g).
* CPU: the module run directly (``python -m ...mig_layout args.json``), CPU (user+sys of the process,
  the simulator's engine included: it runs inside the module's process) against wall time.
"""

from __future__ import annotations

import argparse
import glob
import json
import os
import resource
import subprocess
import sys
import time
import typing as t

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import common  # noqa: E402

common.setup_collection_path()

import ansible_run as A  # noqa: E402

LAYOUT_A = [{'devices': 'all', 'mig_enabled': True, 'mig_devices': {'3g.40gb': 1, '2g.20gb': 1, '1g.10gb': 2}}]
LAYOUT_B = [{'devices': 'all', 'mig_enabled': True, 'mig_devices': {'1g.10gb': 7}}]
GPUS = 8
PAIRS_PER_PLAY = 3

PLAY_HEAD = """- name: gpuops.mig benchmark
  hosts: gpuhost
  gather_facts: false
  environment:
    LD_LIBRARY_PATH: "{{ sim_lib }}"
    MIGSIM_STATE: "{{ sim_state }}"
  tasks:
"""
TRUE_TASK = """    - name: command true %d
      ansible.builtin.command: /bin/true
      changed_when: false
"""
RESULT_TASK = """    - name: same-size result %d
      bench_result:
        path: "{{ result_file }}"
"""
LAYOUT_TASK = """    - name: mig_layout %d
      gpuops.mig.mig_layout:
        layouts: "{{ layout }}"
        lock_file: "{{ lock_file }}"
"""
INFO_TASK = """    - name: mig_info %d
      gpuops.mig.mig_info:
"""


def task_times(res: dict[str, t.Any], action_suffix: str) -> list[float]:
    return [tk['seconds'] for tk in res['timer'].get('tasks', []) if tk['action'].endswith(action_suffix)]


def changed(res: dict[str, t.Any], action_suffix: str) -> list[bool]:
    return [r['changed'] for tk in res['timer'].get('tasks', []) if tk['action'].endswith(action_suffix) for r in tk['results']]


def run_module_direct(python: str, module: str, args: dict[str, t.Any], env: dict[str, str], work: str) -> dict[str, t.Any]:
    path = os.path.join(work, 'module-args.json')
    with open(path, 'w', encoding='utf-8') as f:
        json.dump({'ANSIBLE_MODULE_ARGS': args}, f)
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    proc = subprocess.run([python, '-m', module, path], env=env, capture_output=True, text=True, check=False, cwd=work)
    wall = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    try:
        out = json.loads(proc.stdout)
    except ValueError:
        raise SystemExit('module run failed (rc %d): %s %s' % (proc.returncode, proc.stdout[-2000:], proc.stderr[-2000:]))
    if out.get('failed'):
        raise SystemExit('module run failed: %s' % out.get('msg'))
    return {'wall': wall, 'user': after.ru_utime - before.ru_utime, 'sys': after.ru_stime - before.ru_stime,
            'changed': bool(out.get('changed')), 'output': out}


def real_driver_data() -> list[dict[str, t.Any]]:
    out = []
    for path in sorted(glob.glob(os.path.join(common.HERE, 'data', 'nvml-realhw-*.json'))):
        with open(path, encoding='utf-8') as f:
            d = json.load(f)
        d['file'] = os.path.relpath(path, common.ROOT)
        out.append(d)
    return out


def _base_name(fn: str) -> str:
    for suffix in ('_v2', '_v3'):
        if fn.endswith(suffix):
            fn = fn[:-len(suffix)]
    if fn.endswith('InfoV'):
        fn = fn[:-1]
    return fn


def _is_mig_call(fn: str) -> bool:
    return any(w in fn for w in ('Mig', 'GpuInstance', 'ComputeInstance'))


def estimate(result: dict[str, t.Any], calls_in_process: float) -> dict[str, t.Any]:
    """No-op task time with the simulator's NVML time replaced by a real driver's (low and high bound).

    Functions measured on real hardware (nvml_realhw.py) use their measured cost. MIG calls that can
    only be measured with MIG instances present (compute-instance profiles, GI/CI lists, MIG device
    handles) take the cheapest (low) and the dearest (high) MIG query that was measured.
    """
    out: dict[str, t.Any] = {'sources': [], 'estimates': []}
    nvml_sim = result['inprocess_noop']['nvml_median'] * result['noop']['nvml_calls_per_run'] / max(calls_in_process, 1)
    nvml_sim += result['inprocess_noop']['sim_init_seconds']
    out['nvml_sim_seconds_per_task'] = nvml_sim
    for d in real_driver_data():
        measured = {k: v for k, v in d.get('us_per_call', {}).items() if v is not None}
        mig_measured = [v for k, v in measured.items() if _is_mig_call(k)]
        lo_mig, hi_mig = (min(mig_measured), max(mig_measured)) if mig_measured else (100.0, 500.0)
        lo = hi = 0.0
        unmeasured: dict[str, float] = {}
        for fn, n in result['noop']['calls_by_function'].items():
            if fn in ('nvmlInit', 'nvmlInit_v2', 'nvmlInitWithFlags'):
                cost = measured.get('nvmlInit+nvmlShutdown')
                if cost is not None:
                    lo += n * cost
                    hi += n * cost
                    continue
            if fn == 'nvmlShutdown':
                continue
            cost = measured.get(_base_name(fn))
            if cost is not None:
                lo += n * cost
                hi += n * cost
            else:
                unmeasured[fn] = n
                lo += n * (lo_mig if _is_mig_call(fn) else 10.0)
                hi += n * (hi_mig if _is_mig_call(fn) else 10.0)
        out['sources'].append({'file': d['file'], 'gpu': d.get('gpu_name'), 'driver': d.get('driver_version'),
                               'date': d.get('date'), 'mig_mode': d.get('mig_mode'),
                               'mig_query_us': [lo_mig, hi_mig], 'unmeasured_calls': unmeasured})
        for label, us_total in (('low', lo), ('high', hi)):
            task = result['noop']['layout_median'] - nvml_sim + us_total * 1e-6
            out['estimates'].append({'basis': '%s (%s)' % (label, d['file']), 'nvml_seconds': us_total * 1e-6,
                                     'layout_task': task, 'ratio': task / result['noop']['true_median']})
    return out


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument('--work', required=True)
    ap.add_argument('--out', required=True)
    ap.add_argument('--runs', type=int, default=5)
    args = ap.parse_args()
    work = os.path.join(args.work, 'overhead')
    os.makedirs(work, exist_ok=True)
    runs = max(args.runs, 1)

    state = os.path.join(work, 'host.json')
    common.migsim('init', state, '--gpus', 'h100-80gb:%d' % GPUS, '--mig', 'enabled')
    senv = common.sim_env(state)
    python = A.ansible_python()
    lock = os.path.join(work, 'gpuops-mig.lock')
    result_file = os.path.join(work, 'noop-result.json')
    inv = os.path.join(work, 'inventory.ini')
    with open(inv, 'w', encoding='utf-8') as f:
        f.write('gpuhost ansible_connection=local ansible_python_interpreter=%s sim_lib=%s sim_state=%s lock_file=%s result_file=%s\n'
                % (python, senv['LD_LIBRARY_PATH'], state, lock, result_file))
    noop_pb = os.path.join(work, 'noop.yml')
    with open(noop_pb, 'w', encoding='utf-8') as f:
        f.write(PLAY_HEAD + ''.join(TRUE_TASK % i + RESULT_TASK % i + LAYOUT_TASK % i + INFO_TASK % i
                                    for i in range(1, PAIRS_PER_PLAY + 1)))
    apply_pb = os.path.join(work, 'apply.yml')
    with open(apply_pb, 'w', encoding='utf-8') as f:
        f.write(PLAY_HEAD + LAYOUT_TASK % 1)
    vars_a = os.path.join(work, 'layout-a.json')
    vars_b = os.path.join(work, 'layout-b.json')
    for path, lay in ((vars_a, LAYOUT_A), (vars_b, LAYOUT_B)):
        with open(path, 'w', encoding='utf-8') as f:
            json.dump({'layout': lay}, f)
    env = A.base_env(work)
    env['ANSIBLE_LIBRARY'] = os.path.join(common.HERE, 'library')
    result: dict[str, t.Any] = {'gpus': GPUS, 'model': 'h100-80gb', 'layout_a': LAYOUT_A, 'layout_b': LAYOUT_B,
                                'runs': runs, 'pairs_per_play': PAIRS_PER_PLAY, 'python': python}

    # warm-up: converge to A (not measured)
    res = A.run_playbook(apply_pb, inv, env, os.path.join(work, 'warmup.log'), ['-e', '@' + vars_a])
    A.check(res, 'warm-up apply')
    module = 'ansible_collections.gpuops.mig.plugins.modules.mig_layout'
    menv = dict(env, PYTHONPATH=os.environ['BENCH_COLLECTIONS'], **senv)
    margs_a = {'layouts': LAYOUT_A, 'lock_file': lock}
    margs_b = {'layouts': LAYOUT_B, 'lock_file': lock}
    first = run_module_direct(python, module, margs_a, menv, work)
    with open(result_file, 'w', encoding='utf-8') as f:
        json.dump(first['output'], f)
    result['result_bytes'] = os.path.getsize(result_file)

    # 1. no-op task vs command: /bin/true in the same play
    noop_layout, noop_true, noop_result, noop_info, noop_changed = [], [], [], [], []
    for i in range(runs):
        res = A.run_playbook(noop_pb, inv, env, os.path.join(work, 'noop-%d.log' % i), ['-e', '@' + vars_a])
        A.check(res, 'no-op play')
        noop_layout += task_times(res, 'mig_layout')
        noop_true += task_times(res, 'command')
        noop_result += task_times(res, 'bench_result')
        noop_info += task_times(res, 'mig_info')
        noop_changed += changed(res, 'mig_layout')
    # NVML calls of one no-op mig_layout run and of one mig_info run (the module run directly, counted apart)
    c0 = common.sim_calls(state)
    run_module_direct(python, module, margs_a, menv, work)
    d = common.calls_delta(c0, common.sim_calls(state))
    c0 = common.sim_calls(state)
    run_module_direct(python, 'ansible_collections.gpuops.mig.plugins.modules.mig_info', {}, menv, work)
    info_calls = sum(common.calls_delta(c0, common.sim_calls(state)).values())
    result['noop'] = {
        'layout_task': noop_layout, 'true_task': noop_true, 'result_task': noop_result, 'info_task': noop_info,
        'result_median': common.median(noop_result),
        'layout_median': common.median(noop_layout), 'true_median': common.median(noop_true),
        'info_median': common.median(noop_info),
        'ratio': common.median(noop_layout) / common.median(noop_true),
        'info_ratio': common.median(noop_info) / common.median(noop_true),
        'nvml_calls_per_run': sum(d.values()), 'calls_by_function': d, 'info_nvml_calls_per_run': info_calls,
        'any_changed': any(noop_changed),
    }
    common.log('overhead no-op: mig_layout %.3f s, mig_info %.3f s, command %.3f s, ratios %.2f / %.2f, %d NVML calls' % (
        result['noop']['layout_median'], result['noop']['info_median'], result['noop']['true_median'], result['noop']['ratio'],
        result['noop']['info_ratio'], result['noop']['nvml_calls_per_run']))

    # 1b. module payload size (AnsiballZ files a non-pipelined run leaves behind with keep_remote_files)
    keep = os.path.join(work, 'remote-keep')
    env_keep = dict(env, ANSIBLE_PIPELINING='0', ANSIBLE_KEEP_REMOTE_FILES='1', ANSIBLE_REMOTE_TEMP=keep)
    res = A.run_playbook(noop_pb, inv, env_keep, os.path.join(work, 'noop-nopipelining.log'), ['-e', '@' + vars_a])
    A.check(res, 'no-op play without pipelining')
    payload: dict[str, int] = {}
    for path in glob.glob(os.path.join(keep, '**', 'AnsiballZ_*.py'), recursive=True):
        name = os.path.basename(path)[len('AnsiballZ_'):-len('.py')]
        payload[name] = max(payload.get(name, 0), os.path.getsize(path))
    result['payload_bytes'] = payload
    result['noop_no_pipelining'] = {'layout_median': common.median(task_times(res, 'mig_layout')),
                                    'true_median': common.median(task_times(res, 'command'))}

    # 2. the module process run directly, no-op
    direct_noop = [run_module_direct(python, module, margs_a, menv, work) for dummy in range(runs)]
    if any(r['changed'] for r in direct_noop):
        raise SystemExit('direct no-op module run reported changed')
    cmd_module = 'ansible.modules.command'
    direct_true = [run_module_direct(python, cmd_module, {'_raw_params': '/bin/true'}, menv, work) for dummy in range(runs)]
    # interpreter start and imports alone, step by step (no NVML work); the collection's files have no
    # .pyc here (PYTHONDONTWRITEBYTECODE), as in an AnsiballZ payload, which Python compiles on every run
    import_steps = [
        ('python -c pass', 'pass'),
        ('+ ansible.module_utils.basic', 'import ansible.module_utils.basic'),
        ('+ pynvml', 'import ansible.module_utils.basic, pynvml'),
        ('+ the mig_layout module and its module_utils',
         'import ansible.module_utils.basic, pynvml, ansible_collections.gpuops.mig.plugins.modules.mig_layout'),
    ]
    import_times: dict[str, list[float]] = {k: [] for k, dummy in import_steps}
    for dummy in range(runs):
        for label, code in import_steps:
            s = time.perf_counter()
            subprocess.run([python, '-c', code], env=menv, check=True, cwd=work)
            import_times[label].append(time.perf_counter() - s)
    imports = import_times[import_steps[-1][0]]
    result['direct_noop'] = {
        'wall_median': common.median([r['wall'] for r in direct_noop]),
        'cpu_median': common.median([r['user'] + r['sys'] for r in direct_noop]),
        'startup_imports_median': common.median(imports),
        'import_steps': [[k, common.median(v)] for k, v in import_times.items()],
        'true_wall_median': common.median([r['wall'] for r in direct_true]),
        'true_cpu_median': common.median([r['user'] + r['sys'] for r in direct_true]),
    }

    # 3. in-process: converge no-op with NVML time measured around every call; simulator per-call cost
    os.environ.update(senv)
    common.activate_sim(state)
    import pynvml
    from ansible_collections.gpuops.mig.plugins.module_utils._converge import converge
    from ansible_collections.gpuops.mig.plugins.module_utils._nvml import NvmlAdapter

    class TimedAdapter(NvmlAdapter):
        nvml_seconds = 0.0

        def _call(self, name: str, *a: t.Any) -> t.Any:
            s = time.perf_counter()
            try:
                return super()._call(name, *a)
            finally:
                self.nvml_seconds += time.perf_counter() - s

    inproc = []
    for dummy in range(max(runs, 7)):
        s = time.perf_counter()
        with TimedAdapter() as ad:
            r = converge(ad, layouts=LAYOUT_A)
        total = time.perf_counter() - s
        if r['changed']:
            raise SystemExit('in-process no-op converge changed something')
        inproc.append({'total': total, 'nvml': ad.nvml_seconds, 'calls': ad.calls})
    # the simulator's start-up in a fresh process (library load, engine import, first nvmlInit): a real
    # driver has its own nvmlInit cost instead, which the estimate adds from the real-hardware data
    sim_init = []
    for dummy in range(runs):
        out = subprocess.run([python, '-c', 'import time, pynvml; s = time.perf_counter(); pynvml.nvmlInit(); '
                              'print(time.perf_counter() - s); pynvml.nvmlShutdown()'],
                             env=menv, capture_output=True, text=True, check=True, cwd=work).stdout
        sim_init.append(float(out.strip().splitlines()[-1]))
    pynvml.nvmlInit()
    h = pynvml.nvmlDeviceGetHandleByIndex(0)
    per_call = []
    for dummy in range(5):
        n = 300
        s = time.perf_counter()
        for dummy in range(n):
            pynvml.nvmlDeviceGetMigMode(h)
        per_call.append((time.perf_counter() - s) / n)
    pynvml.nvmlShutdown()
    nvml_med = common.median([x['nvml'] for x in inproc])
    calls_med = common.median([x['calls'] for x in inproc])
    result['inprocess_noop'] = {
        'total_median': common.median([x['total'] for x in inproc]),
        'nvml_median': nvml_med,
        'python_median': common.median([x['total'] - x['nvml'] for x in inproc]),
        'adapter_calls': calls_med,
        'sim_us_per_call_in_converge': nvml_med / calls_med * 1e6,
        'sim_us_per_call_getmigmode': common.median(per_call) * 1e6,
        'sim_init_seconds': common.median(sim_init),
    }

    # 4. estimate with a real driver's per-call cost, function by function
    result['estimate'] = estimate(result, calls_med)
    # 5. full reconfiguration of 8 GPUs in one task (B, A, B, ...), via ansible and the module run directly
    apply_runs = []
    cur = 'a'
    for i in range(runs):
        nxt = 'b' if cur == 'a' else 'a'
        c0 = common.sim_calls(state)
        res = A.run_playbook(apply_pb, inv, env, os.path.join(work, 'apply-%d.log' % i), ['-e', '@' + (vars_b if nxt == 'b' else vars_a)])
        A.check(res, 'reconfiguration')
        d = common.calls_delta(c0, common.sim_calls(state))
        if not all(changed(res, 'mig_layout')):
            raise SystemExit('reconfiguration reported no change')
        apply_runs.append({'task': task_times(res, 'mig_layout')[0], 'playbook_wall': res['wall'], 'playbook_cpu': res['cpu'],
                           'calls': sum(d.values()),
                           'creates': sum(v for k, v in d.items() if 'Create' in k),
                           'destroys': sum(v for k, v in d.items() if 'Destroy' in k)})
        cur = nxt
    direct_apply = []
    for dummy in range(runs):
        nxt = 'b' if cur == 'a' else 'a'
        r = run_module_direct(python, module, margs_b if nxt == 'b' else margs_a, menv, work)
        if not r['changed']:
            raise SystemExit('direct reconfiguration reported no change')
        direct_apply.append(r)
        cur = nxt
    result['apply'] = {
        'task_median': common.median([r['task'] for r in apply_runs]),
        'playbook_wall_median': common.median([r['playbook_wall'] for r in apply_runs]),
        'playbook_cpu_median': common.median([r['playbook_cpu'] for r in apply_runs]),
        'calls_median': common.median([r['calls'] for r in apply_runs]),
        'creates_median': common.median([r['creates'] for r in apply_runs]),
        'destroys_median': common.median([r['destroys'] for r in apply_runs]),
        'runs': apply_runs,
        'direct_wall_median': common.median([r['wall'] for r in direct_apply]),
        'direct_cpu_median': common.median([r['user'] + r['sys'] for r in direct_apply]),
        'direct_user_median': common.median([r['user'] for r in direct_apply]),
        'direct_sys_median': common.median([r['sys'] for r in direct_apply]),
    }
    common.log('overhead apply: task %.2f s, module direct %.2f s wall / %.2f s CPU, %d NVML calls' % (
        result['apply']['task_median'], result['apply']['direct_wall_median'], result['apply']['direct_cpu_median'],
        result['apply']['calls_median']))
    common.write_json(args.out, result)
    return 0


if __name__ == '__main__':
    sys.exit(main())
