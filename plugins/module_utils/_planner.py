# Copyright (c) 2026 gpuops.mig contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""Plan how one GPU gets from its current MIG layout to the desired one.

Everything comes from the :class:`Gpu` object (profiles, legal placements, instance caps, the
current instances and their processes); nothing is hard-coded per GPU model. See docs/planner.md.

Algorithm in short:

1. Resolve the desired instances (GI profile, declared start, CI profiles) and check what does
   not depend on placement: legal declared starts, overlapping declared placements, per-profile
   instance caps, the ``+me.all`` rule and that each GI's compute instances fit in it.
2. Check that the layout can be placed at all on an empty GPU (exact backtracking search);
   otherwise explain the conflict.
3. Find the largest set of current GPU instances that can be kept: a kept GI has the desired
   instance's profile and, when declared, its start; every GI with processes must be kept (and
   its CIs with processes too). Keep-sets are tried by decreasing size, so the first feasible
   size is the maximum (= fewest GPU instances destroyed). Ties: more kept GIs whose CIs already
   match exactly, then more kept CIs, then lower GI IDs. A kept GI whose CIs differ is reworked
   (only its CIs are destroyed/created): keeping it always saves one GPU-instance destroy.
4. Emit actions: destroy CIs, destroy GIs, create GIs (explicit placement), create CIs
   (explicit placement), with ``keep`` actions for the GIs left alone.
