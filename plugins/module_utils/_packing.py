# Copyright (c) 2026 gpuops.mig contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""Packing: choose non-overlapping placements exactly (GPU instances on the slot grid, compute instances in a GPU instance).

Used by the spec parser (mig-parted's packing of ``1c.3g.40gb: 3`` into GPU instances) and by the planner.
"""

from __future__ import annotations

import typing as t

from ansible_collections.gpuops.mig.plugins.module_utils._model import ComputeInstanceProfile, GpuInstanceProfile, Placement


def placement_mask(p: Placement) -> int:
    """Bit set of the slots ``p`` covers."""
    return ((1 << p.size) - 1) << p.start


def pack(items: t.Sequence[tuple[t.Hashable, t.Sequence[Placement]]], occupied: int = 0) -> list[Placement] | None:
    """Exact search: one placement per item from its options, pairwise disjoint and disjoint from ``occupied``.

    ``items`` are ``(key, options)``; items with equal keys are interchangeable, so their starts are
    forced increasing (symmetry breaking). Returns placements in item order, or None.
    """
    order = sorted(range(len(items)), key=lambda i: (-max((p.size for p in items[i][1]), default=0), len(items[i][1]), repr(items[i][0])))
    its = [items[i] for i in order]
    n = len(its)
    chosen: list[Placement | None] = [None] * n
    failed: set[tuple[int, int, int]] = set()

    def rec(i: int, occ: int, min_start: int) -> bool:
        if i == n:
            return True
        state = (i, occ, min_start)
        if state in failed:
            return False
        key, opts = its[i]
        same_next = i + 1 < n and its[i + 1][0] == key
        for p in opts:
            if p.start < min_start:
                continue
            m = placement_mask(p)
            if occ & m:
                continue
            chosen[i] = p
            if rec(i + 1, occ | m, p.start + 1 if same_next else -1):
                return True
        failed.add(state)
        return False

    if not rec(0, occupied, -1):
        return None
    out: list[Placement] = [Placement(0, 0)] * n
    for pos, i in enumerate(order):
        out[i] = t.cast(Placement, chosen[pos])
    return out


def ci_options(gi_prof: GpuInstanceProfile, cip: ComputeInstanceProfile) -> list[Placement]:
    """Legal CI placements inside a GI: NVML's when known, else NVML's alignment rule.

    Before a GPU instance of the profile exists, NVML cannot list CI placements. Drivers align a CI of
    ``c`` slices to the next power of two >= ``c`` (a 7g GI offers ``{0..6}:1``, ``{0,2,4}:2``,
    ``{0,4}:3``, ``{0}:4``, ``{0}:7``, as ``nvidia-smi mig -lcipp`` prints), so that is what is assumed.
    """
    if cip.placements:
        return sorted(cip.placements)
    step = 1 << (cip.slice_count - 1).bit_length()
    return [Placement(s, cip.slice_count) for s in range(0, gi_prof.slice_count - cip.slice_count + 1, step)]


def pack_cis(gi_prof: GpuInstanceProfile, cis: t.Sequence[ComputeInstanceProfile], occupied: int = 0) -> list[Placement] | None:
    """Placements for ``cis`` inside a GPU instance of ``gi_prof`` (slots in ``occupied`` taken), or None."""
    return pack([(c.id, ci_options(gi_prof, c)) for c in cis], occupied)
