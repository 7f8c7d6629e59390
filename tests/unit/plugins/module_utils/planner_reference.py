# Copyright (c) 2026 gpuops.mig contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""Slow, obviously correct reference for the planner (tests and benchmarks only, never shipped in plugins/).

It shares nothing with ``_planner`` except the data model and the CI-profile lookup, so an
error in the planner's search, pruning or tie-breaking shows up as a disagreement.
"""

from __future__ import annotations

import itertools
import typing as t

from ansible_collections.gpuops.mig.plugins.module_utils._model import DesiredGpu, Gpu, GpuInstance, Placement
from ansible_collections.gpuops.mig.plugins.module_utils._profiles import full_compute_profile, is_all_me, is_no_me


def _overlap(a: Placement, b: Placement) -> bool:
    return a.start < b.start + b.size and b.start < a.start + a.size


def _can_place(options: list[list[Placement]], taken: list[Placement]) -> bool:
    """Depth-first over every combination of options, rejecting overlaps as soon as they appear."""
    if not options:
        return True
    for p in options[0]:
        if all(not _overlap(p, q) for q in taken):
            if _can_place(options[1:], taken + [p]):
                return True
    return False


def brute_force_min_destroys(gpu: Gpu, desired: DesiredGpu) -> int | None:
    """Fewest GPU instances that must be destroyed to reach ``desired``; None if unreachable.

    Tries every subset of the current GPU instances as the kept set (largest first) and every
    assignment of the kept ones to desired instances with the same profile (and declared start);
    the rest of the desired instances must then have non-overlapping legal placements. GPU
    instances with processes must be kept, with their busy compute instances' profiles among
    the desired ones. Instance caps and the ``+me.all`` rule are checked on counts.
    """
    if not desired.mig_enabled:
        return len(gpu.gpu_instances) if gpu.mig_mode and gpu.mig_mode.current else 0
    existing: list[GpuInstance] = list(gpu.gpu_instances) if gpu.mig_mode and gpu.mig_mode.current else []
    wants = []
    for d in desired.instances:
        prof = gpu.profile_by_id(d.profile_id)
        if prof is None:
            return None
        if d.compute_profile_ids is None:
            full = full_compute_profile(gpu, prof)
            cis = [full.id] if full else []
        else:
            cis = list(d.compute_profile_ids)
        opts = [p for p in prof.placements if d.placement_start is None or p.start == d.placement_start]
        wants.append((prof, opts, sorted(cis)))
    for prof in gpu.profiles:
        if sum(1 for w in wants if w[0].id == prof.id) > prof.instance_count:
            return None
    if any(is_all_me(w[0]) for w in wants):
        if sum(1 for w in wants if not is_no_me(w[0])) > 1:
            return None
    busy = {gi.id for gi in existing if gpu.processes_on(gi.id)}

    def busy_ci_profiles(gi: GpuInstance) -> list[int]:
        procs = gpu.processes_on(gi.id)
        return sorted(c.profile_id for c in gi.compute_instances if any(p.ci is None or p.ci == c.id for p in procs))

    def fits(gi: GpuInstance, w: t.Any) -> bool:
        if gi.profile_id != w[0].id or gi.placement not in w[1]:
            return False
        rest = list(w[2])
        for pid in busy_ci_profiles(gi):
            if pid not in rest:
                return False
            rest.remove(pid)
        return True

    fit = {(gi.id, j): fits(gi, w) for gi in existing for j, w in enumerate(wants)}
    # identical desired instances are interchangeable: only the first unused one of a kind is tried
    kind = [(w[0].id, tuple(w[1]), tuple(w[2])) for w in wants]

    def assignments(kept: t.Sequence[GpuInstance], used: tuple[int, ...]) -> t.Iterator[tuple[int, ...]]:
        if len(used) == len(kept):
            yield used
            return
        gi = kept[len(used)]
        tried = set()
        for j in range(len(wants)):
            if j in used or kind[j] in tried or not fit[(gi.id, j)]:
                continue
            tried.add(kind[j])
            yield from assignments(kept, used + (j,))

    for k in range(len(existing), -1, -1):
        for kept in itertools.combinations(existing, k):
            if not busy <= {gi.id for gi in kept}:
                continue
            if any(_overlap(a.placement, b.placement) for a, b in itertools.combinations(kept, 2)):
                continue
            for chosen in assignments(kept, ()):
                rest = [wants[j][1] for j in range(len(wants)) if j not in chosen]
                if _can_place(rest, [gi.placement for gi in kept]):
                    return len(existing) - k
    return None
