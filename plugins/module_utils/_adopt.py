# Copyright (c) 2026 gpuops.mig contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""A GPU's current MIG layout written back as configuration ("adopt as code").

Two forms a user can paste: a ``layouts`` entry of ``gpuops.mig.mig_layout`` with the exact
``instances`` placements (converging to it changes nothing), and a mig-parted v1 config
document with profile counts (mig-parted packs those itself, so placements may differ).
"""

from __future__ import annotations

import typing as t

from ansible_collections.gpuops.mig.plugins.module_utils._model import Gpu, GpuInstance
from ansible_collections.gpuops.mig.plugins.module_utils._profiles import mig_parted_key


def _has_full_ci_only(gpu: Gpu, gi: GpuInstance) -> bool:
    prof = gpu.profile_by_id(gi.profile_id)
    if prof is None or len(gi.compute_instances) != 1:
        return False
    return gi.compute_instances[0].placement.size == prof.slice_count and gi.compute_instances[0].placement.start == 0


def instance_entry(gpu: Gpu, gi: GpuInstance) -> dict[str, t.Any]:
    """One ``instances`` item: profile, placement start and, unless it is the one full-size CI, the CIs."""
    item: dict[str, t.Any] = {'profile': gi.profile, 'placement': gi.placement.start}
    if not _has_full_ci_only(gpu, gi):
        item['compute_instances'] = [c.profile for c in sorted(gi.compute_instances, key=lambda c: c.placement)]
    return item


def current_layout(gpu: Gpu) -> dict[str, t.Any] | None:
    """The ``layouts`` entry that describes ``gpu`` as it is now; None for a GPU without MIG."""
    if not gpu.mig_capable or gpu.mig_mode is None:
        return None
    if not gpu.mig_mode.current:
        return {'devices': [gpu.index], 'mig_enabled': False}
    return {'devices': [gpu.index], 'mig_enabled': True,
            'instances': [instance_entry(gpu, gi) for gi in sorted(gpu.gpu_instances, key=lambda g: g.placement.start)]}


def current_mig_parted_config(gpu: Gpu, name: str = 'current') -> dict[str, t.Any] | None:
    """A mig-parted v1 config with one config ``name`` holding ``gpu``'s current profile counts."""
    if not gpu.mig_capable or gpu.mig_mode is None:
        return None
    entry: dict[str, t.Any] = {'devices': [gpu.index], 'mig-enabled': bool(gpu.mig_mode.current)}
    if gpu.mig_mode.current:
        counts: dict[str, int] = {}
        for gi in sorted(gpu.gpu_instances, key=lambda g: g.placement.start):
            for ci in gi.compute_instances:
                key = mig_parted_key(ci.profile)
                counts[key] = counts.get(key, 0) + 1
        entry['mig-devices'] = counts
    return {'version': 'v1', 'mig-configs': {name: [entry]}}