"""

from __future__ import annotations

import dataclasses
import itertools
import typing as t

from ansible_collections.gpuops.mig.plugins.module_utils._model import (
    Action,
    ComputeInstance,
    ComputeInstanceProfile,
    DesiredGpu,
    Gpu,
    GpuInstance,
    GpuInstanceProfile,
    GpuPlan,
    Placement,
    PlanError,
)
from ansible_collections.gpuops.mig.plugins.module_utils._profiles import (
    compute_profile_by_id,
    compute_profiles_for,
    full_compute_profile,
    is_all_me,
    is_no_me,
)

MAX_DESIRED_INSTANCES = 64
MAX_COMPUTE_INSTANCES = 64


def slots_text(p: Placement) -> str:
    """``0-3`` for a placement of size 4 at 0, ``6`` for size 1 at 6."""
    return '%d' % p.start if p.size == 1 else '%d-%d' % (p.start, p.end - 1)


def at_slots(p: Placement) -> str:
    """``slot 6`` or ``slots 0-3``."""
    return ('slot %s' if p.size == 1 else 'slots %s') % slots_text(p)


def _or_join(items: t.Sequence[str]) -> str:
    if not items:
        return 'nowhere'
    if len(items) == 1:
        return items[0]
    return ', '.join(items[:-1]) + ' or ' + items[-1]


def _mask(p: Placement) -> int:
    return ((1 << p.size) - 1) << p.start


def _count_text(names: t.Sequence[str]) -> str:
    """``4g.40gb + 2 x 3g.40gb`` (order of first appearance)."""
    counts: dict[str, int] = {}
    for n in names:
        counts[n] = counts.get(n, 0) + 1
    return ' + '.join(n if c == 1 else '%d x %s' % (c, n) for n, c in counts.items())


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
            m = _mask(p)
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


@dataclasses.dataclass(frozen=True)
class Want:
    """One desired GPU instance, resolved against the GPU."""

    pos: int
    prof: GpuInstanceProfile
    start: int | None
    cis: tuple[ComputeInstanceProfile, ...]     # sorted by (-slices, id)
    label: str

    @property
    def cls(self) -> tuple[int, int | None, tuple[int, ...]]:
        return (self.prof.id, self.start, tuple(sorted(c.id for c in self.cis)))

    def options(self) -> list[Placement]:
        if self.start is None:
            return sorted(self.prof.placements)
        return [p for p in self.prof.placements if p.start == self.start]


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
    return pack([(c.id, ci_options(gi_prof, c)) for c in cis], occupied)


def _pids(pids: t.Iterable[int]) -> str:
    return ', '.join(str(p) for p in sorted(set(pids)))


class _Planner:
    def __init__(self, gpu: Gpu, desired: DesiredGpu) -> None:
        self.gpu = gpu
        self.desired = desired
        self.where = 'GPU %d (%s)' % (gpu.index, gpu.name)
        self._rework_memo: dict[tuple, t.Any] = {}

    def fail(self, msg: str, field: str | None = None) -> PlanError:
        return PlanError('%s: %s' % (self.where, msg), gpu_index=self.gpu.index, field=field)

    # -- step 1: resolve and check what does not depend on placement ---------------------------
    def resolve(self) -> list[Want]:
        gpu = self.gpu
        if len(self.desired.instances) > MAX_DESIRED_INSTANCES:
            raise self.fail('%d GPU instances requested; at most %d' % (len(self.desired.instances), MAX_DESIRED_INSTANCES))
        wants = []
        for pos, d in enumerate(self.desired.instances):
            src = d.source or (('%s.instances[%d]' % (self.desired.source, pos)) if self.desired.source else 'instance %d' % pos)
            prof = gpu.profile_by_id(d.profile_id)
            if prof is None:
                raise self.fail('%s: no GPU instance profile with ID %s on this GPU' % (src, d.profile_id), src)
            if not prof.placements:
                raise self.fail('%s: NVML reports no placements for %s' % (src, prof.name), src)
            if d.placement_start is not None:
                legal = sorted(p.start for p in prof.placements)
                if d.placement_start not in legal:
                    raise self.fail('%s: placement %s is not a legal start for %s; legal: %s'
                                    % (src, d.placement_start, prof.name, ', '.join(str(s) for s in legal)), src)
            if d.compute_profile_ids is None:
                full = full_compute_profile(gpu, prof)
                if full is None:
                    raise self.fail('%s: %s offers no full-size compute-instance profile' % (src, prof.name), src)
                cis: tuple[ComputeInstanceProfile, ...] = (full,)
            else:
                if len(d.compute_profile_ids) > MAX_COMPUTE_INSTANCES:
                    raise self.fail('%s: too many compute instances' % src, src)
                lst = []
                for cid in d.compute_profile_ids:
                    cip = compute_profile_by_id(gpu, prof, cid)
                    if cip is None:
                        raise self.fail('%s: no compute-instance profile with ID %s in a %s GPU instance; valid: %s'
                                        % (src, cid, prof.name, ', '.join('%s (ID %d)' % (c.name, c.id) for c in compute_profiles_for(gpu, prof))),
                                        src)
                    lst.append(cip)
                cis = tuple(sorted(lst, key=lambda c: (-c.slice_count, c.id)))
            self.check_ci_fit(prof, cis, src)
            wants.append(Want(pos, prof, d.placement_start, cis, src))
        # declared placements must not overlap
        declared = [w for w in wants if w.start is not None]
        for a, b in itertools.combinations(declared, 2):
            pa, pb = a.options()[0], b.options()[0]
            if pa.overlaps(pb):
                raise self.fail('declared placements overlap: %s (%s) at %s and %s (%s) at %s'
                                % (a.prof.name, a.label, at_slots(pa), b.prof.name, b.label, at_slots(pb)), b.label)
        # per-profile instance caps
        by_prof: dict[int, list[Want]] = {}
        for w in wants:
            by_prof.setdefault(w.prof.id, []).append(w)
        for lst in by_prof.values():
            prof = lst[0].prof
            if len(lst) > prof.instance_count:
                raise self.fail('%d x %s: at most %d on this GPU' % (len(lst), prof.name, prof.instance_count))
        # *_ALL_ME: "allocation of an instance of this profile prevents allocation of all but _NO_ME profiles" (nvml.h)
        all_me = [w for w in wants if is_all_me(w.prof)]
        if all_me:
            others = [w for w in wants if w is not all_me[0] and not is_no_me(w.prof)]
            if others:
                raise self.fail('%s allows only -me profiles next to it, but the layout also has %s'
                                % (all_me[0].prof.name, _count_text([w.prof.name for w in others])))
        return wants

    def check_ci_fit(self, prof: GpuInstanceProfile, cis: t.Sequence[ComputeInstanceProfile], src: str) -> None:
        counts: dict[int, int] = {}
        for c in cis:
            counts[c.id] = counts.get(c.id, 0) + 1
        for c in {c.id: c for c in cis}.values():
            if counts[c.id] > c.instance_count:
                raise self.fail('%s: %d x %s: at most %d in one %s GPU instance'
                                % (src, counts[c.id], c.name, c.instance_count, prof.name), src)
        total = sum(c.slice_count for c in cis)
        if total > prof.slice_count:
            raise self.fail('%s: compute instances %s need %d compute slices; a %s GPU instance has %d'
                            % (src, _count_text([c.name for c in cis]), total, prof.name, prof.slice_count), src)
        if pack_cis(prof, cis) is None:
            raise self.fail('%s: compute instances %s have no non-overlapping CI placements in a %s GPU instance'
                            % (src, _count_text([c.name for c in cis]), prof.name), src)

    # -- step 2: explain an infeasible layout --------------------------------------------------
    def explain(self, wants: list[Want], occupied_by: t.Sequence[GpuInstance] = ()) -> str:
        def infeasible(ws: t.Sequence[Want]) -> bool:
            return pack([(w.cls, w.options()) for w in ws]) is None

        core = list(wants)
        for w in list(core):
            trial = [x for x in core if x is not w]
            if infeasible(trial):
                core = trial
        core.sort(key=lambda w: (-w.prof.placement_size, -w.prof.slice_count, w.prof.name))
        desc = _count_text([w.prof.name + ('@%d' % w.start if w.start is not None else '') for w in core])
        slot_count = self.gpu.slot_count
        # Hall-type conflict: a group of instances whose legal placements cover fewer slots than they need
        best = None
        for k in range(2, len(core) + 1):
            for grp in itertools.combinations(core, k):
                cells = 0
                for w in grp:
                    for p in w.options():
                        cells |= _mask(p)
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
                                      ('fits only at ' + opts[0]) if len(opts) == 1 else 'at ' + _or_join(opts)))
        forced = self.propagate(core)
        if forced is not None:
            reason = forced
        elif best is not None:
            grp, have, need, cells = best
            reason = '%s need %d placement slots but can only use slots %s (%d slots)' % (
                _count_text([w.prof.name for w in grp]), need, _runs(cells), have)
        else:
            reason = 'no combination of their legal placements avoids an overlap'
        return '%s cannot be placed together: %s; this GPU has %d slots: %s' % (desc, reason, slot_count, ', '.join(legal))

    @staticmethod
    def propagate(core: list[Want]) -> str | None:
        """Follow forced placements (single legal option) until two collide or one has no room left."""
        opts = {id(w): list(w.options()) for w in core}
        fixed: list[tuple[Want, Placement]] = []
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
                    if not match or occ & _mask(c.placement):
                        ok = False
                        break
                    rest.remove(match[0])
                    occ |= _mask(c.placement)
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
        wants = self.resolve()
        if pack([(w.cls, w.options()) for w in wants]) is None:
            raise self.fail(self.explain(wants))
        in_use = [gi for gi in existing if gpu.processes_on(gi.id)]
        lost = [self.in_use_text(gi, wants) for gi in in_use if not any(self.compatible(gi, w) for w in wants)]
        if lost:
            raise self.fail('; '.join(lost))
        best = self.search(existing, in_use, wants)
        if best is None:
            raise self.fail(self.blocked_text(existing, in_use, wants))
        return self.build(head, existing, wants, best)

    def in_use_text(self, gi: GpuInstance, wants: list[Want]) -> str:
        pids = _pids(p.pid for p in self.gpu.processes_on(gi.id))
        base = ('GPU instance %d (%s at %s) has processes (PIDs %s) and would have to be destroyed'
                % (gi.id, gi.profile, at_slots(gi.placement), pids))
        same = [w for w in wants if w.prof.id == gi.profile_id]
        if not same:
            return base + ': the layout has no %s instance that could keep it' % gi.profile
        if all(w.start is not None and w.start != gi.placement.start for w in same):
            return base + ': the layout declares %s only at %s' % (
                gi.profile, ', '.join(slots_text(w.options()[0]) for w in same))
        busy = self.in_use_cis(gi)
        return base + ': its compute instances in use (%s) do not fit the layout\'s compute instances for %s (%s)' % (
            ', '.join('%d %s' % (c.id, c.profile) for c in busy), gi.profile,
            ' | '.join('[' + ', '.join(c.name for c in w.cis) + ']' for w in same))

    def blocked_text(self, existing: t.Sequence[GpuInstance], in_use: list[GpuInstance], wants: list[Want]) -> str:
        culprits = list(in_use)
        for gi in list(culprits):
            trial = [x for x in culprits if x is not gi]
            if self.search(trial, trial, wants, only_mandatory=True) is None:
                culprits = trial
        parts = ['GPU instance %d (%s at %s, PIDs %s)'
                 % (gi.id, gi.profile, at_slots(gi.placement), _pids(p.pid for p in self.gpu.processes_on(gi.id)))
                 for gi in culprits]
        legal = []
        for w in wants:
            txt = '%s at %s' % (w.prof.name, _or_join([slots_text(p) for p in w.options()]))
            if txt not in legal:
                legal.append(txt)
        return ('the layout cannot be reached without destroying %s, which %s in use: keeping %s leaves no room for the rest '
                '(legal placements: %s)' % (' and '.join(parts), 'is' if len(parts) == 1 else 'are',
                                            'it' if len(parts) == 1 else 'them', '; '.join(legal)))

    def search(self, existing: t.Sequence[GpuInstance], in_use: t.Sequence[GpuInstance], wants: list[Want],
               only_mandatory: bool = False) -> dict[str, t.Any] | None:
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
                    if occ & _mask(gi.placement):
                        clash = True
                        break
                    occ |= _mask(gi.placement)
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
                return {'kept': kept, 'asg': asg, 'counts': counts, 'placed': placed, 'keys': keys, 'classes': classes}
        return None

    # -- step 4: actions -------------------------------------------------------------------------
    def build(self, head: list[Action], existing: t.Sequence[GpuInstance], wants: list[Want], best: dict[str, t.Any]) -> GpuPlan:
        keys, classes = best['keys'], best['classes']
        kept: list[GpuInstance] = best['kept']
        kept_ids = {gi.id for gi in kept}
        keeps: list[Action] = []
        ci_destroys: list[Action] = []
        gi_destroys: list[Action] = []
        ci_creates_kept: list[Action] = []
        final: list[GpuInstance] = []
        for gi, ki in sorted(zip(kept, best['asg']), key=lambda x: x[0].placement.start):
            w = classes[keys[ki]][0]
            keeps.append(Action('keep', 'gpu_instance', profile=gi.profile, profile_id=gi.profile_id, gi_id=gi.id, placement=gi.placement))
            cur_ids = tuple(sorted(c.profile_id for c in gi.compute_instances))
            if cur_ids == keys[ki][2]:
                final.append(gi)
                continue
            rw = self.rework(gi, w)
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
            for c in gi.compute_instances:
                ci_destroys.append(Action('destroy', 'compute_instance', profile=c.profile, profile_id=c.profile_id, gi_id=gi.id,
                                          ci_id=c.id, placement=c.placement, gi_placement=gi.placement))
            gi_destroys.append(Action('destroy', 'gpu_instance', profile=gi.profile, profile_id=gi.profile_id, gi_id=gi.id,
                                      placement=gi.placement))
        # the remaining wants of each class, in class order, got the placements in best['placed']
        remaining: list[Want] = []
        for k, n in zip(keys, best['counts']):
            remaining.extend(classes[k][n:])
        placed: list[Placement] = best['placed']
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
                                             gi_placement=pl, gi_ref=ref))
                cis.append(ComputeInstance(id=t.cast(int, None), profile_id=cip.id, profile=cip.name, placement=cpl))
            final.append(GpuInstance(id=t.cast(int, None), profile_id=w.prof.id, profile=w.prof.name, placement=pl,
                                     compute_instances=tuple(sorted(cis, key=lambda c: c.placement))))
        actions += gi_creates + ci_creates_kept + ci_creates_new
        return GpuPlan(index=self.gpu.index, actions=tuple(actions),
                       target_instances=tuple(sorted(final, key=lambda g: g.placement.start)))

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
                    % (gi.id, gi.profile, at_slots(gi.placement), _pids(p.pid for p in gpu.processes_on(gi.id))) for gi in busy))
            for gi in gpu.gpu_instances:
                for c in gi.compute_instances:
                    actions.append(Action('destroy', 'compute_instance', profile=c.profile, profile_id=c.profile_id, gi_id=gi.id,
                                          ci_id=c.id, placement=c.placement, gi_placement=gi.placement))
            for gi in gpu.gpu_instances:
                actions.append(Action('destroy', 'gpu_instance', profile=gi.profile, profile_id=gi.profile_id, gi_id=gi.id,
                                      placement=gi.placement))
        actions.append(Action('set_mode', 'gpu', mig_enabled=False))
        return GpuPlan(index=gpu.index, actions=tuple(actions))


def _runs(cells: int) -> str:
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


def plan_gpu(gpu: Gpu, desired: DesiredGpu) -> GpuPlan:
    """Plan the actions that take ``gpu`` to ``desired``; PlanError (before any mutation) if impossible."""
    if desired.index != gpu.index:
        raise PlanError('desired layout for GPU %d given for GPU %d' % (desired.index, gpu.index), gpu_index=gpu.index)
    return _Planner(gpu, desired).plan()
