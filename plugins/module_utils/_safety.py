# Copyright (c) 2026 gpuops.mig contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""Checks a plan must pass before its first mutation, each derived from NVML data alone.

* Whole-GPU clients: a process that holds the GPU without a GPU instance makes the driver refuse
  GPU-instance creation with ``NVML_ERROR_IN_USE`` (mig-hardware.md 9.2, observed on RTX PRO 6000
  and GH200). A plan that destroys or creates any instance on such a GPU could destroy instances
  it then cannot recreate, so it is refused, naming the PIDs.
* Media engines: every GPU instance profile reports its decoders, encoders, JPEG decoders and OFA
  engines; the profile that spans the whole GPU carries the GPU's totals. A layout whose instances
  need more of one engine than the GPU has is refused, naming the engine (A30 ``1g.6gb+me`` next to
  ``2g.12gb+me``: two JPEG decoders and two OFA engines, the GPU has one of each).
* Compute-instance profiles: a compute instance may only be created with a profile that NVML lists
  for its GPU instance profile, when NVML has listed them (a GPU instance of that profile exists).
"""

from __future__ import annotations

import typing as t

from ansible_collections.gpuops.mig.plugins.module_utils._model import Action, Gpu, GpuInstanceProfile

# (GpuInstanceProfile attribute, what NVML and nvidia-smi call the engine)
MEDIA_ENGINES = (
    ('decoders', 'video decoders (NVDEC)'),
    ('encoders', 'video encoders (NVENC)'),
    ('jpeg_decoders', 'JPEG decoders (NVJPG)'),
    ('ofa_engines', 'optical flow accelerators (OFA)'),
)


def _pids(pids: t.Iterable[int]) -> str:
    return ', '.join(str(p) for p in sorted(set(pids)))


def whole_gpu_pids(gpu: Gpu) -> list[int]:
    """PIDs of processes on the GPU that belong to no GPU instance, while MIG is on."""
    if not (gpu.mig_mode and gpu.mig_mode.current):
        return []
    return sorted({p.pid for p in gpu.processes if p.gi is None})


def instance_changes(actions: t.Iterable[Action]) -> list[Action]:
    """The actions that create or destroy a GPU or compute instance."""
    return [a for a in actions if a.action in ('create', 'destroy') and a.target in ('gpu_instance', 'compute_instance')]


def whole_gpu_client_refusal(gpu: Gpu, actions: t.Sequence[Action]) -> str | None:
    """Why ``actions`` must not run on ``gpu`` because processes hold the whole GPU; None if they may."""
    pids = whole_gpu_pids(gpu)
    changes = instance_changes(actions)
    if not pids or not changes:
        return None
    destroys = sum(1 for a in changes if a.action == 'destroy' and a.target == 'gpu_instance')
    creates = sum(1 for a in changes if a.action == 'create' and a.target == 'gpu_instance')
    what = []
    if destroys:
        what.append('destroy %d GPU instance(s)' % destroys)
    if creates:
        what.append('create %d GPU instance(s)' % creates)
    if not what:
        what.append('change %d compute instance(s)' % len(changes))
    return ('processes hold the whole GPU without a GPU instance (PIDs %s): the driver refuses to create GPU instances '
            'while they run (NVML_ERROR_IN_USE), so the layout, which would %s, is not applied and nothing was changed; '
            'stop those processes and run again' % (_pids(pids), ' and '.join(what)))


def engine_totals(gpu: Gpu) -> dict[str, int] | None:
    """Media engines of the whole GPU: the profiles whose placement spans every slot carry the totals."""
    slots = gpu.slot_count
    whole = [p for p in gpu.profiles if p.placements and p.placement_size == slots]
    if not whole:
        return None
    return {attr: max(getattr(p, attr) for p in whole) for attr, dummy in MEDIA_ENGINES}


def media_engine_refusal(gpu: Gpu, profiles: t.Sequence[GpuInstanceProfile]) -> str | None:
    """Why GPU instances of ``profiles`` cannot coexist on ``gpu`` for lack of media engines; None if they can."""
    totals = engine_totals(gpu)
    if totals is None:
        return None
    for attr, label in MEDIA_ENGINES:
        need = sum(getattr(p, attr) for p in profiles)
        if need <= totals[attr]:
            continue
        holders: dict[str, int] = {}
        for p in profiles:
            if getattr(p, attr):
                holders[p.name] = holders.get(p.name, 0) + getattr(p, attr)
        return ('the layout needs %d %s but the GPU has %d (%s; a GPU instance does not share its media engines): '
                'NVML would refuse a GPU instance midway'
                % (need, label, totals[attr], ', '.join('%s %d' % kv for kv in holders.items())))
    return None


def unoffered_compute_profiles(gpu: Gpu, actions: t.Sequence[Action]) -> str | None:
    """A compute instance the plan creates with a profile NVML does not list for its GPU instance profile."""
    for a in actions:
        if not (a.action == 'create' and a.target == 'compute_instance') or a.full_ci_from_gi:
            continue
        gi_profile = _gi_profile_of(gpu, actions, a)
        if gi_profile is None or not gi_profile.compute_profiles:
            continue
        offered = {c.id for c in gi_profile.compute_profiles}
        if a.profile_id not in offered:
            return ('compute-instance profile %s (ID %s) is not offered in a %s GPU instance; NVML lists: %s'
                    % (a.profile, a.profile_id, gi_profile.name,
                       ', '.join('%s (ID %d)' % (c.name, c.id) for c in gi_profile.compute_profiles)))
    return None


def _gi_profile_of(gpu: Gpu, actions: t.Sequence[Action], act: Action) -> GpuInstanceProfile | None:
    if act.gi_ref is not None:
        return gpu.profile_by_id(t.cast(int, actions[act.gi_ref].profile_id))
    gi = next((g for g in gpu.gpu_instances if g.id == act.gi_id), None)
    return gpu.profile_by_id(gi.profile_id) if gi is not None else None
