# SPDX-License-Identifier: GPL-3.0-or-later
"""NVML engine behind the simulated libnvidia-ml.so.1.

The C shim calls ``dispatch(name, a0..a4)`` with every argument as an integer (pointers as
addresses). Each call takes the state file's lock, counts itself, applies faults and writes
NVML structs at the caller's pointers with this module's own ctypes definitions (nvml.h layouts).
"""
from __future__ import annotations

import ctypes
import importlib.util
import os
import sys
from typing import Any, Callable

_core_name = '_migsim_core'
if _core_name in sys.modules:
    core = sys.modules[_core_name]
else:
    _spec = importlib.util.spec_from_file_location(_core_name, os.path.join(os.path.dirname(os.path.abspath(__file__)), 'migsim_core.py'))
    assert _spec is not None and _spec.loader is not None
    core = importlib.util.module_from_spec(_spec)
    sys.modules[_core_name] = core
    _spec.loader.exec_module(core)

E = core.ERRORS
SimError = core.SimError
c_uint = ctypes.c_uint
c_ull = ctypes.c_ulonglong
c_void_p = ctypes.c_void_p

NVML_VALUE_NOT_AVAILABLE_UINT = 0xFFFFFFFF
GI_PROFILE_INFO_V2 = 0x02000098
GI_PROFILE_INFO_V3 = 0x03000098
CI_PROFILE_INFO_V2 = 0x02000088
CI_PROFILE_INFO_V3 = 0x03000088
MEMORY_V2 = 0x02000028
PROCESS_MEMORY = 512 * 1024 * 1024


class PciInfo(ctypes.Structure):
    """nvmlPciInfo_t (v3)."""

    _fields_ = [('busIdLegacy', ctypes.c_char * 16), ('domain', c_uint), ('bus', c_uint), ('device', c_uint),
                ('pciDeviceId', c_uint), ('pciSubSystemId', c_uint), ('busId', ctypes.c_char * 32)]


class Memory(ctypes.Structure):
    """nvmlMemory_t."""

    _fields_ = [('total', c_ull), ('free', c_ull), ('used', c_ull)]


class MemoryV2(ctypes.Structure):
    """nvmlMemory_v2_t."""

    _fields_ = [('version', c_uint), ('total', c_ull), ('reserved', c_ull), ('free', c_ull), ('used', c_ull)]


class ProcessInfo(ctypes.Structure):
    """nvmlProcessInfo_t (v2 and v3 share this layout)."""

    _fields_ = [('pid', c_uint), ('usedGpuMemory', c_ull), ('gpuInstanceId', c_uint), ('computeInstanceId', c_uint)]


class ProcessInfoV1(ctypes.Structure):
    """nvmlProcessInfo_v1_t."""

    _fields_ = [('pid', c_uint), ('usedGpuMemory', c_ull)]


class Placement(ctypes.Structure):
    """nvmlGpuInstancePlacement_t / nvmlComputeInstancePlacement_t."""

    _fields_ = [('start', c_uint), ('size', c_uint)]


_GI_COMMON = [('id', c_uint), ('isP2pSupported', c_uint), ('sliceCount', c_uint), ('instanceCount', c_uint),
              ('multiprocessorCount', c_uint), ('copyEngineCount', c_uint), ('decoderCount', c_uint),
              ('encoderCount', c_uint), ('jpegCount', c_uint), ('ofaCount', c_uint), ('memorySizeMB', c_ull)]


class GiProfileInfo(ctypes.Structure):
    """nvmlGpuInstanceProfileInfo_t."""

    _fields_ = _GI_COMMON


class GiProfileInfoV2(ctypes.Structure):
    """nvmlGpuInstanceProfileInfo_v2_t."""

    _fields_ = [('version', c_uint)] + _GI_COMMON + [('name', ctypes.c_char * 96)]


class GiProfileInfoV3(ctypes.Structure):
    """nvmlGpuInstanceProfileInfo_v3_t."""

    _fields_ = [('version', c_uint), ('id', c_uint), ('sliceCount', c_uint), ('instanceCount', c_uint),
                ('multiprocessorCount', c_uint), ('copyEngineCount', c_uint), ('decoderCount', c_uint),
                ('encoderCount', c_uint), ('jpegCount', c_uint), ('ofaCount', c_uint), ('memorySizeMB', c_ull),
                ('name', ctypes.c_char * 96), ('capabilities', c_uint)]


class GiInfo(ctypes.Structure):
    """nvmlGpuInstanceInfo_t."""

    _fields_ = [('device', c_void_p), ('id', c_uint), ('profileId', c_uint), ('placement', Placement)]


_CI_COMMON = [('id', c_uint), ('sliceCount', c_uint), ('instanceCount', c_uint), ('multiprocessorCount', c_uint),
              ('sharedCopyEngineCount', c_uint), ('sharedDecoderCount', c_uint), ('sharedEncoderCount', c_uint),
              ('sharedJpegCount', c_uint), ('sharedOfaCount', c_uint)]


class CiProfileInfo(ctypes.Structure):
    """nvmlComputeInstanceProfileInfo_t."""

    _fields_ = _CI_COMMON


class CiProfileInfoV2(ctypes.Structure):
    """nvmlComputeInstanceProfileInfo_v2_t (v3 adds capabilities)."""

    _fields_ = [('version', c_uint)] + _CI_COMMON + [('name', ctypes.c_char * 96)]


