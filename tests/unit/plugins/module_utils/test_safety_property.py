# Copyright (c) 2026 gpuops.mig contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Property: whatever the layouts and clients, no instance that must be kept is ever destroyed.

Random current layouts (made by the planner itself), random processes on GPU instances, on compute
instances and on the whole GPU (no GPU instance), random target layouts or MIG disable. Then:

* a plan never destroys a GPU instance with a process, nor a compute instance with a process;
* on a GPU with a whole-GPU client a plan creates and destroys nothing (the driver would refuse the
  creates with NVML_ERROR_IN_USE after the destroys, mig-hardware.md 9.2);
* a refusal that the clients cause (the same layout is planned once they are gone) names their PIDs,
  every whole-GPU PID, and at least one PID of an instance that would have to go.
"""

from __future__ import annotations

import dataclasses

import pytest

from ansible_collections.gpuops.mig.plugins.module_utils._model import DesiredGpu, DesiredInstance, GpuProcess, MigMode, PlanError
from ansible_collections.gpuops.mig.plugins.module_utils._planner import plan_gpu
from ansible_collections.gpuops.mig.tests.unit.plugins.module_utils.helpers import MODELS, execute, load

hypothesis = pytest.importorskip('hypothesis')
given, settings, st, assume = hypothesis.given, hypothesis.settings, hypothesis.strategies, hypothesis.assume

GPUS = {m: load(m) for m in MODELS}
_LAYOUTS: dict = {}


def _desired(gpu, ids, enabled=True):
    return DesiredGpu(index=gpu.index, mig_enabled=enabled, instances=tuple(DesiredInstance(profile_id=p) for p in ids))


def _current(model, ids):
    """``ids`` created by the planner on an empty GPU with MIG on; None when the layout is not feasible."""
    key = (model, tuple(ids))
    if key not in _LAYOUTS:
        gpu = dataclasses.replace(GPUS[model], mig_mode=MigMode(True, True))
        try:
            _LAYOUTS[key] = execute(gpu, plan_gpu(gpu, _desired(gpu, ids)))
        except PlanError:
            _LAYOUTS[key] = None
    return _LAYOUTS[key]


@st.composite
def scenarios(draw):
    model = draw(st.sampled_from(MODELS))
    ids = [p.id for p in GPUS[model].profiles]
    cur = _current(model, draw(st.lists(st.sampled_from(ids), max_size=5)))
    assume(cur is not None)
    procs = []
    pid = 1000
    for gi in cur.gpu_instances:
        kind = draw(st.sampled_from(('none', 'none', 'gi', 'ci')))
        if kind == 'gi' or (kind == 'ci' and not gi.compute_instances):
            procs.append(GpuProcess(pid=pid, gi=gi.id, ci=None))
        elif kind == 'ci':
            procs.append(GpuProcess(pid=pid, gi=gi.id, ci=draw(st.sampled_from(gi.compute_instances)).id))
        pid += 1
    for dummy in range(draw(st.integers(0, 2))):
        procs.append(GpuProcess(pid=pid, gi=None, ci=None))
        pid += 1
    disable = draw(st.integers(0, 9)) == 0
    target = [] if disable else draw(st.lists(st.sampled_from(ids), min_size=1, max_size=6))
    return dataclasses.replace(cur, processes=tuple(procs)), _desired(cur, target, enabled=not disable)


@settings(max_examples=400, deadline=None)
@given(scenarios())
def test_no_kept_instance_is_ever_destroyed(scenario):
    gpu, desired = scenario
    whole = [p.pid for p in gpu.processes if p.gi is None]
    try:
        plan = plan_gpu(gpu, desired)
    except PlanError as exc:
        msg = str(exc)
        try:
            plan_gpu(dataclasses.replace(gpu, processes=()), desired)
        except PlanError:
            return      # refused for a reason of its own (infeasible layout): clients are not the cause
        assert all(str(p) in msg for p in whole), msg
        if not whole:
            assert any(str(p.pid) in msg for p in gpu.processes), msg
        return
    changes = [a for a in plan.actions if a.action in ('create', 'destroy') and a.target != 'gpu']
    if whole:
        assert not changes, plan.actions
    for a in plan.actions:
        if a.action != 'destroy':
            continue
        if a.target == 'gpu_instance':
            assert not gpu.processes_on(a.gi_id), a
        else:
            assert not any(p.gi == a.gi_id and p.ci in (None, a.ci_id) for p in gpu.processes), a
    execute(gpu, plan, gpu.processes)       # the helper re-checks every step as the driver would
