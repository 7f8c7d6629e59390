# Copyright (c) 2026 gpuops.mig contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import annotations

import dataclasses

import pytest

from ansible_collections.gpuops.mig.plugins.module_utils._apply import ApplyError, execute_plan, layout_signature
from ansible_collections.gpuops.mig.plugins.module_utils._model import (
    Action, ComputeInstance, Gpu, GpuInstance, GpuPlan, MigMode, Placement,
)


class CallFailed(Exception):
    def __init__(self, call: str) -> None:
        super().__init__(call)
        self.call = call
        self.error_name = 'NVML_ERROR_UNKNOWN'


class FakeAdapter:
    """In-memory GPU: instances by id, a fault on the n-th call of one method."""

    def __init__(self, gpu: Gpu, fail_on: str | None = None, nth: int = 1, fail_rollback: bool = False) -> None:
        self.gpu = gpu
        self.fail_on = fail_on
        self.nth = nth
        self.fail_rollback = fail_rollback
        self.calls: list[str] = []
        self.next_gi = 20

    def _hit(self, name: str) -> None:
        self.calls.append(name)
        if name == self.fail_on:
            self.nth -= 1
            if self.nth == 0 or (self.fail_rollback and self.nth < 0):
                raise CallFailed(name)

    def read_gpu(self, index: int, with_remaining: bool = True) -> Gpu:
        return self.gpu

    def set_mig_mode(self, index: int, enabled: bool) -> int:
        self._hit('set_mig_mode')
        self.gpu = dataclasses.replace(self.gpu, mig_mode=MigMode(enabled, enabled))
        return 0

    def create_gpu_instance(self, index: int, profile_id: int, placement: Placement) -> int:
        self._hit('create_gpu_instance')
        self.next_gi += 1
        gi = GpuInstance(self.next_gi, profile_id, 'p%d' % profile_id, placement)
        self.gpu = dataclasses.replace(self.gpu, gpu_instances=self.gpu.gpu_instances + (gi,))
        return gi.id

    def create_compute_instance(self, index: int, gi_id: int, ci_profile_id: int, placement: Placement) -> int:
        self._hit('create_compute_instance')
        gis = []
        new_id = -1
        for gi in self.gpu.gpu_instances:
            if gi.id == gi_id:
                new_id = len(gi.compute_instances)
                gi = dataclasses.replace(gi, compute_instances=gi.compute_instances + (
                    ComputeInstance(new_id, ci_profile_id, 'c%d' % ci_profile_id, placement),))
            gis.append(gi)
        self.gpu = dataclasses.replace(self.gpu, gpu_instances=tuple(gis))
        return new_id

    def destroy_compute_instance(self, index: int, gi_id: int, ci_id: int) -> None:
        self._hit('destroy_compute_instance')
        self.gpu = dataclasses.replace(self.gpu, gpu_instances=tuple(
            dataclasses.replace(gi, compute_instances=tuple(c for c in gi.compute_instances if c.id != ci_id))
            if gi.id == gi_id else gi for gi in self.gpu.gpu_instances))

    def destroy_gpu_instance(self, index: int, gi_id: int) -> None:
        self._hit('destroy_gpu_instance')
        self.gpu = dataclasses.replace(self.gpu, gpu_instances=tuple(g for g in self.gpu.gpu_instances if g.id != gi_id))


def _gpu() -> Gpu:
    gis = (
        GpuInstance(1, 9, '3g.40gb', Placement(0, 4), (ComputeInstance(0, 2, '3g.40gb', Placement(0, 3)),)),
        GpuInstance(5, 14, '2g.20gb', Placement(4, 2), (ComputeInstance(0, 1, '2g.20gb', Placement(0, 2)),)),
    )
    return Gpu(index=0, uuid='GPU-x', name='test', pci_bus_id='0', pci_device_id=0x233010DE, pci_subsystem_id=0,
               memory_total_mib=81559, architecture=9, mig_capable=True, mig_mode=MigMode(True, True), gpu_instances=gis)


