# Copyright (c) 2026 gpuops.mig contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Test helpers: load model fixtures, execute a plan on a Gpu value, check a plan's invariants, and the
helpers only tests use (``plan_host``, ``config_names``)."""

from __future__ import annotations

import dataclasses
import json
import os
import typing as t

from ansible_collections.gpuops.mig.plugins.module_utils._model import (
    ComputeInstance, DesiredGpu, Gpu, GpuInstance, GpuPlan, GpuProcess, MigMode, PlanError, SpecError, gpu_from_dict,
)
from ansible_collections.gpuops.mig.plugins.module_utils._planner import plan_gpu
from ansible_collections.gpuops.mig.plugins.module_utils._spec import _load_config

FIXTURES = os.path.join(os.path.dirname(__file__), 'fixtures')
MODELS = ('h100-80gb', 'a100-40gb', 'a30-24gb', 'rtx-pro-6000')


def load(name: str, **changes) -> Gpu:
    with open(os.path.join(FIXTURES, name + '.json')) as f:
        data = json.load(f)
    data.update(changes)
    return gpu_from_dict(data)


def execute(gpu: Gpu, plan, processes=()) -> Gpu:
    """Apply ``plan`` to ``gpu`` like the driver would, checking every step; returns the new Gpu."""
    mode = gpu.mig_mode
    gis = {gi.id: gi for gi in (gpu.gpu_instances if mode.current else ())}
    created = {}
    next_gi = max(list(gis) + [0]) + 1
    for pos, a in enumerate(plan.actions):
        if a.action == 'set_mode':
            mode = MigMode(a.mig_enabled, a.mig_enabled)
            if not a.mig_enabled:
                assert not gis, 'disable with instances left'
        elif a.action == 'keep':
            assert a.gi_id in gis
        elif a.action == 'destroy' and a.target == 'compute_instance':
            gi = gis[a.gi_id]
            assert any(c.id == a.ci_id for c in gi.compute_instances)
            assert not any(p.gi == gi.id and p.ci in (None, a.ci_id) for p in gpu.processes), 'destroyed a busy CI'
            gis[a.gi_id] = dataclasses.replace(gi, compute_instances=tuple(c for c in gi.compute_instances if c.id != a.ci_id))
        elif a.action == 'destroy':
            gi = gis.pop(a.gi_id)
            assert not gi.compute_instances, 'GI destroyed before its CIs'
            assert not gpu.processes_on(gi.id), 'destroyed a busy GI'
        elif a.action == 'create' and a.target == 'gpu_instance':
            assert mode.current
            prof = gpu.profile_by_id(a.profile_id)
            assert a.placement in prof.placements, 'illegal placement'
            assert all(not a.placement.overlaps(o.placement) for o in gis.values()), 'overlap'
            assert sum(1 for o in gis.values() if o.profile_id == prof.id) < prof.instance_count, 'cap'
            gi = GpuInstance(id=next_gi, profile_id=prof.id, profile=prof.name, placement=a.placement)
            gis[next_gi] = gi
            created[pos] = next_gi
            next_gi += 1
        elif a.action == 'create':
            gid = a.gi_id if a.gi_id is not None else created[a.gi_ref]
            gi = gis[gid]
            assert a.placement.end <= gpu.profile_by_id(gi.profile_id).slice_count
            assert all(not a.placement.overlaps(c.placement) for c in gi.compute_instances), 'CI overlap'
            cid = max([c.id for c in gi.compute_instances] + [-1]) + 1
            gis[gid] = dataclasses.replace(gi, compute_instances=gi.compute_instances + (
                ComputeInstance(id=cid, profile_id=a.profile_id, profile=a.profile, placement=a.placement),))
        else:
            raise AssertionError(a)
    return dataclasses.replace(gpu, mig_mode=mode, gpu_instances=tuple(sorted(gis.values(), key=lambda g: g.id)),
                               processes=tuple(processes))


def shape(instances):
    """Multiset of (GI profile, sorted CI profile IDs) of a layout."""
    return sorted((gi.profile_id, tuple(sorted(c.profile_id for c in gi.compute_instances))) for gi in instances)


def busy(gpu: Gpu, gi_start: int, pid: int = 4242) -> Gpu:
    """``gpu`` with a process on the GI that starts at ``gi_start``."""
    gi = [g for g in gpu.gpu_instances if g.placement.start == gi_start][0]
    ci = gi.compute_instances[0].id if gi.compute_instances else None
    return dataclasses.replace(gpu, processes=gpu.processes + (GpuProcess(pid=pid, gi=gi.id, ci=ci),))


# Test-only helpers (moved out of plugins/: nothing shipped uses them).

def plan_host(gpus: t.Sequence[Gpu], desired_by_index: t.Mapping[int, DesiredGpu]) -> list[GpuPlan]:
    """Plan every GPU that has a desired layout, in index order; GPUs without one are left alone.

    All plans are computed before anything is returned, so an error on any GPU stops the run
    before any GPU is touched.
    """
    by_index = {g.index: g for g in gpus}
    unknown = sorted(set(desired_by_index) - set(by_index))
    if unknown:
        raise PlanError('no GPU with index %s on this host' % ', '.join(str(i) for i in unknown), gpu_index=unknown[0])
    return [plan_gpu(by_index[i], desired_by_index[i]) for i in sorted(desired_by_index)]


def config_names(config: t.Any, label: str = 'config_file') -> list[str]:
    """Names of the configs in a mig-parted config (validated only as far as the names)."""
    data = _load_config(config, label)
    if not isinstance(data, dict) or not isinstance(data.get('mig-configs'), dict):
        raise SpecError('%s: mig-configs' % label, 'is missing')
    return [k for k in data['mig-configs'] if isinstance(k, str)]
