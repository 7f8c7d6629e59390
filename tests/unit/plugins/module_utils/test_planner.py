# Copyright (c) 2026 gpuops.mig contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import annotations

import dataclasses
import itertools
import random

import pytest

from ansible_collections.gpuops.mig.plugins.module_utils._model import DesiredGpu, DesiredInstance, GpuProcess, MigMode, PlanError
from ansible_collections.gpuops.mig.plugins.module_utils._planner import plan_gpu
from ansible_collections.gpuops.mig.plugins.module_utils._profiles import is_all_me, is_no_me
from ansible_collections.gpuops.mig.tests.unit.plugins.module_utils.helpers import MODELS, busy, execute, load, plan_host, shape
from ansible_collections.gpuops.mig.tests.unit.plugins.module_utils.planner_reference import brute_force_min_destroys

GPUS = {m: load(m) for m in MODELS}


_FEASIBLE = {}


def independent_feasible(gpu, profile_ids):
    """Brute force, written apart from the planner: caps, the +me.all rule, then every placement combination (DFS)."""
    key = (gpu.name, tuple(sorted(profile_ids)))
    if key not in _FEASIBLE:
        _FEASIBLE[key] = _independent_feasible(gpu, list(key[1]))
    return _FEASIBLE[key]


def _independent_feasible(gpu, profile_ids):
    profs = [gpu.profile_by_id(p) for p in profile_ids]
    for p in set(profile_ids):
        if profile_ids.count(p) > gpu.profile_by_id(p).instance_count:
            return False
    if any(is_all_me(p) for p in profs) and sum(1 for p in profs if not is_no_me(p)) > 1:
        return False
    # Media engines are not shared between GPU instances: the profile covering every slot holds the GPU's totals.
    whole = max(gpu.profiles, key=lambda p: (p.placement_size, p.decoders + p.encoders + p.jpeg_decoders + p.ofa_engines))
    for engine in ('decoders', 'encoders', 'jpeg_decoders', 'ofa_engines'):
        if sum(getattr(p, engine) for p in profs) > getattr(whole, engine):
            return False

    def dfs(i, used):
        if i == len(profs):
            return True
        for pl in profs[i].placements:
            cells = set(range(pl.start, pl.end))
            if not cells & used and dfs(i + 1, used | cells):
                return True
        return False
    return dfs(0, set())


def multisets(gpu):
    """Every multiset of GI profiles whose placement sizes add up to at most the slot count."""
    profs = sorted(gpu.profiles, key=lambda p: p.id)
    out = []

    def rec(i, cur, used):
        if i == len(profs):
            if cur:
                out.append(list(cur))
            return
        p = profs[i]
        n = 0
        while used + n * p.placement_size <= gpu.slot_count:
            rec(i + 1, cur + [p.id] * n, used + n * p.placement_size)
            n += 1
    rec(0, [], 0)
    return out


def desired(gpu, profile_ids, **kw):
    return DesiredGpu(index=gpu.index, mig_enabled=True, instances=tuple(DesiredInstance(profile_id=p, **kw) for p in profile_ids))


_MATERIALIZED = {}


def materialize(gpu, profile_ids):
    """A Gpu with MIG on and ``profile_ids`` created by our own plan (cached: Gpu values are immutable)."""
    key = (gpu.name, tuple(profile_ids))
    if key not in _MATERIALIZED:
        g = dataclasses.replace(gpu, mig_mode=MigMode(True, True))
        _MATERIALIZED[key] = execute(g, plan_gpu(g, desired(g, profile_ids)))
    return _MATERIALIZED[key]


@pytest.mark.parametrize('model', MODELS)
def test_every_multiset_from_empty(model):
    gpu = GPUS[model]
    feasible = infeasible = 0
    for ms in multisets(gpu):
        d = desired(gpu, ms)
        if independent_feasible(gpu, ms):
            plan = plan_gpu(gpu, d)
            assert plan.actions[0].action == 'set_mode' and plan.actions[0].mig_enabled is True
            after = execute(gpu, plan)
            assert sorted(gi.profile_id for gi in after.gpu_instances) == sorted(ms)
            assert shape(after.gpu_instances) == shape(plan.target_instances)
            feasible += 1
        else:
            with pytest.raises(PlanError):
                plan_gpu(gpu, d)
            infeasible += 1
    assert feasible > 10 and infeasible > 5


