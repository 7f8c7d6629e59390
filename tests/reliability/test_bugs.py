# Copyright (c) 2026 gpuops.mig contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Minimal reproductions of bugs the reliability corpus found in plugins/module_utils.

The executor and converge tests failed before the fixes in plugins/module_utils/_apply.py and
_converge.py listed in docs/reliability.md ("Bugs found by this suite") and guard them now; the
planner test fails until plugins/module_utils/_planner.py ci_options() is fixed.
"""

from __future__ import annotations

import dataclasses

import pytest

import relib

from ansible_collections.gpuops.mig.plugins.module_utils._apply import ApplyError, execute_plan
from ansible_collections.gpuops.mig.plugins.module_utils._model import (
    Action, ComputeInstance, Gpu, GpuInstance, GpuPlan, MigMode, Placement,
)

H100_3G = [{'devices': 'all', 'mig_enabled': True, 'mig_devices': {'3g.40gb': 2}}]


def test_rollback_that_leaves_mig_mode_pending_is_not_called_complete(sim, converge_run) -> None:
    """MIG was enabled by this run, a create failed, and disabling it again stayed pending.

    Before the fix the message said "GPU 0 has its original layout again" although MIG mode was
    still enabled (only instances were compared).
    """
    state = sim('h100-80gb:1')
    relib.migsim('fault', 'add', state, '--call', relib.CREATE_GI, '--nth', 1, '--error', 'UNKNOWN')
    relib.migsim('fault', 'add', state, '--call', relib.SET_MODE, '--nth', 2, '--error', 'PENDING')
    res = converge_run(state, H100_3G)
    assert relib.pending_faults(state) == [], 'both faults must have fired'
    gpu = relib.show(state)['gpus'][0]
    assert gpu['mig_mode'] == {'current': 'enabled', 'pending': 'disabled'}
    assert res['type'] == 'ConvergeError'
    assert 'original layout again' not in res['msg']
    assert 'Rollback could not finish' in res['msg'] and 'MIG mode' in res['msg']


def test_message_names_the_gpu_instance_of_a_compute_instance(sim, converge_run) -> None:
    """Before the fix: "creating compute instance 3g.40gb in None at slots 0-3"."""
    state = sim('h100-80gb:1')
    relib.migsim('fault', 'add', state, '--call', relib.CREATE_CI, '--nth', 1, '--error', 'TIMEOUT')
    res = converge_run(state, H100_3G)
    assert res['type'] == 'ConvergeError'
    assert ' None' not in res['msg']
    assert 'creating compute instance 3g.40gb in the new GPU instance at slots 0-3' in res['msg']


class _ReusingAdapter:
    """In-memory GPU whose driver hands out the lowest free GI ID (IDs are not tied to placements).

    ``fail`` maps a method name to the call numbers (1-based) that fail.
    """

    def __init__(self, gpu: Gpu, fail: dict[str, set[int]]) -> None:
        self.gpu = gpu
        self.fail = fail
        self.count: dict[str, int] = {}
        self.log: list[tuple] = []

    def _hit(self, name: str) -> None:
        self.count[name] = self.count.get(name, 0) + 1
        if self.count[name] in self.fail.get(name, set()):
            err = RuntimeError(name)
            err.call, err.error_name = name, 'NVML_ERROR_IN_USE'  # type: ignore[attr-defined]
            raise err

    def read_gpu(self, index: int, with_remaining: bool = True) -> Gpu:
        return self.gpu

    def set_mig_mode(self, index: int, enabled: bool) -> int:
        self._hit('set_mig_mode')
        return 0

    def create_gpu_instance(self, index: int, profile_id: int, placement: Placement) -> int:
        self._hit('create_gpu_instance')
        if any(gi.placement.overlaps(placement) for gi in self.gpu.gpu_instances):
            err = RuntimeError('overlap')
            err.call, err.error_name = 'create_gpu_instance', 'NVML_ERROR_INSUFFICIENT_RESOURCES'  # type: ignore[attr-defined]
            raise err
        used = {gi.id for gi in self.gpu.gpu_instances}
        new_id = min(i for i in range(1, 100) if i not in used)
        self.gpu = dataclasses.replace(self.gpu, gpu_instances=self.gpu.gpu_instances + (
            GpuInstance(new_id, profile_id, 'p%d' % profile_id, placement),))
        self.log.append(('create_gpu_instance', new_id, placement))
        return new_id

    def create_compute_instance(self, index: int, gi_id: int, ci_profile_id: int, placement: Placement) -> int:
        self._hit('create_compute_instance')
        self.log.append(('create_compute_instance', gi_id, ci_profile_id))
        gis = []
        for gi in self.gpu.gpu_instances:
            if gi.id == gi_id:
                gi = dataclasses.replace(gi, compute_instances=gi.compute_instances + (
                    ComputeInstance(len(gi.compute_instances), ci_profile_id, 'c%d' % ci_profile_id, placement),))
            gis.append(gi)
        self.gpu = dataclasses.replace(self.gpu, gpu_instances=tuple(gis))
        return 0

    def destroy_compute_instance(self, index: int, gi_id: int, ci_id: int) -> None:
        self._hit('destroy_compute_instance')
        self.gpu = dataclasses.replace(self.gpu, gpu_instances=tuple(
            dataclasses.replace(gi, compute_instances=tuple(c for c in gi.compute_instances if c.id != ci_id))
            if gi.id == gi_id else gi for gi in self.gpu.gpu_instances))

    def destroy_gpu_instance(self, index: int, gi_id: int) -> None:
        self._hit('destroy_gpu_instance')
        self.gpu = dataclasses.replace(self.gpu, gpu_instances=tuple(g for g in self.gpu.gpu_instances if g.id != gi_id))


def test_rollback_does_not_put_compute_instances_into_a_reused_gpu_instance_id() -> None:
    """The run destroys GI 1 (2g at slots 0-1) and creates a 1g at slot 0, which the driver numbers 1 again.

    The CI create fails, undoing the new 1g fails, so the 2g cannot be recreated either. Before the
    fix the rollback then recreated the 2g's compute instance inside "GPU instance 1", which by now
    is the new 1g: a compute instance of the wrong profile in the wrong GPU instance.
    """
    gpu = Gpu(index=0, uuid='GPU-x', name='test', pci_bus_id='0', pci_device_id=0x233010DE, pci_subsystem_id=0,
              memory_total_mib=81559, architecture=9, mig_capable=True, mig_mode=MigMode(True, True),
              gpu_instances=(GpuInstance(1, 14, '2g.20gb', Placement(0, 2),
                                         (ComputeInstance(0, 1, '2g.20gb', Placement(0, 2)),)),))
    plan = GpuPlan(index=0, actions=(
        Action('destroy', 'compute_instance', '2g.20gb', 1, gi_id=1, ci_id=0, placement=Placement(0, 2), gi_placement=Placement(0, 2)),
        Action('destroy', 'gpu_instance', '2g.20gb', 14, gi_id=1, placement=Placement(0, 2)),
        Action('create', 'gpu_instance', '1g.10gb', 19, placement=Placement(0, 1)),
        Action('create', 'compute_instance', '1g.10gb', 0, placement=Placement(0, 1), gi_placement=Placement(0, 1), gi_ref=2),
    ))
    fake = _ReusingAdapter(gpu, {'create_compute_instance': {1}, 'destroy_gpu_instance': {2}})
    with pytest.raises(ApplyError) as err:
        execute_plan(fake, gpu, plan)
    assert not err.value.rolled_back
    assert 'Rollback could not finish' in str(err.value)
    # GI 1 is now the 1g at slot 0; nothing may have been created in it by the rollback.
    assert ('create_compute_instance', 1, 1) not in fake.log, fake.log
    new = [gi for gi in fake.gpu.gpu_instances if gi.id == 1]
    assert new and new[0].profile_id == 19 and new[0].compute_instances == ()


def test_partial_compute_instances_in_a_new_gpu_instance_get_legal_placements(sim, converge_run) -> None:
    """plugins/module_utils/_planner.py ci_options(): without NVML's CI placements (no GPU instance of
    the profile exists yet, so NVML cannot list them) the planner assumes every contiguous start is
    legal and puts the 2c.7g.80gb at slot 3. NVML only accepts starts aligned to the next power of
    two >= the size ({0,2,4}:2, {0,4}:3 in a 7g instance), so creating it fails with
    INVALID_ARGUMENT, the run rolls back, and every later run fails the same way.
    """
    state = sim('h100-80gb:1')
    layouts = [{'devices': 'all', 'mig_enabled': True,
                'instances': [{'profile': '7g.80gb', 'compute_instances': ['3c.7g.80gb', '2c.7g.80gb', '1c.7g.80gb']}]}]
    res = converge_run(state, layouts)
    assert res['ok'], res.get('msg')
    cis = relib.show(state)['gpus'][0]['gpu_instances'][0]['compute_instances']
    assert sorted(c['profile'] for c in cis) == ['1c.7g.80gb', '2c.7g.80gb', '3c.7g.80gb']


def test_failed_read_after_a_successful_plan_reports_changed(sim, converge_run) -> None:
    """_converge.converge(): the plan was applied, then reading the GPU back failed (a read NVML call).

    Before the fix NvmlCallError escaped converge(), so mig_layout failed with "NVML call failed"
    and changed=false although the GPU had been changed (and the boot script printed a bare
    exception name).
    """
    state = sim('h100-80gb:1')
    assert converge_run(state, H100_3G)['ok']
    # Reading a GPU starts with nvmlDeviceGetPciInfo: call 1 is converge's first read, call 2 the read after the plan.
    relib.migsim('fault', 'add', state, '--call', 'nvmlDeviceGetPciInfo_v3', '--nth', 2, '--error', 'UNKNOWN')
    res = converge_run(state, [{'devices': 'all', 'mig_enabled': True, 'mig_devices': {'1g.10gb': 7}}])
    assert relib.pending_faults(state) == []
    assert res['type'] == 'ConvergeError', res
    assert 'nvmlDeviceGetPciInfo' in res['msg'] and 'NVML_ERROR_UNKNOWN' in res['msg'], res['msg']
    assert res['result']['changed'] is True
    assert relib.counts(relib.show(state)['gpus'][0])['instances'] == {'1g.10gb': [['1g.10gb']] * 7}
