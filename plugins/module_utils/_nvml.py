# Copyright (c) 2026 gpuops.mig contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""The NVML adapter: the only code in the collection that imports pynvml.

It turns NVML readings into the plain types of ``_model`` and performs the five mutating calls
the executor needs (set MIG mode, create/destroy GPU instances, create/destroy compute instances),
always with explicit placements. Every NVML failure surfaces as :class:`NvmlCallError`, which
names the NVML function and the NVML error.
"""

from __future__ import annotations

import ctypes
import dataclasses
import typing as t

from ansible_collections.gpuops.mig.plugins.module_utils._model import (
    ComputeInstance,
    ComputeInstanceProfile,
    Gpu,
    GpuInstance,
    GpuInstanceProfile,
    GpuProcess,
    MigError,
    MigMode,
    Placement,
)

try:
    import pynvml
    PYNVML_IMPORT_ERROR = None  # type: str | None
except ImportError as exc:  # pragma: no cover - depends on the managed node
    pynvml = None
    PYNVML_IMPORT_ERROR = str(exc)

# NVML return codes used here (nvml.h); kept local so this file reads without pynvml installed.
NVML_ERROR_INVALID_ARGUMENT = 2
NVML_ERROR_NOT_SUPPORTED = 3
NVML_ERROR_NO_PERMISSION = 4
NVML_ERROR_NOT_FOUND = 6
NVML_ERROR_DRIVER_NOT_LOADED = 9
NVML_ERROR_LIBRARY_NOT_FOUND = 12
NVML_ERROR_FUNCTION_NOT_FOUND = 13

# Highest NVML_GPU_INSTANCE_PROFILE_* / NVML_COMPUTE_INSTANCE_PROFILE_* index we probe. Drivers answer
# INVALID_ARGUMENT past the indexes they know, which ends the scan early.
_GI_PROFILE_INDEX_LIMIT = 32
_CI_PROFILE_INDEX_LIMIT = 16
_MAX_PLACEMENTS = 64
_MAX_INSTANCES = 64
_NOT_MIG = 0xFFFFFFFF
# nvmlGpuVirtualizationMode_t (nvml.h). PASSTHROUGH: the GPU is passed through to this VM, whose
# guest cannot reset it (a pending MIG mode change needs a reboot of the VM).
VIRTUALIZATION_MODES = {0: 'none', 1: 'passthrough', 2: 'vgpu', 3: 'host_vgpu', 4: 'host_vsga'}


class NvmlUnavailable(MigError):
    """NVML cannot be used on this host at all (no pynvml, no library, no driver, no permission)."""


class NvmlCallError(MigError):
    """One NVML call failed."""

    def __init__(self, call: str, code: int, error_name: str, detail: str = '') -> None:
        self.call = call
        self.code = code
        self.error_name = error_name
        self.detail = detail
        super().__init__('%s failed: %s (%d)%s' % (call, error_name, code, (': ' + detail) if detail else ''))


_ERROR_NAMES: dict[int, str] = {}


def _error_name(code: int) -> str:
    if not _ERROR_NAMES and pynvml is not None:
        for name in dir(pynvml):
            value = getattr(pynvml, name)
            if name.startswith('NVML_ERROR_') and isinstance(value, int):
                _ERROR_NAMES.setdefault(value, name)
    return _ERROR_NAMES.get(code, 'NVML_ERROR_%d' % code)


def _text(value: t.Any) -> str:
    return value.decode('utf-8', 'replace') if isinstance(value, bytes) else str(value)


def _strip_mig(name: str) -> str:
    return name[4:] if name.startswith('MIG ') else name


class NvmlAdapter:
    """Context manager around one NVML session (one ``nvmlInit`` per module run)."""

    def __init__(self) -> None:
        self._handles: dict[int, t.Any] = {}
        self._gi_handles: dict[tuple[int, int], t.Any] = {}
        # Profile tables depend on the GPU model (PCI device and subsystem ID) and the driver, which is
        # one per host: identical GPUs of one session are probed once. Remaining capacity is per GPU.
        self._profile_cache: dict[tuple[int, int], list[GpuInstanceProfile]] = {}
        self._ci_profile_cache: dict[tuple[int, int, int], tuple[ComputeInstanceProfile, ...]] = {}
        self.calls = 0

    # -- session ---------------------------------------------------------------------------

    def __enter__(self) -> NvmlAdapter:
        if pynvml is None:
            raise NvmlUnavailable(
                'the Python module pynvml is not installed for this interpreter (%s); install the package '
                'nvidia-ml-py (pip install nvidia-ml-py) on the managed node' % PYNVML_IMPORT_ERROR)
        try:
            pynvml.nvmlInit()
        except pynvml.NVMLError as exc:
            code = getattr(exc, 'value', -1)
            if code == NVML_ERROR_LIBRARY_NOT_FOUND:
                raise NvmlUnavailable(
                    'libnvidia-ml.so.1 was not found: the NVIDIA driver (its NVML library) is not installed on this host')
            if code == NVML_ERROR_DRIVER_NOT_LOADED:
                raise NvmlUnavailable(
                    'the NVIDIA kernel driver is not loaded (NVML_ERROR_DRIVER_NOT_LOADED): load it (modprobe nvidia) '
                    'or install a driver that supports MIG')
            if code == NVML_ERROR_NO_PERMISSION:
                raise NvmlUnavailable('permission denied opening NVML (NVML_ERROR_NO_PERMISSION): run as root (become: true)')
            raise NvmlUnavailable('nvmlInit failed: %s (%d)' % (_error_name(code), code))
        return self

    def __exit__(self, *exc_info: t.Any) -> None:
        try:
            pynvml.nvmlShutdown()
        except Exception:  # pylint: disable=broad-except
            pass

    def _call(self, name: str, *args: t.Any) -> t.Any:
        self.calls += 1
        try:
            return getattr(pynvml, name)(*args)
        except pynvml.NVMLError as exc:
            code = getattr(exc, 'value', -1)
            raise NvmlCallError(name, code, _error_name(code))

    def _try(self, name: str, *args: t.Any, default: t.Any = None) -> t.Any:
        try:
            return self._call(name, *args)
        except NvmlCallError:
            return default

    # -- system ----------------------------------------------------------------------------

    def system_info(self) -> dict[str, t.Any]:
        cuda = self._try('nvmlSystemGetCudaDriverVersion')
        return {
            'driver_version': _text(self._call('nvmlSystemGetDriverVersion')),
            'cuda_driver_version': '%d.%d' % (cuda // 1000, (cuda % 1000) // 10) if cuda else None,
            'nvml_version': _text(self._try('nvmlSystemGetNVMLVersion', default='')) or None,
        }

    def device_count(self) -> int:
        return int(self._call('nvmlDeviceGetCount'))

    def _handle(self, index: int) -> t.Any:
        if index not in self._handles:
            self._handles[index] = self._call('nvmlDeviceGetHandleByIndex', index)
        return self._handles[index]

    # -- reading ---------------------------------------------------------------------------

    def read_gpus(self, with_remaining: bool = True) -> list[Gpu]:
        return [self.read_gpu(i, with_remaining=with_remaining) for i in range(self.device_count())]

    def read_gpu(self, index: int, with_remaining: bool = True) -> Gpu:
        """Read one GPU: identity, MIG mode, profiles with placements, instances, processes."""
        self._gi_handles = {k: v for k, v in self._gi_handles.items() if k[0] != index}
        handle = self._handle(index)
        pci = self._call('nvmlDeviceGetPciInfo', handle)
        mem = self._call('nvmlDeviceGetMemoryInfo', handle)
        arch = self._try('nvmlDeviceGetArchitecture', handle)
        try:
            current, pending = self._call('nvmlDeviceGetMigMode', handle)
            mode = MigMode(bool(current), bool(pending))  # type: MigMode | None
        except NvmlCallError as exc:
            if exc.code != NVML_ERROR_NOT_SUPPORTED:
                raise
            mode = None
        profiles: list[GpuInstanceProfile] = []
        gpu_instances: list[GpuInstance] = []
        processes: list[GpuProcess] = []
        if mode is not None:
            model = (int(pci.pciDeviceId), int(pci.pciSubSystemId))
            profiles = self._read_profiles(handle, model, with_remaining)
            if mode.current:
                gpu_instances, ci_profiles = self._read_instances(index, handle, profiles, model)
                profiles = [
                    _with_compute_profiles(p, ci_profiles.get(p.id, ())) for p in profiles]
        ci_count = sum(len(gi.compute_instances) for gi in gpu_instances)
        mig_devices = self._read_mig_devices(handle, ci_count) if ci_count else []
        processes = self._read_processes(handle, mig_devices)
        if mig_devices:
            uuids = {(dev[0], dev[1]): dev[2] for dev in mig_devices}
            gpu_instances = [
                GpuInstance(gi.id, gi.profile_id, gi.profile, gi.placement, tuple(
                    dataclasses.replace(ci, mig_uuid=uuids.get((gi.id, ci.id))) for ci in gi.compute_instances))
                for gi in gpu_instances]
        return Gpu(
            index=index,
            uuid=_text(self._call('nvmlDeviceGetUUID', handle)),
            name=_text(self._call('nvmlDeviceGetName', handle)),
            pci_bus_id=_text(pci.busId),
            pci_device_id=int(pci.pciDeviceId),
            pci_subsystem_id=int(pci.pciSubSystemId),
            memory_total_mib=int(mem.total) // (1024 * 1024),
            architecture=int(arch) if arch is not None else None,
            mig_capable=mode is not None,
            mig_mode=mode,
            profiles=tuple(profiles),
            gpu_instances=tuple(sorted(gpu_instances, key=lambda gi: (gi.placement.start, gi.id))),
            processes=tuple(processes),
        )

    def _read_profiles(self, handle: t.Any, model: tuple[int, int], with_remaining: bool) -> list[GpuInstanceProfile]:
        if model not in self._profile_cache:
            self._profile_cache[model] = self._probe_profiles(handle)
        profiles = self._profile_cache[model]
        if not with_remaining:
            return list(profiles)
        return [dataclasses.replace(p, remaining=int(self._call('nvmlDeviceGetGpuInstanceRemainingCapacity', handle, p.id)))
                for p in profiles]

    def _profile_infos(self, limit: int, call: str, *args: t.Any) -> t.Iterator[tuple[int, t.Any]]:
        """(index, info) for every profile index NVML offers: NOT_SUPPORTED skips one, INVALID_ARGUMENT ends the scan."""
        for idx in range(limit):
            try:
                yield idx, self._call(call, *(args[:1] + (idx,) + args[1:]))
            except NvmlCallError as exc:
                if exc.code == NVML_ERROR_NOT_SUPPORTED:
                    continue
                if exc.code == NVML_ERROR_INVALID_ARGUMENT:
                    return
                raise

    def _probe_profiles(self, handle: t.Any) -> list[GpuInstanceProfile]:
        profiles = []
        for idx, info in self._profile_infos(_GI_PROFILE_INDEX_LIMIT, 'nvmlDeviceGetGpuInstanceProfileInfo', handle):
            placements = self._gi_placements(handle, info.id)
            profiles.append(GpuInstanceProfile(
                id=int(info.id), index=idx, name=_strip_mig(_text(info.name)),
                slice_count=int(info.sliceCount), instance_count=int(info.instanceCount),
                memory_mib=int(info.memorySizeMB), multiprocessors=int(info.multiprocessorCount),
                copy_engines=int(info.copyEngineCount), decoders=int(info.decoderCount),
                encoders=int(info.encoderCount), jpeg_decoders=int(info.jpegCount), ofa_engines=int(info.ofaCount),
                placements=tuple(placements)))
        return profiles

    def _gi_placements(self, handle: t.Any, profile_id: int) -> list[Placement]:
        arr = (pynvml.c_nvmlGpuInstancePlacement_t * _MAX_PLACEMENTS)()
        count = ctypes.c_uint(_MAX_PLACEMENTS)
        self._call('nvmlDeviceGetGpuInstancePossiblePlacements', handle, profile_id, arr, ctypes.byref(count))
        return sorted(Placement(int(arr[i].start), int(arr[i].size)) for i in range(count.value))

    def _read_instances(self, index: int, handle: t.Any, profiles: list[GpuInstanceProfile], model: tuple[int, int]
                        ) -> tuple[list[GpuInstance], dict[int, tuple[ComputeInstanceProfile, ...]]]:
        names = {p.id: p.name for p in profiles}
        found: list[GpuInstance] = []
        ci_profiles: dict[int, tuple[ComputeInstanceProfile, ...]] = {}
        for prof in profiles:
            arr = (pynvml.c_nvmlGpuInstance_t * _MAX_INSTANCES)()
            count = ctypes.c_uint(_MAX_INSTANCES)
            self._call('nvmlDeviceGetGpuInstances', handle, prof.id, arr, ctypes.byref(count))
            for i in range(count.value):
                gi_handle = arr[i]
                info = self._call('nvmlGpuInstanceGetInfo', gi_handle)
                gi_id = int(info.id)
                self._gi_handles[(index, gi_id)] = gi_handle
                key = model + (prof.id,)
                if key not in self._ci_profile_cache:
                    self._ci_profile_cache[key] = tuple(self._read_ci_profiles(gi_handle, prof))
                cips = ci_profiles[prof.id] = self._ci_profile_cache[key]
                cis = self._read_compute_instances(gi_handle, cips, prof)
                found.append(GpuInstance(
                    id=gi_id, profile_id=int(info.profileId), profile=names.get(int(info.profileId), str(info.profileId)),
                    placement=Placement(int(info.placement.start), int(info.placement.size)),
                    compute_instances=tuple(sorted(cis, key=lambda c: (c.placement.start, c.id)))))
        return found, ci_profiles

    def _read_ci_profiles(self, gi_handle: t.Any, gi_profile: GpuInstanceProfile) -> list[ComputeInstanceProfile]:
        result = []
        for dummy, info in self._profile_infos(_CI_PROFILE_INDEX_LIMIT, 'nvmlGpuInstanceGetComputeInstanceProfileInfo', gi_handle, 0):
            placements: list[Placement] = []
            arr = (pynvml.c_nvmlComputeInstancePlacement_t * _MAX_PLACEMENTS)()
            count = ctypes.c_uint(_MAX_PLACEMENTS)
            try:
                self._call('nvmlGpuInstanceGetComputeInstancePossiblePlacements', gi_handle, info.id, arr, ctypes.byref(count))
                placements = sorted(Placement(int(arr[i].start), int(arr[i].size)) for i in range(count.value))
            except NvmlCallError as exc:
                if exc.code not in (NVML_ERROR_NOT_SUPPORTED, NVML_ERROR_FUNCTION_NOT_FOUND):
                    raise
            name = _strip_mig(_text(info.name)) or '%dc.%s' % (int(info.sliceCount), gi_profile.name)
            result.append(ComputeInstanceProfile(
                id=int(info.id), name=name, slice_count=int(info.sliceCount), instance_count=int(info.instanceCount),
                multiprocessors=int(info.multiprocessorCount), placements=tuple(placements)))
        return result

    def _read_compute_instances(self, gi_handle: t.Any, cips: tuple[ComputeInstanceProfile, ...],
                                gi_profile: GpuInstanceProfile) -> list[ComputeInstance]:
        result = []
        for cip in cips:
            arr = (pynvml.c_nvmlComputeInstance_t * _MAX_INSTANCES)()
            count = ctypes.c_uint(_MAX_INSTANCES)
            self._call('nvmlGpuInstanceGetComputeInstances', gi_handle, cip.id, arr, ctypes.byref(count))
            for i in range(count.value):
                info = self._call('nvmlComputeInstanceGetInfo', arr[i])
                result.append(ComputeInstance(
                    id=int(info.id), profile_id=int(info.profileId), profile=cip.name,
                    placement=Placement(int(info.placement.start), int(info.placement.size))))
        return result

    def _read_mig_devices(self, handle: t.Any, expected: int) -> list[tuple[int, int, str, t.Any]]:
        """(GI id, CI id, MIG UUID, MIG device handle) for every MIG device of the GPU.

        One MIG device per compute instance: the scan of the device indexes stops once all
        ``expected`` (the compute instances just read) are found.
        """
        devices: list[tuple[int, int, str, t.Any]] = []
        count = self._try('nvmlDeviceGetMaxMigDeviceCount', handle, default=0) or 0
        for i in range(int(count)):
            if len(devices) >= expected:
                break
            try:
                mig = self._call('nvmlDeviceGetMigDeviceHandleByIndex', handle, i)
            except NvmlCallError as exc:
                if exc.code in (NVML_ERROR_NOT_FOUND, NVML_ERROR_INVALID_ARGUMENT):
                    continue
                raise
            devices.append((int(self._call('nvmlDeviceGetGpuInstanceId', mig)), int(self._call('nvmlDeviceGetComputeInstanceId', mig)),
                            _text(self._call('nvmlDeviceGetUUID', mig)), mig))
        return devices

    def _read_processes(self, handle: t.Any, mig_devices: list[tuple[int, int, str, t.Any]]) -> list[GpuProcess]:
        """Processes of the GPU, attributed to GPU and compute instances where NVML says so.

        The parent device's list is unioned with each MIG device's list, because unprivileged
        callers only see per-MIG-device processes on some drivers. An attributed entry wins over
        an unattributed one for the same PID.
        """
        found: dict[tuple[int, int | None, int | None], GpuProcess] = {}

        def add(procs: t.Iterable[t.Any], gi: int | None = None, ci: int | None = None) -> None:
            for p in procs:
                p_gi = getattr(p, 'gpuInstanceId', _NOT_MIG)
                p_ci = getattr(p, 'computeInstanceId', _NOT_MIG)
                g = gi if gi is not None else (None if p_gi in (None, _NOT_MIG) else int(p_gi))
                c = ci if ci is not None else (None if p_ci in (None, _NOT_MIG) else int(p_ci))
                used = getattr(p, 'usedGpuMemory', None)
                found.setdefault((int(p.pid), g, c), GpuProcess(
                    pid=int(p.pid), gi=g, ci=c, used_memory_mib=int(used) // (1024 * 1024) if used else None))

        add(self._call('nvmlDeviceGetComputeRunningProcesses', handle))
        for gi, ci, _uuid, mig in mig_devices:
            add(self._call('nvmlDeviceGetComputeRunningProcesses', mig), gi, ci)
        attributed = {k[0] for k in found if k[1] is not None}
        return sorted((p for k, p in found.items() if k[1] is not None or k[0] not in attributed),
                      key=lambda p: (p.pid, -1 if p.gi is None else p.gi, -1 if p.ci is None else p.ci))

    def virtualization_mode(self, index: int) -> str | None:
        """NVML's virtualization mode of the GPU (``none``, ``passthrough``, ...); None when NVML cannot say."""
        mode = self._try('nvmlDeviceGetVirtualizationMode', self._handle(index))
        return None if mode is None else VIRTUALIZATION_MODES.get(int(mode), 'unknown_%d' % int(mode))

    # -- mutations ---------------------------------------------------------------------------

    def set_mig_mode(self, index: int, enabled: bool) -> int:
        """Returns NVML's activation status (0 when the change took effect, else the reason it is pending)."""
        return int(self._call('nvmlDeviceSetMigMode', self._handle(index), 1 if enabled else 0))

    def create_gpu_instance(self, index: int, profile_id: int, placement: Placement) -> int:
        c_placement = pynvml.c_nvmlGpuInstancePlacement_t()
        c_placement.start = placement.start
        c_placement.size = placement.size
        gi_handle = self._call('nvmlDeviceCreateGpuInstanceWithPlacement', self._handle(index), profile_id,
                               ctypes.byref(c_placement))
        info = self._call('nvmlGpuInstanceGetInfo', gi_handle)
        self._gi_handles[(index, int(info.id))] = gi_handle
        return int(info.id)

    def _gi_handle(self, index: int, gi_id: int) -> t.Any:
        if (index, gi_id) not in self._gi_handles:
            self._gi_handles[(index, gi_id)] = self._call('nvmlDeviceGetGpuInstanceById', self._handle(index), gi_id)
        return self._gi_handles[(index, gi_id)]

    def create_compute_instance(self, index: int, gi_id: int, ci_profile_id: int, placement: Placement) -> int:
        c_placement = pynvml.c_nvmlComputeInstancePlacement_t()
        c_placement.start = placement.start
        c_placement.size = placement.size
        ci_handle = self._call('nvmlGpuInstanceCreateComputeInstanceWithPlacement', self._gi_handle(index, gi_id),
                               ci_profile_id, ctypes.byref(c_placement))
        info = self._call('nvmlComputeInstanceGetInfo', ci_handle)
        return int(info.id)

    def compute_instance_profiles(self, index: int, gi_id: int) -> tuple[ComputeInstanceProfile, ...]:
        """The compute-instance profiles NVML offers in GPU instance ``gi_id`` (read, not derived)."""
        gi_handle = self._gi_handle(index, gi_id)
        info = self._call('nvmlGpuInstanceGetInfo', gi_handle)
        name = str(int(info.profileId))
        for profiles in self._profile_cache.values():
            name = next((p.name for p in profiles if p.id == int(info.profileId)), name)
        stub = GpuInstanceProfile(id=int(info.profileId), index=-1, name=name, slice_count=0, instance_count=0,
                                  memory_mib=0, multiprocessors=0, copy_engines=0, decoders=0, encoders=0,
                                  jpeg_decoders=0, ofa_engines=0, placements=())
        return tuple(self._read_ci_profiles(gi_handle, stub))

    def destroy_compute_instance(self, index: int, gi_id: int, ci_id: int) -> None:
        ci_handle = self._call('nvmlGpuInstanceGetComputeInstanceById', self._gi_handle(index, gi_id), ci_id)
        self._call('nvmlComputeInstanceDestroy', ci_handle)

    def destroy_gpu_instance(self, index: int, gi_id: int) -> None:
        self._call('nvmlGpuInstanceDestroy', self._gi_handle(index, gi_id))
        self._gi_handles.pop((index, gi_id), None)


def _with_compute_profiles(profile: GpuInstanceProfile, cips: t.Sequence[ComputeInstanceProfile]) -> GpuInstanceProfile:
    return dataclasses.replace(profile, compute_profiles=tuple(cips)) if cips else profile
