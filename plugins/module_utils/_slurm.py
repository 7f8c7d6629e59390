# Copyright (c) 2026 gpuops.mig contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""Slurm GRES for MIG devices: the type names Slurm's NVML autodetection gives them, the device files it
lists for them, the gres.conf lines and the node's slurm.conf ``Gres=`` value.

The naming follows SchedMD/slurm ``src/plugins/gpu/nvml/gpu_nvml.c``:

* the GPU's NVML name is lower-cased with spaces turned into underscores
  (``gpu_common_underscorify_tolower``); for a MIG-enabled GPU it is cut at its first ``-``
  (``_get_system_gpu_list_nvml``); a GPU without MIG keeps the whole name;
* ``_handle_mig`` appends the MIG part. Slurm 21.08 to 23.02.5 (Debian 12 ships 22.05.8) build it from
  ``nvmlDeviceGetAttributes`` of the MIG device: ``"_%ug.%lugb"`` with ``gpuInstanceSliceCount`` and
  ``roundl(memorySizeMB / 1024)``, so a compute instance is named by its GPU instance (rule
  ``attributes``). Since 23.02.6 (commit 04f0e4c3d7, "Get mig profile name from nvidia if possible")
  Slurm takes the part after ``mig`` of the MIG device's NVML name (``NVIDIA H200 MIG 1g.18gb`` gives
  ``_1g.18gb``; a compute instance keeps its ``1c.`` prefix), rule ``profile``.
* the device files of a MIG device are the parent's ``/dev/nvidia<minor>`` and the capability files of
  its GPU instance and compute instance, ``/dev/nvidia-caps/nvidia-cap<N>``, the minors read from
  ``/proc/driver/nvidia-caps/mig-minors`` (``gpu<minor>/gi<id>/access`` and ``gpu<minor>/gi<id>/ci<id>/access``).
"""

from __future__ import annotations

import re
import typing as t

RULES = ('attributes', 'profile')
# First Slurm release whose _handle_mig takes the profile from the MIG device name.
PROFILE_RULE_SINCE = (23, 2, 6)


class SlurmGresError(ValueError):
    """Input that cannot be turned into GRES lines (names the field)."""


def underscorify_tolower(name: str) -> str:
    """gpu_common_underscorify_tolower: lower case, spaces to underscores (nothing else)."""
    return name.lower().replace(' ', '_')


def gpu_type(gpu_name: str, mig_enabled: bool) -> str:
    """Type of a whole GPU (its full name) or the prefix of its MIG devices' types (cut at the first '-')."""
    base = underscorify_tolower(gpu_name)
    return base.split('-', 1)[0] if mig_enabled else base


def rule_for_version(version: str) -> str:
    """Naming rule of a Slurm version string (``slurm 22.05.8``, ``23.02.6``, ``24.11.1-1``)."""
    m = re.search(r'(\d+)\.(\d+)(?:\.(\d+))?', version or '')
    if not m:
        raise SlurmGresError('mig_slurm_type_rule: cannot read a Slurm version from %r' % version)
    found = (int(m.group(1)), int(m.group(2)), int(m.group(3) or 0))
    return 'profile' if found >= PROFILE_RULE_SINCE else 'attributes'


