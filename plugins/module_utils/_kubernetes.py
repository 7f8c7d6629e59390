# Copyright (c) 2026 gpuops.mig contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""The extended resources NVIDIA's Kubernetes device plugin advertises for a MIG layout.

Pure logic over GPU reports (``gpu_report`` dicts). The rules are the device plugin's
(``internal/rm``): only MIG devices whose compute instance spans its whole GPU instance are
advertised; ``+`` in a profile name becomes ``.``.

* ``mixed``: ``nvidia.com/gpu`` per GPU without MIG, ``nvidia.com/mig-<profile>`` per MIG device.
* ``single``: every MIG device is a ``nvidia.com/gpu``; all GPUs must have MIG enabled with one and
  the same device type, or all disabled (the plugin refuses to start otherwise).
"""

from __future__ import annotations

import typing as t

STRATEGIES = ('mixed', 'single')
GPU_RESOURCE = 'nvidia.com/gpu'
MIG_RESOURCE_PREFIX = 'nvidia.com/mig-'


class StrategyError(ValueError):
    """The layout cannot be advertised under the strategy (the device plugin would fail to start)."""


def _mig_enabled(gpu: t.Mapping[str, t.Any]) -> bool:
    mode = gpu.get('mig_mode')
    return bool(mode) and mode.get('current') == 'enabled'


def advertised_devices(gpu: t.Mapping[str, t.Any]) -> list[str]:
    """Profile names (GPU instance profile) of the GPU's MIG devices the device plugin advertises."""
    profiles = {p['id']: p for p in gpu.get('profiles') or []}
    names = []
    for gi in gpu.get('gpu_instances') or []:
        gi_profile = profiles.get(gi['profile_id'], {})
        ci_slices = {c['id']: c['slices'] for c in gi_profile.get('compute_instance_profiles') or []}
        for ci in gi.get('compute_instances') or []:
            slices = ci_slices.get(ci['profile_id'])
            full = slices == gi_profile.get('slices') if slices is not None else ci['profile'] == gi['profile']
            if full:
                names.append(gi['profile'])
    return names


def resource_name(profile: str) -> str:
    return MIG_RESOURCE_PREFIX + profile.replace('+', '.')


def expected_resources(gpus: t.Sequence[t.Mapping[str, t.Any]], strategy: str) -> dict[str, int]:
    """Extended resource name -> count the node should advertise once the plugin has re-read the GPUs."""
    if strategy not in STRATEGIES:
        raise StrategyError('unknown MIG strategy %r (use %s)' % (strategy, ' or '.join(STRATEGIES)))
    result: dict[str, int] = {}
    if strategy == 'mixed':
        full = sum(1 for g in gpus if not _mig_enabled(g))
        if full:
            result[GPU_RESOURCE] = full
        for gpu in gpus:
            if _mig_enabled(gpu):
                for name in advertised_devices(gpu):
                    key = resource_name(name)
                    result[key] = result.get(key, 0) + 1
        return result
    enabled = [g for g in gpus if _mig_enabled(g)]
    if not enabled:
        return {GPU_RESOURCE: len(gpus)} if gpus else {}
    if len(enabled) != len(gpus):
        raise StrategyError('the single MIG strategy needs MIG enabled on every GPU or on none; MIG is enabled on GPU(s) %s only'
                            % ', '.join(str(g['index']) for g in enabled))
    kinds: dict[str, list[int]] = {}
    count = 0
    for gpu in enabled:
        devices = advertised_devices(gpu)
        if not devices:
            raise StrategyError('the single MIG strategy needs MIG devices on every MIG-enabled GPU; GPU %d has none' % gpu['index'])
        for name in devices:
            kinds.setdefault(name, []).append(gpu['index'])
        count += len(devices)
    if len(kinds) > 1:
        raise StrategyError('the single MIG strategy needs one MIG device type on the node; found %s (use the mixed strategy)'
                            % ', '.join('%s on GPU(s) %s' % (k, ','.join(map(str, sorted(set(v))))) for k, v in sorted(kinds.items())))
    return {GPU_RESOURCE: count}
