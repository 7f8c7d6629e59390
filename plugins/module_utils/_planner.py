# Copyright (c) 2026 gpuops.mig contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""Plan how one GPU gets from its current MIG layout to the desired one.

Everything comes from the :class:`Gpu` object (profiles, legal placements, instance caps, the
current instances and their processes); nothing is hard-coded per GPU model. See docs/planner.md.
The steps, in this order:

1. ``_desired.resolve_layout``: the desired instances (GI profile, declared start, CI profiles, as the
   spec parser resolved them) and the checks that do not depend on placement.
2. The layout must be placeable on an empty GPU (``_packing.pack``, exact) and have the media engines
   it needs (``_safety``); otherwise ``_planner_text`` explains the conflict.
3. ``search``: the largest set of current GPU instances that can be kept. A kept GI has the desired
   instance's profile and, when declared, its start; every GI with processes must be kept (and its
   CIs with processes too). Keep-sets are tried by decreasing size, so the first feasible size is
   the maximum (= fewest GPU instances destroyed). Ties: more kept GIs whose CIs already match
   exactly, then more kept CIs, then lower GI IDs. A kept GI whose CIs differ is reworked (only its
   CIs are destroyed/created): keeping it always saves one GPU-instance destroy.
4. ``_plan_actions.build_plan``: destroy CIs, destroy GIs, create GIs and CIs (explicit placements),
   ``keep`` for the GIs left alone; then ``_safety``'s last checks (whole-GPU clients, CI profiles).