def maximal_layouts(gpu, skip_media=True):
    profs = [p for p in gpu.profiles if not (skip_media and ('+me' in p.name))]
    feas = [ms for ms in multisets(gpu) if all(p in [q.id for q in profs] for p in ms) and independent_feasible(gpu, ms)]
    return [ms for ms in feas if not any(independent_feasible(gpu, ms + [p.id]) for p in profs)]


def check_transition(gpu, cur_ids, new_ids):
    cur = materialize(gpu, cur_ids)
    d = desired(gpu, new_ids)
    plan = plan_gpu(cur, d)
    ref = brute_force_min_destroys(cur, d)
    assert plan.destroyed_gpu_instances == ref, (cur_ids, new_ids)
    after = execute(cur, plan)
    assert sorted(gi.profile_id for gi in after.gpu_instances) == sorted(new_ids)
    return plan


@pytest.mark.parametrize('model', ['h100-80gb', 'a100-40gb'])
def test_all_pairs_of_maximal_layouts(model):
    gpu = GPUS[model]
    maxi = maximal_layouts(gpu)
    assert len(maxi) >= 17
    n = 0
    for a, b in itertools.product(maxi, maxi):
        check_transition(gpu, a, b)
        n += 1
    assert n >= 289


def test_random_transitions_match_brute_force():
    rng = random.Random(20260501)
    n = 0
    for model in MODELS:
        gpu = GPUS[model]
        feas = [ms for ms in multisets(gpu) if independent_feasible(gpu, ms)]
        for dummy in range(60):
            check_transition(gpu, rng.choice(feas), rng.choice(feas))
            n += 1
    assert n >= 200


def test_idempotent_all_keep():
    for model in MODELS:
        gpu = GPUS[model]
        for ms in [m for m in multisets(gpu) if independent_feasible(gpu, m)][:40]:
            cur = materialize(gpu, ms)
            plan = plan_gpu(cur, desired(gpu, ms))
            assert not plan.changes
            assert all(a.action == 'keep' for a in plan.actions)
            assert len(plan.actions) == len(ms)


H100_1G, H100_2G, H100_3G, H100_4G, H100_7G = 19, 14, 9, 5, 0


def test_worked_example_docs_planner_md():
    """docs/planner.md: 1g.10gb x 7 -> 3g.40gb + 2g.20gb + 2 x 1g.10gb on an H100."""
    gpu = GPUS['h100-80gb']
    target = [H100_3G, H100_2G, H100_1G, H100_1G]
    # process on the 1g at slot 6: 1g cannot use slot 7, so 3g must take 4-7: refused before any change
    cur6 = busy(materialize(gpu, [H100_1G] * 7), 6, pid=4242)
    with pytest.raises(PlanError) as e:
        plan_gpu(cur6, desired(gpu, target))
    assert '4242' in str(e.value) and 'slot 6' in str(e.value)
    assert brute_force_min_destroys(cur6, desired(gpu, target)) is None
    # process on the 1g at slot 0: it and its neighbour at slot 1 are kept, 5 GIs go
    cur0 = busy(materialize(gpu, [H100_1G] * 7), 0, pid=4242)
    plan = plan_gpu(cur0, desired(gpu, target))
    busy_gi = [g for g in cur0.gpu_instances if g.placement.start == 0][0]
    assert any(a.action == 'keep' and a.gi_id == busy_gi.id for a in plan.actions)
    assert plan.destroyed_gpu_instances == brute_force_min_destroys(cur0, desired(gpu, target)) == 5
    creates = sorted((a.profile, a.placement.start) for a in plan.actions if a.action == 'create' and a.target == 'gpu_instance')
    assert creates == [('2g.20gb', 2), ('3g.40gb', 4)]
    after = execute(cur0, plan, processes=cur0.processes)
    assert sorted(g.profile_id for g in after.gpu_instances) == sorted(target)