class CiProfileInfoV3(ctypes.Structure):
    """nvmlComputeInstanceProfileInfo_v3_t."""

    _fields_ = [('version', c_uint)] + _CI_COMMON + [('name', ctypes.c_char * 96), ('capabilities', c_uint)]


class CiInfo(ctypes.Structure):
    """nvmlComputeInstanceInfo_t."""

    _fields_ = [('device', c_void_p), ('gpuInstance', c_void_p), ('id', c_uint), ('profileId', c_uint), ('placement', Placement)]


class FieldValue(ctypes.Structure):
    """nvmlFieldValue_t."""

    _fields_ = [('fieldId', ctypes.c_uint32), ('scopeId', ctypes.c_uint32), ('timestamp', ctypes.c_int64),
                ('latencyUsec', ctypes.c_int64), ('valueType', c_uint), ('nvmlReturn', c_uint), ('value', c_ull)]


class DeviceAttributes(ctypes.Structure):
    """nvmlDeviceAttributes_t."""

    _fields_ = [('multiprocessorCount', c_uint), ('sharedCopyEngineCount', c_uint), ('sharedDecoderCount', c_uint),
                ('sharedEncoderCount', c_uint), ('sharedJpegCount', c_uint), ('sharedOfaCount', c_uint),
                ('gpuInstanceSliceCount', c_uint), ('computeInstanceSliceCount', c_uint), ('memorySizeMB', c_ull)]


# ---------------------------------------------------------------- memory helpers
def _need(p: int) -> int:
    if not p:
        raise SimError(E['INVALID_ARGUMENT'])
    return p


def put_uint(p: int, v: int) -> None:
    """Write an unsigned int."""
    c_uint.from_address(_need(p)).value = v


def put_int(p: int, v: int) -> None:
    """Write an int."""
    ctypes.c_int.from_address(_need(p)).value = v


def put_ptr(p: int, v: int) -> None:
    """Write a handle (pointer-sized)."""
    c_void_p.from_address(_need(p)).value = v


def put_str(p: int, s: str, length: int) -> None:
    """Copy a NUL-terminated string into a caller buffer of ``length`` bytes."""
    b = s.encode()
    if length < len(b) + 1:
        raise SimError(E['INSUFFICIENT_SIZE'])
    ctypes.memmove(_need(p), b + b'\0', len(b) + 1)


def get_str(p: int) -> str:
    """Read a C string."""
    return ctypes.string_at(_need(p)).decode(errors='replace')


# ---------------------------------------------------------------- call context
class Ctx:
    """One NVML call against a locked state."""

    def __init__(self, state: dict[str, Any], pending_fault: int | None) -> None:
        self.state = state
        self.pending_fault = pending_fault

    def gpu(self, index: int) -> dict[str, Any]:
        """GPU record by index."""
        gpus = self.state['gpus']
        if index >= len(gpus):
            raise SimError(E['INVALID_ARGUMENT'])
        return gpus[index]

    def resolve(self, h: int) -> tuple[int, dict[str, Any], dict[str, Any], Any, Any]:
        """Handle -> (kind, gpu, model, gi or None, ci or None)."""
        kind, gidx, a, b = core.split_handle(h)
        gpu = self.gpu(gidx)
        model = core.load_model(gpu['model'])
        gi = ci = None
        if kind in (core.KIND_GI, core.KIND_CI, core.KIND_MIG):
            gi = next((g for g in gpu['gpu_instances'] if g['serial'] == a), None)
            if gi is None:
                raise SimError(E['INVALID_ARGUMENT'])
            if kind != core.KIND_GI:
                ci = next((c for c in gi['compute_instances'] if c['serial'] == b), None)
                if ci is None:
                    raise SimError(E['INVALID_ARGUMENT'])
        elif kind != core.KIND_DEVICE:
            raise SimError(E['INVALID_ARGUMENT'])
        return kind, gpu, model, gi, ci

    def device(self, h: int, allow_mig: bool = True) -> tuple[int, dict[str, Any], dict[str, Any], Any, Any]:
        """Resolve a device or MIG device handle."""
        r = self.resolve(h)
        if r[0] not in (core.KIND_DEVICE, core.KIND_MIG) or (r[0] == core.KIND_MIG and not allow_mig):
            raise SimError(E['INVALID_ARGUMENT'])
        return r

    def parent(self, h: int) -> tuple[dict[str, Any], dict[str, Any]]:
        """Resolve a full-GPU device handle."""
        gpu, model = self.device(h, allow_mig=False)[1:3]
        return gpu, model

    def gpu_instance(self, h: int) -> tuple[dict[str, Any], dict[str, Any], dict[str, Any]]:
        """Resolve a GPU instance handle."""
        kind, gpu, model, gi = self.resolve(h)[:4]
        if kind != core.KIND_GI:
            raise SimError(E['INVALID_ARGUMENT'])
        return gpu, model, gi

    def compute_instance(self, h: int) -> tuple[dict[str, Any], dict[str, Any], dict[str, Any], dict[str, Any]]:
        """Resolve a compute instance handle."""
        kind, gpu, model, gi, ci = self.resolve(h)
        if kind != core.KIND_CI:
            raise SimError(E['INVALID_ARGUMENT'])
        return gpu, model, gi, ci

    def need_root(self) -> None:
        """Mutations need root / mig-config capability."""
        if not self.state.get('root', True):
            raise SimError(E['NO_PERMISSION'])


def dev_handle(gpu: dict[str, Any]) -> int:
    """Handle of a full GPU."""
    return core.make_handle(core.KIND_DEVICE, gpu['index'])


