# Copyright (c) 2026 gpuops.mig contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import annotations

import dataclasses
import json
import os
import random

import pytest

from ansible_collections.gpuops.mig.plugins.module_utils._adopt import current_layout, current_mig_parted_config
from ansible_collections.gpuops.mig.plugins.module_utils._model import (
    DesiredGpu, DesiredInstance, GpuProcess, MigMode, SpecError, gpu_from_dict,
)
from ansible_collections.gpuops.mig.plugins.module_utils._planner import plan_gpu
from ansible_collections.gpuops.mig.plugins.module_utils._spec import resolve_layouts

pytest.importorskip('scipy')

from ansible_collections.gpuops.mig.plugins.module_utils._fleet import plan_fleet  # noqa: E402
from ansible_collections.gpuops.mig.tests.unit.plugins.module_utils.fleet_reference import exhaustive, shortfall  # noqa: E402

FIX = os.path.join(os.path.dirname(__file__), 'fixtures', 'fleet')
MODELS = ('h100-80gb', 'h200-141gb', 'b200', 'a100-80gb', 'a100-40gb')
BASE = {}
for _m in MODELS:
    with open(os.path.join(FIX, _m + '.json')) as _f:
        BASE[_m] = gpu_from_dict(json.load(_f))


def make_gpu(model: str, index: int, profile_names=(), mig=True, busy=(), host='h'):
    """A GPU of ``model`` whose current instances the per-GPU planner packs from ``profile_names``."""
    g = dataclasses.replace(BASE[model], index=index, uuid='GPU-%s-%s-%d' % (host, model, index),
                            mig_mode=MigMode(mig, mig), gpu_instances=(), processes=())
    if not mig or not profile_names:
        return g
    ids = [next(p.id for p in g.profiles if p.name == n) for n in profile_names]
    plan = plan_gpu(g, DesiredGpu(index=index, mig_enabled=True, instances=tuple(DesiredInstance(profile_id=i) for i in ids)))
    gis = []
    for n, gi in enumerate(plan.target_instances):
        cis = tuple(dataclasses.replace(c, id=0) for c in gi.compute_instances)
        gis.append(dataclasses.replace(gi, id=n + 1, compute_instances=cis))
    procs = tuple(GpuProcess(pid=1000 + n, gi=gis[n].id, ci=0) for n in busy if n < len(gis))
    return dataclasses.replace(g, gpu_instances=tuple(gis), processes=procs)


SMALL = {
    'h100-80gb': ['1g.10gb', '2g.20gb', '3g.40gb', '1g.20gb', '7g.80gb'],
    'h200-141gb': ['1g.18gb', '2g.35gb', '3g.71gb', '1g.35gb'],
    'b200': ['1g.23gb', '2g.45gb', '3g.90gb'],
    'a100-80gb': ['1g.10gb', '2g.20gb', '3g.40gb'],
    'a100-40gb': ['1g.5gb', '2g.10gb', '3g.20gb'],
}
DEMAND_PROFILES = ['1g.10gb', '2g.20gb', '3g.40gb', '1g.18gb', '2g.35gb', '3g.20gb', '2g.45gb', '1g.5gb']