def test_in_use_refusal_names_pids():
    gpu = GPUS['h100-80gb']
    cur = busy(materialize(gpu, [H100_1G] * 7), 6, pid=4242)
    with pytest.raises(PlanError) as e:
        plan_gpu(cur, desired(gpu, [H100_7G]))
    msg = str(e.value)
    assert '4242' in msg and 'GPU 0' in msg and '1g.10gb' in msg and 'slot 6' in msg
    # the layout could keep a 1g, but only elsewhere: 3g at 4-7 is declared
    with pytest.raises(PlanError) as e:
        plan_gpu(cur, DesiredGpu(0, True, (DesiredInstance(H100_3G, placement_start=4), DesiredInstance(H100_4G))))
    assert '4242' in str(e.value)
    # two busy instances, one conflicting
    cur2 = busy(busy(materialize(gpu, [H100_1G] * 7), 0, pid=11), 6, pid=22)
    with pytest.raises(PlanError) as e:
        plan_gpu(cur2, desired(gpu, [H100_4G, H100_3G]))
    assert '22' in str(e.value)


def test_disable_refused_when_busy_and_plans_destroys():
    gpu = GPUS['h100-80gb']
    cur = materialize(gpu, [H100_3G, H100_3G])
    plan = plan_gpu(cur, DesiredGpu(0, False))
    assert [a.action for a in plan.actions] == ['destroy'] * 4 + ['set_mode']
    assert plan.actions[-1].mig_enabled is False
    with pytest.raises(PlanError) as e:
        plan_gpu(busy(cur, 4, pid=77), DesiredGpu(0, False))
    assert '77' in str(e.value)
    assert plan_gpu(gpu, DesiredGpu(0, False)).actions == ()


def test_pending_modes():
    gpu = GPUS['h100-80gb']
    pend = dataclasses.replace(gpu, mig_mode=MigMode(False, True))
    assert [a.action for a in plan_gpu(pend, DesiredGpu(0, False)).actions] == ['set_mode']
    plan = plan_gpu(pend, desired(gpu, [H100_7G]))
    assert plan.actions[0].action == 'set_mode' and plan.actions[1].action == 'create'


def test_declared_placements():
    gpu = GPUS['h100-80gb']
    plan = plan_gpu(gpu, DesiredGpu(0, True, (DesiredInstance(H100_3G, placement_start=4), DesiredInstance(H100_2G, placement_start=0))))
    creates = {a.profile: a.placement.start for a in plan.actions if a.action == 'create' and a.target == 'gpu_instance'}
    assert creates == {'3g.40gb': 4, '2g.20gb': 0}
    with pytest.raises(PlanError) as e:
        plan_gpu(gpu, DesiredGpu(0, True, (DesiredInstance(H100_3G, placement_start=2),)))
    assert 'placement 2 is not a legal start for 3g.40gb; legal: 0, 4' in str(e.value)
    with pytest.raises(PlanError) as e:
        plan_gpu(gpu, DesiredGpu(0, True, (DesiredInstance(H100_3G, placement_start=0), DesiredInstance(H100_2G, placement_start=2))))
    assert 'overlap' in str(e.value)
    # declared placement decides what is kept: a 3g at 0 is not the declared 3g at 4
    cur = materialize(gpu, [H100_3G])
    start = cur.gpu_instances[0].placement.start
    other = 4 if start == 0 else 0
    plan = plan_gpu(cur, DesiredGpu(0, True, (DesiredInstance(H100_3G, placement_start=other),)))
    assert plan.destroyed_gpu_instances == 1
    plan = plan_gpu(cur, DesiredGpu(0, True, (DesiredInstance(H100_3G, placement_start=start),)))
    assert not plan.changes


def test_infeasible_reasons():
    gpu = GPUS['h100-80gb']
    with pytest.raises(PlanError) as e:
        plan_gpu(gpu, desired(gpu, [H100_4G, H100_3G, H100_3G]))
    msg = str(e.value)
    assert '4g.40gb' in msg and '3g.40gb' in msg and 'fits only at 0-3' in msg and '0-3 or 4-7' in msg and '8 slots' in msg
    with pytest.raises(PlanError) as e:
        plan_gpu(gpu, desired(gpu, [H100_3G] * 3))
    assert '3 x 3g.40gb: at most 2 on this GPU' in str(e.value)
    with pytest.raises(PlanError) as e:
        plan_gpu(gpu, desired(gpu, [20, 20]))
    assert 'at most 1' in str(e.value)


