# Copyright (c) 2026 gpuops.mig contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Benchmark 4: scale. N simulated hosts (8 x H100 80GB each, own simulator state), one machine.

Every host is an inventory host with ``ansible_connection=local`` and its own ``MIGSIM_STATE`` (host
var, passed through the play's ``environment:``) and lock file. Per inventory size:

* apply: ``mig_layout`` from empty MIG-enabled GPUs to the balanced layout on all 8 GPUs;
* no-op: the same task again (everything converged);
* trivial: ``ansible.builtin.command: /bin/true`` on the same inventory, same play settings.

forks: the apply at ``--trial-size`` hosts runs once with each candidate; the fastest is used for
every other run. Runs whose projected time (wall per host of the largest size measured so far)
would overrun ``--budget-s`` (the benchmark's remaining time, from run.sh) are skipped and
reported. Larger sizes run once each (no repetitions: the whole benchmark must stay under 20 min
on a 2-core machine).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
import typing as t

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import common  # noqa: E402

import ansible_run as A  # noqa: E402

GPUS = 8
MODEL = 'h100-80gb'
LAYOUT = [{'devices': 'all', 'mig_enabled': True, 'mig_devices': {'3g.40gb': 1, '2g.20gb': 1, '1g.10gb': 2}}]

PLAY = """- name: gpuops.mig scale benchmark
  hosts: all
  gather_facts: false
  environment:
    LD_LIBRARY_PATH: "{{ sim_lib }}"
    MIGSIM_STATE: "{{ migsim_state }}"
  tasks:
%s"""
LAYOUT_TASK = """    - name: converge
      gpuops.mig.mig_layout:
        layouts: "{{ layout }}"
        lock_file: "{{ lock_file }}"
"""
TRUE_TASK = """    - name: trivial
      ansible.builtin.command: /bin/true
      changed_when: false
"""


def fresh_states(core: t.Any, paths: list[str]) -> None:
    for i, p in enumerate(paths):
        core.write_new_state(p, core.new_state([(MODEL, GPUS)], mig=True, seed='bench-host-%04d' % i))


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument('--work', required=True)
    ap.add_argument('--out', required=True)
    ap.add_argument('--hosts', default='16 64 256')
    ap.add_argument('--forks', default='8 16', help='candidates; the fastest apply at --trial-size is used')
    ap.add_argument('--trial-size', type=int, default=16)
    ap.add_argument('--noop-max', type=int, default=64, help='largest inventory that also gets a no-op run')
    ap.add_argument('--budget-s', type=float, default=900.0)
    args = ap.parse_args()
    t_start = time.perf_counter()
    work = os.path.join(args.work, 'scale')
    os.makedirs(work, exist_ok=True)
    sizes = sorted(int(x) for x in args.hosts.split())
    candidates = [int(x) for x in args.forks.split()]
    nmax = max(sizes)

    core = common.sim_core()
    states = [os.path.join(work, 'host-%04d.json' % i) for i in range(nmax)]
    fresh_states(core, states)
    senv = common.sim_env(states[0])
    python = A.ansible_python()
    vars_file = os.path.join(work, 'vars.json')
    with open(vars_file, 'w', encoding='utf-8') as f:
        json.dump({'layout': LAYOUT}, f)
    pb_apply = os.path.join(work, 'converge.yml')
    pb_true = os.path.join(work, 'trivial.yml')
    with open(pb_apply, 'w', encoding='utf-8') as f:
        f.write(PLAY % LAYOUT_TASK)
    with open(pb_true, 'w', encoding='utf-8') as f:
        f.write(PLAY % TRUE_TASK)

    def inventory(n: int) -> str:
        path = os.path.join(work, 'inventory-%d.ini' % n)
        with open(path, 'w', encoding='utf-8') as f:
            f.write('[gpuhosts]\n')
            for i in range(n):
                f.write('h%04d migsim_state=%s lock_file=%s\n' % (i, states[i], os.path.join(work, 'lock-%04d' % i)))
            f.write('\n[gpuhosts:vars]\nansible_connection=local\nansible_python_interpreter=%s\nsim_lib=%s\n'
                    % (python, senv['LD_LIBRARY_PATH']))
        return path

    def run(kind: str, n: int, forks: int, label: str) -> dict[str, t.Any]:
        pb = pb_true if kind == 'trivial' else pb_apply
        if kind == 'apply':
            fresh_states(core, states[:n])
        res = A.run_playbook(pb, inventory(n), A.base_env(work, forks=forks), os.path.join(work, '%s.log' % label),
                             ['-e', '@' + vars_file])
        A.check(res, '%s %d hosts' % (kind, n))
        results = [r for tk in res['timer']['tasks'] for r in tk['results']]
        if len(results) != n:
            raise SystemExit('%s %d hosts: %d results' % (kind, n, len(results)))
        if kind == 'apply' and not all(r['changed'] for r in results):
            raise SystemExit('apply %d hosts: some hosts reported no change' % n)
        if kind == 'noop' and any(r['changed'] for r in results):
            raise SystemExit('no-op %d hosts: some hosts reported a change' % n)
        if kind in ('apply', 'noop'):
            for p in states[:n]:
                with open(p, encoding='utf-8') as f:
                    st = json.load(f)
                if any(len(g['gpu_instances']) != 4 for g in st['gpus']):
                    raise SystemExit('%s %d hosts: %s not converged' % (kind, n, p))
        out = {'kind': kind, 'hosts': n, 'forks': forks, 'wall': res['wall'], 'cpu': res['cpu'],
               'task_seconds': res['timer']['tasks'][0]['seconds'], 'load_after': common.loadavg()}
        common.log('scale %-7s %4d hosts forks %2d: %.1f s wall, %.1f s CPU (load %s)' % (
            kind, n, forks, res['wall'], res['cpu'], out['load_after']))
        return out

    runs: list[dict[str, t.Any]] = []
    skipped: list[dict[str, t.Any]] = []
    trial: dict[int, float] = {}
    per_host: dict[str, tuple[int, float]] = {}     # kind -> (hosts, wall seconds per host) of the largest run so far
    trial_n = min([n for n in sizes if n >= args.trial_size] or [nmax])
    chosen = candidates[0]

    def fits(kinds: t.Sequence[str], n: int) -> bool:
        elapsed = time.perf_counter() - t_start
        if not all(k in per_host for k in kinds):
            return True
        projected = sum(per_host[k][1] * n for k in kinds)
        if elapsed + projected <= args.budget_s:
            return True
        skipped.append({'hosts': n, 'kinds': list(kinds), 'projected_s': round(projected),
                        'left_s': round(args.budget_s - elapsed)})
        common.log('scale: skipping %s at %d hosts: projected %.0f s, %.0f s of the budget left' % (
            '+'.join(kinds), n, projected, args.budget_s - elapsed))
        return False

    def record(r: dict[str, t.Any]) -> None:
        runs.append(r)
        k = r['kind']
        if k not in per_host or r['hosts'] >= per_host[k][0]:
            per_host[k] = (r['hosts'], r['wall'] / r['hosts'])

    # 1. the forks trial (apply) at the trial size, then trivial and no-op there
    for forks in candidates:
        record(dict(run('apply', trial_n, forks, 'apply-%d-f%d' % (trial_n, forks)), trial=True))
        trial[forks] = runs[-1]['wall']
    chosen = min(trial, key=lambda f: trial[f])
    record(run('trivial', trial_n, chosen, 'trivial-%d' % trial_n))
    record(run('noop', trial_n, chosen, 'noop-%d' % trial_n))
    # 2. the other sizes, apply + trivial, smallest first; then their no-op runs
    others = [n for n in sizes if n != trial_n]
    for n in others:
        if fits(('apply', 'trivial'), n):
            record(run('apply', n, chosen, 'apply-%d' % n))
            record(run('trivial', n, chosen, 'trivial-%d' % n))
    for n in others:
        if n <= args.noop_max and any(r['hosts'] >= n and r['kind'] == 'apply' for r in runs) and fits(('noop',), n):
            record(run('noop', n, chosen, 'noop-%d' % n))
    common.write_json(args.out, {'gpus_per_host': GPUS, 'model': MODEL, 'layout': LAYOUT, 'forks_candidates': candidates,
                                 'forks_chosen': chosen, 'trial_hosts': trial_n, 'forks_trial_apply_wall': trial, 'runs': runs,
                                 'skipped': skipped, 'budget_s': args.budget_s,
                                 'seconds': round(time.perf_counter() - t_start, 1)})
    return 0


if __name__ == '__main__':
    sys.exit(main())
