# Copyright (c) 2026 gpuops.mig contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Layout corpora of the benchmark: every valid GI-profile multiset of a GPU, and the maximal ones.

A layout here is a multiset of GPU instance profiles, each GI holding one full-size compute
instance (what mig-parted's ``mig-devices: {1g.10gb: 2, ...}`` means). *Valid* = the collection's
planner accepts it on an empty MIG-enabled GPU (placement exists, instance caps, ``+me``/``+me.all``
rules). *Maximal* = valid, and adding one more instance of any GI profile makes it invalid.
Everything comes from the ``Gpu`` object read from (simulated) NVML: profiles, caps, placements.
"""

from __future__ import annotations

import typing as t

from ansible_collections.gpuops.mig.plugins.module_utils._model import DesiredGpu, DesiredInstance, Gpu, PlanError
from ansible_collections.gpuops.mig.plugins.module_utils._planner import plan_gpu

Layout = t.Tuple[t.Tuple[int, int], ...]     # ((GI profile ID, count), ...) in the GPU's profile order, counts > 0


def ordered_profiles(gpu: Gpu) -> list[t.Any]:
    """Profiles largest placement first (display and enumeration order)."""
    return sorted(gpu.profiles, key=lambda p: (-p.placement_size, -p.slice_count, -p.memory_mib, p.name))


def desired(gpu: Gpu, layout: Layout) -> DesiredGpu:
    inst = tuple(DesiredInstance(profile_id=pid) for pid, n in layout for dummy in range(n))
    return DesiredGpu(index=gpu.index, mig_enabled=True, instances=inst)


def feasible(gpu: Gpu, layout: Layout) -> bool:
    try:
        plan_gpu(gpu, desired(gpu, layout))
        return True
    except PlanError:
        return False


def valid_layouts(gpu: Gpu, exclude: t.Callable[[t.Any], bool] = lambda p: False) -> list[Layout]:
    """Every non-empty valid multiset; counts bounded by instance caps and the slot count (pruning only)."""
    profs = [p for p in ordered_profiles(gpu) if not exclude(p)]
    slots = gpu.slot_count
    out: list[Layout] = []

    def rec(i: int, counts: list[int], used: int) -> None:
        if i == len(profs):
            lay = tuple((p.id, c) for p, c in zip(profs, counts) if c)
            if lay and feasible(gpu, lay):
                out.append(lay)
            return
        p = profs[i]
        for c in range(p.instance_count + 1):
            if used + c * p.placement_size > slots:
                break
            rec(i + 1, counts + [c], used + c * p.placement_size)

    rec(0, [], 0)
    return out


def maximal_layouts(gpu: Gpu, valid: list[Layout], exclude: t.Callable[[t.Any], bool] = lambda p: False) -> list[Layout]:
    valid_set = {frozenset(v) for v in valid}
    out = []
    for lay in valid:
        counts = dict(lay)
        grows = False
        for p in gpu.profiles:
            if exclude(p):
                continue
            bigger = dict(counts)
            bigger[p.id] = bigger.get(p.id, 0) + 1
            if frozenset(bigger.items()) in valid_set:
                grows = True
                break
        if not grows:
            out.append(lay)
    return out


def name(gpu: Gpu, layout: Layout) -> str:
    parts = []
    for pid, n in layout:
        pname = t.cast(t.Any, gpu.profile_by_id(pid)).name
        parts.append(pname if n == 1 else '%dx %s' % (n, pname))
    return ' + '.join(parts)


def mig_devices(gpu: Gpu, layout: Layout) -> dict[str, int]:
    return {t.cast(t.Any, gpu.profile_by_id(pid)).name: n for pid, n in layout}


def compute_slices(gpu: Gpu, layout: Layout) -> int:
    return sum(t.cast(t.Any, gpu.profile_by_id(pid)).slice_count * n for pid, n in layout)


def layout_of(gpu: Gpu, profile_ids: t.Iterable[int]) -> Layout:
    """The multiset of ``profile_ids`` in the canonical form ``valid_layouts`` uses."""
    counts: dict[int, int] = {}
    for pid in profile_ids:
        counts[pid] = counts.get(pid, 0) + 1
    return tuple((p.id, counts[p.id]) for p in ordered_profiles(gpu) if counts.get(p.id))


PlacedLayout = t.Tuple[t.Tuple[int, t.Any], ...]    # ((GI profile ID, Placement), ...) sorted by start


def placed_feasible(gpu: Gpu, items: t.Sequence[tuple[int, t.Any]]) -> bool:
    inst = tuple(DesiredInstance(profile_id=pid, placement_start=pl.start) for pid, pl in items)
    try:
        plan_gpu(gpu, DesiredGpu(index=gpu.index, mig_enabled=True, instances=inst))
        return True
    except PlanError:
        return False


def maximal_placed_layouts(gpu: Gpu, exclude: t.Callable[[t.Any], bool] = lambda p: False) -> list[PlacedLayout]:
    """Every placed layout (GI profile at a legal start) to which no instance of any profile can be added.

    Fragmented ones included (e.g. 1g at slot 1 alone in the left half). Feasibility of each step is
    the planner's, with the placements declared.
    """
    cands = sorted(((p.id, pl) for p in gpu.profiles if not exclude(p) for pl in p.placements), key=lambda c: (c[1].start, c[1].size, c[0]))
    memo: dict[frozenset, bool] = {}
    seen: set[frozenset] = set()
    out: list[PlacedLayout] = []

    def ok(items: list[tuple[int, t.Any]]) -> bool:
        key = frozenset(items)
        if key not in memo:
            memo[key] = placed_feasible(gpu, sorted(items, key=lambda c: c[1].start))
        return memo[key]

    def rec(items: list[tuple[int, t.Any]]) -> None:
        key = frozenset(items)
        if key in seen:
            return
        seen.add(key)
        grown = False
        for c in cands:
            if c in key or any(c[1].overlaps(x[1]) for x in items):
                continue
            if ok(items + [c]):
                grown = True
                rec(items + [c])
        if not grown and items:
            out.append(tuple(sorted(items, key=lambda c: c[1].start)))

    rec([])
    return sorted(out, key=lambda lay: [(pl.start, pid) for pid, pl in lay])


def placed_name(gpu: Gpu, items: PlacedLayout) -> str:
    return ' + '.join('%s@%d' % (t.cast(t.Any, gpu.profile_by_id(pid)).name, pl.start) for pid, pl in items)