def gi_handle(gpu: dict[str, Any], gi: dict[str, Any]) -> int:
    """Handle of a GPU instance."""
    return core.make_handle(core.KIND_GI, gpu['index'], gi['serial'])


def ci_handle(gpu: dict[str, Any], gi: dict[str, Any], ci: dict[str, Any], kind: int = core.KIND_CI) -> int:
    """Handle of a compute instance (or of its MIG device with kind=KIND_MIG)."""
    return core.make_handle(kind, gpu['index'], gi['serial'], ci['serial'])


# ---------------------------------------------------------------- system
def nvmlSystemGetDriverVersion(c: Ctx, buf: int, length: int) -> int:
    put_str(buf, c.state['driver'], length)
    return 0


def nvmlSystemGetNVMLVersion(c: Ctx, buf: int, length: int) -> int:
    put_str(buf, core.nvml_version(c.state['driver']), length)
    return 0


def nvmlSystemGetCudaDriverVersion(c: Ctx, p: int) -> int:
    put_int(p, core.cuda_version(c.state['driver']))
    return 0


nvmlSystemGetCudaDriverVersion_v2 = nvmlSystemGetCudaDriverVersion


# ---------------------------------------------------------------- devices
def nvmlDeviceGetCount(c: Ctx, p: int) -> int:
    put_uint(p, len(c.state['gpus']))
    return 0


nvmlDeviceGetCount_v2 = nvmlDeviceGetCount


def nvmlDeviceGetHandleByIndex(c: Ctx, index: int, p: int) -> int:
    put_ptr(p, dev_handle(c.gpu(index)))
    return 0


nvmlDeviceGetHandleByIndex_v2 = nvmlDeviceGetHandleByIndex


def nvmlDeviceGetHandleByUUID(c: Ctx, s: int, p: int) -> int:
    uuid = get_str(s)
    for gpu in c.state['gpus']:
        if gpu['uuid'] == uuid:
            put_ptr(p, dev_handle(gpu))
            return 0
        for gi in gpu['gpu_instances']:
            for ci in gi['compute_instances']:
                if ci['uuid'] == uuid:
                    put_ptr(p, ci_handle(gpu, gi, ci, core.KIND_MIG))
                    return 0
    return E['NOT_FOUND']


def nvmlDeviceGetHandleByPciBusId(c: Ctx, s: int, p: int) -> int:
    want = get_str(s).strip().upper()
    for gpu in c.state['gpus']:
        bus = gpu['pci_bus_id'].upper()
        if want in (bus, bus[4:]):
            put_ptr(p, dev_handle(gpu))
            return 0
    return E['NOT_FOUND']


nvmlDeviceGetHandleByPciBusId_v2 = nvmlDeviceGetHandleByPciBusId


def _mig_profile_name(model: dict[str, Any], gi: dict[str, Any], ci: dict[str, Any]) -> str:
    cps = core.ci_profiles(model, core.gi_profile(model, gi))
    return cps[ci['profile_id']]['name'] if ci['profile_id'] in cps else core.profile_label(model, gi)


def nvmlDeviceGetName(c: Ctx, h: int, buf: int, length: int) -> int:
    kind, gpu, model, gi, ci = c.device(h)
    name = model['name'] if kind == core.KIND_DEVICE else '%s MIG %s' % (model['name'], _mig_profile_name(model, gi, ci))
    put_str(buf, name, length)
    return 0


def nvmlDeviceGetUUID(c: Ctx, h: int, buf: int, length: int) -> int:
    kind, gpu, model, gi, ci = c.device(h)
    put_str(buf, gpu['uuid'] if kind == core.KIND_DEVICE else ci['uuid'], length)
    return 0


def nvmlDeviceGetBoardPartNumber(c: Ctx, h: int, buf: int, length: int) -> int:
    gpu, model = c.parent(h)
    if model.get('board_part_number', 'N/A') == 'N/A':
        return E['NOT_SUPPORTED']
    put_str(buf, model['board_part_number'], length)
    return 0


def nvmlDeviceGetVbiosVersion(c: Ctx, h: int, buf: int, length: int) -> int:
    gpu, model = c.parent(h)
    put_str(buf, model.get('vbios_version', 'N/A'), length)
    return 0


def nvmlDeviceGetSerial(c: Ctx, h: int, buf: int, length: int) -> int:
    gpu, model = c.parent(h)
    put_str(buf, '%013d' % (int(gpu['uuid'][4:12], 16) % 10 ** 13), length)
    return 0


def nvmlDeviceGetIndex(c: Ctx, h: int, p: int) -> int:
    gpu, model = c.parent(h)
    put_uint(p, gpu['index'])
    return 0


nvmlDeviceGetMinorNumber = nvmlDeviceGetIndex


def nvmlDeviceGetPciInfo(c: Ctx, h: int, p: int) -> int:
    gpu, model = c.parent(h)
    info = PciInfo.from_address(_need(p))
    bus = gpu['pci_bus_id']
    info.busId = bus.encode()
    info.busIdLegacy = bus[4:].encode()
    info.domain = int(bus[:8], 16)
    info.bus = int(bus[9:11], 16)
    info.device = int(bus[12:14], 16)
    info.pciDeviceId = int(model['pci_device_id'], 16)
    info.pciSubSystemId = int(model['pci_subsystem_id'], 16)
    return 0


nvmlDeviceGetPciInfo_v2 = nvmlDeviceGetPciInfo
nvmlDeviceGetPciInfo_v3 = nvmlDeviceGetPciInfo


