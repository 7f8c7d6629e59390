# Copyright (c) 2026 gpuops.mig contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Fleet planner benchmark: planning time, peak memory and disruption against two baselines.

Fleets of mixed models (A100 80GB, H100 80GB, H200, B200), 8 GPUs per host. Each host has one
random current config on all its GPUs (as mig-parted applies one config per node) or MIG disabled;
one GPU in eight has a process on its first GPU instance. Demand: random counts of a few profiles
per model and a size item, about half of what the fleet could hold.

Baselines (same fleet, same demand):
* uniform: every GPU of a model rebuilt to the one config (the candidate layout with the fewest
  GPUs needed) that covers that model's share of the demand - what users of one named config per node do;
  busy instances are counted as destroyed, since that is what a rebuild does.
* first-fit: GPUs in order; a GPU keeps its layout if it matches demand still open, otherwise it
  is rebuilt to the candidate that covers the most open demand.
Each size runs in its own process (peak RSS by resource.getrusage).
"""

from __future__ import annotations

import argparse
import json
import os
import random
import resource
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import common  # noqa: E402

FIX = os.path.join(common.ROOT, 'tests', 'unit', 'plugins', 'module_utils', 'fixtures', 'fleet')
MODELS = ('a100-80gb', 'h100-80gb', 'h200-141gb', 'b200')
CONFIGS = {   # names of the per-model configs hosts start from (mig-parted all-* style)
    'a100-80gb': [['1g.10gb'] * 7, ['2g.20gb'] * 3, ['3g.40gb'] * 2, ['3g.40gb', '2g.20gb', '1g.10gb', '1g.10gb'], ['7g.80gb']],
    'h100-80gb': [['1g.10gb'] * 7, ['2g.20gb'] * 3, ['3g.40gb'] * 2, ['3g.40gb', '2g.20gb', '1g.10gb', '1g.10gb'], ['7g.80gb']],
    'h200-141gb': [['1g.18gb'] * 7, ['2g.35gb'] * 3, ['3g.71gb'] * 2, ['3g.71gb', '2g.35gb', '1g.18gb', '1g.18gb'], ['7g.141gb']],
    'b200': [['1g.23gb'] * 7, ['2g.45gb'] * 3, ['3g.90gb'] * 2, ['3g.90gb', '2g.45gb', '1g.23gb', '1g.23gb'], ['7g.180gb']],
}


def build_fleet(n_gpus: int, seed: int):
    import dataclasses
    from ansible_collections.gpuops.mig.plugins.module_utils._model import (
        DesiredGpu, DesiredInstance, GpuProcess, MigMode, gpu_from_dict)
    from ansible_collections.gpuops.mig.plugins.module_utils._planner import plan_gpu
    rng = random.Random(seed)
    base = {}
    for m in MODELS:
        with open(os.path.join(FIX, m + '.json')) as f:
            base[m] = gpu_from_dict(json.load(f))
    templates = {}
    for m in MODELS:
        g = dataclasses.replace(base[m], mig_mode=MigMode(True, True), gpu_instances=(), processes=())
        templates[(m, None)] = dataclasses.replace(base[m], mig_mode=MigMode(False, False), gpu_instances=(), processes=())
        for ci, names in enumerate(CONFIGS[m]):
            ids = [next(p for p in g.profiles if p.name == n).id for n in names]
            plan = plan_gpu(g, DesiredGpu(0, True, tuple(DesiredInstance(profile_id=i) for i in ids)))
            gis = tuple(dataclasses.replace(gi, id=k + 1, compute_instances=tuple(dataclasses.replace(c, id=0) for c in gi.compute_instances))
                        for k, gi in enumerate(plan.target_instances))
            templates[(m, ci)] = dataclasses.replace(g, gpu_instances=gis)
    fleet = {}
    for h in range(max(1, n_gpus // 8)):
        m = rng.choice(MODELS)
        cfg = None if rng.random() < 0.25 else rng.randrange(len(CONFIGS[m]))
        gl = []
        for i in range(8):
            g = dataclasses.replace(templates[(m, cfg)], index=i, uuid='GPU-%d-%d' % (h, i))
            if cfg is not None and rng.random() < 0.125:
                g = dataclasses.replace(g, processes=(GpuProcess(pid=1000 + i, gi=1, ci=0),))
            gl.append(g)
        fleet['node%05d' % h] = gl
    # demand: about half of the capacity, a few profiles per model plus one size item
    demand = []
    per_model = {m: sum(1 for gl in fleet.values() if gl[0].name == base[m].name) * 8 for m in MODELS}
    for m in MODELS:
        names = rng.sample(sorted({n for c in CONFIGS[m] for n in c} - {CONFIGS[m][-1][0]}), 2)
        for n in names:
            slices = int(n[0])
            demand.append({'profile': n, 'count': int(per_model[m] * rng.uniform(0.4, 1.2) / slices)})
    demand.append({'slices': 1, 'min_memory_gb': 16, 'count': int(n_gpus * 0.3)})
    return fleet, demand


def baselines(fleet, plan_obj, demand):
    """Disruption of the uniform-rebuild and first-fit baselines, from the planner's own candidate model."""
    from ansible_collections.gpuops.mig.plugins.module_utils import _fleet as F
    # reuse the planner's parsing, classes and candidates (per-GPU costs from plan_gpu), not its solver
    items = F.parse_demand(demand, {})
    gpus = [(h, g) for h, gl in fleet.items() for g in gl]
    out = {}
    # open demand per item

    def matches(d, g, key):
        return key != F.WHOLE and d.profile != F.WHOLE and d.matches(g, key)

    cache = {}

    def cands(g):
        key = (F.model_key(g), F.state_key(g))
        if key not in cache:
            vocab = {p.id for p in g.profiles for d in items if d.profile != F.WHOLE and d.matches(g, p.id)}
            lay = F.enumerate_layouts(g, vocab)
            cls = F.GpuClass(key, g, frozenset(d.pos for d in items), False)
            F.build_candidates(cls, lay, False)
            cache[key] = cls.candidates
        return cache[key]

    def serve(open_, g, cand):
        got = 0
        for k, v in cand.supply.items():
            for dummy in range(v):
                for d in items:
                    if open_[d.pos] > 0 and matches(d, g, k):
                        open_[d.pos] -= 1
                        got += 1
                        break
        return got

    # first fit
    open_ = {d.pos: d.count for d in items}
    dest = changed = 0
    hosts = set()
    for h, g in gpus:
        cs = cands(g)
        keep = cs[0]
        trial = dict(open_)
        if serve(trial, g, keep) > 0 or all(v <= 0 for v in open_.values()):
            open_ = trial
            continue
        best, bgot = None, 0
        for c in cs[1:]:
            trial = dict(open_)
            got = serve(trial, g, c)
            if got > bgot:
                best, bgot = c, got
        if best is None:
            continue
        serve(open_, g, best)
        dest += best.destroys
        changed += 1
        hosts.add(h)
    out['first_fit'] = {'destroyed_instances': dest, 'gpus_changed': changed, 'hosts_changed': len(hosts),
                        'unmet': sum(max(0, v) for v in open_.values())}
    # uniform: per model, one layout for every GPU, the one that covers the model's demand with the fewest GPUs
    dest = changed = 0
    hosts = set()
    unmet = 0
    by_model = {}
    for h, g in gpus:
        by_model.setdefault(g.name, []).append((h, g))
    open_ = {d.pos: d.count for d in items}
    for name, lst in by_model.items():
        g0 = lst[0][1]
        import dataclasses
        from ansible_collections.gpuops.mig.plugins.module_utils._model import MigMode
        empty = dataclasses.replace(g0, mig_mode=MigMode(True, True), gpu_instances=(), processes=())
        ecs = [c for c in cands(empty) if c.kind == 'layout']
        best, bscore = None, None
        for c in ecs:
            trial = dict(open_)
            for dummy in range(len(lst)):
                serve(trial, empty, c)
            # the model's share: profiles only this model offers must be covered
            score = (sum(max(0, v) for v in trial.values()), -len(c.profiles))
            if bscore is None or score < bscore:
                best, bscore = c, score
        for dummy in range(len(lst)):
            serve(open_, empty, best)
        for h, g in lst:
            cur = sorted(gi.profile_id for gi in g.gpu_instances) if g.mig_mode.current else None
            if cur != sorted(best.profiles):
                dest += len(g.gpu_instances) if g.mig_mode.current else 0
                changed += 1
                hosts.add(h)
    unmet = sum(max(0, v) for v in open_.values())
    out['uniform'] = {'destroyed_instances': dest, 'gpus_changed': changed, 'hosts_changed': len(hosts), 'unmet': unmet}
    return out