def random_case(rng: random.Random):
    """1-3 hosts, 1-3 GPUs in all, 1-2 models; current instances and demand drawn from a small palette per model."""
    n_hosts = rng.randint(1, 3)
    total = rng.randint(n_hosts, 3)
    models = rng.sample(MODELS, rng.randint(1, 2))
    palette = {m: rng.sample(SMALL[m][:3], 2) for m in models}
    fleet = {}
    per_host = [1] * n_hosts
    for dummy in range(total - n_hosts):
        per_host[rng.randrange(n_hosts)] += 1
    for h in range(n_hosts):
        name = 'host%d' % h
        gl = []
        for i in range(per_host[h]):
            m = rng.choice(models)
            if rng.random() < 0.2:
                gl.append(make_gpu(m, i, mig=False, host=name))
                continue
            names: list = []
            for dummy in range(rng.randint(0, 3)):
                cand = names + [rng.choice(palette[m])]
                try:
                    make_gpu(m, i, cand, host=name)
                    names = cand
                except Exception:
                    pass
            busy = [0] if names and rng.random() < 0.25 else []
            gl.append(make_gpu(m, i, names, busy=busy, host=name))
        fleet[name] = gl
    groups = {'rack': sorted(rng.sample(sorted(fleet), rng.randint(1, n_hosts)))}
    demand = []
    for dummy in range(rng.randint(1, 2)):
        r = rng.random()
        item: dict = {'count': rng.randint(0, 4)}
        if r < 0.15:
            item['profile'] = 'whole'
            item['count'] = rng.randint(0, 2)
        elif r < 0.3:
            item['slices'] = 1
            item['min_memory_gb'] = rng.choice([0, 16])
        else:
            item['profile'] = rng.choice([p for m in models for p in palette[m]])
        if rng.random() < 0.3:
            item['group'] = 'rack'
        demand.append(item)
    kw: dict = {}
    allg = [(h, g.index) for h, gl in fleet.items() for g in gl]
    if rng.random() < 0.15:
        kw['exclude'] = ['%s:%d' % rng.choice(allg)]
    if rng.random() < 0.15:
        kw['keep_disabled'] = ['%s:%d' % rng.choice(allg)]
    if rng.random() < 0.25:
        kw['max_hosts_changed'] = rng.randint(0, 1)
    return fleet, demand, groups, kw


def _refs(kw, key):
    return {(r.split(':')[0], int(r.split(':')[1])) for r in kw.get(key, ())}


def check_case(seed: int):
    rng = random.Random(seed)
    fleet, demand, groups, kw = random_case(rng)
    try:
        plan = plan_fleet(fleet, demand, groups, **kw)
    except SpecError as exc:
        assert exc.field in ('keep_disabled', 'max_hosts_changed'), str(exc)
        assert exhaustive(fleet, demand, groups, _refs(kw, 'exclude'), _refs(kw, 'keep_disabled'),
                          kw.get('max_hosts_changed')) is None
        return 'spec'
    ref = exhaustive(fleet, demand, groups, _refs(kw, 'exclude'), _refs(kw, 'keep_disabled'), kw.get('max_hosts_changed'))
    o = plan.objective
    got = (o['shortfall'], o['destroyed_instances'], o['gpus_changed'], o['hosts_changed'], -o['gpus_unused'],
           o['instances_created'])
    assert got == ref, 'seed %d: planner %r, exhaustive %r\n%r %r' % (seed, got, ref, demand, kw)
    assert plan.feasible == (ref[0] == 0)
    # the plan's layouts really hold what it claims: re-derive supply from the emitted layouts
    supply = {}
    for h, gl in fleet.items():
        entries = plan.hosts[h]['layouts']
        desired = resolve_layouts(gl, entries) if entries else {}
        for g in gl:
            if (h, g.index) in _refs(kw, 'exclude'):
                continue
            d = desired.get(g.index)
            s = {}
            if not g.mig_capable or (d is not None and not d.mig_enabled) or (d is None and not g.mig_mode.current):
                s['whole'] = 1
            elif d is not None:
                p = plan_gpu(g, d)
                assert p.destroyed_gpu_instances == sum(1 for x in plan.hosts[h]['gpus'] if x['index'] == g.index
                                                        for dummy in x['destroyed'])
                for gi in d.instances:
                    s[gi.profile_id] = s.get(gi.profile_id, 0) + 1
            supply[(h, g.index)] = s
    assert shortfall(fleet, demand, groups, supply) == o['shortfall']
    return 'feasible' if plan.feasible else 'infeasible'


N_CASES = int(os.environ.get('GPUOPS_FLEET_CASES', '500'))


def test_fleet_plan_equals_exhaustive_optimum():
    seen = {'feasible': 0, 'infeasible': 0, 'spec': 0}
    for seed in range(N_CASES):
        seen[check_case(seed)] += 1
    assert seen['feasible'] > N_CASES // 4 and seen['infeasible'] > N_CASES // 20, seen