def mig_type_suffix(gi_slices: int, ci_slices: int, memory_mib: int, rule: str, ci_profile: str = '') -> str:
    """The ``_<...>`` part _handle_mig appends for one MIG device.

    ``memory_mib`` is memorySizeMB of nvmlDeviceGetAttributes (the GPU instance's memory).
    ``ci_profile`` is the compute instance's profile name as NVML puts it into the MIG device's name.
    """
    if rule == 'attributes':
        # roundl(): halves away from zero; memorySizeMB is never negative.
        return '_%dg.%dgb' % (gi_slices, (2 * memory_mib + 1024) // 2048)
    if rule != 'profile':
        raise SlurmGresError('mig_slurm_type_rule: %r is not one of %s' % (rule, ', '.join(RULES)))
    if ci_profile:
        return '_' + underscorify_tolower(ci_profile)
    # Fallback of 23.02.6+ when the name has no "mig_": attributes, memory rounded up, CI slices if different.
    prefix = '%dc.' % ci_slices if ci_slices != gi_slices else ''
    return '_%s%dg.%dgb' % (prefix, gi_slices, (memory_mib + 1023) // 1024)


def mig_type(gpu_name: str, gi_slices: int, ci_slices: int, memory_mib: int, rule: str, ci_profile: str = '') -> str:
    """Full GRES type of a MIG device, e.g. ``nvidia_h200_1g.16gb`` (attributes) or ``nvidia_h200_1g.18gb`` (profile)."""
    return gpu_type(gpu_name, True) + mig_type_suffix(gi_slices, ci_slices, memory_mib, rule, ci_profile)


def parse_mig_minors(text: str) -> dict[tuple[int, int, int | None], int]:
    """``/proc/driver/nvidia-caps/mig-minors`` -> {(gpu minor, gi id, ci id or None): capability minor}."""
    minors: dict[tuple[int, int, int | None], int] = {}
    for line in text.splitlines():
        m = re.fullmatch(r'\s*gpu(\d+)/gi(\d+)(?:/ci(\d+))?/access\s+(\d+)\s*', line)
        if m:
            ci = int(m.group(3)) if m.group(3) is not None else None
            minors[(int(m.group(1)), int(m.group(2)), ci)] = int(m.group(4))
    return minors


def normalise_bus_id(bus_id: str) -> str:
    """NVML's ``00000000:10:00.0`` and procfs' ``0000:10:00.0`` as ``0000:10:00.0`` (lower case)."""
    domain, _sep, rest = bus_id.lower().partition(':')
    return '%04x:%s' % (int(domain or '0', 16), rest)


def _profile(gpu: t.Mapping[str, t.Any], profile_id: int, field: str) -> t.Mapping[str, t.Any]:
    for prof in gpu.get('profiles') or []:
        if prof.get('id') == profile_id:
            return prof
    raise SlurmGresError('%s: GPU %s reports no GPU instance profile with ID %s' % (field, gpu.get('index'), profile_id))


def node_gres(gpus: t.Sequence[t.Mapping[str, t.Any]], rule: str, mig_minors: str = '',
              gpu_minors: t.Mapping[str, int] | None = None, need_files: bool = True,
              slurm_version: str = '') -> dict[str, t.Any]:
    """GRES records of one node from mig_info/mig_layout ``gpus``.

    Returns ``devices`` (one per MIG device or non-MIG GPU: ``type``, ``files``, ``gpu``, ``gpu_instance``,
    ``compute_instance``, ``mig_uuid``), ``counts`` (type -> count, in device order) and ``gres`` (the
    slurm.conf value, ``gpu:<type>:<n>,...``) and ``rule``. Rule ``auto`` picks the rule of ``slurm_version``.
    """
    if rule == 'auto':
        rule = rule_for_version(slurm_version)
    if rule not in RULES:
        raise SlurmGresError('mig_slurm_type_rule: %r is not one of %s' % (rule, ', '.join(RULES)))
    caps = parse_mig_minors(mig_minors)
    by_bus = {normalise_bus_id(bus): int(minor) for bus, minor in (gpu_minors or {}).items()}
    devices: list[dict[str, t.Any]] = []
    for gpu in gpus:
        index = int(gpu['index'])
        minor = by_bus.get(normalise_bus_id(gpu.get('pci_bus_id') or '0:0'), index)
        parent = '/dev/nvidia%d' % minor
        mig_on = (gpu.get('mig_mode') or {}).get('current') == 'enabled'
        if not mig_on:
            devices.append({'type': gpu_type(gpu['name'], False), 'files': [parent], 'gpu': index,
                            'gpu_instance': None, 'compute_instance': None, 'mig_uuid': None})
            continue
        # Slurm lists MIG devices in NVML MIG index order: by GI placement, then CI placement.
        gis = sorted(gpu.get('gpu_instances') or [], key=lambda g: (g['placement']['start'], g['id']))
        for gi in gis:
            prof = _profile(gpu, gi['profile_id'], 'gpus[%d].gpu_instances' % index)
            cis = sorted(gi.get('compute_instances') or [], key=lambda c: (c['placement']['start'], c['id']))
            for ci in cis:
                files = [parent]
                if need_files:
                    try:
                        files += ['/dev/nvidia-caps/nvidia-cap%d' % caps[(minor, gi['id'], None)],
                                  '/dev/nvidia-caps/nvidia-cap%d' % caps[(minor, gi['id'], ci['id'])]]
                    except KeyError:
                        raise SlurmGresError(
                            'mig_minors: no capability minor for gpu%d/gi%d/ci%d in /proc/driver/nvidia-caps/mig-minors'
                            % (minor, gi['id'], ci['id'])) from None
                devices.append({
                    'type': mig_type(gpu['name'], int(prof['slices']), int(ci['placement']['size']),
                                     int(prof['memory_mib']), rule, ci.get('profile') or ''),
                    'files': files, 'gpu': index, 'gpu_instance': gi['id'], 'compute_instance': ci['id'],
                    'mig_uuid': ci.get('mig_uuid'),
                })
    counts: dict[str, int] = {}
    for dev in devices:
        counts[dev['type']] = counts.get(dev['type'], 0) + 1
    return {'devices': devices, 'counts': counts, 'rule': rule,
            'gres': ','.join('gpu:%s:%d' % (name, n) for name, n in counts.items())}
