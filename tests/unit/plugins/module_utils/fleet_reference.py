# Copyright (c) 2026 gpuops.mig contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Exhaustive reference for the fleet planner (tests only).

Written apart from plugins/module_utils/_fleet.py: no classes, no integer program, no dominance.
Every GPU gets every option (leave it, disable MIG, or any multiset of the candidate profiles
with per-profile counts up to the profile's instance cap that the per-GPU planner accepts), every
combination over the fleet is scored, and demand is checked with a max-flow.
"""

from __future__ import annotations

import itertools

from ansible_collections.gpuops.mig.plugins.module_utils._model import DesiredGpu, DesiredInstance, Gpu, PlanError
from ansible_collections.gpuops.mig.plugins.module_utils._planner import plan_gpu
from ansible_collections.gpuops.mig.plugins.module_utils._profiles import canonical_name, parse_profile_name


def item_matches(item: dict, gpu: Gpu, profile_id: int) -> bool:
    prof = gpu.profile_by_id(profile_id)
    if 'profile' in item:
        return item['profile'] != 'whole' and canonical_name(prof.name) == canonical_name(item['profile'])
    parsed = parse_profile_name(prof.name)
    return not parsed.attr and prof.slice_count == item['slices'] and prof.memory_mib >= item.get('min_memory_gb', 0) * 1024


def full_ci(gpu: Gpu, gi) -> bool:
    prof = gpu.profile_by_id(gi.profile_id)
    return len(gi.compute_instances) == 1 and gi.compute_instances[0].placement.size == prof.slice_count


def max_flow(supply: dict, needs: list[int], edges: dict) -> int:
    """Units of supply (key -> count) that can serve needs (item -> count) over edges (key -> items)."""
    # tiny augmenting-path max flow on unit-capacity expanded graph would be big; use capacities
    src, snk = 's', 't'
    cap: dict = {}

    def add(u, v, c):
        cap[(u, v)] = cap.get((u, v), 0) + c
        cap.setdefault((v, u), 0)
    for k, c in supply.items():
        if c:
            add(src, ('k', k), c)
            for i in edges.get(k, ()):
                add(('k', k), ('i', i), c)
    for i, n in enumerate(needs):
        add(('i', i), snk, n)
    adj: dict = {}
    for (u, v) in cap:
        adj.setdefault(u, []).append(v)
    flow = 0
    while True:
        prev = {src: None}
        stack = [src]
        while stack and snk not in prev:
            u = stack.pop()
            for v in adj.get(u, ()):
                if v not in prev and cap[(u, v)] > 0:
                    prev[v] = u
                    stack.append(v)
        if snk not in prev:
            return flow
        path = []
        v = snk
        while prev[v] is not None:
            path.append((prev[v], v))
            v = prev[v]
        f = min(cap[e] for e in path)
        for u, v in path:
            cap[(u, v)] -= f
            cap[(v, u)] += f
        flow += f


def gpu_options(gpu: Gpu, vocab: list[int], forced: bool, whole: bool) -> list[tuple]:
    """(supply dict, destroys, changed, unused, created) for every reachable option of one GPU."""
    mode = gpu.mig_mode
    off = mode is None or not (mode.current or mode.pending)
    sup: dict = {}
    if mode is None or not mode.current:
        sup['whole'] = 1
    else:
        for gi in gpu.gpu_instances:
            if full_ci(gpu, gi):
                sup[gi.profile_id] = sup.get(gi.profile_id, 0) + 1
    keep = (sup, 0, 0, 0 if (mode and mode.current and gpu.gpu_instances) else 1, 0)
    opts = []
    disabled = None
    if mode is not None and not off:
        try:
            p = plan_gpu(gpu, DesiredGpu(index=gpu.index, mig_enabled=False))
            disabled = ({'whole': 1}, p.destroyed_gpu_instances, 1, 1, 0)
        except PlanError:
            pass
    if forced:
        return [keep] if off else ([disabled] if disabled else [])
    opts.append(keep)
    if disabled:
        opts.append(disabled)
    if mode is None or (off and any(p.gi is None for p in gpu.processes)):
        return opts
    caps = [gpu.profile_by_id(v).instance_count for v in vocab]
    sizes = [gpu.profile_by_id(v).placement_size for v in vocab]
    for counts in itertools.product(*[range(c + 1) for c in caps]):
        if sum(c * s for c, s in zip(counts, sizes)) > gpu.slot_count:
            continue     # cannot fit in the placement grid; the planner would say so too
        ids = [v for v, c in zip(vocab, counts) for dummy in range(c)]
        try:
            p = plan_gpu(gpu, DesiredGpu(index=gpu.index, mig_enabled=True,
                                         instances=tuple(DesiredInstance(profile_id=i) for i in ids)))
        except PlanError:
            continue
        if not p.changes:
            continue
        s: dict = {}
        for i in ids:
            s[i] = s.get(i, 0) + 1
        created = sum(1 for a in p.actions if a.action == 'create' and a.target == 'gpu_instance')
        opts.append((s, p.destroyed_gpu_instances, 1, 0 if ids else 1, created))
    return opts


def shortfall(fleet: dict, demand: list[dict], groups: dict, chosen_supply: dict) -> int:
    """chosen_supply: (host, gpu index) -> supply dict. Unmet demand units (max-flow)."""
    supply: dict = {}
    for (h, i), s in chosen_supply.items():
        for k, c in s.items():
            key = (h, i, k)
            supply[key] = supply.get(key, 0) + c
    gpus = {(h, g.index): g for h, gl in fleet.items() for g in gl}
    edges: dict = {}
    for key in supply:
        h, i, k = key
        for n, d in enumerate(demand):
            if d.get('group') and h not in groups[d['group']]:
                continue
            if k == 'whole':
                if d.get('profile') == 'whole':
                    edges.setdefault(key, []).append(n)
            elif item_matches(d, gpus[(h, i)], k):
                edges.setdefault(key, []).append(n)
    needs = [d['count'] for d in demand]
    return sum(needs) - max_flow(supply, needs, edges)


def exhaustive(fleet: dict, demand: list[dict], groups: dict, exclude: set, forced: set,
               max_hosts: int | None) -> tuple | None:
    """Lexicographic optimum (shortfall, destroys, gpus changed, hosts changed, -unused, created)."""
    whole = any(d.get('profile') == 'whole' for d in demand)
    gpus = [(h, g) for h, gl in sorted(fleet.items()) for g in gl if (h, g.index) not in exclude]
    vocab_by_model: dict = {}
    for h, g in gpus:
        v = vocab_by_model.setdefault(g.name, set())
        for p in g.profiles:
            if any('profile' not in d or d['profile'] != 'whole' for d in demand) and any(
                    ('slices' in d or d['profile'] != 'whole') and item_matches(d, g, p.id) for d in demand):
                v.add(p.id)
        if g.mig_mode and g.mig_mode.current:
            v.update(gi.profile_id for gi in g.gpu_instances if full_ci(g, gi))
    options = [gpu_options(g, sorted(vocab_by_model[g.name]), (h, g.index) in forced, whole) for h, g in gpus]
    if any(not o for o in options):
        return None
    best = None
    memo: dict = {}
    for combo in itertools.product(*options):
        hosts = {gpus[n][0] for n, o in enumerate(combo) if o[2]}
        if max_hosts is not None and len(hosts) > max_hosts:
            continue
        key_sup = tuple(sorted((gpus[n][0], gpus[n][1].index, k, c) for n, o in enumerate(combo) for k, c in o[0].items()))
        if key_sup not in memo:
            memo[key_sup] = shortfall(fleet, demand, groups, {(gpus[n][0], gpus[n][1].index): o[0] for n, o in enumerate(combo)})
        val = (memo[key_sup], sum(o[1] for o in combo), sum(o[2] for o in combo), len(hosts),
               -sum(o[3] for o in combo), sum(o[4] for o in combo))
        if best is None or val < best:
            best = val
    return best
