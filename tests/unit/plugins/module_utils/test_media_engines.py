# Copyright (c) 2026 gpuops.mig contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""The media-engine rule against every GPU model the simulator knows and the real H100/H200 readings.

For each model, every multiset of GPU instance profiles that fits the placement grid, the per-profile
instance caps and the ``+me.all`` rule is a candidate layout. The rule (sum of each media engine over
the layout's profiles <= the whole-GPU profile's count) must reject exactly the candidates the
simulated driver refuses (its ``exclusive_groups``, taken from the documented A30 and RTX PRO 6000
behaviour), and none at all on the real H100 and H200 tables (tests/hardware/results, fixtures/real).
"""

from __future__ import annotations

import json
import os
import sys

import pytest

from ansible_collections.gpuops.mig.plugins.module_utils._model import Gpu, GpuInstanceProfile, MigMode, Placement, gpu_from_dict
from ansible_collections.gpuops.mig.plugins.module_utils._profiles import is_all_me, is_no_me
from ansible_collections.gpuops.mig.plugins.module_utils._safety import media_engine_refusal

HERE = os.path.dirname(os.path.abspath(__file__))
TESTS = os.path.normpath(os.path.join(HERE, '..', '..', '..'))
sys.path.insert(0, os.path.join(TESTS, 'nvml_sim'))
import migsim_core as core  # noqa: E402  pylint: disable=wrong-import-position,import-error

SIM_MODELS = [m for m in core.model_names() if core.load_model(m).get('mig_capable')]
REAL = {
    'h100-80gb-hbm3': os.path.join(TESTS, 'hardware', 'results', 'h100-80gb-hbm3', 'mig_info.json'),
    'h200-141gb': os.path.join(HERE, 'fixtures', 'real', 'h200-141gb-mig_info.json'),
}


def gpu_of_model(key: str) -> Gpu:
    m = core.load_model(key)
    profiles = tuple(GpuInstanceProfile(
        id=p['id'], index=p['index'], name=p['name'], slice_count=p['slices'], instance_count=p['instances'],
        memory_mib=p.get('memory_mib') or 0, multiprocessors=p.get('sm') or 0, copy_engines=p.get('ce') or 0,
        decoders=p['dec'], encoders=p['enc'], jpeg_decoders=p['jpeg'], ofa_engines=p['ofa'],
        placements=tuple(Placement(s, p['placement_size']) for s in p['placement_starts'])) for p in m['gi_profiles'])
    return Gpu(index=0, uuid='GPU-0', name=m['name'], pci_bus_id='0', pci_device_id=0, pci_subsystem_id=0,
               memory_total_mib=0, architecture=m.get('nvml_arch'), mig_capable=True, mig_mode=MigMode(True, True),
               profiles=profiles)


def placements_of(gpu: Gpu, profs: list[GpuInstanceProfile]) -> list[Placement] | None:
    """One non-overlapping placement per profile (plain DFS), or None."""
    chosen: list[Placement] = []

    def dfs(i: int, used: int) -> bool:
        if i == len(profs):
            return True
        for pl in profs[i].placements:
            mask = ((1 << pl.size) - 1) << pl.start
            if not used & mask:
                chosen.append(pl)
                if dfs(i + 1, used | mask):
                    return True
                chosen.pop()
        return False
    return list(chosen) if dfs(0, 0) else None


def candidates(gpu: Gpu):
    """(profiles, placements) of every layout that fits slots, caps and the +me.all rule."""
    profs = sorted(gpu.profiles, key=lambda p: p.id)
    out = []

    def rec(i, cur, used):
        if i == len(profs):
            if cur:
                if any(is_all_me(p) for p in cur) and sum(1 for p in cur if not is_no_me(p)) > 1:
                    return
                pls = placements_of(gpu, sorted(cur, key=lambda p: -p.placement_size))
                if pls is not None:
                    out.append((sorted(cur, key=lambda p: -p.placement_size), pls))
            return
        p = profs[i]
        n = 0
        while n <= p.instance_count and used + n * p.placement_size <= gpu.slot_count:
            rec(i + 1, cur + [p] * n, used + n * p.placement_size)
            n += 1
    rec(0, [], 0)
    return out


def simulator_refuses(key: str, profs: list[GpuInstanceProfile], pls: list[Placement]) -> bool:
    """Create the layout GPU instance by GPU instance with the simulated driver's rules; True if one is refused."""
    model = core.load_model(key)
    state = {'gpu_instances': [], 'processes': [], 'mig_current': 1}
    for p, pl in zip(profs, pls):
        mprof = model['_by_id'][p.id]
        if core.gi_blocked(model, state, mprof) or pl.start not in core.free_gi_placements(model, state, mprof):
            return True
        state['gpu_instances'].append({'id': len(state['gpu_instances']), 'profile_id': p.id, 'start': pl.start,
                                       'size': pl.size, 'compute_instances': []})
    return False


@pytest.mark.parametrize('key', SIM_MODELS)
def test_rule_rejects_exactly_what_the_simulated_driver_refuses(key):
    gpu = gpu_of_model(key)
    cands = candidates(gpu)
    rejected = {tuple(p.name for p in profs) for profs, pls in cands if media_engine_refusal(gpu, profs) is not None}
    refused = {tuple(p.name for p in profs) for profs, pls in cands if simulator_refuses(key, profs, pls)}
    assert len(cands) > 10
    assert rejected == refused, (sorted(rejected - refused), sorted(refused - rejected))
    # A30: +me profiles share one JPEG decoder and one OFA; RTX PRO 6000's +me/+me.all pairs are already excluded
    # by the +me.all rule, so the engine rule adds nothing there.
    assert bool(rejected) == (key == 'a30-24gb')


@pytest.mark.parametrize('name', sorted(REAL))
def test_rule_rejects_nothing_on_real_hopper_tables(name):
    with open(REAL[name], encoding='utf-8') as f:
        gpu = gpu_from_dict(json.load(f)['gpus'][0])
    cands = candidates(gpu)
    assert len(cands) > 100
    assert [profs for profs, pls in cands if media_engine_refusal(gpu, profs) is not None] == []