def test_compute_instance_layouts():
    gpu = GPUS['h100-80gb']
    d = DesiredGpu(0, True, (DesiredInstance(H100_3G, compute_profile_ids=(0, 0, 0)),))
    plan = plan_gpu(gpu, d)
    cis = [a for a in plan.actions if a.target == 'compute_instance']
    assert sorted(a.placement.start for a in cis) == [0, 1, 2] and all(a.gi_ref is not None for a in cis)
    cur = execute(dataclasses.replace(gpu, mig_mode=MigMode(True, True)), plan_gpu(dataclasses.replace(gpu, mig_mode=MigMode(True, True)), d))
    assert not plan_gpu(cur, d).changes
    # same GI, other CI structure: the GI is kept, only its CIs change
    plan = plan_gpu(cur, desired(gpu, [H100_3G]))
    assert plan.destroyed_gpu_instances == 0
    assert [a.action for a in plan.actions if a.target == 'compute_instance'] == ['destroy'] * 3 + ['create']
    after = execute(cur, plan)
    assert shape(after.gpu_instances) == [(H100_3G, (2,))]
    # a busy 1c CI (at compute slice 2) stays; the other two are replaced by a 2c, which NVML aligns to slice 0
    kept_ci = [c for c in cur.gpu_instances[0].compute_instances if c.placement.start == 2][0]
    b = dataclasses.replace(cur, processes=(GpuProcess(pid=99, gi=cur.gpu_instances[0].id, ci=kept_ci.id),))
    plan = plan_gpu(b, DesiredGpu(0, True, (DesiredInstance(H100_3G, compute_profile_ids=(1, 0)),)))
    assert not any(a.action == 'destroy' and a.ci_id == kept_ci.id for a in plan.actions)
    execute(b, plan, processes=b.processes)
    with pytest.raises(PlanError) as e:
        plan_gpu(b, desired(gpu, [H100_3G]))
    assert '99' in str(e.value)
    with pytest.raises(PlanError):
        plan_gpu(gpu, DesiredGpu(0, True, (DesiredInstance(H100_3G, compute_profile_ids=(0, 0, 0, 0)),)))
    # the busy 1c at slice 0 blocks the only aligned 2c placement: refused before any change, naming the PID
    b0 = busy(cur, cur.gpu_instances[0].placement.start, pid=77)
    with pytest.raises(PlanError) as e:
        plan_gpu(b0, DesiredGpu(0, True, (DesiredInstance(H100_3G, compute_profile_ids=(1, 0)),)))
    assert '77' in str(e.value)


def test_rtx_all_me_rule():
    gpu = GPUS['rtx-pro-6000']
    ids = {p.name: p.id for p in gpu.profiles}
    plan_gpu(gpu, desired(gpu, [ids['1g.24gb+me.all'], ids['1g.24gb-me'], ids['2g.48gb-me']]))
    with pytest.raises(PlanError) as e:
        plan_gpu(gpu, desired(gpu, [ids['1g.24gb+me.all'], ids['1g.24gb']]))
    assert '-me' in str(e.value)


def test_plan_host_and_non_mig():
    gpu = GPUS['h100-80gb']
    plans = plan_host([gpu], {0: desired(gpu, [H100_7G])})
    assert len(plans) == 1 and plans[0].changes
    nomig = dataclasses.replace(gpu, mig_capable=False, mig_mode=None, profiles=())
    assert plan_gpu(nomig, DesiredGpu(0, False)).actions == ()
    with pytest.raises(PlanError):
        plan_gpu(nomig, DesiredGpu(0, True))
    with pytest.raises(PlanError):
        plan_host([gpu], {3: DesiredGpu(3, False)})


def test_processes_on_whole_gpu_do_not_block_enable():
    gpu = dataclasses.replace(GPUS['a30-24gb'], processes=(GpuProcess(pid=1, gi=None, ci=None),))
    assert plan_gpu(gpu, desired(gpu, [0])).changes
