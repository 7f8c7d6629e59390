# Copyright (c) 2026 gpuops.mig contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""Execute one GPU's plan through an adapter, and roll back if a call fails midway.

The executor only calls the five mutating adapter methods plus reads; it does not import pynvml,
so the simulator-free unit tests drive it with a fake adapter. Every mutation is journalled;
on failure the journal is undone in reverse (instances created by this run are destroyed,
instances destroyed by this run are recreated at their original placements with their compute
instances), then the GPU is read again and compared with what was there before.
"""

from __future__ import annotations

import dataclasses
import typing as t

from ansible_collections.gpuops.mig.plugins.module_utils._model import (
    Action,
    ComputeInstanceProfile,
    Gpu,
    GpuInstance,
    GpuPlan,
    MigAdapter,
    MigError,
    Placement,
)


class ComputeProfileMissing(Exception):
    """NVML offers no full-size compute-instance profile in a GPU instance this run created."""

    def __init__(self, gi_id: int, offered: t.Sequence[ComputeInstanceProfile]) -> None:
        super().__init__('GPU instance %d offers no full-size compute-instance profile' % gi_id)
        self.call = 'nvmlGpuInstanceGetComputeInstanceProfileInfo'
        self.error_name = 'no full-size compute-instance profile among %s' % (
            ', '.join('%s (ID %d)' % (c.name, c.id) for c in offered) or 'none')


@dataclasses.dataclass
class ApplyOutcome:
    index: int
    mode_pending: bool = False          # the MIG mode change waits for a GPU reset or reboot
    activation_status: int = 0


class ApplyError(MigError):
    """A mutation failed; the message says which call, which NVML error, and how the rollback went."""

    def __init__(self, message: str, index: int, call: str, error_name: str, rolled_back: bool,
                 gpu_after: Gpu | None) -> None:
        super().__init__(message)
        self.index = index
        self.call = call
        self.error_name = error_name
        self.rolled_back = rolled_back
        self.gpu_after = gpu_after


def layout_signature(gpu_instances: t.Iterable[GpuInstance]) -> list[tuple[t.Any, ...]]:
    """What must be equal for two layouts to be the same: profiles, placements, compute instances."""
    return sorted(
        (gi.profile_id, gi.placement.start, gi.placement.size,
         tuple(sorted((ci.profile_id, ci.placement.start, ci.placement.size) for ci in gi.compute_instances)))
        for gi in gpu_instances)


def describe_instance(profile: str | None, placement: Placement | None, gi_id: int | None = None) -> str:
    where = ''
    if placement:
        where = ' at slot %d' % placement.start if placement.size == 1 else ' at slots %d-%d' % (placement.start, placement.end - 1)
    ident = ' (GPU instance %d)' % gi_id if gi_id is not None else ''
    return '%s%s%s' % (profile, ident, where)


def describe_action(act: Action) -> str:
    if act.action == 'set_mode':
        return '%s MIG mode' % ('enabling' if act.mig_enabled else 'disabling')
    verb = {'create': 'creating', 'destroy': 'destroying'}.get(act.action, act.action)
    if act.target == 'compute_instance':
        parent = 'GPU instance %d' % act.gi_id if act.gi_id is not None else 'the new GPU instance'
        return '%s compute instance %s in %s%s' % (verb, act.profile, parent, describe_instance('', act.gi_placement))
    return '%s GPU instance %s' % (verb, describe_instance(act.profile, act.placement, act.gi_id))


def _error_parts(exc: Exception) -> tuple[str, str]:
    return getattr(exc, 'call', type(exc).__name__), getattr(exc, 'error_name', str(exc))


def execute_plan(adapter: MigAdapter, gpu: Gpu, plan: GpuPlan) -> ApplyOutcome:
    """Run the plan's mutating actions in order. Raises ApplyError after rolling back on failure."""
    index = gpu.index
    outcome = ApplyOutcome(index=index)
    created_gi: dict[int, int] = {}                 # plan position of a create -> new GI id
    offered: dict[int, tuple[ComputeInstanceProfile, ...]] = {}     # GI profile ID -> CI profiles NVML offers
    journal: list[tuple[str, t.Any]] = []
    originals = {gi.id: gi for gi in gpu.gpu_instances}
    for pos, act in enumerate(plan.actions):
        if act.action == 'keep':
            continue
        try:
            if act.action == 'set_mode':
                status = adapter.set_mig_mode(index, bool(act.mig_enabled))
                journal.append(('mode', gpu.mig_mode.current if gpu.mig_mode else False))
                mode = adapter.read_gpu(index, with_remaining=False).mig_mode
                if mode is None or mode.current != act.mig_enabled:
                    # Pending: Ampere needs a reset, or a client holds the GPU. Instances follow after the reset.
                    outcome.mode_pending = True
                    outcome.activation_status = status
                    return outcome
            elif act.action == 'destroy' and act.target == 'compute_instance':
                gi = originals[act.gi_id]
                ci = next(c for c in gi.compute_instances if c.id == act.ci_id)
                adapter.destroy_compute_instance(index, act.gi_id, act.ci_id)
                journal.append(('ci_destroyed', (act.gi_id, ci)))
            elif act.action == 'destroy':
                adapter.destroy_gpu_instance(index, act.gi_id)
                journal.append(('gi_destroyed', originals[act.gi_id]))
            elif act.action == 'create' and act.target == 'gpu_instance':
                new_id = adapter.create_gpu_instance(index, act.profile_id, act.placement)
                created_gi[pos] = new_id
                journal.append(('gi_created', new_id))
            elif act.action == 'create':
                gi_id = act.gi_id if act.gi_id is not None else created_gi[act.gi_ref]
                if act.full_ci_from_gi:
                    act = offered_full_compute_instance(adapter, index, gi_id, act, plan.actions[t.cast(int, act.gi_ref)], offered)
                new_ci = adapter.create_compute_instance(index, gi_id, act.profile_id, act.placement)
                journal.append(('ci_created', (gi_id, new_ci)))
            else:  # pragma: no cover - the planner emits nothing else
                raise ValueError('unknown action %r' % (act,))
        except Exception as exc:  # pylint: disable=broad-except
            call, error_name = _error_parts(exc)
            _fail(adapter, gpu, act, call, error_name, journal)
    return outcome