def _plan() -> GpuPlan:
    """Replace the 2g at 4-5 by two 1g at 4 and 5, keep the 3g."""
    return GpuPlan(index=0, actions=(
        Action('keep', 'gpu_instance', '3g.40gb', 9, gi_id=1, placement=Placement(0, 4)),
        Action('destroy', 'compute_instance', '2g.20gb', 1, gi_id=5, ci_id=0, placement=Placement(0, 2), gi_placement=Placement(4, 2)),
        Action('destroy', 'gpu_instance', '2g.20gb', 14, gi_id=5, placement=Placement(4, 2)),
        Action('create', 'gpu_instance', '1g.10gb', 19, placement=Placement(4, 1)),
        Action('create', 'gpu_instance', '1g.10gb', 19, placement=Placement(5, 1)),
        Action('create', 'compute_instance', '1g.10gb', 0, placement=Placement(0, 1), gi_ref=3),
        Action('create', 'compute_instance', '1g.10gb', 0, placement=Placement(0, 1), gi_ref=4),
    ))


def test_plan_applies_in_order() -> None:
    fake = FakeAdapter(_gpu())
    outcome = execute_plan(fake, _gpu(), _plan())
    assert not outcome.mode_pending
    assert fake.calls == ['destroy_compute_instance', 'destroy_gpu_instance', 'create_gpu_instance',
                          'create_gpu_instance', 'create_compute_instance', 'create_compute_instance']
    sig = layout_signature(fake.gpu.gpu_instances)
    assert [(s[0], s[1], s[2]) for s in sig] == [(9, 0, 4), (19, 4, 1), (19, 5, 1)]
    assert all(len(s[3]) == 1 for s in sig)


@pytest.mark.parametrize('call,nth', [
    ('destroy_compute_instance', 1), ('destroy_gpu_instance', 1), ('create_gpu_instance', 1),
    ('create_gpu_instance', 2), ('create_compute_instance', 1), ('create_compute_instance', 2),
])
def test_failure_rolls_back_to_the_original_layout(call: str, nth: int) -> None:
    original = _gpu()
    fake = FakeAdapter(original, fail_on=call, nth=nth)
    with pytest.raises(ApplyError) as err:
        execute_plan(fake, original, _plan())
    assert err.value.rolled_back
    assert err.value.call == call
    assert 'NVML_ERROR_UNKNOWN' in str(err.value) and 'original layout again' in str(err.value)
    assert layout_signature(fake.gpu.gpu_instances) == layout_signature(original.gpu_instances)


def test_rollback_that_cannot_finish_says_what_exists() -> None:
    original = _gpu()
    # The second create fails, and so does every later create (the rollback's recreation of the 2g).
    fake = FakeAdapter(original, fail_on='create_gpu_instance', nth=2, fail_rollback=True)
    with pytest.raises(ApplyError) as err:
        execute_plan(fake, original, _plan())
    assert not err.value.rolled_back
    assert 'Rollback could not finish' in str(err.value)
    assert '3g.40gb (GPU instance 1) at slots 0-3' in str(err.value)


def test_pending_mode_stops_before_creating() -> None:
    gpu = dataclasses.replace(_gpu(), mig_mode=MigMode(False, False), gpu_instances=())

    class Pending(FakeAdapter):
        def set_mig_mode(self, index: int, enabled: bool) -> int:
            self._hit('set_mig_mode')
            self.gpu = dataclasses.replace(self.gpu, mig_mode=MigMode(False, enabled))
            return 19

    fake = Pending(gpu)
    plan = GpuPlan(index=0, actions=(
        Action('set_mode', 'gpu', mig_enabled=True),
        Action('create', 'gpu_instance', '7g.80gb', 0, placement=Placement(0, 8)),
    ))
    outcome = execute_plan(fake, gpu, plan)
    assert outcome.mode_pending and outcome.activation_status == 19
    assert fake.calls == ['set_mig_mode']
