# Copyright (c) 2026 gpuops.mig contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""The desired layout of one GPU as the planner uses it: one :class:`Want` per GPU instance.

The spec parser hands over resolved profile objects (``DesiredInstance.profile`` and
``compute_profiles``), which are taken as they are. A layout given by profile IDs only (the unit
tests, saved boot state) is resolved here, with the checks the spec parser would have made. Then the
checks that need the whole layout: compute instances fit their GPU instance, declared placements do
not overlap, per-profile instance caps, the ``+me.all`` rule.
"""

from __future__ import annotations

import dataclasses
import itertools
import typing as t

from ansible_collections.gpuops.mig.plugins.module_utils._model import (
    ComputeInstanceProfile,
    DesiredGpu,
    DesiredInstance,
    Gpu,
    GpuInstanceProfile,
    Placement,
    PlanError,
)
from ansible_collections.gpuops.mig.plugins.module_utils._packing import pack_cis
from ansible_collections.gpuops.mig.plugins.module_utils._planner_text import at_slots, count_text
from ansible_collections.gpuops.mig.plugins.module_utils._profiles import (
    compute_profile_by_id,
    full_compute_profile,
    is_all_me,
    is_no_me,
    valid_ci_profiles_text,
)

MAX_DESIRED_INSTANCES = 64
MAX_COMPUTE_INSTANCES = 64


@dataclasses.dataclass(frozen=True)
class Want:
    """One desired GPU instance, resolved against the GPU."""

    pos: int
    prof: GpuInstanceProfile
    start: int | None
    cis: tuple[ComputeInstanceProfile, ...]     # sorted by (-slices, id)
    label: str
    # One default (full-size) CI whose profile NVML has not listed yet: the executor takes the one NVML offers.
    full_ci_from_gi: bool = False

    @property
    def cls(self) -> tuple[int, int | None, tuple[int, ...]]:
        return (self.prof.id, self.start, tuple(sorted(c.id for c in self.cis)))

    def options(self) -> list[Placement]:
        if self.start is None:
            return sorted(self.prof.placements)
        return [p for p in self.prof.placements if p.start == self.start]


class _Fail:
    def __init__(self, gpu: Gpu) -> None:
        self.gpu = gpu

    def __call__(self, msg: str, field: str | None = None) -> PlanError:
        return PlanError('GPU %d (%s): %s' % (self.gpu.index, self.gpu.name, msg), gpu_index=self.gpu.index, field=field)


def resolve_layout(gpu: Gpu, desired: DesiredGpu) -> list[Want]:
    """The wants of ``desired`` on ``gpu``; PlanError naming the field when the layout cannot exist."""
    fail = _Fail(gpu)
    if len(desired.instances) > MAX_DESIRED_INSTANCES:
        raise fail('%d GPU instances requested; at most %d' % (len(desired.instances), MAX_DESIRED_INSTANCES))
    wants = []
    for pos, d in enumerate(desired.instances):
        src = d.source or (('%s.instances[%d]' % (desired.source, pos)) if desired.source else 'instance %d' % pos)
        prof = d.profile if d.profile is not None else _profile_by_id(gpu, d, src, fail)
        if d.compute_profile_ids is None:
            full = full_compute_profile(gpu, prof)
            if full is None:
                raise fail('%s: %s offers no full-size compute-instance profile' % (src, prof.name), src)
            cis: tuple[ComputeInstanceProfile, ...] = (full,)
        else:
            cis = d.compute_profiles if d.compute_profiles is not None else _ci_profiles_by_id(gpu, prof, d, src, fail)
            cis = tuple(sorted(cis, key=lambda c: (-c.slice_count, c.id)))
        _check_ci_fit(prof, cis, src, fail)
        wants.append(Want(pos, prof, d.placement_start, cis, src, d.compute_profile_ids is None and not prof.compute_profiles))
    _check_together(wants, fail)
    return wants


def _profile_by_id(gpu: Gpu, d: DesiredInstance, src: str, fail: t.Callable[..., PlanError]) -> GpuInstanceProfile:
    prof = gpu.profile_by_id(d.profile_id)
    if prof is None:
        raise fail('%s: no GPU instance profile with ID %s on this GPU' % (src, d.profile_id), src)
    if not prof.placements:
        raise fail('%s: NVML reports no placements for %s' % (src, prof.name), src)
    if d.placement_start is not None:
        legal = sorted(p.start for p in prof.placements)
        if d.placement_start not in legal:
            raise fail('%s: placement %s is not a legal start for %s; legal: %s'
                       % (src, d.placement_start, prof.name, ', '.join(str(s) for s in legal)), src)
    return prof


def _ci_profiles_by_id(gpu: Gpu, prof: GpuInstanceProfile, d: DesiredInstance, src: str,
                       fail: t.Callable[..., PlanError]) -> tuple[ComputeInstanceProfile, ...]:
    ids = d.compute_profile_ids or ()
    if len(ids) > MAX_COMPUTE_INSTANCES:
        raise fail('%s: too many compute instances' % src, src)
    out = []
    for cid in ids:
        cip = compute_profile_by_id(gpu, prof, cid)
        if cip is None:
            raise fail('%s: no compute-instance profile with ID %s in a %s GPU instance; valid: %s'
                       % (src, cid, prof.name, valid_ci_profiles_text(gpu, prof)), src)
        out.append(cip)
    return tuple(out)


def _check_ci_fit(prof: GpuInstanceProfile, cis: t.Sequence[ComputeInstanceProfile], src: str,
                  fail: t.Callable[..., PlanError]) -> None:
    counts: dict[int, int] = {}
    for c in cis:
        counts[c.id] = counts.get(c.id, 0) + 1
    for c in {c.id: c for c in cis}.values():
        if counts[c.id] > c.instance_count:
            raise fail('%s: %d x %s: at most %d in one %s GPU instance'
                       % (src, counts[c.id], c.name, c.instance_count, prof.name), src)
    total = sum(c.slice_count for c in cis)
    if total > prof.slice_count:
        raise fail('%s: compute instances %s need %d compute slices; a %s GPU instance has %d'
                   % (src, count_text([c.name for c in cis]), total, prof.name, prof.slice_count), src)
    if pack_cis(prof, cis) is None:
        raise fail('%s: compute instances %s have no non-overlapping CI placements in a %s GPU instance'
                   % (src, count_text([c.name for c in cis]), prof.name), src)


def _check_together(wants: list[Want], fail: t.Callable[..., PlanError]) -> None:
    """Declared placements do not overlap, per-profile instance caps, the ``+me.all`` rule."""
    declared = [w for w in wants if w.start is not None]
    for a, b in itertools.combinations(declared, 2):
        pa, pb = a.options()[0], b.options()[0]
        if pa.overlaps(pb):
            raise fail('declared placements overlap: %s (%s) at %s and %s (%s) at %s'
                       % (a.prof.name, a.label, at_slots(pa), b.prof.name, b.label, at_slots(pb)), b.label)
    by_prof: dict[int, list[Want]] = {}
    for w in wants:
        by_prof.setdefault(w.prof.id, []).append(w)
    for lst in by_prof.values():
        prof = lst[0].prof
        if len(lst) > prof.instance_count:
            raise fail('%d x %s: at most %d on this GPU' % (len(lst), prof.name, prof.instance_count))
    # *_ALL_ME: "allocation of an instance of this profile prevents allocation of all but _NO_ME profiles" (nvml.h)
    all_me = [w for w in wants if is_all_me(w.prof)]
    if all_me:
        others = [w for w in wants if w is not all_me[0] and not is_no_me(w.prof)]
        if others:
            raise fail('%s allows only -me profiles next to it, but the layout also has %s'
                       % (all_me[0].prof.name, count_text([w.prof.name for w in others])))
