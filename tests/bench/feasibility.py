# Copyright (c) 2026 gpuops.mig contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Benchmark 2: feasibility. Every valid layout applied to an empty MIG-enabled GPU on the simulator.

* ours: ``_converge.converge`` with the collection's NVML adapter (one NVML session per layout, as
  one module run), ``layouts: [{devices: [0], mig_enabled: true, mig_devices: {...}}]``: planner,
  explicit placements (``nvmlDeviceCreateGpuInstanceWithPlacement``);
* mig-parted's method (migparted_method.py): driver default placement, largest first, then every
  distinct order, clearing the GPU between tries.

Per layout: applied or not (checked by reading the simulator's state: the GI profile multiset must
equal the layout), NVML create calls (GI + CI creates, failed ones included), orders tried.
"""

from __future__ import annotations

import argparse
import collections
import json
import math
import os
import sys
import time
import typing as t

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import common  # noqa: E402

common.setup_collection_path()

from ansible_collections.gpuops.mig.plugins.module_utils._converge import ConvergeError, converge  # noqa: E402
from ansible_collections.gpuops.mig.plugins.module_utils._profiles import full_compute_profile  # noqa: E402

import layouts as L  # noqa: E402
import migparted_method as MP  # noqa: E402

OUR_CREATES = ('nvmlDeviceCreateGpuInstanceWithPlacement', 'nvmlGpuInstanceCreateComputeInstanceWithPlacement')


def sim_multiset(state_path: str) -> collections.Counter:
    with open(state_path, encoding='utf-8') as f:
        gpu = json.load(f)['gpus'][0]
    return collections.Counter(gi['profile_id'] for gi in gpu['gpu_instances'])


def stats(values: list[int]) -> dict[str, t.Any]:
    return {'median': common.median(values), 'max': max(values, default=0), 'total': sum(values)}


def run_model(job: tuple[str, str]) -> tuple[str, dict[str, t.Any]]:
    """One model in its own process, with its own one-GPU simulator state."""
    model, work = job
    state = os.path.join(work, 'feasibility-%s.json' % model)
    common.migsim('init', state, '--gpus', '%s:1' % model, '--mig', 'enabled')
    common.activate_sim(state)
    import pynvml
    from ansible_collections.gpuops.mig.plugins.module_utils._nvml import NvmlAdapter
    with NvmlAdapter() as adapter:
        empty = adapter.read_gpu(0)
    valid = L.valid_layouts(empty)
    rows = []
    t0 = time.perf_counter()
    for lay in valid:
        want = collections.Counter(dict(lay))
        row: dict[str, t.Any] = {'layout': L.name(empty, lay), 'instances': sum(want.values())}
        # ours
        common.sim_reset_gpus(state)
        c0 = common.sim_calls(state)
        s = time.perf_counter()
        try:
            with NvmlAdapter() as adapter:
                converge(adapter, layouts=[{'devices': [0], 'mig_enabled': True, 'mig_devices': L.mig_devices(empty, lay)}])
            err = ''
        except ConvergeError as exc:
            err = str(exc)
        row['ours_seconds'] = time.perf_counter() - s
        d = common.calls_delta(c0, common.sim_calls(state))
        row['ours_creates'] = sum(d.get(k, 0) for k in OUR_CREATES)
        row['ours_calls'] = sum(d.values())
        row['ours_ok'] = not err and sim_multiset(state) == want
        row['ours_error'] = err[:300]
        # mig-parted's method
        common.sim_reset_gpus(state)
        pynvml.nvmlInit()
        try:
            handle = pynvml.nvmlDeviceGetHandleByIndex(0)
            entries = MP.entries_for(empty, dict(lay), full_compute_profile)
            out = MP.apply(pynvml, handle, entries, lambda: common.sim_reset_gpus(state))
        finally:
            pynvml.nvmlShutdown()
        row['mp_ok'] = out.ok and sim_multiset(state) == want
        row['mp_attempts'] = out.attempts
        row['mp_first_order_ok'] = out.first_order_ok
        row['mp_creates'] = out.creates
        row['mp_destroys'] = out.destroys
        row['mp_error'] = out.error
        row['mp_distinct_orders'] = math.factorial(sum(want.values())) // math.prod(math.factorial(n) for n in want.values())
        rows.append(row)
    ours_fail = [r for r in rows if not r['ours_ok']]
    mp_fail = [r for r in rows if not r['mp_ok']]
    info = {
        'gpu_name': empty.name,
        'layouts': len(rows),
        'ours_failures': [{'layout': r['layout'], 'error': r['ours_error']} for r in ours_fail],
        'mp_failures': [{'layout': r['layout'], 'attempts': r['mp_attempts'], 'creates': r['mp_creates'],
                         'error': r['mp_error']} for r in mp_fail],
        'mp_needed_reorder': [{'layout': r['layout'], 'attempts': r['mp_attempts']} for r in rows
                              if r['mp_ok'] and not r['mp_first_order_ok']],
        'ours_creates': stats([r['ours_creates'] for r in rows]),
        'ours_calls': stats([r['ours_calls'] for r in rows]),
        'ours_ms': {'median': round(common.median([r['ours_seconds'] for r in rows]) * 1e3, 1)},
        'mp_creates': stats([r['mp_creates'] for r in rows]),
        'mp_attempts': stats([r['mp_attempts'] for r in rows]),
        'mp_destroys': stats([r['mp_destroys'] for r in rows]),
        'max_distinct_orders': max((r['mp_distinct_orders'] for r in rows), default=0),
        'seconds': round(time.perf_counter() - t0, 1),
        'rows': rows,
    }
    common.log('feasibility %s: %d layouts; ours %d failed, creates total %d; mig-parted method %d failed, %d reordered, creates total %d (%.1f s)' % (
        model, len(rows), len(ours_fail), sum(r['ours_creates'] for r in rows), len(mp_fail),
        len(info['mp_needed_reorder']), sum(r['mp_creates'] for r in rows),
        info['seconds']))
    return model, info


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument('--work', required=True)
    ap.add_argument('--out', required=True)
    ap.add_argument('--models', default=','.join(common.MODELS))
    ap.add_argument('--jobs', type=int, default=2)
    args = ap.parse_args()
    models = args.models.split(',')
    jobs = [(m, args.work) for m in models]
    if args.jobs > 1:
        import multiprocessing
        with multiprocessing.get_context('spawn').Pool(min(args.jobs, len(jobs))) as pool:
            parts = dict(pool.imap_unordered(run_model, jobs))
    else:
        parts = dict(run_model(j) for j in jobs)
    result: dict[str, t.Any] = {'models': {m: parts[m] for m in models}, 'jobs': args.jobs, 'max_orders_cap': MP.MAX_ORDERS}
    common.write_json(args.out, result)
    return 0


if __name__ == '__main__':
    sys.exit(main())