"""

from __future__ import annotations

import itertools
import typing as t

from ansible_collections.gpuops.mig.plugins.module_utils._model import (
    Action,
    ComputeInstance,
    ComputeInstanceProfile,
    DesiredGpu,
    Gpu,
    GpuInstance,
    GpuPlan,
    Placement,
    PlanError,
)
from ansible_collections.gpuops.mig.plugins.module_utils._desired import Want, resolve_layout
from ansible_collections.gpuops.mig.plugins.module_utils._packing import pack, pack_cis, placement_mask
from ansible_collections.gpuops.mig.plugins.module_utils._plan_actions import KeepSet, build_plan, destroy_all
from ansible_collections.gpuops.mig.plugins.module_utils._planner_text import (
    at_slots,
    blocked_text,
    explain_infeasible,
    in_use_text,
    pids_text,
)
from ansible_collections.gpuops.mig.plugins.module_utils._safety import (
    media_engine_refusal,
    unoffered_compute_profiles,
    whole_gpu_client_refusal,
    whole_gpu_pids,
)


class _Planner:
    def __init__(self, gpu: Gpu, desired: DesiredGpu, whole_gpu_clients_block: bool = True) -> None:
        self.gpu = gpu
        self.desired = desired
        self.whole_gpu_clients_block = whole_gpu_clients_block
        self.where = 'GPU %d (%s)' % (gpu.index, gpu.name)
        self._rework_memo: dict[tuple, t.Any] = {}

    def fail(self, msg: str, field: str | None = None) -> PlanError:
        return PlanError('%s: %s' % (self.where, msg), gpu_index=self.gpu.index, field=field)

    # -- step 3: keep-set search ---------------------------------------------------------------
    def in_use_cis(self, gi: GpuInstance) -> list[ComputeInstance]:
        procs = self.gpu.processes_on(gi.id)
        if any(p.ci is None for p in procs):
            return list(gi.compute_instances)
        ids = {p.ci for p in procs}
        return [c for c in gi.compute_instances if c.id in ids]

    def rework(self, gi: GpuInstance, w: Want) -> tuple[list[ComputeInstance], list[tuple[ComputeInstanceProfile, Placement]]] | None:
        """Which CIs of kept ``gi`` stay and which are created to give it ``w``'s CIs; None if impossible."""
        key = (gi.id, w.cls)
        if key not in self._rework_memo:
            self._rework_memo[key] = self._rework(gi, w)
        return self._rework_memo[key]

    def _rework(self, gi: GpuInstance, w: Want) -> tuple[list[ComputeInstance], list[tuple[ComputeInstanceProfile, Placement]]] | None:
        must = self.in_use_cis(gi)
        prof = w.prof
        optional = [c for c in gi.compute_instances if c not in must]
        for k in range(len(optional), -1, -1):
            for extra in itertools.combinations(optional, k):
                keep = list(must) + list(extra)
                rest = list(w.cis)
                ok = True
                occ = 0
                for c in keep:
                    match = [r for r in rest if r.id == c.profile_id]
                    if not match or occ & placement_mask(c.placement):
                        ok = False
                        break
                    rest.remove(match[0])
                    occ |= placement_mask(c.placement)
                if not ok:
                    continue
                placed = pack_cis(prof, rest, occ)
                if placed is not None:
                    return keep, list(zip(rest, placed))
        return None

    def compatible(self, gi: GpuInstance, w: Want) -> bool:
        if gi.profile_id != w.prof.id:
            return False
        if w.start is not None and gi.placement.start != w.start:
            return False
        if gi.placement not in w.prof.placements:
            return False
        if self.gpu.processes_on(gi.id):
            return self.rework(gi, w) is not None
        return True

    def plan(self) -> GpuPlan:
        gpu, desired = self.gpu, self.desired
        if not gpu.mig_capable or gpu.mig_mode is None:
            if desired.mig_enabled:
                raise self.fail('is not MIG-capable; mig_enabled: true cannot be applied', desired.source or None)
            return GpuPlan(index=gpu.index, actions=())
        mode = gpu.mig_mode
        if not desired.mig_enabled:
            return self.plan_disable()

        head: list[Action] = []
        if not (mode.current and mode.pending):
            head.append(Action('set_mode', 'gpu', mig_enabled=True))
        existing = tuple(gpu.gpu_instances) if mode.current else ()
        wants = resolve_layout(gpu, self.desired)
        if pack([(w.cls, w.options()) for w in wants]) is None:
            raise self.fail(explain_infeasible(gpu, wants))
        engines = media_engine_refusal(gpu, [w.prof for w in wants])
        if engines is not None:
            raise self.fail(engines)
        in_use = [gi for gi in existing if gpu.processes_on(gi.id)]
        lost = [in_use_text(gpu, gi, wants, self.in_use_cis(gi)) for gi in in_use if not any(self.compatible(gi, w) for w in wants)]
        if lost:
            raise self.fail('; '.join(lost))
        best = self.search(existing, in_use, wants)
        if best is None:
            raise self.fail(blocked_text(gpu, self.culprits(in_use, wants), wants))
        return self.checked(build_plan(gpu, head, existing, best, self.rework))

    def checked(self, plan: GpuPlan) -> GpuPlan:
        """The last checks before any mutation: whole-GPU clients, compute-instance profiles NVML offers."""
        whole = whole_gpu_client_refusal(self.gpu, plan.actions) if self.whole_gpu_clients_block else None
        for refusal in (whole, unoffered_compute_profiles(self.gpu, plan.actions)):
            if refusal is not None:
                raise self.fail(refusal)
        return plan

    def culprits(self, in_use: list[GpuInstance], wants: list[Want]) -> list[GpuInstance]:
        """A minimal set of GPU instances in use that together leave no room for the layout."""
        culprits = list(in_use)
        for gi in list(culprits):
            trial = [x for x in culprits if x is not gi]
            if self.search(trial, trial, wants, only_mandatory=True) is None:
                culprits = trial
        return culprits

    def search(self, existing: t.Sequence[GpuInstance], in_use: t.Sequence[GpuInstance], wants: list[Want],
               only_mandatory: bool = False) -> KeepSet | None:
        """Best keep-set (see module doc) or None when even the mandatory one is infeasible."""
        classes: dict[tuple, list[Want]] = {}
        for w in wants:
            classes.setdefault(w.cls, []).append(w)
        keys = list(classes)
        in_use_ids = {gi.id for gi in in_use}
        optional = [gi for gi in existing if gi.id not in in_use_ids and any(self.compatible(gi, classes[k][0]) for k in keys)]
        mandatory = [gi for gi in existing if gi.id in in_use_ids]
        pack_memo: dict[tuple, list[Placement] | None] = {}

        def pack_rest(occ: int, counts: tuple[int, ...]) -> list[Placement] | None:
            key = (occ, counts)
            if key not in pack_memo:
                items = []
                for k, n in zip(keys, counts):
                    items.extend([(k, classes[k][0].options())] * (len(classes[k]) - n))
                pack_memo[key] = pack(items, occ)
            return pack_memo[key]

        def assignments(kept: list[GpuInstance]) -> t.Iterator[tuple[int, ...]]:
            """Yield, per kept GI, the index of the class it takes (respecting class sizes)."""
            used = [0] * len(keys)
            cur: list[int] = []

            def rec(i: int) -> t.Iterator[tuple[int, ...]]:
                if i == len(kept):
                    yield tuple(cur)
                    return
                for ki, k in enumerate(keys):
                    if used[ki] < len(classes[k]) and self.compatible(kept[i], classes[k][0]):
                        used[ki] += 1
                        cur.append(ki)
                        yield from rec(i + 1)
                        cur.pop()
                        used[ki] -= 1
            return rec(0)

        sizes = [0] if only_mandatory else range(len(optional), -1, -1)
        for k in sizes:
            found = []
            for extra in itertools.combinations(optional, k):
                kept = sorted(mandatory + list(extra), key=lambda g: g.id)
                occ = 0
                clash = False
                for gi in kept:
                    if occ & placement_mask(gi.placement):
                        clash = True
                        break
                    occ |= placement_mask(gi.placement)
                if clash:
                    continue
                best_here = None
                for asg in assignments(kept):
                    counts = tuple(asg.count(i) for i in range(len(keys)))
                    placed = pack_rest(occ, counts)
                    if placed is None:
                        continue
                    exact = 0
                    kept_cis = 0
                    for gi, ki in zip(kept, asg):
                        cur_ids = tuple(sorted(c.profile_id for c in gi.compute_instances))
                        if cur_ids == keys[ki][2]:
                            exact += 1
                            kept_cis += len(gi.compute_instances)
                        else:
                            rw = self.rework(gi, classes[keys[ki]][0])
                            kept_cis += len(rw[0]) if rw else 0
                    score = (-exact, -kept_cis)
                    if best_here is None or score < best_here[0]:
                        best_here = (score, asg, counts, placed)
                if best_here is not None:
                    found.append(((best_here[0], [g.id for g in kept]), kept, best_here))
            if found:
                found.sort(key=lambda f: f[0])
                kept, (score, asg, counts, placed) = found[0][1], found[0][2]
                return KeepSet(kept=kept, assignment=asg, counts=counts, placed=placed, keys=keys, classes=classes)
        return None

    def plan_disable(self) -> GpuPlan:
        gpu = self.gpu
        mode = gpu.mig_mode
        if mode is None:
            raise AssertionError('GPU %d is not MIG-capable; the spec parser rejects such layouts' % gpu.index)
        if not mode.current and not mode.pending:
            return GpuPlan(index=gpu.index, actions=())
        actions: list[Action] = []
        if mode.current:
            busy = [gi for gi in gpu.gpu_instances if gpu.processes_on(gi.id)]
            if busy:
                raise self.fail('cannot disable MIG: %s' % '; '.join(
                    'GPU instance %d (%s at %s) has processes (PIDs %s)'
                    % (gi.id, gi.profile, at_slots(gi.placement), pids_text(p.pid for p in gpu.processes_on(gi.id))) for gi in busy))
            actions.extend(destroy_all(gpu))
        actions.append(Action('set_mode', 'gpu', mig_enabled=False))
        return self.checked(GpuPlan(index=gpu.index, actions=tuple(actions)))


def plan_gpu(gpu: Gpu, desired: DesiredGpu, whole_gpu_clients_block: bool = True) -> GpuPlan:
    """Plan the actions that take ``gpu`` to ``desired``; PlanError (before any mutation) if impossible.

    ``whole_gpu_clients_block=False`` plans as if whole-GPU clients were gone (check mode: the mig role
    plans first and stops the GPU clients it manages before applying).
    """
    if desired.index != gpu.index:
        raise PlanError('desired layout for GPU %d given for GPU %d' % (desired.index, gpu.index), gpu_index=gpu.index)
    try:
        return _Planner(gpu, desired, whole_gpu_clients_block).plan()
    except PlanError as exc:
        raise _naming_whole_gpu_clients(gpu, exc)


def _naming_whole_gpu_clients(gpu: Gpu, exc: PlanError) -> PlanError:
    """Every refusal on a GPU held by whole-GPU clients names their PIDs, whatever else it says."""
    pids = whole_gpu_pids(gpu)
    if not pids or 'processes hold the whole GPU' in str(exc):
        return exc
    return PlanError('%s; processes also hold the whole GPU without a GPU instance (PIDs %s)' % (exc, pids_text(pids)),
                     gpu_index=exc.gpu_index, field=exc.field)