def test_converged_fleet_plans_nothing():
    fleet = {'a': [make_gpu('h100-80gb', 0, ['3g.40gb', '2g.20gb'], host='a')], 'b': [make_gpu('h200-141gb', 0, host='b')]}
    demand = [{'profile': '3g.40gb', 'count': 1}, {'slices': 1, 'min_memory_gb': 16, 'count': 3}]
    first = plan_fleet(fleet, demand)
    assert first.feasible and first.objective['destroyed_instances'] == 0
    assert first.summary['changed_hosts'] == ['b']
    second = plan_fleet({'a': fleet['a'], 'b': [_apply(fleet['b'][0], first.hosts['b']['layouts'])]}, demand)
    assert second.summary['changed_hosts'] == [] and second.objective['gpus_changed'] == 0


def _apply(gpu, layouts):
    d = resolve_layouts([gpu], layouts)[gpu.index]
    plan = plan_gpu(gpu, d)
    gis = [dataclasses.replace(gi, id=n + 1, compute_instances=tuple(dataclasses.replace(c, id=0) for c in gi.compute_instances))
           for n, gi in enumerate(plan.target_instances)]
    return dataclasses.replace(gpu, gpu_instances=tuple(gis))


def test_busy_instance_is_never_destroyed_and_infeasible_is_reported():
    g = make_gpu('h100-80gb', 0, ['7g.80gb'], busy=[0], host='a')
    plan = plan_fleet({'a': [g]}, [{'profile': '1g.10gb', 'count': 1}])
    assert not plan.feasible and plan.objective['destroyed_instances'] == 0
    assert plan.shortfall[0]['missing'] == 1
    assert plan.capacity[0]['models'][0]['max_instances'] == 0


def test_bad_input_names_the_field():
    g = make_gpu('h100-80gb', 0, host='a')
    for demand, field in (([{'profile': '1x.10gb', 'count': 1}], 'demand[0].profile'),
                          ([{'profile': '1g.10gb'}], 'demand[0].count'),
                          ([{'profile': '1g.10gb', 'count': 1, 'group': 'nope'}], 'demand[0].group'),
                          ([{'slices': 1, 'profile': '1g.10gb', 'count': 1}], 'demand[0]')):
        with pytest.raises(SpecError) as exc:
            plan_fleet({'a': [g]}, demand)
        assert exc.value.field == field


def test_headroom_and_weights():
    g = make_gpu('h100-80gb', 0, host='a')
    plan = plan_fleet({'a': [g]}, [{'profile': '1g.10gb', 'count': 4}], headroom=50)
    assert plan.summary['holds'] == {'1g.10gb': 6}
    busy = make_gpu('h100-80gb', 0, ['3g.40gb', '3g.40gb'], host='b')
    empty = make_gpu('h100-80gb', 0, mig=False, host='c')
    demand = [{'profile': '1g.10gb', 'count': 3}]
    lex = plan_fleet({'b': [busy], 'c': [empty]}, demand)
    assert lex.objective['destroyed_instances'] == 0
    w = plan_fleet({'b': [busy], 'c': [empty]}, demand, weights={'destroyed_instances': 0, 'gpus_unused': 1})
    assert w.objective['gpus_unused'] == 1 and w.objective['destroyed_instances'] == 1


def test_adopt_forms_round_trip():
    g = make_gpu('h100-80gb', 0, ['3g.40gb', '2g.20gb', '1g.10gb'], host='a')
    entry = current_layout(g)
    assert not plan_gpu(g, resolve_layouts([g], [entry])[0]).changes
    doc = current_mig_parted_config(g)
    assert doc['mig-configs']['current'][0]['mig-devices'] == {'3g.40gb': 1, '2g.20gb': 1, '1g.10gb': 1}
    d = resolve_layouts([g], config=doc)[0]
    assert sorted(i.profile_id for i in d.instances) == sorted(gi.profile_id for gi in g.gpu_instances)