def _memory(c: Ctx, h: int) -> tuple[int, int]:
    kind, gpu, model, gi, ci = c.device(h)
    if kind == core.KIND_MIG:
        return core.gi_profile(model, gi)['memory_mib'] * 2 ** 20, 0
    return model['memory_total_bytes'], model.get('memory_reserved_mib', 0) * 2 ** 20


def nvmlDeviceGetMemoryInfo(c: Ctx, h: int, p: int) -> int:
    total, reserved = _memory(c, h)
    m = Memory.from_address(_need(p))
    m.total, m.used, m.free = total, reserved, total - reserved
    return 0


def nvmlDeviceGetMemoryInfo_v2(c: Ctx, h: int, p: int) -> int:
    total, reserved = _memory(c, h)
    m = MemoryV2.from_address(_need(p))
    if m.version != MEMORY_V2:
        return E['ARGUMENT_VERSION_MISMATCH']
    m.total, m.reserved, m.used, m.free = total, reserved, 0, total - reserved
    return 0


def nvmlDeviceGetArchitecture(c: Ctx, h: int, p: int) -> int:
    model = c.device(h)[2]
    put_uint(p, model['nvml_arch'])
    return 0


def nvmlDeviceGetCudaComputeCapability(c: Ctx, h: int, p_major: int, p_minor: int) -> int:
    model = c.device(h)[2]
    put_int(p_major, model['cuda_cc'][0])
    put_int(p_minor, model['cuda_cc'][1])
    return 0


def nvmlDeviceGetPersistenceMode(c: Ctx, h: int, p: int) -> int:
    gpu, model = c.parent(h)
    put_uint(p, gpu.get('persistence', 1))
    return 0


def nvmlDeviceGetComputeMode(c: Ctx, h: int, p: int) -> int:
    c.device(h)
    put_uint(p, 0)
    return 0


def nvmlDeviceGetNumGpuCores(c: Ctx, h: int, p: int) -> int:
    gpu, model = c.parent(h)
    put_uint(p, model.get('num_gpu_cores', 0))
    return 0


def nvmlDeviceGetVirtualizationMode(c: Ctx, h: int, p: int) -> int:
    """NVML_GPU_VIRTUALIZATION_MODE_*: 0 none (bare metal), 1 passthrough (VM), 2 vGPU guest, 3 host vGPU, 4 host vSGA."""
    kind, gpu, model, gi, ci = c.device(h, allow_mig=False)
    put_uint(p, gpu.get('virtualization_mode', 0))
    return 0


def nvmlDeviceGetAttributes_v2(c: Ctx, h: int, p: int) -> int:
    kind, gpu, model, gi, ci = c.device(h)
    if kind != core.KIND_MIG:
        return E['NOT_SUPPORTED']  # measured on H100/H200 full GPUs
    gprof = core.gi_profile(model, gi)
    cprof = core.ci_profiles(model, gprof).get(ci['profile_id'])
    a = DeviceAttributes.from_address(_need(p))
    a.multiprocessorCount = cprof['sm'] if cprof else gprof['sm']
    a.sharedCopyEngineCount, a.sharedDecoderCount = gprof['ce'], gprof['dec']
    a.sharedEncoderCount, a.sharedJpegCount, a.sharedOfaCount = gprof['enc'], gprof['jpeg'], gprof['ofa']
    a.gpuInstanceSliceCount, a.computeInstanceSliceCount = gprof['slices'], ci['size']
    a.memorySizeMB = gprof['memory_mib']
    return 0


FI_RESETLESS_MIG = 184
FI_MIG_INDEPENDENT_QUERY = 199


def nvmlDeviceGetFieldValues(c: Ctx, h: int, count: int, p: int) -> int:
    gpu, model = c.parent(h)
    count = ctypes.c_int(count & 0xFFFFFFFF).value
    if count < 0:
        return E['INVALID_ARGUMENT']
    arr = (FieldValue * count).from_address(_need(p)) if count else []
    for fv in arr:
        fv.valueType, fv.value, fv.nvmlReturn = 1, 0, 0
        if fv.fieldId == FI_RESETLESS_MIG and model.get('mig_capable'):
            fv.value = 0 if model.get('mig_mode_change_needs_reset') else 1
        elif fv.fieldId == FI_MIG_INDEPENDENT_QUERY and model.get('mig_capable'):
            fv.value = 1 if core.driver_branch(c.state['driver']) >= 580 else 0
        else:
            fv.nvmlReturn = E['NOT_SUPPORTED']
    return 0


def _procs(c: Ctx, h: int, p_count: int, p_arr: int, struct: type) -> int:
    kind, gpu, model, gi, ci = c.device(h)
    procs = gpu['processes']
    if kind == core.KIND_MIG:
        procs = [x for x in procs if x.get('gi') == gi['id'] and x.get('ci') in (None, ci['id'])]
    have = c_uint.from_address(_need(p_count))
    n = len(procs)
    if n == 0:
        have.value = 0
        return 0
    if not p_arr or have.value < n:
        have.value = n
        return E['INSUFFICIENT_SIZE']
    arr = (struct * n).from_address(p_arr)
    for rec, x in zip(arr, procs):
        rec.pid = x['pid']
        rec.usedGpuMemory = PROCESS_MEMORY
        if struct is ProcessInfo:
            rec.gpuInstanceId = NVML_VALUE_NOT_AVAILABLE_UINT if x.get('gi') is None else x['gi']
            rec.computeInstanceId = NVML_VALUE_NOT_AVAILABLE_UINT if x.get('ci') is None else x['ci']
    have.value = n
    return 0


