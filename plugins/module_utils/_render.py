# Copyright (c) 2026 gpuops.mig contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""What the modules report about GPUs: ``gpu_report``, ``mig_devices`` and text diagrams of the placement grid
(4, 8 or 12 slots), one row per GPU instance::

    slot  0 1 2 3 4 5 6 7
    GI 2  [=====]          3g.40gb  CI: 3g.40gb
    GI 13             #    1g.10gb  CI: 1g.10gb  PIDs 4242
    free          . .   .
"""

from __future__ import annotations

import typing as t

from ansible_collections.gpuops.mig.plugins.module_utils._model import Gpu, GpuInstance


def _cell_width(slot_count: int) -> int:
    return len(str(max(slot_count - 1, 0))) + 1


def _span(size: int, width: int, name: str) -> str:
    """The characters a GI of ``size`` slots occupies: ``[3g.40gb]`` if the name fits, else ``[=====]``."""
    n = size * width - 1
    if n <= 1:
        return '#' * max(n, 1)
    inner = n - 2
    if len(name) <= inner:
        return '[' + name.center(inner, ' ') + ']'
    return '[' + '=' * inner + ']'


def grid_diagram(instances: t.Sequence[GpuInstance], slot_count: int, pids: t.Mapping[int, t.Sequence[int]] | None = None) -> list[str]:
    """Rows of the grid for ``instances``; GI IDs that are None (to be created) show as ``new``."""
    if slot_count <= 0:
        return []
    w = _cell_width(slot_count)
    labels = ['GI %d' % gi.id if gi.id is not None else 'new' for gi in instances]
    lw = max([len('slot'), len('free')] + [len(x) for x in labels]) + 2
    rows = ['slot'.ljust(lw) + ''.join(str(i).ljust(w) for i in range(slot_count)).rstrip()]
    used = [False] * slot_count
    for gi, label in sorted(zip(instances, labels), key=lambda x: (x[0].placement.start, -x[0].placement.size)):
        line = [' '] * (slot_count * w)
        span = _span(gi.placement.size, w, gi.profile)
        for i, ch in enumerate(span):
            pos = gi.placement.start * w + i
            if 0 <= pos < len(line):
                line[pos] = ch
        for s in range(gi.placement.start, min(gi.placement.end, slot_count)):
            if s >= 0:
                used[s] = True
        cis = ', '.join(c.profile for c in gi.compute_instances) or 'none'
        extra = '  PIDs %s' % ', '.join(str(p) for p in pids[gi.id]) if pids and gi.id in pids and pids[gi.id] else ''
        rows.append((label.ljust(lw) + ''.join(line) + '  ' + gi.profile + '  CI: ' + cis + extra).rstrip())
    free = ''.join(('.' if not u else ' ').ljust(w) for u in used)
    rows.append(('free'.ljust(lw) + free).rstrip())
    return rows


def layout_diagram(gpu: Gpu) -> list[str]:
    """The GPU's current layout; ``[]`` for a GPU without MIG, a note when MIG mode is off."""
    if not gpu.mig_capable or gpu.mig_mode is None:
        return []
    if not gpu.mig_mode.current:
        return ['MIG disabled%s' % (' (enable pending)' if gpu.mig_mode.pending else '')]
    pids: dict[int, list[int]] = {}
    for p in gpu.processes:
        # A PID that NVML lists for the GPU instance and for a compute instance in it is shown once.
        if p.gi is not None and p.pid not in pids.setdefault(p.gi, []):
            pids[p.gi].append(p.pid)
    return grid_diagram(gpu.gpu_instances, gpu.slot_count, pids)


def plan_diagram(target_instances: t.Sequence[GpuInstance], slot_count: int) -> list[str]:
    """The layout a plan leads to (``GpuPlan.target_instances``), for before/after diffs."""
    return grid_diagram(target_instances, slot_count)


def gpu_report(gpu: Gpu) -> dict[str, t.Any]:
    """A GPU as modules return it: ``Gpu.to_dict()`` plus the layout diagram."""
    data = gpu.to_dict()
    data['layout_diagram'] = layout_diagram(gpu) if gpu.mig_capable else []
    return data


def mig_devices(gpus: t.Iterable[Gpu]) -> list[dict[str, t.Any]]:
    """The node-local map of MIG devices consumers need (GPU, GI, CI, profile, placement, MIG UUID)."""
    devices = []
    for gpu in gpus:
        for gi in gpu.gpu_instances:
            for ci in gi.compute_instances:
                devices.append({
                    'gpu': gpu.index,
                    'gpu_uuid': gpu.uuid,
                    'gpu_instance': gi.id,
                    'gpu_instance_profile': gi.profile,
                    'compute_instance': ci.id,
                    'profile': ci.profile,
                    'placement': gi.placement.to_dict(),
                    'compute_placement': ci.placement.to_dict(),
                    'mig_uuid': ci.mig_uuid,
                })
    return devices


DEVICE_MAP_GPU_KEYS = ('index', 'uuid', 'name', 'pci_bus_id', 'mig_mode')


def device_map(gpus: t.Iterable[Gpu]) -> dict[str, t.Any]:
    """The node-local MIG device map the mig role and the boot service write (``mig-devices.json``)."""
    gpus = list(gpus)
    return {
        'gpus': [{k: v for k, v in gpu.to_dict().items() if k in DEVICE_MAP_GPU_KEYS} for gpu in gpus],
        'mig_devices': mig_devices(gpus),
    }
