# Copyright (c) 2026 gpuops.mig contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""Plain data types shared by the NVML adapter, the planner, the spec parser and the renderer.

Nothing here imports Ansible or pynvml, so the planner and the boot-time service can use it as is.
Every type uses NVML's vocabulary: a GPU exposes GPU instance *profiles* with legal *placements*
(start slot and size on the GPU's memory-slot grid); a *GPU instance* occupies one placement and
holds *compute instances*, each with a compute-instance profile and a placement in compute slices.
"""

from __future__ import annotations

import dataclasses
import typing as t


@dataclasses.dataclass(frozen=True, order=True)
class Placement:
    """A range of placement slots ``[start, start + size)``."""

    start: int
    size: int

    @property
    def end(self) -> int:
        return self.start + self.size

    def overlaps(self, other: Placement) -> bool:
        return self.start < other.end and other.start < self.end

    def to_dict(self) -> dict[str, int]:
        return {'start': self.start, 'size': self.size}


def _profile_dict(prof: t.Any) -> dict[str, t.Any]:
    """What GPU and compute instance profiles report alike."""
    return {
        'id': prof.id,
        'name': prof.name,
        'slices': prof.slice_count,
        'max_instances': prof.instance_count,
        'multiprocessors': prof.multiprocessors,
        'placements': [p.to_dict() for p in prof.placements],
    }


@dataclasses.dataclass(frozen=True)
class ComputeInstanceProfile:
    """A compute-instance profile offered inside a GPU instance of one GI profile."""

    id: int                 # NVML compute-instance profile ID (index and ID coincide on every known driver)
    name: str               # NVML name without the ``MIG `` prefix, e.g. ``1c.3g.40gb`` or ``3g.40gb`` for the full CI
    slice_count: int        # compute slices
    instance_count: int     # max instances of this profile in one GI
    multiprocessors: int
    placements: tuple[Placement, ...] = ()   # legal CI placements (in compute slices) inside the GI

    def to_dict(self) -> dict[str, t.Any]:
        return _profile_dict(self)


@dataclasses.dataclass(frozen=True)
class GpuInstanceProfile:
    """A GPU instance profile as NVML reports it for one GPU."""

    id: int                 # NVML GPU instance profile ID (what create calls take), NOT the profile index
    index: int              # NVML_GPU_INSTANCE_PROFILE_* index it was read with
    name: str               # NVML name without the ``MIG `` prefix, e.g. ``1g.10gb+me``
    slice_count: int        # compute slices
    instance_count: int     # max instances on the GPU
    memory_mib: int
    multiprocessors: int
    copy_engines: int
    decoders: int
    encoders: int
    jpeg_decoders: int
    ofa_engines: int
    placements: tuple[Placement, ...]       # legal placements, from GetGpuInstancePossiblePlacements
    remaining: int = 0                      # remaining capacity as NVML reports it now
    compute_profiles: tuple[ComputeInstanceProfile, ...] = ()

    @property
    def placement_size(self) -> int:
        return self.placements[0].size if self.placements else 0

    def to_dict(self) -> dict[str, t.Any]:
        return dict(
            _profile_dict(self), index=self.index, memory_mib=self.memory_mib, copy_engines=self.copy_engines,
            decoders=self.decoders, encoders=self.encoders, jpeg_decoders=self.jpeg_decoders, ofa_engines=self.ofa_engines,
            remaining=self.remaining, compute_instance_profiles=[c.to_dict() for c in self.compute_profiles])


@dataclasses.dataclass(frozen=True)
class _Instance:
    """What GPU and compute instances share: ID, profile (ID and name, e.g. ``3g.40gb`` or ``1c.3g.40gb``), placement."""

    id: int
    profile_id: int
    profile: str
    placement: Placement

    def to_dict(self) -> dict[str, t.Any]:
        return {'id': self.id, 'profile': self.profile, 'profile_id': self.profile_id, 'placement': self.placement.to_dict()}


@dataclasses.dataclass(frozen=True)
class ComputeInstance(_Instance):
    mig_uuid: str | None = None

    def to_dict(self) -> dict[str, t.Any]:
        return dict(super().to_dict(), mig_uuid=self.mig_uuid)


@dataclasses.dataclass(frozen=True)
class GpuInstance(_Instance):
    compute_instances: tuple[ComputeInstance, ...] = ()

    def to_dict(self) -> dict[str, t.Any]:
        return dict(super().to_dict(), compute_instances=[c.to_dict() for c in self.compute_instances])


@dataclasses.dataclass(frozen=True)
class GpuProcess:
    pid: int
    gi: int | None          # GPU instance ID, None for a process on the whole GPU
    ci: int | None
    used_memory_mib: int | None = None

    def to_dict(self) -> dict[str, t.Any]:
        return {'pid': self.pid, 'gi': self.gi, 'ci': self.ci, 'used_memory_mib': self.used_memory_mib}


@dataclasses.dataclass(frozen=True)
class MigMode:
    current: bool
    pending: bool

    def to_dict(self) -> dict[str, str]:
        return {
            'current': 'enabled' if self.current else 'disabled',
            'pending': 'enabled' if self.pending else 'disabled',
        }


@dataclasses.dataclass(frozen=True)
class Gpu:
    """Everything read from one physical GPU."""

    index: int
    uuid: str
    name: str
    pci_bus_id: str                 # ``00000000:00:06.0``
    pci_device_id: int              # ``0x233010DE``
    pci_subsystem_id: int           # ``0x16C110DE``
    memory_total_mib: int
    architecture: int | None        # NVML_DEVICE_ARCH_* (7 Ampere, 9 Hopper, 10 Blackwell)
    mig_capable: bool
    mig_mode: MigMode | None        # None when not MIG-capable
    profiles: tuple[GpuInstanceProfile, ...] = ()
    gpu_instances: tuple[GpuInstance, ...] = ()
    processes: tuple[GpuProcess, ...] = ()

    @property
    def slot_count(self) -> int:
        """Size of the placement grid: the end of the largest legal placement."""
        return max((p.end for prof in self.profiles for p in prof.placements), default=0)

    def profile_by_id(self, profile_id: int) -> GpuInstanceProfile | None:
        for prof in self.profiles:
            if prof.id == profile_id:
                return prof
        return None

    def processes_on(self, gi_id: int) -> list[GpuProcess]:
        return [p for p in self.processes if p.gi == gi_id]

    def to_dict(self) -> dict[str, t.Any]:
        return {
            'index': self.index,
            'uuid': self.uuid,
            'name': self.name,
            'pci_bus_id': self.pci_bus_id,
            'pci_device_id': '0x%08X' % self.pci_device_id,
            'pci_subsystem_id': '0x%08X' % self.pci_subsystem_id,
            'memory_total_mib': self.memory_total_mib,
            'architecture': self.architecture,
            'mig_capable': self.mig_capable,
            'mig_mode': self.mig_mode.to_dict() if self.mig_mode else None,
            'profiles': [p.to_dict() for p in self.profiles],
            'gpu_instances': [gi.to_dict() for gi in self.gpu_instances],
            'processes': [p.to_dict() for p in self.processes],
        }


def gpu_from_dict(data: t.Mapping[str, t.Any]) -> Gpu:
    """Inverse of :meth:`Gpu.to_dict` (the fleet planner reads GPUs from saved ``mig_info`` facts)."""

    def placement(d: t.Mapping[str, t.Any]) -> Placement:
        return Placement(int(d['start']), int(d['size']))

    profiles = tuple(
        GpuInstanceProfile(
            id=p['id'], index=p['index'], name=p['name'], slice_count=p['slices'],
            instance_count=p['max_instances'], memory_mib=p['memory_mib'],
            multiprocessors=p['multiprocessors'], copy_engines=p['copy_engines'],
            decoders=p['decoders'], encoders=p['encoders'], jpeg_decoders=p['jpeg_decoders'],
            ofa_engines=p['ofa_engines'], placements=tuple(placement(x) for x in p['placements']),
            remaining=p.get('remaining', 0),
            compute_profiles=tuple(
                ComputeInstanceProfile(
                    id=c['id'], name=c['name'], slice_count=c['slices'], instance_count=c['max_instances'],
                    multiprocessors=c['multiprocessors'], placements=tuple(placement(x) for x in c.get('placements', ())))
                for c in p.get('compute_instance_profiles', ())),
        )
        for p in data.get('profiles', ()))
    gis = tuple(
        GpuInstance(
            id=g['id'], profile_id=g['profile_id'], profile=g['profile'], placement=placement(g['placement']),
            compute_instances=tuple(
                ComputeInstance(id=c['id'], profile_id=c['profile_id'], profile=c['profile'],
                                placement=placement(c['placement']), mig_uuid=c.get('mig_uuid'))
                for c in g.get('compute_instances', ())))
        for g in data.get('gpu_instances', ()))
    mode = data.get('mig_mode')
    return Gpu(
        index=data['index'], uuid=data['uuid'], name=data['name'], pci_bus_id=data['pci_bus_id'],
        pci_device_id=int(str(data['pci_device_id']), 16), pci_subsystem_id=int(str(data.get('pci_subsystem_id', '0x0')), 16),
        memory_total_mib=data['memory_total_mib'], architecture=data.get('architecture'),
        mig_capable=data['mig_capable'],
        mig_mode=MigMode(mode['current'] == 'enabled', mode['pending'] == 'enabled') if mode else None,
        profiles=profiles, gpu_instances=gis,
        processes=tuple(GpuProcess(pid=p['pid'], gi=p.get('gi'), ci=p.get('ci'), used_memory_mib=p.get('used_memory_mib'))
                        for p in data.get('processes', ())),
    )


# --- desired state (output of the spec parser, input of the planner) ---------------------------

@dataclasses.dataclass(frozen=True)
class DesiredInstance:
    """One GPU instance the layout asks for."""

    profile_id: int                         # GPU instance profile ID on this GPU
    placement_start: int | None = None      # declared start slot; None lets the planner choose
    compute_profile_ids: tuple[int, ...] | None = None   # CI profile IDs; None = one full-size CI; () = none
    source: str = ''                        # where it was declared, e.g. ``layouts[0].instances[1]`` (for error messages)
    # The same, resolved by the spec parser against the GPU (the planner then checks nothing it checked).
    profile: GpuInstanceProfile | None = dataclasses.field(default=None, compare=False, repr=False)
    compute_profiles: tuple[ComputeInstanceProfile, ...] | None = dataclasses.field(default=None, compare=False, repr=False)


@dataclasses.dataclass(frozen=True)
class DesiredGpu:
    """The layout one GPU must converge to."""

    index: int
    mig_enabled: bool
    instances: tuple[DesiredInstance, ...] = ()
    source: str = ''                        # which layout entry claimed it, e.g. ``layouts[1]``


# --- plan (output of the planner, input of the executor) -----------------------------------------

@dataclasses.dataclass(frozen=True)
class Action:
    """One step of a plan.

    ``action`` is ``set_mode``, ``destroy``, ``create`` or ``keep``; ``target`` is ``gpu``,
    ``gpu_instance`` or ``compute_instance``. For a compute instance created inside a GPU instance
    that the same plan creates, ``gi_id`` is None and ``gi_ref`` is the position in the plan of
    that ``create gpu_instance`` action.
    """

    action: str
    target: str
    profile: str | None = None
    profile_id: int | None = None
    gi_id: int | None = None
    ci_id: int | None = None
    placement: Placement | None = None
    gi_placement: Placement | None = None   # for compute-instance actions: the parent GI's placement
    gi_ref: int | None = None
    mig_enabled: bool | None = None         # for set_mode
    # Create the full-size compute instance that NVML offers in the new GPU instance (read once it exists):
    # set when NVML has not listed this GPU instance profile's compute-instance profiles (no instance of it existed).
    full_ci_from_gi: bool = False

    @property
    def mutates(self) -> bool:
        return self.action != 'keep'

    def to_dict(self) -> dict[str, t.Any]:
        d: dict[str, t.Any] = {'action': self.action, 'target': self.target}
        if self.action == 'set_mode':
            d['mig_enabled'] = self.mig_enabled
            return d
        d.update({
            'profile': self.profile,
            'profile_id': self.profile_id,
            'gpu_instance_id': self.gi_id,
            'placement': self.placement.to_dict() if self.placement else None,
        })
        if self.target == 'compute_instance':
            d['compute_instance_id'] = self.ci_id
            d['gpu_instance_placement'] = self.gi_placement.to_dict() if self.gi_placement else None
        return d


@dataclasses.dataclass(frozen=True)
class GpuPlan:
    index: int
    actions: tuple[Action, ...]
    # Instances as they will be when the plan is done, GI IDs None for those still to be created.
    target_instances: tuple[GpuInstance, ...] = ()

    @property
    def changes(self) -> bool:
        return any(a.mutates for a in self.actions)

    @property
    def destroyed_gpu_instances(self) -> int:
        return sum(1 for a in self.actions if a.action == 'destroy' and a.target == 'gpu_instance')


class MigError(Exception):
    """Base of the collection's errors: the message, and ``field``, the option it concerns when one does."""

    def __init__(self, message: str, field: str | None = None) -> None:
        super().__init__(message)
        self.field = field


class PlanError(MigError):
    """The desired layout cannot be reached; the message says why, precisely."""

    def __init__(self, message: str, gpu_index: int | None = None, field: str | None = None) -> None:
        super().__init__(message, field)
        self.gpu_index = gpu_index


class SpecError(MigError):
    """Bad input: ``field`` names the option (``layouts[0].mig_devices``) and the message says why."""

    def __init__(self, field: str, reason: str) -> None:
        super().__init__('%s: %s' % (field, reason), field)
        self.reason = reason


class MigAdapter(t.Protocol):
    """What converging needs from NVML: the collection's ``_nvml.NvmlAdapter``, or a test double."""

    def read_gpus(self, with_remaining: bool = True) -> list[Gpu]:
        ...

    def read_gpu(self, index: int, with_remaining: bool = True) -> Gpu:
        ...

    def set_mig_mode(self, index: int, enabled: bool) -> int:
        ...

    def create_gpu_instance(self, index: int, profile_id: int, placement: Placement) -> int:
        ...

    def create_compute_instance(self, index: int, gi_id: int, ci_profile_id: int, placement: Placement) -> int:
        ...

    def destroy_compute_instance(self, index: int, gi_id: int, ci_id: int) -> None:
        ...

    def destroy_gpu_instance(self, index: int, gi_id: int) -> None:
        ...

    def compute_instance_profiles(self, index: int, gi_id: int) -> tuple[ComputeInstanceProfile, ...]:
        ...