def nvmlDeviceGetComputeRunningProcesses(c: Ctx, h: int, p_count: int, p_arr: int) -> int:
    return _procs(c, h, p_count, p_arr, ProcessInfoV1)


def nvmlDeviceGetComputeRunningProcesses_v3(c: Ctx, h: int, p_count: int, p_arr: int) -> int:
    return _procs(c, h, p_count, p_arr, ProcessInfo)


nvmlDeviceGetComputeRunningProcesses_v2 = nvmlDeviceGetComputeRunningProcesses_v3


# ---------------------------------------------------------------- MIG mode
def _mig_model(c: Ctx, h: int) -> tuple[dict[str, Any], dict[str, Any]]:
    gpu, model = c.parent(h)
    if not model.get('mig_capable'):
        raise SimError(E['NOT_SUPPORTED'])
    return gpu, model


def nvmlDeviceGetMigMode(c: Ctx, h: int, p_cur: int, p_pend: int) -> int:
    kind, gpu, model, gi, ci = c.device(h)
    if not model.get('mig_capable') or kind != core.KIND_DEVICE:
        return E['NOT_SUPPORTED']
    put_uint(p_cur, gpu['mig_current'])
    put_uint(p_pend, gpu['mig_pending'])
    return 0


def nvmlDeviceSetMigMode(c: Ctx, h: int, mode: int, p_status: int) -> int:
    """Ampere: needs a reset the driver attempts itself; Hopper+: immediate (section 9.1)."""
    gpu, model = _mig_model(c, h)
    c.need_root()
    if mode not in (0, 1):
        return E['INVALID_ARGUMENT']
    _need(p_status)
    if mode == 0 and gpu['gpu_instances']:
        return E['IN_USE']  # INF: GIs must be destroyed before disabling
    gpu['mig_pending'] = mode
    status = 0
    if gpu['mig_current'] != mode:
        if c.pending_fault is not None:
            status = c.pending_fault
        elif gpu['processes']:
            status = E['IN_USE']
        elif model.get('mig_mode_change_needs_reset') and not core.resettable(gpu):
            status = E['RESET_REQUIRED']
        else:
            gpu['mig_current'] = mode
    put_uint(p_status, status)
    return 0


def nvmlDeviceGetMaxMigDeviceCount(c: Ctx, h: int, p: int) -> int:
    gpu, model = c.parent(h)
    if not model.get('mig_capable'):
        return E['NOT_SUPPORTED']
    put_uint(p, model['max_mig_devices'] if gpu['mig_current'] else 0)
    return 0


def nvmlDeviceGetMigDeviceHandleByIndex(c: Ctx, h: int, index: int, p: int) -> int:
    gpu, model = _mig_model(c, h)
    if not gpu['mig_current']:
        return E['NOT_FOUND']  # measured with MIG disabled
    if index >= model['max_mig_devices']:
        return E['INVALID_ARGUMENT']
    devs = core.mig_devices(gpu)
    if index >= len(devs):
        return E['NOT_FOUND']
    gi, ci = devs[index]
    put_ptr(p, ci_handle(gpu, gi, ci, core.KIND_MIG))
    return 0


def nvmlDeviceIsMigDeviceHandle(c: Ctx, h: int, p: int) -> int:
    kind = c.device(h)[0]
    put_uint(p, 1 if kind == core.KIND_MIG else 0)
    return 0


def nvmlDeviceGetGpuInstanceId(c: Ctx, h: int, p: int) -> int:
    kind, gpu, model, gi, ci = c.device(h)
    if kind != core.KIND_MIG:
        return E['NOT_SUPPORTED']
    put_uint(p, gi['id'])
    return 0


def nvmlDeviceGetComputeInstanceId(c: Ctx, h: int, p: int) -> int:
    kind, gpu, model, gi, ci = c.device(h)
    if kind != core.KIND_MIG:
        return E['NOT_SUPPORTED']
    put_uint(p, ci['id'])
    return 0


def nvmlDeviceGetDeviceHandleFromMigDeviceHandle(c: Ctx, h: int, p: int) -> int:
    kind, gpu, model, gi, ci = c.device(h)
    if kind != core.KIND_MIG:
        return E['INVALID_ARGUMENT']
    put_ptr(p, dev_handle(gpu))
    return 0


# ---------------------------------------------------------------- GPU instance profiles
def _fill_gi_info(info: Any, prof: dict[str, Any], with_p2p: bool = True) -> None:
    info.id = prof['id']
    if with_p2p:
        info.isP2pSupported = 0
    info.sliceCount = prof['slices']
    info.instanceCount = prof['instances']
    info.multiprocessorCount = prof['sm']
    info.copyEngineCount = prof['ce']
    info.decoderCount = prof['dec']
    info.encoderCount = prof['enc']
    info.jpegCount = prof['jpeg']
    info.ofaCount = prof['ofa']
    info.memorySizeMB = prof['memory_mib']


def _gi_prof_by_index(c: Ctx, h: int, index: int) -> dict[str, Any]:
    gpu, model = c.parent(h)
    if index >= core.gi_profile_index_limit(c.state['driver']):
        raise SimError(E['INVALID_ARGUMENT'])
    prof = model.get('_by_index', {}).get(index) if model.get('mig_capable') else None
    if prof is None:
        raise SimError(E['NOT_SUPPORTED'])
    return prof


