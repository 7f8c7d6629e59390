# Copyright (c) 2026 gpuops.mig contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""The planner's last step: turn the chosen keep-set into ordered actions and the layout they leave."""

from __future__ import annotations

import dataclasses
import typing as t

from ansible_collections.gpuops.mig.plugins.module_utils._desired import Want
from ansible_collections.gpuops.mig.plugins.module_utils._model import (
    Action,
    ComputeInstance,
    ComputeInstanceProfile,
    Gpu,
    GpuInstance,
    GpuPlan,
    Placement,
)
from ansible_collections.gpuops.mig.plugins.module_utils._packing import pack_cis

# (kept GPU instance, the want it takes) -> (its compute instances kept, compute instances to create) or None
Rework = t.Callable[[GpuInstance, Want],
                    t.Optional[t.Tuple[t.List[ComputeInstance], t.List[t.Tuple[ComputeInstanceProfile, Placement]]]]]


@dataclasses.dataclass(frozen=True)
class KeepSet:
    """What ``search`` found: the GPU instances kept, the layout class each takes, where the rest go."""

    kept: list[GpuInstance]                 # sorted by GPU instance ID
    assignment: tuple[int, ...]             # per kept GPU instance, the index in ``keys`` of the class it takes
    counts: tuple[int, ...]                 # per class, how many of its wants kept GPU instances take
    placed: list[Placement]                 # placements of the remaining wants, class by class
    keys: list[tuple]                       # the classes (GI profile, declared start, CI profile IDs)
    classes: dict[tuple, list[Want]]


def build_plan(gpu: Gpu, head: t.Sequence[Action], existing: t.Sequence[GpuInstance], best: KeepSet, rework: Rework) -> GpuPlan:
    """The plan's actions, in the order they must run: keep, destroy CIs, destroy GIs, create GIs, create CIs."""
    keys, classes = best.keys, best.classes
    kept = best.kept
    kept_ids = {gi.id for gi in kept}
    keeps: list[Action] = []
    ci_destroys: list[Action] = []
    gi_destroys: list[Action] = []
    ci_creates_kept: list[Action] = []
    final: list[GpuInstance] = []
    for gi, ki in sorted(zip(kept, best.assignment), key=lambda x: x[0].placement.start):
        w = classes[keys[ki]][0]
        keeps.append(Action('keep', 'gpu_instance', profile=gi.profile, profile_id=gi.profile_id, gi_id=gi.id, placement=gi.placement))
        cur_ids = tuple(sorted(c.profile_id for c in gi.compute_instances))
        if cur_ids == keys[ki][2]:
            final.append(gi)
            continue
        rw = rework(gi, w)
        if rw is None:
            raise AssertionError('kept GPU instance %d lost its compute-instance rework' % gi.id)
        keep_cis, new_cis = rw
        for c in gi.compute_instances:
            if c not in keep_cis:
                ci_destroys.append(Action('destroy', 'compute_instance', profile=c.profile, profile_id=c.profile_id, gi_id=gi.id,
                                          ci_id=c.id, placement=c.placement, gi_placement=gi.placement))
        cis = list(keep_cis)
        for cip, pl in new_cis:
            ci_creates_kept.append(Action('create', 'compute_instance', profile=cip.name, profile_id=cip.id, gi_id=gi.id,
                                          placement=pl, gi_placement=gi.placement))
            cis.append(ComputeInstance(id=t.cast(int, None), profile_id=cip.id, profile=cip.name, placement=pl))
        final.append(dataclasses.replace(gi, compute_instances=tuple(sorted(cis, key=lambda c: c.placement))))
    for gi in existing:
        if gi.id in kept_ids:
            continue
        ci_destroys.extend(ci_destroy(gi, c) for c in gi.compute_instances)
        gi_destroys.append(gi_destroy(gi))
    # the remaining wants of each class, in class order, got the placements in best.placed
    remaining: list[Want] = []
    for k, n in zip(keys, best.counts):
        remaining.extend(classes[k][n:])
    placed = best.placed
    new = sorted(zip(remaining, placed), key=lambda x: (-x[1].size, x[1].start))
    actions = list(head) + keeps + ci_destroys + gi_destroys
    ci_creates_new: list[Action] = []
    gi_creates: list[Action] = []
    base = len(actions)
    for w, pl in new:
        ref = base + len(gi_creates)
        gi_creates.append(Action('create', 'gpu_instance', profile=w.prof.name, profile_id=w.prof.id, placement=pl))
        cips = pack_cis(w.prof, w.cis)
        if cips is None:
            raise AssertionError('compute instances of %s stopped fitting after the feasibility check' % w.prof.name)
        cis = []
        for cip, cpl in zip(w.cis, cips):
            ci_creates_new.append(Action('create', 'compute_instance', profile=cip.name, profile_id=cip.id, placement=cpl,
                                         gi_placement=pl, gi_ref=ref, full_ci_from_gi=w.full_ci_from_gi))
            cis.append(ComputeInstance(id=t.cast(int, None), profile_id=cip.id, profile=cip.name, placement=cpl))
        final.append(GpuInstance(id=t.cast(int, None), profile_id=w.prof.id, profile=w.prof.name, placement=pl,
                                 compute_instances=tuple(sorted(cis, key=lambda c: c.placement))))
    actions += gi_creates + ci_creates_kept + ci_creates_new
    return GpuPlan(index=gpu.index, actions=tuple(actions),
                   target_instances=tuple(sorted(final, key=lambda g: g.placement.start)))


def ci_destroy(gi: GpuInstance, c: ComputeInstance) -> Action:
    return Action('destroy', 'compute_instance', profile=c.profile, profile_id=c.profile_id, gi_id=gi.id,
                  ci_id=c.id, placement=c.placement, gi_placement=gi.placement)


def gi_destroy(gi: GpuInstance) -> Action:
    return Action('destroy', 'gpu_instance', profile=gi.profile, profile_id=gi.profile_id, gi_id=gi.id, placement=gi.placement)


def destroy_all(gpu: Gpu) -> list[Action]:
    """Destroy every compute instance, then every GPU instance (disabling MIG)."""
    return ([ci_destroy(gi, c) for gi in gpu.gpu_instances for c in gi.compute_instances]
            + [gi_destroy(gi) for gi in gpu.gpu_instances])
