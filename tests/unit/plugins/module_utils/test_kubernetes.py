# Copyright (c) 2026 gpuops.mig contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import annotations

import pytest

from ansible_collections.gpuops.mig.plugins.module_utils._kubernetes import StrategyError, expected_resources

PROFILES = [
    {'id': 19, 'name': '1g.10gb', 'slices': 1, 'compute_instance_profiles': [{'id': 0, 'slices': 1}]},
    {'id': 20, 'name': '1g.10gb+me', 'slices': 1, 'compute_instance_profiles': [{'id': 0, 'slices': 1}]},
    {'id': 9, 'name': '3g.40gb', 'slices': 3, 'compute_instance_profiles': [{'id': 0, 'slices': 1}, {'id': 2, 'slices': 3}]},
]


def gi(profile, pid, cis):
    return {'profile': profile, 'profile_id': pid, 'compute_instances': [{'profile': p, 'profile_id': c} for p, c in cis]}


def gpu(index, instances=None, mig=True):
    return {'index': index, 'mig_mode': {'current': 'enabled' if mig else 'disabled'}, 'profiles': PROFILES,
            'gpu_instances': instances or []}


def test_mixed_counts_full_compute_instances_only():
    gpus = [gpu(0, [gi('1g.10gb', 19, [('1g.10gb', 0)])] * 2 + [gi('1g.10gb+me', 20, [('1g.10gb', 0)])]),
            gpu(1, [gi('3g.40gb', 9, [('1c.3g.40gb', 0)] * 3), gi('3g.40gb', 9, [('3g.40gb', 2)])]),
            gpu(2, mig=False), {'index': 3, 'mig_mode': None}]
    assert expected_resources(gpus, 'mixed') == {
        'nvidia.com/gpu': 2, 'nvidia.com/mig-1g.10gb': 2, 'nvidia.com/mig-1g.10gb.me': 1, 'nvidia.com/mig-3g.40gb': 1}


def test_single():
    same = [gpu(i, [gi('1g.10gb', 19, [('1g.10gb', 0)])] * 7) for i in range(2)]
    assert expected_resources(same, 'single') == {'nvidia.com/gpu': 14}
    assert expected_resources([gpu(0, mig=False), gpu(1, mig=False)], 'single') == {'nvidia.com/gpu': 2}
    with pytest.raises(StrategyError, match='one MIG device type'):
        expected_resources([gpu(0, [gi('1g.10gb', 19, [('1g.10gb', 0)]), gi('3g.40gb', 9, [('3g.40gb', 2)])])], 'single')
    with pytest.raises(StrategyError, match='MIG is enabled on GPU.s. 1 only'):
        expected_resources([gpu(0, mig=False), gpu(1, [gi('1g.10gb', 19, [('1g.10gb', 0)])])], 'single')
    with pytest.raises(StrategyError, match='GPU 0 has none'):
        expected_resources([gpu(0)], 'single')
