# Copyright (c) 2026 gpuops.mig contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Benchmark 1: disruption. GPU instances destroyed per layout transition: ours, the minimum, mig-parted.

Corpus: every ordered pair (A, B), A != B, among the maximal layouts (layouts.py) of each model.
The GPU starts in layout A, with placements made one of two ways:

* ``planner``: A as the collection's planner places it on an empty GPU (its ``target_instances``,
  turned into a ``Gpu`` directly);
* ``driver``: A as mig-parted's method leaves it on the simulator (driver default placement,
  first order that works), read back through the collection's NVML adapter. This is the GPU a
  fleet migrating from mig-parted starts from.

For each transition:

* ours = ``plan_gpu(before, B).destroyed_gpu_instances``, after checking the plan is sound (the
  target has B's profiles at legal, disjoint placements; kept GIs are unchanged GIs of the
  before-state; destroyed = before - kept);
* minimum = ``planner_reference.brute_force_min_destroys`` (tests/unit/plugins/module_utils), cross-checked by ``own_min_destroys``
  below (a third, independent exhaustive search);
* mig-parted = every GI on the GPU, because it rebuilds a GPU whose profile counts differ in any way.

Exits 1 if ours differs from the minimum anywhere, or the two brute forces disagree.
"""

from __future__ import annotations

import argparse
import collections
import itertools
import os
import sys
import time
import typing as t

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import common  # noqa: E402

common.setup_collection_path()

from ansible_collections.gpuops.mig.plugins.module_utils._model import (  # noqa: E402
    ComputeInstance, Gpu, GpuInstance, Placement)
from ansible_collections.gpuops.mig.plugins.module_utils._planner import plan_gpu  # noqa: E402
from ansible_collections.gpuops.mig.plugins.module_utils._profiles import full_compute_profile  # noqa: E402

import layouts as L  # noqa: E402
from ansible_collections.gpuops.mig.tests.unit.plugins.module_utils import planner_reference  # noqa: E402
import migparted_method as MP  # noqa: E402


def mask(p: Placement) -> int:
    return ((1 << p.size) - 1) << p.start


def own_min_destroys(gpu: Gpu, before: t.Sequence[GpuInstance], target: L.Layout) -> int | None:
    """Independent exhaustive search: largest kept subset whose profiles fit in B and the rest of B places around it."""
    want = dict(target)
    existing = list(before)

    def place(items: list[t.Any], occ: int) -> bool:
        if not items:
            return True
        for p in items[0].placements:
            m = mask(p)
            if not occ & m and place(items[1:], occ | m):
                return True
        return False

    for k in range(len(existing), -1, -1):
        for kept in itertools.combinations(existing, k):
            have = collections.Counter(gi.profile_id for gi in kept)
            if any(n > want.get(pid, 0) for pid, n in have.items()):
                continue
            occ = 0
            clash = False
            for gi in kept:
                if occ & mask(gi.placement):
                    clash = True
                occ |= mask(gi.placement)
            if clash:
                continue
            rest = [gpu.profile_by_id(pid) for pid, n in target for dummy in range(n - have.get(pid, 0))]
            rest.sort(key=lambda p: -p.placement_size)
            if place(rest, occ):
                return len(existing) - k
    return None


def check_plan(gpu: Gpu, before: Gpu, target: L.Layout, plan: t.Any) -> str:
    """Empty string when the plan is sound, else what is wrong."""
    got = collections.Counter(gi.profile_id for gi in plan.target_instances)
    if got != collections.Counter(dict(target)):
        return 'target profiles %s != %s' % (dict(got), dict(target))
    occ = 0
    for gi in plan.target_instances:
        prof = gpu.profile_by_id(gi.profile_id)
        if gi.placement not in prof.placements:
            return 'illegal placement %s for %s' % (gi.placement, prof.name)
        if occ & mask(gi.placement):
            return 'overlapping placements'
        occ |= mask(gi.placement)
    by_id = {gi.id: gi for gi in before.gpu_instances}
    kept = [gi for gi in plan.target_instances if gi.id is not None]
    for gi in kept:
        old = by_id.get(gi.id)
        if old is None or old.placement != gi.placement or old.profile_id != gi.profile_id:
            return 'kept GI %s is not an unchanged GI of the before-state' % gi.id
    if len(before.gpu_instances) - len(kept) != plan.destroyed_gpu_instances:
        return 'destroy count %d != before %d - kept %d' % (plan.destroyed_gpu_instances, len(before.gpu_instances), len(kept))
    return ''


def gpu_with(empty: Gpu, instances: t.Sequence[GpuInstance]) -> Gpu:
    import dataclasses
    return dataclasses.replace(empty, gpu_instances=tuple(sorted(instances, key=lambda g: (g.placement.start, g.id))))


def placed_gi(gpu: Gpu, gi_id: int, profile_id: int, placement: Placement) -> GpuInstance:
    """A GI with its full-size CI, as a fresh ``create`` would leave it."""
    prof = t.cast(t.Any, gpu.profile_by_id(profile_id))
    ci = t.cast(t.Any, full_compute_profile(gpu, prof))
    return GpuInstance(id=gi_id, profile_id=prof.id, profile=prof.name, placement=placement,
                       compute_instances=(ComputeInstance(id=0, profile_id=ci.id, profile=ci.name,
                                                          placement=Placement(0, ci.slice_count)),))


def planner_before(empty: Gpu, layout: L.Layout) -> Gpu:
    """Layout A as our planner places it, IDs assigned like fresh creations (1, 2, ...; CI 0)."""
    plan = plan_gpu(empty, L.desired(empty, layout))
    gis = []
    for n, gi in enumerate(plan.target_instances, start=1):
        cis = tuple(ComputeInstance(id=i, profile_id=c.profile_id, profile=c.profile, placement=c.placement)
                    for i, c in enumerate(gi.compute_instances))
        gis.append(GpuInstance(id=n, profile_id=gi.profile_id, profile=gi.profile, placement=gi.placement, compute_instances=cis))
    return gpu_with(empty, gis)


def run_model(job: tuple[str, str]) -> dict[str, t.Any]:
    """Everything for one model, in its own process with its own one-GPU simulator state."""
    model, work = job
    state = os.path.join(work, 'disruption-%s.json' % model)
    common.migsim('init', state, '--gpus', '%s:1' % model, '--mig', 'enabled')
    common.activate_sim(state)
    import pynvml
    from ansible_collections.gpuops.mig.plugins.module_utils._nvml import NvmlAdapter

    result: dict[str, t.Any] = {'model': model, 'mismatches': [], 'reference_disagreements': [], 'unsound_plans': []}
    idx = 0
    with NvmlAdapter() as adapter:
        empty = adapter.read_gpu(idx)
        t0 = time.perf_counter()
        valid = L.valid_layouts(empty)
        maximal = L.maximal_layouts(empty, valid)
        # cross-check against mig-hardware.md section 3 (8-slot table, ignoring +me): it lists 17 maximal layouts
        # using all 7 compute slices and counts 38 "maximal multisets incl. partially used ones"
        no_me = [p.id for p in empty.profiles if p.name.endswith('+me')]
        valid_nome = L.valid_layouts(empty, exclude=lambda p: p.id in no_me)
        maximal_nome = L.maximal_layouts(empty, valid_nome, exclude=lambda p: p.id in no_me)
        placed_nome = L.maximal_placed_layouts(empty, exclude=lambda p: p.id in no_me)
        total_slices = max(p.slice_count for p in empty.profiles)
        info: dict[str, t.Any] = {
            'gpu_name': empty.name,
            'profiles': [p.name for p in L.ordered_profiles(empty)],
            'valid_layouts': len(valid),
            'maximal_layouts': len(maximal),
            'maximal_without_me': len(maximal_nome),
            'maximal_without_me_all_slices': sum(1 for m in maximal_nome if L.compute_slices(empty, m) == total_slices),
            'maximal_placed_without_me': len(placed_nome),
            'maximal_placed_without_me_multisets': len({L.layout_of(empty, [pid for pid, dummy in pl]) for pl in placed_nome}),
            'maximal_names': [L.name(empty, m) for m in maximal],
            'variants': {},
        }
        # before-states: variant -> [(label, multiset, Gpu)]
        befores: dict[str, list[tuple[str, L.Layout, Gpu]]] = {'planner': [], 'driver': [], 'placed': []}
        driver_failed = []
        handle = pynvml.nvmlDeviceGetHandleByIndex(idx)
        for lay in maximal:
            befores['planner'].append((L.name(empty, lay), lay, planner_before(empty, lay)))
            common.sim_reset_gpus(state, [idx])
            entries = MP.entries_for(empty, dict(lay), full_compute_profile)
            out = MP.apply(pynvml, handle, entries, lambda: common.sim_reset_gpus(state, [idx]))
            if out.ok:
                befores['driver'].append((L.name(empty, lay), lay, adapter.read_gpu(idx, with_remaining=False)))
            else:
                driver_failed.append(L.name(empty, lay))
            common.sim_reset_gpus(state, [idx])
        placed = L.maximal_placed_layouts(empty)
        for items in placed:
            gis = [placed_gi(empty, n, pid, pl) for n, (pid, pl) in enumerate(items, start=1)]
            lay = L.layout_of(empty, [pid for pid, dummy in items])
            befores['placed'].append((L.placed_name(empty, items), lay, gpu_with(empty, gis)))
        info['driver_before_unreachable'] = driver_failed
        info['maximal_placed_layouts'] = len(placed)
        info['maximal_placed_multisets'] = len({entry[1] for entry in befores['placed']})
        for variant, before_list in befores.items():
            rows = []
            plan_times = []
            noop_bad = []
            noops = 0
            for a_name, a, before in before_list:
                for b in maximal:
                    s = time.perf_counter()
                    plan = plan_gpu(before, L.desired(before, b))
                    plan_times.append(time.perf_counter() - s)
                    if b == a:
                        noops += 1
                        if plan.changes:
                            noop_bad.append(a_name)
                        continue
                    ours = plan.destroyed_gpu_instances
                    problem = check_plan(empty, before, b, plan)
                    ref = planner_reference.brute_force_min_destroys(before, L.desired(before, b))
                    own = own_min_destroys(empty, before.gpu_instances, b)
                    mp = len(before.gpu_instances)     # the multisets differ: mig-parted rebuilds the GPU
                    rows.append((ours, ref, own, mp))
                    label = {'model': model, 'variant': variant, 'from': a_name, 'to': L.name(empty, b),
                             'ours': ours, 'reference_min': ref, 'own_min': own, 'mig_parted': mp}
                    if problem:
                        result['unsound_plans'].append(dict(label, problem=problem))
                    if ref != own:
                        result['reference_disagreements'].append(label)
                    if ref is None or ours != ref:
                        result['mismatches'].append(label)
            info['variants'][variant] = {
                'before_states': len(before_list),
                'transitions': len(rows),
                'ours': sum(r[0] for r in rows),
                'minimum': sum(r[1] or 0 for r in rows),
                'mig_parted': sum(r[3] for r in rows),
                'ours_equals_min': sum(1 for r in rows if r[0] == r[1]),
                'ours_zero': sum(1 for r in rows if r[0] == 0),
                'max_ours': max((r[0] for r in rows), default=0),
                'noop_transitions': noops,
                'noop_with_changes': noop_bad,
                'plan_ms_median': round(common.median(plan_times) * 1e3, 3),
                'plan_ms_max': round(max(plan_times, default=0) * 1e3, 3),
            }
        info['seconds'] = round(time.perf_counter() - t0, 1)
        result['info'] = info
        common.log('disruption %s: %d valid, %d maximal, %s (%.1f s)' % (
            model, len(valid), len(maximal),
            ', '.join('%s: ours %d / min %d / mig-parted %d over %d' % (
                v, d['ours'], d['minimum'], d['mig_parted'], d['transitions']) for v, d in info['variants'].items()),
            info['seconds']))
    return result


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument('--work', required=True)
    ap.add_argument('--out', required=True)
    ap.add_argument('--models', default=','.join(common.MODELS))
    ap.add_argument('--jobs', type=int, default=2)
    args = ap.parse_args()
    models = args.models.split(',')
    result: dict[str, t.Any] = {'models': {}, 'mismatches': [], 'reference_disagreements': [], 'unsound_plans': []}
    jobs = [(m, args.work) for m in models]
    if args.jobs > 1:
        import multiprocessing
        with multiprocessing.get_context('spawn').Pool(min(args.jobs, len(jobs))) as pool:
            parts = list(pool.imap_unordered(run_model, jobs))
    else:
        parts = [run_model(j) for j in jobs]
    for part in sorted(parts, key=lambda p: models.index(p['model'])):
        result['models'][part['model']] = part['info']
        for k in ('mismatches', 'reference_disagreements', 'unsound_plans'):
            result[k] += part[k]
    common.write_json(args.out, result)
    bad = result['mismatches'] or result['reference_disagreements'] or result['unsound_plans'] or any(
        d['noop_with_changes'] for m in result['models'].values() for d in m['variants'].values())
    if bad:
        common.log('disruption: CLAIM FAILED: %d mismatches, %d reference disagreements, %d unsound plans' % (
            len(result['mismatches']), len(result['reference_disagreements']), len(result['unsound_plans'])))
        return 1
    return 0


if __name__ == '__main__':
    sys.exit(main())