def _gi_prof_by_id(model: dict[str, Any], pid: int) -> dict[str, Any]:
    if not model.get('mig_capable'):
        raise SimError(E['NOT_SUPPORTED'])
    prof = model['_by_id'].get(pid)
    if prof is None:
        raise SimError(E['NOT_SUPPORTED'])  # measured for IDs 21, 6 on H200
    return prof


def nvmlDeviceGetGpuInstanceProfileInfo(c: Ctx, h: int, index: int, p: int) -> int:
    _fill_gi_info(GiProfileInfo.from_address(_need(p)), _gi_prof_by_index(c, h, index))
    return 0


def _fill_gi_versioned(p: int, prof: dict[str, Any]) -> int:
    version = c_uint.from_address(_need(p)).value
    if version == GI_PROFILE_INFO_V2:
        info = GiProfileInfoV2.from_address(p)
        _fill_gi_info(info, prof)
        info.name = ('MIG ' + prof['name']).encode()
        info.version = 0  # measured: driver 580.159.04 returns the struct with version 0
    elif version == GI_PROFILE_INFO_V3:
        info3 = GiProfileInfoV3.from_address(p)
        _fill_gi_info(info3, prof, with_p2p=False)
        info3.name = b''  # 580.159.04 leaves the v3 name empty (section 1.1)
        info3.capabilities = 0
        info3.version = 0
    else:
        return E['ARGUMENT_VERSION_MISMATCH']
    return 0


def nvmlDeviceGetGpuInstanceProfileInfoV(c: Ctx, h: int, index: int, p: int) -> int:
    return _fill_gi_versioned(p, _gi_prof_by_index(c, h, index))


def nvmlDeviceGetGpuInstanceProfileInfoByIdV(c: Ctx, h: int, pid: int, p: int) -> int:
    gpu, model = c.parent(h)
    return _fill_gi_versioned(p, _gi_prof_by_id(model, pid))


def _write_placements(p_arr: int, p_count: int, items: list[tuple[int, int]]) -> int:
    cnt = c_uint.from_address(_need(p_count))
    if not p_arr:
        cnt.value = len(items)
        return 0
    if cnt.value < len(items):
        cnt.value = len(items)
        return E['INSUFFICIENT_SIZE']
    arr = (Placement * max(len(items), 1)).from_address(p_arr)
    for i, (s, z) in enumerate(items):
        arr[i].start, arr[i].size = s, z
    cnt.value = len(items)
    return 0


def nvmlDeviceGetGpuInstancePossiblePlacements_v2(c: Ctx, h: int, pid: int, p_arr: int, p_count: int) -> int:
    gpu, model = c.parent(h)
    prof = _gi_prof_by_id(model, pid)
    return _write_placements(p_arr, p_count, [(s, prof['placement_size']) for s in prof['placement_starts']])


nvmlDeviceGetGpuInstancePossiblePlacements = nvmlDeviceGetGpuInstancePossiblePlacements_v2


def nvmlDeviceGetGpuInstanceRemainingCapacity(c: Ctx, h: int, pid: int, p: int) -> int:
    gpu, model = c.parent(h)
    prof = _gi_prof_by_id(model, pid)
    put_uint(p, core.remaining_gi(model, gpu, prof))
    return 0


# ---------------------------------------------------------------- GPU instances
def _create_gi(c: Ctx, h: int, pid: int, p_placement: int | None, p_out: int) -> int:
    gpu, model = c.parent(h)
    if not model.get('mig_capable') or not gpu['mig_current']:
        return E['NOT_SUPPORTED']
    c.need_root()
    _need(p_out)
    prof = model['_by_id'].get(pid)
    if prof is None:
        return E['INVALID_ARGUMENT']
    if any(x.get('gi') is None for x in gpu['processes']):
        return E['IN_USE']  # a client holds the parent GPU (section 1.4)
    size = prof['placement_size']
    if p_placement is not None:
        pl = Placement.from_address(_need(p_placement))
        if pl.start not in prof['placement_starts'] or pl.size != size:
            return E['INVALID_ARGUMENT']
        if gi_blocked_or_overlap(model, gpu, prof, pl.start):
            return E['INSUFFICIENT_RESOURCES']
        start = pl.start
    else:
        if core.gi_blocked(model, gpu, prof):
            return E['INSUFFICIENT_RESOURCES']
        found = core.default_gi_start(model, gpu, prof)
        if found is None:
            return E['INSUFFICIENT_RESOURCES']
        start = found
    gi = {'id': core.gi_id_for(model, gpu, size, start), 'profile_id': pid, 'start': start, 'size': size,
          'serial': core.next_serial(c.state), 'compute_instances': []}
    gpu['gpu_instances'].append(gi)
    put_ptr(p_out, gi_handle(gpu, gi))
    return 0


def gi_blocked_or_overlap(model: dict[str, Any], gpu: dict[str, Any], prof: dict[str, Any], start: int) -> bool:
    """True when ``prof`` at ``start`` is refused (cap, media rules or overlap)."""
    return core.gi_blocked(model, gpu, prof) or start not in core.free_gi_placements(model, gpu, prof)


def nvmlDeviceCreateGpuInstance(c: Ctx, h: int, pid: int, p_out: int) -> int:
    return _create_gi(c, h, pid, None, p_out)


def nvmlDeviceCreateGpuInstanceWithPlacement(c: Ctx, h: int, pid: int, p_pl: int, p_out: int) -> int:
    return _create_gi(c, h, pid, p_pl, p_out)