def offered_full_compute_instance(adapter: MigAdapter, index: int, gi_id: int, act: Action, gi_create: Action,
                                  offered: dict[int, tuple[ComputeInstanceProfile, ...]]) -> Action:
    """``act`` with the full-size compute-instance profile NVML offers in GPU instance ``gi_id``.

    NVML lists compute-instance profiles only for an existing GPU instance; a plan made before one
    existed names the profile go-nvlib's rule derives, which need not be what this GPU offers (the
    double-memory 1g profile: ID 7 on Hopper, unmeasured on Blackwell). Read before the create, so
    the compute instance is always one NVML offers.
    """
    reader = getattr(adapter, 'compute_instance_profiles', None)
    if reader is None or act.placement is None:
        return act
    key = t.cast(int, gi_create.profile_id)
    if key not in offered:      # the list is per GPU instance profile: read it once per run
        offered[key] = tuple(reader(index, gi_id))
    full = [c for c in offered[key] if c.slice_count == act.placement.size]
    if not full:
        raise ComputeProfileMissing(gi_id, offered[key])
    cip = max(full, key=lambda c: c.id)      # as full_compute_profile picks it on the next run: idempotent
    return dataclasses.replace(act, profile=cip.name, profile_id=cip.id, placement=Placement(0, cip.slice_count))


def _fail(adapter: MigAdapter, gpu: Gpu, act: Action, call: str, error_name: str,
          journal: list[tuple[str, t.Any]]) -> t.NoReturn:
    index = gpu.index
    problems = _rollback(adapter, index, journal)
    after: Gpu | None
    try:
        after = adapter.read_gpu(index, with_remaining=False)
    except Exception as exc:  # pylint: disable=broad-except
        after = None
        problems.append('reading GPU %d after the rollback failed: %s' % (index, exc))
    if after is not None and _mode_current(after) != _mode_current(gpu):
        problems.append('MIG mode is %s, it was %s before this run' % (_mode_text(after), _mode_text(gpu)))
    restored = after is not None and layout_signature(after.gpu_instances) == layout_signature(gpu.gpu_instances)
    undone = len(journal)
    head = 'GPU %d: %s failed with %s while %s.' % (index, call, error_name, describe_action(act))
    if restored and not problems:
        tail = ('Rolled back %d change(s) made by this run; GPU %d has its original layout again: %s.'
                % (undone, index, _layout_text(after)))
    else:
        tail = ('Rollback could not finish (%s). GPU %d now holds: %s.'
                % ('; '.join(problems) or 'layout differs from the original', index,
                   _layout_text(after) if after else 'unknown (could not read it)'))
    raise ApplyError('%s %s' % (head, tail), index, call, error_name, restored and not problems, after)


def _mode_current(gpu: Gpu) -> bool | None:
    return gpu.mig_mode.current if gpu.mig_mode is not None else None


def _mode_text(gpu: Gpu) -> str:
    mode = gpu.mig_mode
    if mode is None:
        return 'not supported'
    text = 'enabled' if mode.current else 'disabled'
    if mode.pending != mode.current:
        text += ' (%s pending a GPU reset)' % ('enabling' if mode.pending else 'disabling')
    return text


def _layout_text(gpu: Gpu | None) -> str:
    if gpu is None:
        return 'unknown'
    if not gpu.gpu_instances:
        return 'no GPU instances'
    parts = []
    for gi in gpu.gpu_instances:
        cis = ', '.join('%s (CI %d)' % (ci.profile, ci.id) for ci in gi.compute_instances) or 'no compute instances'
        parts.append('%s [%s]' % (describe_instance(gi.profile, gi.placement, gi.id), cis))
    return '; '.join(parts)


def _rollback(adapter: MigAdapter, index: int, journal: list[tuple[str, t.Any]]) -> list[str]:
    """Undo the journal in reverse order; return what could not be undone."""
    problems: list[str] = []
    new_ids: dict[int, int] = {}        # destroyed GI id -> id of the GI recreated in its place
    destroyed = {data.id for kind, data in journal if kind == 'gi_destroyed'}
    for kind, data in reversed(journal):
        if kind == 'ci_destroyed' and data[0] in destroyed and data[0] not in new_ids:
            # Its GPU instance could not be recreated (reported above). Its old ID may belong to
            # another GPU instance by now, so creating the compute instance "in" it would be wrong.
            continue
        try:
            if kind == 'ci_created':
                gi_id, ci_id = data
                adapter.destroy_compute_instance(index, gi_id, ci_id)
            elif kind == 'gi_created':
                adapter.destroy_gpu_instance(index, data)
            elif kind == 'gi_destroyed':
                gi: GpuInstance = data
                new_ids[gi.id] = adapter.create_gpu_instance(index, gi.profile_id, gi.placement)
            elif kind == 'ci_destroyed':
                gi_id, ci = data
                adapter.create_compute_instance(index, new_ids.get(gi_id, gi_id), ci.profile_id, ci.placement)
            elif kind == 'mode':
                adapter.set_mig_mode(index, bool(data))
        except Exception as exc:  # pylint: disable=broad-except
            call, error_name = _error_parts(exc)
            problems.append('undoing %s failed: %s returned %s' % (kind.replace('_', ' '), call, error_name))
    return problems