def one(n: int, seed: int) -> dict:
    common.setup_collection_path()
    from ansible_collections.gpuops.mig.plugins.module_utils._fleet import plan_fleet
    fleet, demand = build_fleet(n, seed)
    t0 = time.perf_counter()
    c0 = time.process_time()
    plan = plan_fleet(fleet, demand)
    dt = time.perf_counter() - t0
    cpu = time.process_time() - c0
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0
    res = {'gpus': sum(len(g) for g in fleet.values()), 'hosts': len(fleet), 'seconds': round(dt, 3),
           'cpu_seconds': round(cpu, 3), 'peak_rss_mib': round(rss, 1),
           'feasible': plan.feasible, 'objective': plan.objective, 'stats': {k: v for k, v in plan.stats.items() if k != 'layouts_per_model'}}
    if n <= 10000:
        res['baselines'] = baselines(fleet, plan.objective, demand)
    return res


def markdown(data: dict) -> list[str]:
    """The docs/benchmarks.md section (report.py calls this)."""
    out = ['## Fleet planning (mig_fleet_plan)', '',
           'tests/bench/fleet.py: mixed fleets (A100 80GB, H100 80GB, H200, B200; 8 GPUs per host, one random config per'
           ' host or MIG off, one GPU in eight busy), random demand of about half the capacity. Time is `plan_fleet` alone'
           ' (per-GPU planner calls, integer program in %d lexicographic solves), peak memory is the process RSS.'
           ' Load average during the run: %s.' % (6, ', '.join('%.1f' % x for x in data.get('loadavg', []))), '',
           '| GPUs | hosts | classes | host classes | variables | time (s) | CPU time (s) | peak RSS (MiB) | feasible |',
           '|---:|---:|---:|---:|---:|---:|---:|---:|---|']
    for r in data['results']:
        if 'error' in r:
            out.append('| %d | | | | | failed: %s | | | |' % (r['gpus'], ' '.join(r['error'])))
            continue
        st = r['stats']
        out.append('| %d | %d | %d | %d | %d | %.2f | %.2f | %.0f | %s |' % (
            r['gpus'], r['hosts'], st['classes'], st['host_classes'], st['variables'], r['seconds'], r.get('cpu_seconds', 0),
            r['peak_rss_mib'], r['feasible']))
    out += ['', 'Disruption against the baselines on the same fleets (instances destroyed / GPUs changed / hosts changed;'
            ' unmet demand units):', '',
            '| GPUs | mig_fleet_plan | uniform rebuild | greedy first-fit |', '|---:|---|---|---|']
    for r in data['results']:
        if 'baselines' not in r:
            continue
        o = r['objective']
        b = r['baselines']
        out.append('| %d | %d / %d / %d; %d | %s | %s |' % (
            r['gpus'], o['destroyed_instances'], o['gpus_changed'], o['hosts_changed'], o['shortfall'],
            *('%d / %d / %d; %d' % (b[k]['destroyed_instances'], b[k]['gpus_changed'], b[k]['hosts_changed'], b[k]['unmet'])
              for k in ('uniform', 'first_fit'))))
    out.append('')
    return out


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument('--out', required=True)
    ap.add_argument('--sizes', default='100 1000 10000 100000')
    ap.add_argument('--seed', type=int, default=1)
    ap.add_argument('--one', type=int)
    args = ap.parse_args()
    if args.one:
        json.dump(one(args.one, args.seed), sys.stdout)
        return 0
    results = []
    for n in [int(x) for x in args.sizes.split()]:
        proc = subprocess.run([sys.executable, __file__, '--out', '-', '--one', str(n), '--seed', str(args.seed)],
                              capture_output=True, text=True, check=False)
        if proc.returncode != 0:
            results.append({'gpus': n, 'error': proc.stderr.strip().splitlines()[-1:] or ['failed']})
            continue
        results.append(json.loads(proc.stdout))
        common.log('fleet %d GPUs: %.2f s, %.0f MiB' % (n, results[-1]['seconds'], results[-1]['peak_rss_mib']))
    common.write_json(args.out, {'results': results, 'loadavg': common.loadavg()})
    return 0


if __name__ == '__main__':
    sys.exit(main())