def nvmlDeviceGetGpuInstances(c: Ctx, h: int, pid: int, p_arr: int, p_count: int) -> int:
    gpu, model = c.parent(h)
    _gi_prof_by_id(model, pid)
    gis = sorted((g for g in gpu['gpu_instances'] if g['profile_id'] == pid), key=lambda g: g['id'])
    cnt = c_uint.from_address(_need(p_count))
    if gis:
        arr = (c_void_p * len(gis)).from_address(_need(p_arr))
        for i, gi in enumerate(gis):
            arr[i] = gi_handle(gpu, gi)
    cnt.value = len(gis)
    return 0


def nvmlDeviceGetGpuInstanceById(c: Ctx, h: int, gid: int, p_out: int) -> int:
    gpu, model = _mig_model(c, h)
    if not gpu['mig_current']:
        return E['NOT_SUPPORTED']
    gi = next((g for g in gpu['gpu_instances'] if g['id'] == gid), None)
    if gi is None:
        return E['NOT_FOUND']
    put_ptr(p_out, gi_handle(gpu, gi))
    return 0


def nvmlGpuInstanceDestroy(c: Ctx, h: int) -> int:
    gpu, model, gi = c.gpu_instance(h)
    c.need_root()
    if gi['compute_instances'] or any(x.get('gi') == gi['id'] for x in gpu['processes']):
        return E['IN_USE']
    gpu['gpu_instances'].remove(gi)
    return 0


def nvmlGpuInstanceGetInfo(c: Ctx, h: int, p: int) -> int:
    gpu, model, gi = c.gpu_instance(h)
    info = GiInfo.from_address(_need(p))
    info.device = dev_handle(gpu)
    info.id = gi['id']
    info.profileId = gi['profile_id']
    info.placement.start, info.placement.size = gi['start'], gi['size']
    return 0


# ---------------------------------------------------------------- compute instances
def _ci_prof(c: Ctx, h: int, pid: int) -> tuple[dict[str, Any], dict[str, Any], dict[str, Any], dict[str, Any], dict[str, Any]]:
    gpu, model, gi = c.gpu_instance(h)
    if pid >= core.CI_PROFILE_COUNT:
        raise SimError(E['INVALID_ARGUMENT'])
    gprof = core.gi_profile(model, gi)
    cprof = core.ci_profiles(model, gprof).get(pid)
    if cprof is None:
        raise SimError(E['NOT_SUPPORTED'])
    return gpu, model, gi, gprof, cprof


def _fill_ci_info(info: Any, gprof: dict[str, Any], cprof: dict[str, Any]) -> None:
    info.id = cprof['id']
    info.sliceCount = cprof['slices']
    info.instanceCount = cprof['instances']
    info.multiprocessorCount = cprof['sm']
    info.sharedCopyEngineCount = gprof['ce']
    info.sharedDecoderCount = gprof['dec']
    info.sharedEncoderCount = gprof['enc']
    info.sharedJpegCount = gprof['jpeg']
    info.sharedOfaCount = gprof['ofa']


def nvmlGpuInstanceGetComputeInstanceProfileInfo(c: Ctx, h: int, pid: int, eng: int, p: int) -> int:
    if eng != 0:
        return E['INVALID_ARGUMENT']
    gpu, model, gi, gprof, cprof = _ci_prof(c, h, pid)
    _fill_ci_info(CiProfileInfo.from_address(_need(p)), gprof, cprof)
    return 0


def nvmlGpuInstanceGetComputeInstanceProfileInfoV(c: Ctx, h: int, pid: int, eng: int, p: int) -> int:
    if eng != 0:
        return E['INVALID_ARGUMENT']
    gpu, model, gi, gprof, cprof = _ci_prof(c, h, pid)
    version = c_uint.from_address(_need(p)).value
    if version == CI_PROFILE_INFO_V2:
        info: Any = CiProfileInfoV2.from_address(p)
    elif version == CI_PROFILE_INFO_V3:
        info = CiProfileInfoV3.from_address(p)
        info.capabilities = 0
    else:
        return E['ARGUMENT_VERSION_MISMATCH']
    _fill_ci_info(info, gprof, cprof)
    info.name = ('MIG ' + cprof['name']).encode()
    return 0


def nvmlGpuInstanceGetComputeInstanceRemainingCapacity(c: Ctx, h: int, pid: int, p: int) -> int:
    gpu, model, gi, gprof, cprof = _ci_prof(c, h, pid)
    put_uint(p, core.remaining_ci(gi, cprof))
    return 0


def nvmlGpuInstanceGetComputeInstancePossiblePlacements(c: Ctx, h: int, pid: int, p_arr: int, p_count: int) -> int:
    gpu, model, gi, gprof, cprof = _ci_prof(c, h, pid)
    return _write_placements(p_arr, p_count, [(s, cprof['slices']) for s in cprof['starts']])


def _create_ci(c: Ctx, h: int, pid: int, p_placement: int | None, p_out: int) -> int:
    gpu, model, gi, gprof, cprof = _ci_prof(c, h, pid)
    c.need_root()
    _need(p_out)
    free = core.ci_free_starts(gi, cprof)
    if p_placement is not None:
        pl = Placement.from_address(_need(p_placement))
        if pl.start not in cprof['starts'] or pl.size != cprof['slices']:
            return E['INVALID_ARGUMENT']
        start = pl.start
        if start not in free:
            return E['INSUFFICIENT_RESOURCES']
    else:
        if not free:
            return E['INSUFFICIENT_RESOURCES']
        start = free[0]
    if core.remaining_ci(gi, cprof) == 0:
        return E['INSUFFICIENT_RESOURCES']
    used = {x['id'] for x in gi['compute_instances']}
    cid = next(i for i in range(64) if i not in used)
    serial = core.next_serial(c.state)
    ci = {'id': cid, 'profile_id': pid, 'start': start, 'size': cprof['slices'], 'serial': serial,
          'uuid': core.mig_uuid(gpu['uuid'], gi['id'], cid, serial)}
    gi['compute_instances'].append(ci)
    put_ptr(p_out, ci_handle(gpu, gi, ci))
    return 0


