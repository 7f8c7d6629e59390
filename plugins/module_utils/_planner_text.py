# Copyright (c) 2026 gpuops.mig contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""The planner's error text, in one place: why a layout cannot be placed, why an instance in use blocks it.

Pure functions of the GPU and the resolved layout; the planner decides, this module words it.
"""

from __future__ import annotations

import itertools
import typing as t

from ansible_collections.gpuops.mig.plugins.module_utils._model import (
    ComputeInstance,
    ComputeInstanceProfile,
    Gpu,
    GpuInstance,
    GpuInstanceProfile,
    Placement,
)
from ansible_collections.gpuops.mig.plugins.module_utils._packing import pack, placement_mask


class WantView(t.Protocol):
    """What the text needs of one resolved desired GPU instance (the planner's ``Want``)."""

    @property
    def prof(self) -> GpuInstanceProfile:
        ...

    @property
    def start(self) -> int | None:
        ...

    @property
    def cis(self) -> tuple[ComputeInstanceProfile, ...]:
        ...

    @property
    def cls(self) -> t.Hashable:
        ...

    def options(self) -> list[Placement]:
        ...


def slots_text(p: Placement) -> str:
    """``0-3`` for a placement of size 4 at 0, ``6`` for size 1 at 6."""
    return '%d' % p.start if p.size == 1 else '%d-%d' % (p.start, p.end - 1)


def at_slots(p: Placement) -> str:
    """``slot 6`` or ``slots 0-3``."""
    return ('slot %s' if p.size == 1 else 'slots %s') % slots_text(p)


def or_join(items: t.Sequence[str]) -> str:
    if not items:
        return 'nowhere'
    if len(items) == 1:
        return items[0]
    return ', '.join(items[:-1]) + ' or ' + items[-1]


def count_text(names: t.Sequence[str]) -> str:
    """``4g.40gb + 2 x 3g.40gb`` (order of first appearance)."""
    counts: dict[str, int] = {}
    for n in names:
        counts[n] = counts.get(n, 0) + 1
    return ' + '.join(n if c == 1 else '%d x %s' % (c, n) for n, c in counts.items())


def pids_text(pids: t.Iterable[int]) -> str:
    return ', '.join(str(p) for p in sorted(set(pids)))


def runs_text(cells: int) -> str:
    """``0-3, 6`` for a bit set of slots."""
    out = []
    i = 0
    while cells >> i:
        if cells >> i & 1:
            j = i
            while cells >> (j + 1) & 1:
                j += 1
            out.append('%d' % i if i == j else '%d-%d' % (i, j))
            i = j + 1
        else:
            i += 1
    return ', '.join(out)


def explain_infeasible(gpu: Gpu, wants: t.Sequence[WantView]) -> str:
    """Why ``wants`` cannot be placed together on an empty ``gpu``: the smallest conflicting core and its reason."""
    def infeasible(ws: t.Sequence[WantView]) -> bool:
        return pack([(w.cls, w.options()) for w in ws]) is None

    core = list(wants)
    for w in list(core):
        trial = [x for x in core if x is not w]
        if infeasible(trial):
            core = trial
    core.sort(key=lambda w: (-w.prof.placement_size, -w.prof.slice_count, w.prof.name))
    desc = count_text([w.prof.name + ('@%d' % w.start if w.start is not None else '') for w in core])
    slot_count = gpu.slot_count
    # Hall-type conflict: a group of instances whose legal placements cover fewer slots than they need
    best = None
    for k in range(2, len(core) + 1):
        for grp in itertools.combinations(core, k):
            cells = 0
            for w in grp:
                for p in w.options():
                    cells |= placement_mask(p)
            need = sum(w.prof.placement_size for w in grp)
            have = bin(cells).count('1')
            if need > have and (best is None or have < best[1]):
                best = (grp, have, need, cells)
        if best is not None:
            break
    legal = []
    seen = set()
    for w in core:
        key = (w.prof.id, w.start)
        if key in seen:
            continue
        seen.add(key)
        opts = [slots_text(p) for p in w.options()]
        legal.append('%s%s %s' % (w.prof.name, ' (declared)' if w.start is not None else '',
                                  ('fits only at ' + opts[0]) if len(opts) == 1 else 'at ' + or_join(opts)))
    forced = propagate_forced(core)
    if forced is not None:
        reason = forced
    elif best is not None:
        grp, have, need, cells = best
        reason = '%s need %d placement slots but can only use slots %s (%d slots)' % (
            count_text([w.prof.name for w in grp]), need, runs_text(cells), have)
    else:
        reason = 'no combination of their legal placements avoids an overlap'
    return '%s cannot be placed together: %s; this GPU has %d slots: %s' % (desc, reason, slot_count, ', '.join(legal))


def propagate_forced(core: t.Sequence[WantView]) -> str | None:
    """Follow forced placements (single legal option) until two collide or one has no room left."""
    opts = {id(w): list(w.options()) for w in core}
    fixed: list[tuple[WantView, Placement]] = []
    steps: list[str] = []
    while True:
        progress = False
        for w in core:
            if any(w is f[0] for f in fixed):
                continue
            o = opts[id(w)]
            if not o:
                return '%s; that leaves %s no legal placement' % (', '.join(steps) or 'the others take every slot', w.prof.name)
            if len(o) != 1:
                continue
            p = o[0]
            for fw, fp in fixed:
                if fp.overlaps(p):
                    lead = ', '.join(steps)
                    clash = ('%s and %s both need placement %s' % (fw.prof.name, w.prof.name, at_slots(p))
                             if fp == p else '%s needs %s, %s needs %s' % (fw.prof.name, at_slots(fp), w.prof.name, at_slots(p)))
                    return ('%s, so %s' % (lead, clash)) if lead else clash
            fixed.append((w, p))
            steps.append('%s can only take %s' % (w.prof.name, at_slots(p)))
            for other in core:
                if not any(other is f[0] for f in fixed):
                    opts[id(other)] = [q for q in opts[id(other)] if not q.overlaps(p)]
            progress = True
        if not progress:
            return None


def in_use_text(gpu: Gpu, gi: GpuInstance, wants: t.Sequence[WantView], busy: t.Sequence[ComputeInstance]) -> str:
    """Why GPU instance ``gi``, which has processes, cannot be kept by the layout."""
    pids = pids_text(p.pid for p in gpu.processes_on(gi.id))
    base = ('GPU instance %d (%s at %s) has processes (PIDs %s) and would have to be destroyed'
            % (gi.id, gi.profile, at_slots(gi.placement), pids))
    same = [w for w in wants if w.prof.id == gi.profile_id]
    if not same:
        return base + ': the layout has no %s instance that could keep it' % gi.profile
    if all(w.start is not None and w.start != gi.placement.start for w in same):
        return base + ': the layout declares %s only at %s' % (
            gi.profile, ', '.join(slots_text(w.options()[0]) for w in same))
    return base + ': its compute instances in use (%s) do not fit the layout\'s compute instances for %s (%s)' % (
        ', '.join('%d %s' % (c.id, c.profile) for c in busy), gi.profile,
        ' | '.join('[' + ', '.join(c.name for c in w.cis) + ']' for w in same))


def blocked_text(gpu: Gpu, culprits: t.Sequence[GpuInstance], wants: t.Sequence[WantView]) -> str:
    """The layout needs room that GPU instances in use (``culprits``, a minimal set) hold."""
    parts = ['GPU instance %d (%s at %s, PIDs %s)'
             % (gi.id, gi.profile, at_slots(gi.placement), pids_text(p.pid for p in gpu.processes_on(gi.id)))
             for gi in culprits]
    legal = []
    for w in wants:
        txt = '%s at %s' % (w.prof.name, or_join([slots_text(p) for p in w.options()]))
        if txt not in legal:
            legal.append(txt)
    return ('the layout cannot be reached without destroying %s, which %s in use: keeping %s leaves no room for the rest '
            '(legal placements: %s)' % (' and '.join(parts), 'is' if len(parts) == 1 else 'are',
                                        'it' if len(parts) == 1 else 'them', '; '.join(legal)))
