# Copyright (c) 2026 gpuops.mig contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""Fleet planning: from fleet-wide MIG demand to per-host layouts, least disruptive first.

See docs/fleet-planning.md. In short:

* GPUs with the same model, the same current instances (profiles, placements, compute
  instances, which of them run processes) and the same demand scopes form a *class*.
* Per model, the candidate layouts are every multiset of GPU instance profiles (full-size
  compute instance each) over the profiles the demand names or the fleet already has, that the
  per-GPU planner can place on an empty GPU; plus "leave the GPU as it is" and "MIG disabled".
* For each (class, candidate) the per-GPU planner :func:`plan_gpu` says whether the class can
  reach it without touching a busy instance, and how many GPU instances it destroys (the exact
  minimum for that layout); memoized per (class, layout). Dominated candidates are dropped.
* An integer program chooses how many GPUs of each class take each candidate, with the number
  of changed hosts modelled per *host class* (hosts with the same multiset of GPU classes).
  Objective, lexicographic by default: unmet demand, destroyed GPU instances, changed GPUs,
  changed hosts, GPUs left without instances (maximised), created GPU instances.
"""

from __future__ import annotations

import dataclasses
import math
import typing as t

from ansible_collections.gpuops.mig.plugins.module_utils._adopt import current_layout, instance_entry
from ansible_collections.gpuops.mig.plugins.module_utils._model import (
    DesiredGpu,
    DesiredInstance,
    Gpu,
    GpuPlan,
    MigMode,
    PlanError,
    SpecError,
    gpu_from_dict,
)
from ansible_collections.gpuops.mig.plugins.module_utils._planner import plan_gpu
from ansible_collections.gpuops.mig.plugins.module_utils._profiles import canonical_name, parse_profile_name

try:
    import numpy as np
    from scipy.optimize import Bounds, LinearConstraint, milp
    from scipy.sparse import coo_matrix
except ImportError as _exc:    # controller-only dependency; the module reports it with the package name
    SOLVER_IMPORT_ERROR: str | None = str(_exc)
else:
    SOLVER_IMPORT_ERROR = None

SOLVER_PACKAGE = 'scipy'
WHOLE = 'whole'
TERMS = ('destroyed_instances', 'gpus_changed', 'hosts_changed', 'gpus_unused')
MAX_ITEMS = 256
MAX_COUNT = 10 ** 7
KEEP = 'keep'
DISABLED = 'disabled'


class SolverMissing(Exception):
    """scipy (HiGHS through scipy.optimize.milp) is not importable on the controller."""


# --- input ----------------------------------------------------------------------------------------

@dataclasses.dataclass(frozen=True)
class DemandItem:
    pos: int
    count: int                    # with headroom applied
    requested: int                # as written
    profile: str | None = None    # canonical NVML name, or 'whole'
    slices: int | None = None
    min_memory_gb: float = 0
    group: str | None = None      # None = the whole fleet

    @property
    def label(self) -> str:
        what = self.profile if self.profile else '%d-slice >= %sGB' % (t.cast(int, self.slices), _num(self.min_memory_gb))
        return 'demand[%d] (%d x %s%s)' % (self.pos, self.count, what, ' in %s' % self.group if self.group else '')

    def matches(self, gpu: Gpu, profile_id: int) -> bool:
        prof = gpu.profile_by_id(profile_id)
        if prof is None:
            return False
        if self.profile is not None:
            return canonical_name(prof.name) == self.profile
        parsed = parse_profile_name(prof.name)
        return (parsed is not None and not parsed.attr and prof.slice_count == self.slices
                and prof.memory_mib >= self.min_memory_gb * 1024)


def _num(v: float) -> str:
    return ('%d' % v) if float(v).is_integer() else '%g' % v


def _int(value: t.Any, path: str, lo: int, hi: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        if isinstance(value, str) and value.strip().isdigit():
            value = int(value.strip())
        else:
            raise SpecError(path, 'must be an integer')
    if not lo <= value <= hi:
        raise SpecError(path, 'must be between %d and %d, got %d' % (lo, hi, value))
    return value


def parse_demand(demand: t.Any, groups: t.Mapping[str, t.Sequence[str]], headroom: int = 0) -> list[DemandItem]:
    """Validate ``demand`` (list of ``{profile | slices [min_memory_gb], count, group}``)."""
    if not isinstance(demand, list) or not demand:
        raise SpecError('demand', 'must be a non-empty list')
    if len(demand) > MAX_ITEMS:
        raise SpecError('demand', 'has more than %d items' % MAX_ITEMS)
    out = []
    for i, raw in enumerate(demand):
        p = 'demand[%d]' % i
        if not isinstance(raw, dict):
            raise SpecError(p, 'must be a mapping')
        for k in raw:
            if k not in ('profile', 'slices', 'min_memory_gb', 'count', 'group'):
                raise SpecError('%s.%s' % (p, k), 'unknown key; allowed: profile, slices, min_memory_gb, count, group')
        if 'count' not in raw:
            raise SpecError('%s.count' % p, 'is required')
        count = _int(raw['count'], '%s.count' % p, 0, MAX_COUNT)
        group = raw.get('group')
        if group is not None:
            if not isinstance(group, str) or group not in groups:
                raise SpecError('%s.group' % p, 'unknown host group %r; groups: %s' % (group, ', '.join(sorted(groups)) or 'none'))
            if group == 'all':
                group = None
        profile = raw.get('profile')
        slices = raw.get('slices')
        mem = raw.get('min_memory_gb', 0)
        if (profile is None) == (slices is None):
            raise SpecError(p, 'give either profile (a name like 1g.10gb, or whole) or slices (with optional min_memory_gb)')
        if profile is not None:
            if not isinstance(profile, str):
                raise SpecError('%s.profile' % p, 'must be a profile name like 1g.10gb, or whole')
            if profile.strip().lower() == WHOLE:
                profile = WHOLE
            else:
                parsed = parse_profile_name(profile)
                if parsed is None:
                    raise SpecError('%s.profile' % p, '%r is not a GPU instance profile name (like 1g.10gb, 1g.10gb+me) or whole' % profile[:80])
                if parsed.c is not None and parsed.c != parsed.g:
                    raise SpecError('%s.profile' % p, '%s is a compute-instance profile; demand names GPU instance profiles' % parsed.name)
                profile = parsed.gi_name
            if 'min_memory_gb' in raw:
                raise SpecError('%s.min_memory_gb' % p, 'only applies together with slices')
        else:
            slices = _int(slices, '%s.slices' % p, 1, 8)
            if isinstance(mem, bool) or not isinstance(mem, (int, float)) or mem < 0 or mem > 10000:
                raise SpecError('%s.min_memory_gb' % p, 'must be a number between 0 and 10000')
        need = int(math.ceil(count * (100 + headroom) / 100.0 - 1e-9))
        out.append(DemandItem(i, need, count, profile, slices, mem, group))
    return out


def _gpu_set(refs: t.Any, field: str, fleet: t.Mapping[str, t.Sequence[Gpu]]) -> set[tuple[str, int]]:
    """The (host, GPU index) pairs that ``refs`` name: a host name stands for all of its GPUs."""
    out: set[tuple[str, int]] = set()
    for i, ref in enumerate(refs or ()):
        if isinstance(ref, str) and ref in fleet:
            out.update((ref, g.index) for g in fleet[ref])
        else:
            out.update(_gpu_ref(ref, '%s[%d]' % (field, i), fleet))
    return out


def _gpu_ref(ref: t.Any, path: str, hosts: t.Mapping[str, t.Sequence[Gpu]]) -> list[tuple[str, int]]:
    """``HOST:INDEX``, ``HOST`` (every GPU of it) or a GPU UUID -> [(host, index)]."""
    if not isinstance(ref, (str, int)) or isinstance(ref, bool):
        raise SpecError(path, 'must be HOST:INDEX or a GPU UUID')
    s = str(ref).strip()
    if s.lower().startswith('gpu-'):
        hit = [(h, g.index) for h, gs in hosts.items() for g in gs if g.uuid.lower() == s.lower()]
        if not hit:
            raise SpecError(path, 'no GPU with UUID %s in the fleet' % s[:80])
        return hit
    host, sep, idx = s.rpartition(':')
    if not sep or not idx.isdigit() or host not in hosts:
        raise SpecError(path, '%r is not HOST:INDEX of a known host, or a GPU UUID' % s[:80])
    if not any(g.index == int(idx) for g in hosts[host]):
        raise SpecError(path, 'host %s has no GPU %s' % (host, idx))
    return [(host, int(idx))]


# --- classes and candidates -----------------------------------------------------------------------

def model_key(gpu: Gpu) -> tuple:
    return (gpu.name, gpu.pci_device_id, gpu.memory_total_mib,
            tuple((p.id, p.name, p.slice_count, p.instance_count, p.placements) for p in gpu.profiles))


def state_key(gpu: Gpu) -> tuple:
    mode = (gpu.mig_mode.current, gpu.mig_mode.pending) if gpu.mig_mode else None
    gis = []
    for gi in sorted(gpu.gpu_instances, key=lambda g: g.placement.start):
        procs = gpu.processes_on(gi.id)
        busy_cis = frozenset(c.placement for c in gi.compute_instances if any(p.ci in (None, c.id) for p in procs))
        gis.append((gi.profile_id, gi.placement, tuple(sorted((c.profile_id, c.placement) for c in gi.compute_instances)),
                    bool(procs), busy_cis))
    whole_busy = any(p.gi is None for p in gpu.processes)
    return (gpu.mig_capable, mode, tuple(gis), whole_busy)


@dataclasses.dataclass
class Candidate:
    kind: str                           # keep, disabled, layout
    profiles: tuple[int, ...] = ()      # GI profile IDs of a layout
    destroys: int = 0
    changed: int = 0
    created: int = 0
    unused: int = 0                     # 1 when the GPU ends with no GPU instance
    supply: dict[t.Any, int] = dataclasses.field(default_factory=dict)   # profile ID or WHOLE -> count
    plan: GpuPlan | None = None


@dataclasses.dataclass
class GpuClass:
    key: tuple
    rep: Gpu
    scope: frozenset
    forced_disabled: bool
    members: list[tuple[str, int]] = dataclasses.field(default_factory=list)
    candidates: list[Candidate] = dataclasses.field(default_factory=list)


def _empty_like(gpu: Gpu) -> Gpu:
    return dataclasses.replace(gpu, index=0, mig_mode=MigMode(True, True), gpu_instances=(), processes=())


def _desired(index: int, profiles: t.Sequence[int]) -> DesiredGpu:
    return DesiredGpu(index=index, mig_enabled=True, instances=tuple(DesiredInstance(profile_id=p) for p in profiles))


def enumerate_layouts(gpu: Gpu, vocabulary: t.Sequence[int]) -> list[tuple[int, ...]]:
    """Every multiset of ``vocabulary`` profiles the per-GPU planner can place on an empty ``gpu``."""
    empty = _empty_like(gpu)
    vocab = sorted(set(vocabulary))
    out: list[tuple[int, ...]] = [()]

    def feasible(profiles: tuple[int, ...]) -> bool:
        try:
            plan_gpu(empty, _desired(0, profiles))
        except PlanError:
            return False
        return True

    def rec(cur: tuple[int, ...], start: int) -> None:
        for i in range(start, len(vocab)):
            nxt = cur + (vocab[i],)
            if feasible(nxt):
                out.append(nxt)
                rec(nxt, i)
    rec((), 0)
    return out


def _supply_of_current(gpu: Gpu) -> dict[t.Any, int]:
    sup: dict[t.Any, int] = {}
    if not gpu.mig_capable or gpu.mig_mode is None or not gpu.mig_mode.current:
        sup[WHOLE] = 1
        return sup
    for gi in gpu.gpu_instances:
        prof = gpu.profile_by_id(gi.profile_id)
        if prof is not None and len(gi.compute_instances) == 1 and gi.compute_instances[0].placement.size == prof.slice_count:
            sup[gi.profile_id] = sup.get(gi.profile_id, 0) + 1
    return sup


def _dominates(a: Candidate, b: Candidate, keys: t.Sequence[t.Any]) -> bool:
    if a.destroys > b.destroys or a.changed > b.changed or a.created > b.created or a.unused < b.unused:
        return False
    return all(a.supply.get(k, 0) >= b.supply.get(k, 0) for k in keys)


def build_candidates(cls: GpuClass, layouts: t.Sequence[tuple[int, ...]], whole_wanted: bool) -> None:
    gpu = cls.rep
    keep = Candidate(KEEP, supply=_supply_of_current(gpu),
                     unused=0 if (gpu.mig_mode and gpu.mig_mode.current and gpu.gpu_instances) else 1)
    cands = [keep]
    mode = gpu.mig_mode
    is_off = mode is None or not (mode.current or mode.pending)
    in_use_whole = any(p.gi is None for p in gpu.processes)
    if mode is not None and not is_off:
        try:
            plan = plan_gpu(gpu, DesiredGpu(index=gpu.index, mig_enabled=False))
            cands.append(Candidate(DISABLED, destroys=plan.destroyed_gpu_instances, changed=1, unused=1,
                                   supply={WHOLE: 1}, plan=plan))
        except PlanError:
            pass
    if cls.forced_disabled:
        # must end with MIG disabled: as it is, or disabled now; no candidate at all is reported by the caller
        cls.candidates = [keep] if is_off else [c for c in cands if c.kind == DISABLED]
        if not whole_wanted:
            for c in cls.candidates:
                c.supply.pop(WHOLE, None)
        return
    if mode is not None and not (is_off and in_use_whole):
        for prof_ids in layouts:
            try:
                plan = plan_gpu(gpu, _desired(gpu.index, prof_ids))
            except PlanError:
                continue
            if not plan.changes:
                continue     # the layout is what the GPU has: the keep candidate covers it
            sup: dict[t.Any, int] = {}
            for pid in prof_ids:
                sup[pid] = sup.get(pid, 0) + 1
            created = sum(1 for a in plan.actions if a.action == 'create' and a.target == 'gpu_instance')
            cands.append(Candidate('layout', prof_ids, plan.destroyed_gpu_instances, 1, created, 0 if prof_ids else 1, sup, plan))
    keys = sorted({k for c in cands for k in c.supply}, key=str)
    if not whole_wanted:
        for c in cands:
            c.supply.pop(WHOLE, None)
    # drop dominated candidates (never needed in an optimum); keep the first of equals
    kept: list[Candidate] = []
    order = sorted(range(len(cands)), key=lambda i: (cands[i].destroys, cands[i].changed, cands[i].created, -cands[i].unused, i))
    for i in order:
        c = cands[i]
        if not any(_dominates(k, c, keys) for k in kept):
            kept.append(c)
    cls.candidates = kept


# --- the plan ---------------------------------------------------------------------------------------

@dataclasses.dataclass
class FleetPlan:
    feasible: bool
    objective: dict[str, int]
    hosts: dict[str, dict[str, t.Any]]
    summary: dict[str, t.Any]
    shortfall: list[dict[str, t.Any]]
    capacity: list[dict[str, t.Any]]
    stats: dict[str, t.Any]


def _solve(c: t.Any, cons: list[t.Any], integrality: t.Any, bounds: t.Any, time_limit: float | None) -> t.Any:
    opts: dict[str, t.Any] = {'mip_rel_gap': 0.0, 'presolve': True}
    if time_limit:
        opts['time_limit'] = time_limit
    res = milp(c, constraints=cons, integrality=integrality, bounds=bounds, options=opts)
    if res.x is None:
        raise RuntimeError('the integer program found no solution (%s)' % res.message)
    if res.status != 0:
        raise RuntimeError('the integer program stopped before proving optimality (%s)' % res.message)
    return res


def plan_fleet(hosts_gpus: t.Mapping[str, t.Sequence[t.Any]], demand: t.Any, groups: t.Mapping[str, t.Sequence[str]] | None = None,
               headroom: int = 0, exclude: t.Sequence[t.Any] = (), keep_disabled: t.Sequence[t.Any] = (),
               max_hosts_changed: int | None = None, weights: t.Mapping[str, t.Any] | None = None,
               time_limit: float | None = None) -> FleetPlan:
    """Plan the fleet. ``hosts_gpus`` maps host -> GPUs (``Gpu`` or mig_info dicts).

    Raises SpecError for bad input and SolverMissing when scipy is absent. An infeasible demand is
    not an exception: the result has ``feasible`` false, the closest plan and the shortfall.
    """
    if SOLVER_IMPORT_ERROR is not None:
        raise SolverMissing('the fleet planner needs the Python package %s (scipy.optimize.milp, HiGHS) on the controller: %s'
                            % (SOLVER_PACKAGE, SOLVER_IMPORT_ERROR))
    groups = dict(groups or {})
    if not isinstance(hosts_gpus, dict) or not hosts_gpus:
        raise SpecError('hosts', 'must be a non-empty mapping of host name to its mig_info gpus')
    fleet: dict[str, list[Gpu]] = {}
    for h in sorted(hosts_gpus):
        gl = hosts_gpus[h]
        if not isinstance(gl, list):
            raise SpecError('hosts[%s]' % h, 'must be the list of GPUs mig_info returns')
        try:
            fleet[h] = [g if isinstance(g, Gpu) else gpu_from_dict(g) for g in gl]
        except (KeyError, TypeError, ValueError) as exc:
            raise SpecError('hosts[%s]' % h, 'is not mig_info output: %s' % exc)
    for g, members in groups.items():
        if not isinstance(members, (list, tuple)):
            raise SpecError('groups[%s]' % g, 'must be a list of host names')
    if headroom is None:
        headroom = 0
    headroom = _int(headroom, 'headroom', 0, 1000)
    items = parse_demand(demand, groups, headroom)
    if max_hosts_changed is not None:
        max_hosts_changed = _int(max_hosts_changed, 'max_hosts_changed', 0, 10 ** 7)
    w = None
    if weights:
        if not isinstance(weights, dict):
            raise SpecError('weights', 'must be a mapping of %s to numbers' % ', '.join(TERMS))
        w = {}
        for k, v in weights.items():
            if k not in TERMS:
                raise SpecError('weights.%s' % k, 'unknown term; terms: %s' % ', '.join(TERMS))
            if isinstance(v, bool) or not isinstance(v, (int, float)) or v < 0:
                raise SpecError('weights.%s' % k, 'must be a number >= 0')
            w[k] = float(v)
    excluded = _gpu_set(exclude, 'exclude', fleet)
    forced = _gpu_set(keep_disabled, 'keep_disabled', fleet)

    scopes_of_host = {h: frozenset(d.pos for d in items if d.group is None or h in groups.get(d.group, ())) for h in fleet}
    whole_wanted = any(d.profile == WHOLE for d in items)

    # classes
    classes: dict[tuple, GpuClass] = {}
    models: dict[tuple, Gpu] = {}
    gpu_class: dict[tuple[str, int], GpuClass] = {}
    for h, gl in fleet.items():
        for g in gl:
            if (h, g.index) in excluded:
                continue
            mk = model_key(g)
            models.setdefault(mk, g)
            key = (mk, state_key(g), scopes_of_host[h], (h, g.index) in forced)
            cls = classes.get(key)
            if cls is None:
                cls = classes[key] = GpuClass(key, g, scopes_of_host[h], (h, g.index) in forced)
            cls.members.append((h, g.index))
            gpu_class[(h, g.index)] = cls

    # candidate layouts per model: profiles some demand item matches, or that the model's GPUs already have
    layouts_by_model: dict[tuple, list[tuple[int, ...]]] = {}
    for mk, g in models.items():
        vocab = {p.id for p in g.profiles for d in items if d.profile != WHOLE and d.matches(g, p.id)}
        for cls in classes.values():
            if cls.key[0] == mk:
                vocab.update(_supply_of_current(cls.rep).keys() - {WHOLE})
        layouts_by_model[mk] = enumerate_layouts(g, vocab) if g.mig_capable else []
    class_list = sorted(classes.values(), key=lambda c: c.members[0])
    for cls in class_list:
        build_candidates(cls, layouts_by_model[cls.key[0]], whole_wanted)
    impossible = [cls for cls in class_list if not cls.candidates]
    if impossible:
        cls = impossible[0]
        h, i = cls.members[0]
        raise SpecError('keep_disabled', 'GPU %d of %s must keep MIG disabled but its MIG mode cannot be disabled '
                        '(GPU instances with processes)' % (i, h))

    # host classes
    host_sig: dict[str, tuple] = {}
    cls_index = {id(c): n for n, c in enumerate(class_list)}
    for h in fleet:
        cnt: dict[int, int] = {}
        for g in fleet[h]:
            cls = gpu_class.get((h, g.index))
            if cls is not None:
                cnt[cls_index[id(cls)]] = cnt.get(cls_index[id(cls)], 0) + 1
        if cnt:
            host_sig[h] = tuple(sorted(cnt.items()))
    host_classes: dict[tuple, list[str]] = {}
    for h, sig in host_sig.items():
        host_classes.setdefault(sig, []).append(h)
    hc_list = sorted(host_classes.items(), key=lambda kv: kv[1][0])

    # ---- variables
    col = 0
    x_cols: list[tuple[int, int]] = []          # (class n, candidate j)
    x_start = []
    for n, cls in enumerate(class_list):
        x_start.append(col)
        for j in range(len(cls.candidates)):
            x_cols.append((n, j))
            col += 1
    nx = col
    # y: flow from (class, supply key) to demand item
    y_cols: list[tuple[int, t.Any, int]] = []
    for n, cls in enumerate(class_list):
        keys = sorted({k for c in cls.candidates for k, v in c.supply.items() if v}, key=str)
        for k in keys:
            for d in items:
                if d.pos not in cls.scope:
                    continue
                if (k == WHOLE) != (d.profile == WHOLE):
                    continue
                if k != WHOLE and not d.matches(cls.rep, k):
                    continue
                y_cols.append((n, k, d.pos))
    y0 = col
    col += len(y_cols)
    s0 = col
    col += len(items)
    a_cols: list[tuple[int, int, int]] = []     # (host class, class n, m)
    for hk, (sig, hl) in enumerate(hc_list):
        for n, m in sig:
            a_cols.append((hk, n, m))
    a0 = col
    col += len(a_cols)
    z0 = col
    col += len(hc_list)
    nvar = col

    lb = np.zeros(nvar)
    ub = np.full(nvar, np.inf)
    integ = np.zeros(nvar)
    integ[:nx] = 1
    integ[s0:s0 + len(items)] = 1     # integral, so fixing a stage at its optimum + 0.5 is exact
    integ[z0:] = 1
    for k, (hk, n, m) in enumerate(a_cols):
        ub[a0 + k] = m * len(hc_list[hk][1])
    for k, (sig, hl) in enumerate(hc_list):
        ub[z0 + k] = len(hl)

    rows: list[int] = []
    cols: list[int] = []
    vals: list[float] = []
    rlo: list[float] = []
    rhi: list[float] = []

    def row(entries: t.Iterable[tuple[int, float]], lo: float, hi: float) -> None:
        r = len(rlo)
        for cidx, v in entries:
            rows.append(r)
            cols.append(cidx)
            vals.append(v)
        rlo.append(lo)
        rhi.append(hi)

    for n, cls in enumerate(class_list):
        row(((x_start[n] + j, 1.0) for j in range(len(cls.candidates))), len(cls.members), len(cls.members))
    yidx: dict[tuple[int, t.Any], list[int]] = {}
    ydem: dict[int, list[int]] = {}
    for k, (n, key, dpos) in enumerate(y_cols):
        yidx.setdefault((n, key), []).append(y0 + k)
        ydem.setdefault(dpos, []).append(y0 + k)
    for (n, key), ys in yidx.items():
        ent = [(yc, 1.0) for yc in ys]
        for j, cand in enumerate(class_list[n].candidates):
            v = cand.supply.get(key, 0)
            if v:
                ent.append((x_start[n] + j, -float(v)))
        row(ent, -np.inf, 0.0)
    for d in items:
        row([(yc, 1.0) for yc in ydem.get(d.pos, [])] + [(s0 + d.pos, 1.0)], d.count, np.inf)
    a_by_class: dict[int, list[int]] = {}
    for k, (hk, n, m) in enumerate(a_cols):
        a_by_class.setdefault(n, []).append(a0 + k)
        row([(a0 + k, 1.0), (z0 + hk, -float(m))], -np.inf, 0.0)
    for n, cls in enumerate(class_list):
        ent = [(ac, 1.0) for ac in a_by_class.get(n, [])]
        ent += [(x_start[n] + j, -1.0) for j, cand in enumerate(cls.candidates) if cand.changed]
        row(ent, 0.0, 0.0)
    if max_hosts_changed is not None:
        row(((z0 + k, 1.0) for k in range(len(hc_list))), 0.0, float(max_hosts_changed))

    def term_vec(name: str) -> t.Any:
        v = np.zeros(nvar)
        if name == 'shortfall':
            v[s0:s0 + len(items)] = 1
        elif name == 'hosts_changed':
            v[z0:] = 1
        else:
            for k, (n, j) in enumerate(x_cols):
                cand = class_list[n].candidates[j]
                v[k] = {'destroyed_instances': cand.destroys, 'gpus_changed': cand.changed,
                        'gpus_unused': -cand.unused, 'instances_created': cand.created}[name]
        return v

    stages: list[tuple[str, t.Any]] = [('shortfall', term_vec('shortfall'))]
    if w is None:
        stages += [(name, term_vec(name)) for name in TERMS]
    else:
        combo = np.zeros(nvar)
        for name in TERMS:
            combo += w.get(name, 0.0) * term_vec(name)
        stages.append(('weighted', combo))
    stages.append(('instances_created', term_vec('instances_created')))

    bounds = Bounds(lb, ub)
    extra_rows: list[tuple[t.Any, float]] = []
    res = None
    nstage = 0
    for name, vec in stages:
        base = coo_matrix((vals, (rows, cols)), shape=(len(rlo), nvar)).tocsr()
        cons = [LinearConstraint(base, np.array(rlo), np.array(rhi))]
        if extra_rows:
            cons.append(LinearConstraint(np.vstack([row_vec for row_vec, dummy in extra_rows]), -np.inf, np.array([bound for dummy, bound in extra_rows])))
        if nstage == 0 and max_hosts_changed is not None:
            forced_hosts = sorted({m[0] for cls in class_list if cls.forced_disabled and cls.candidates[0].kind == DISABLED
                                   for m in cls.members})
            if len(forced_hosts) > max_hosts_changed:
                raise SpecError('max_hosts_changed', 'is %d, but keep_disabled alone changes %d hosts (%s)'
                                % (max_hosts_changed, len(forced_hosts), ', '.join(forced_hosts[:20])))
        res = _solve(vec, cons, integ, bounds, time_limit)
        nstage += 1
        opt = float(vec @ np.round(res.x * (integ == 1)) + vec @ (res.x * (integ == 0)))
        slack = 1e-6 if name == 'weighted' else 0.5
        extra_rows.append((vec, (math.floor(opt + 1e-6) if name != 'weighted' else opt) + slack))
    if res is None:  # pragma: no cover - the loop above runs at least one stage
        raise RuntimeError('no integer program was solved')
    xv = np.round(res.x).astype(int)

    # ---- concrete assignment: which GPU takes which candidate
    counts_x = {(n, j): int(xv[k]) for k, (n, j) in enumerate(x_cols)}
    touched_quota: dict[tuple[int, str], int] = {}
    for k, (hk, n, m) in enumerate(a_cols):
        touched_quota[(hk, n)] = int(round(res.x[a0 + k]))
    # per class: queue of changing candidates
    queues: dict[int, list[int]] = {}
    for n, cls in enumerate(class_list):
        q: list[int] = []
        for j, cand in enumerate(cls.candidates):
            if cand.changed:
                q.extend([j] * counts_x[(n, j)])
        queues[n] = q
    choice: dict[tuple[str, int], Candidate] = {}
    for hk, (sig, hl) in enumerate(hc_list):
        left = {n: touched_quota[(hk, n)] for n, m in sig}
        for h in sorted(hl):
            for g in fleet[h]:
                cls = gpu_class.get((h, g.index))
                if cls is None:
                    continue
                n = cls_index[id(cls)]
                if left.get(n, 0) > 0 and queues[n]:
                    choice[(h, g.index)] = cls.candidates[queues[n].pop()]
                    left[n] -= 1
    for n, cls in enumerate(class_list):
        if queues[n]:
            raise AssertionError('fleet plan assignment left %d changed GPUs of a class unplaced' % len(queues[n]))

    # ---- output
    out_hosts: dict[str, dict[str, t.Any]] = {}
    totals = {'gpus_changed': 0, 'hosts_changed': 0, 'destroyed_instances': 0, 'created_instances': 0, 'gpus_unused': 0,
              'gpus_planned': 0, 'gpus_excluded': len(excluded)}
    drain_hosts = []
    holds: dict[str, int] = {}
    for h, gl in fleet.items():
        layouts = []
        gpus_out = []
        host_changed = False
        drain = False
        for g in gl:
            if (h, g.index) in excluded:
                gpus_out.append({'index': g.index, 'uuid': g.uuid, 'excluded': True, 'changed': False})
                continue
            totals['gpus_planned'] += 1
            cand = choice.get((h, g.index))
            entry: dict[str, t.Any] | None
            if cand is None:
                entry = current_layout(g)
                target = g.gpu_instances if g.mig_mode and g.mig_mode.current else ()
                destroyed: list[str] = []
                created: list[str] = []
            else:
                plan = t.cast(GpuPlan, cand.plan)     # the class representative's plan: same placements on every member
                destroyed = [a.profile or '' for a in plan.actions if a.action == 'destroy' and a.target == 'gpu_instance']
                created = [a.profile or '' for a in plan.actions if a.action == 'create' and a.target == 'gpu_instance']
                if cand.kind == DISABLED:
                    entry = {'devices': [g.index], 'mig_enabled': False}
                    target = ()
                else:
                    target = plan.target_instances
                    entry = {'devices': [g.index], 'mig_enabled': True,
                             'instances': [instance_entry(g, gi) for gi in target]}
                host_changed = True
                if any(a.action in ('destroy', 'set_mode') for a in plan.actions):
                    drain = True
                totals['gpus_changed'] += 1
                totals['destroyed_instances'] += len(destroyed)
                totals['created_instances'] += len(created)
            if not target:
                totals['gpus_unused'] += 1
            mig_on = bool(g.mig_capable and g.mig_mode and (g.mig_mode.current if cand is None else cand.kind != DISABLED))
            if not mig_on:
                holds[WHOLE] = holds.get(WHOLE, 0) + 1
            for gi in target:
                if _full_ci(g, gi):
                    holds[gi.profile] = holds.get(gi.profile, 0) + 1
            if entry is not None:
                layouts.append(entry)
            gpus_out.append({'index': g.index, 'uuid': g.uuid, 'name': g.name, 'changed': cand is not None,
                             'destroyed': destroyed, 'created': created,
                             'instances': [gi.profile for gi in target], 'mig_enabled': mig_on})
        if host_changed:
            totals['hosts_changed'] += 1
        if drain:
            drain_hosts.append(h)
        out_hosts[h] = {'changed': host_changed, 'drain': drain, 'layouts': layouts, 'gpus': gpus_out}

    short = []
    sv = res.x[s0:s0 + len(items)]
    for d in items:
        miss = int(round(sv[d.pos]))
        if miss:
            short.append({'demand': d.pos, 'label': d.label, 'requested': d.requested, 'needed': d.count,
                          'missing': miss})
    capacity = _capacity(items, class_list) if short else []
    objective = {
        'shortfall': int(round(float(sum(sv)))),
        'destroyed_instances': totals['destroyed_instances'],
        'gpus_changed': totals['gpus_changed'],
        'hosts_changed': totals['hosts_changed'],
        'gpus_unused': totals['gpus_unused'],
        'instances_created': totals['created_instances'],
    }
    summary = dict(totals)
    summary['drain_hosts'] = sorted(drain_hosts)
    summary['changed_hosts'] = sorted(h for h, v in out_hosts.items() if v['changed'])
    summary['holds'] = dict(sorted(holds.items()))
    stats = {'classes': len(class_list), 'host_classes': len(hc_list), 'candidates': nx, 'variables': nvar,
             'constraints': len(rlo), 'solves': nstage,
             'layouts_per_model': {models[mk].name: len(v) for mk, v in layouts_by_model.items()}}
    return FleetPlan(not short, objective, out_hosts, summary, short, capacity, stats)


def _full_ci(gpu: Gpu, gi: t.Any) -> bool:
    prof = gpu.profile_by_id(gi.profile_id)
    return bool(prof is not None and len(gi.compute_instances) == 1
                and gi.compute_instances[0].placement.size == prof.slice_count)


def _capacity(items: t.Sequence[DemandItem], class_list: t.Sequence[GpuClass]) -> list[dict[str, t.Any]]:
    """Per demand item and GPU model: GPUs in scope and the most matching instances they could hold."""
    out = []
    for d in items:
        per_model: dict[str, dict[str, int]] = {}
        for cls in class_list:
            if d.pos not in cls.scope:
                continue
            best = 0
            for cand in cls.candidates:
                if d.profile == WHOLE:
                    best = max(best, cand.supply.get(WHOLE, 0))
                else:
                    best = max(best, sum(v for k, v in cand.supply.items() if k != WHOLE and d.matches(cls.rep, k)))
            pm = per_model.setdefault(cls.rep.name, {'gpus': 0, 'max_instances': 0})
            pm['gpus'] += len(cls.members)
            pm['max_instances'] += best * len(cls.members)
        out.append({'demand': d.pos, 'label': d.label, 'needed': d.count,
                    'models': [dict(model=k, **v) for k, v in sorted(per_model.items())]})
    return out


def plan_to_dict(plan: FleetPlan) -> dict[str, t.Any]:
    return dataclasses.asdict(plan)