def nvmlGpuInstanceCreateComputeInstance(c: Ctx, h: int, pid: int, p_out: int) -> int:
    return _create_ci(c, h, pid, None, p_out)


def nvmlGpuInstanceCreateComputeInstanceWithPlacement(c: Ctx, h: int, pid: int, p_pl: int, p_out: int) -> int:
    return _create_ci(c, h, pid, p_pl, p_out)


def nvmlGpuInstanceGetComputeInstances(c: Ctx, h: int, pid: int, p_arr: int, p_count: int) -> int:
    gpu, model, gi, gprof, cprof = _ci_prof(c, h, pid)
    cis = sorted((x for x in gi['compute_instances'] if x['profile_id'] == pid), key=lambda x: x['id'])
    cnt = c_uint.from_address(_need(p_count))
    if cis:
        arr = (c_void_p * len(cis)).from_address(_need(p_arr))
        for i, ci in enumerate(cis):
            arr[i] = ci_handle(gpu, gi, ci)
    cnt.value = len(cis)
    return 0


def nvmlGpuInstanceGetComputeInstanceById(c: Ctx, h: int, cid: int, p_out: int) -> int:
    gpu, model, gi = c.gpu_instance(h)
    ci = next((x for x in gi['compute_instances'] if x['id'] == cid), None)
    if ci is None:
        return E['NOT_FOUND']
    put_ptr(p_out, ci_handle(gpu, gi, ci))
    return 0


def nvmlComputeInstanceDestroy(c: Ctx, h: int) -> int:
    gpu, model, gi, ci = c.compute_instance(h)
    c.need_root()
    if any(x.get('gi') == gi['id'] and x.get('ci') == ci['id'] for x in gpu['processes']):
        return E['IN_USE']
    gi['compute_instances'].remove(ci)
    return 0


def nvmlComputeInstanceGetInfo_v2(c: Ctx, h: int, p: int) -> int:
    gpu, model, gi, ci = c.compute_instance(h)
    info = CiInfo.from_address(_need(p))
    info.device = dev_handle(gpu)
    info.gpuInstance = gi_handle(gpu, gi)
    info.id = ci['id']
    info.profileId = ci['profile_id']
    info.placement.start, info.placement.size = ci['start'], ci['size']
    return 0


nvmlComputeInstanceGetInfo = nvmlComputeInstanceGetInfo_v2


# ---------------------------------------------------------------- dispatch
HANDLERS: dict[str, Callable[..., int]] = {
    k: v for k, v in list(globals().items()) if k.startswith('nvml') and callable(v)
}
INIT_CALLS = ('nvmlInit', 'nvmlInit_v2', 'nvmlInitWithFlags')
_ARGC: dict[str, int] = {}
_init_count = 0


def _argc(name: str, fn: Callable[..., int]) -> int:
    n = _ARGC.get(name)
    if n is None:
        n = fn.__code__.co_argcount - 1
        _ARGC[name] = n
    return n


def _take_fault(state: dict[str, Any], name: str) -> str | None:
    fired = None
    keep = []
    for f in state.get('faults', []):
        if f['call'] == name and fired is None:
            f['left'] -= 1
            if f['left'] <= 0:
                fired = f['error']
                continue
        keep.append(f)
    state['faults'] = keep
    return fired


def dispatch(name: str, a0: int = 0, a1: int = 0, a2: int = 0, a3: int = 0, a4: int = 0) -> int:
    """Entry point from the C shim: run one NVML call atomically against the state file."""
    global _init_count  # pylint: disable=global-statement
    path = os.environ.get('MIGSIM_STATE', '')
    if not path or not os.path.exists(path):
        if name == 'nvmlErrorString':
            return 0
        return E['DRIVER_NOT_LOADED'] if name in INIT_CALLS else E['UNINITIALIZED']
    with core.locked_state(path) as state:
        calls = state.setdefault('calls', {})
        calls[name] = calls.get(name, 0) + 1
        if name == 'nvmlErrorString':
            return 0
        fault = _take_fault(state, name) if state.get('faults') else None
        pending = None
        if fault is not None:
            if fault in core.PENDING_FAULTS and name == 'nvmlDeviceSetMigMode':
                pending = core.PENDING_FAULTS[fault]
            else:
                return core.error_code(fault)
        if name in INIT_CALLS:
            if not state.get('driver_loaded', True):
                return E['DRIVER_NOT_LOADED']
            _init_count += 1
            return 0
        if name == 'nvmlShutdown':
            if _init_count == 0:
                return E['UNINITIALIZED']
            _init_count -= 1
            return 0
        if _init_count == 0:
            return E['UNINITIALIZED']
        fn = HANDLERS.get(name)
        if fn is None:
            return E['NOT_SUPPORTED']
        args = (a0, a1, a2, a3, a4)[:_argc(name, fn)]
        try:
            return fn(Ctx(state, pending), *args)
        except SimError as e:
            return e.code
