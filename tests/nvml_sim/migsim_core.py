# SPDX-License-Identifier: GPL-3.0-or-later
"""Simulator core: models, the JSON state file and the MIG rules (no ctypes, no pynvml)."""
from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import os
from typing import Any, Iterator

HERE = os.path.dirname(os.path.abspath(__file__))
MODELS_DIR = os.path.join(HERE, 'models')
DEFAULT_DRIVER = '580.159.04'
STATE_VERSION = 1

# nvmlReturn_t values (nvml.h; mig-hardware.md section 1.3/1.4)
ERRORS: dict[str, int] = {
    'SUCCESS': 0, 'UNINITIALIZED': 1, 'INVALID_ARGUMENT': 2, 'NOT_SUPPORTED': 3, 'NO_PERMISSION': 4,
    'ALREADY_INITIALIZED': 5, 'NOT_FOUND': 6, 'INSUFFICIENT_SIZE': 7, 'INSUFFICIENT_POWER': 8,
    'DRIVER_NOT_LOADED': 9, 'TIMEOUT': 10, 'IRQ_ISSUE': 11, 'LIBRARY_NOT_FOUND': 12, 'FUNCTION_NOT_FOUND': 13,
    'CORRUPTED_INFOROM': 14, 'GPU_IS_LOST': 15, 'RESET_REQUIRED': 16, 'OPERATING_SYSTEM': 17,
    'LIB_RM_VERSION_MISMATCH': 18, 'IN_USE': 19, 'MEMORY': 20, 'NO_DATA': 21, 'VGPU_ECC_NOT_SUPPORTED': 22,
    'INSUFFICIENT_RESOURCES': 23, 'FREQ_NOT_SUPPORTED': 24, 'ARGUMENT_VERSION_MISMATCH': 25, 'DEPRECATED': 26,
    'NOT_READY': 27, 'GPU_NOT_FOUND': 28, 'INVALID_STATE': 29, 'UNKNOWN': 999,
}
# Pseudo errors for nvmlDeviceSetMigMode faults: the call succeeds but the change stays pending
# with this activation status.
PENDING_FAULTS: dict[str, int] = {'PENDING': ERRORS['RESET_REQUIRED'], 'PENDING_IN_USE': ERRORS['IN_USE']}

# NVML_COMPUTE_INSTANCE_PROFILE_* index -> compute slices (section 1.2)
CI_PROFILE_SLICES: dict[int, int] = {0: 1, 1: 2, 2: 3, 3: 4, 4: 7, 5: 8, 6: 6, 7: 1, 8: 7}
CI_PROFILE_COUNT = 9

# Fake handle layout: 0x7F | kind | gpu | a | b  (never real memory)
HANDLE_TAG = 0x7F
KIND_DEVICE, KIND_GI, KIND_CI, KIND_MIG = 1, 2, 3, 4


class SimError(Exception):
    """An NVML error code raised inside the simulator."""

    def __init__(self, code: int) -> None:
        super().__init__(code)
        self.code = code


def error_code(name: str) -> int:
    """Map 'NVML_ERROR_IN_USE', 'IN_USE' or '19' to the numeric code."""
    n = name.strip().upper()
    for prefix in ('NVML_ERROR_', 'NVML_'):
        if n.startswith(prefix):
            n = n[len(prefix):]
    if n.isdigit():
        return int(n)
    if n in ERRORS:
        return ERRORS[n]
    raise KeyError(name)


# ---------------------------------------------------------------- models
_MODEL_CACHE: dict[str, tuple[float, dict[str, Any]]] = {}


def model_names() -> list[str]:
    """Return the keys of all model files."""
    return sorted(f[:-5] for f in os.listdir(MODELS_DIR) if f.endswith('.json'))


def load_model(key: str) -> dict[str, Any]:
    """Load a model file, cached by mtime."""
    path = os.path.join(MODELS_DIR, key + '.json')
    mtime = os.stat(path).st_mtime
    hit = _MODEL_CACHE.get(key)
    if hit is not None and hit[0] == mtime:
        return hit[1]
    with open(path, encoding='utf-8') as f:
        model = json.load(f)
    model['_by_index'] = {p['index']: p for p in model['gi_profiles']}
    model['_by_id'] = {p['id']: p for p in model['gi_profiles']}
    _MODEL_CACHE[key] = (mtime, model)
    return model


# ---------------------------------------------------------------- driver facts
def driver_branch(driver: str) -> int:
    """Return the driver branch number, e.g. 580."""
    try:
        return int(driver.split('.')[0])
    except ValueError:
        return 0


def cuda_version(driver: str) -> int:
    """CUDA driver version reported by a driver branch (580 -> 13000 as measured)."""
    b = driver_branch(driver)
    table = [(580, 13000), (575, 12090), (570, 12080), (560, 12060), (555, 12050), (550, 12040),
             (545, 12030), (535, 12020), (530, 12010), (525, 12000), (520, 11080), (515, 11070), (470, 11040)]
    for branch, cuda in table:
        if b >= branch:
            return cuda
    return 11000


def nvml_version(driver: str) -> str:
    """NVML version string: '<cuda major>.<driver>' (measured '13.580.159.04')."""
    return '%d.%s' % (cuda_version(driver) // 1000, driver)


def gi_profile_index_limit(driver: str) -> int:
    """First GI profile index the driver rejects with INVALID_ARGUMENT (17 on 580.159.04)."""
    return 18 if driver_branch(driver) >= 590 else 17


# ---------------------------------------------------------------- identities
def _uuid_from(seed: str) -> str:
    h = hashlib.sha256(seed.encode()).hexdigest()
    return '%s-%s-%s-%s-%s' % (h[0:8], h[8:12], h[12:16], h[16:20], h[20:32])


def gpu_uuid(model: str, index: int, seed: str) -> str:
    """Deterministic GPU UUID in NVML format."""
    return 'GPU-' + _uuid_from('gpu:%s:%d:%s' % (model, index, seed))


def mig_uuid(gpu_uuid_: str, gi_id: int, ci_id: int, serial: int) -> str:
    """Deterministic MIG device UUID (R470+ format)."""
    return 'MIG-' + _uuid_from('mig:%s:%d:%d:%d' % (gpu_uuid_, gi_id, ci_id, serial))


def pci_bus_id(index: int) -> str:
    """PCI bus ID of GPU ``index``: 00000000:1X:00.0 for the first 16."""
    return '00000000:%02X:00.0' % (0x10 + index)


def make_handle(kind: int, gpu: int, a: int = 0, b: int = 0) -> int:
    """Encode a fake pointer value."""
    return (HANDLE_TAG << 40) | (kind << 36) | (gpu << 32) | ((a & 0xFFFF) << 16) | (b & 0xFFFF)


def split_handle(h: int) -> tuple[int, int, int, int]:
    """Decode a handle into (kind, gpu, a, b); raise INVALID_ARGUMENT when it is not ours."""
    if (h >> 40) != HANDLE_TAG:
        raise SimError(ERRORS['INVALID_ARGUMENT'])
    return (h >> 36) & 0xF, (h >> 32) & 0xF, (h >> 16) & 0xFFFF, h & 0xFFFF


# ---------------------------------------------------------------- state file
def new_state(gpus: list[tuple[str, int]], driver: str = DEFAULT_DRIVER, mig: bool = False, seed: str = 'migsim') -> dict[str, Any]:
    """Build a fresh state for [(model, count), ...]."""
    state: dict[str, Any] = {'version': STATE_VERSION, 'driver': driver, 'driver_loaded': True, 'root': True, 'seed': seed,
                             'serial': 0, 'calls': {}, 'faults': [], 'gpus': []}
    index = 0
    for model_key, count in gpus:
        model = load_model(model_key)
        for dummy in range(count):
            on = 1 if (mig and model.get('mig_capable')) else 0
            state['gpus'].append({'index': index, 'model': model_key, 'uuid': gpu_uuid(model_key, index, seed),
                                  'pci_bus_id': pci_bus_id(index), 'mig_current': on, 'mig_pending': on,
                                  'resettable': True, 'persistence': 1, 'gpu_instances': [], 'processes': []})
            index += 1
    return state


def lock_path(path: str) -> str:
    """Lock file beside the state file."""
    return path + '.lock'


@contextlib.contextmanager
def locked_state(path: str, write: bool = True) -> Iterator[dict[str, Any]]:
    """Hold the state's fcntl lock, yield the state, write it back in place.

    Every reader and writer takes the lock, so an in-place rewrite is atomic for them and much
    cheaper than a rename on slow file systems.
    """
    with open(lock_path(path), 'a+', encoding='utf-8') as lf:
        fcntl.flock(lf.fileno(), fcntl.LOCK_EX)
        try:
            with open(path, 'r+' if write else 'r', encoding='utf-8') as f:
                state = json.loads(f.read())
                yield state
                if write:
                    data = json.dumps(state, separators=(',', ':'), sort_keys=True)
                    f.seek(0)
                    f.write(data)
                    f.truncate()
        finally:
            fcntl.flock(lf.fileno(), fcntl.LOCK_UN)


def save_state(path: str, state: dict[str, Any]) -> None:
    """Write the state atomically (caller holds the lock)."""
    tmp = '%s.tmp.%d' % (path, os.getpid())
    with open(tmp, 'w', encoding='utf-8') as f:
        f.write(json.dumps(state, separators=(',', ':'), sort_keys=True))
    os.replace(tmp, path)


def write_new_state(path: str, state: dict[str, Any]) -> None:
    """Create or overwrite a state file under the lock."""
    with open(lock_path(path), 'a+', encoding='utf-8') as lf:
        fcntl.flock(lf.fileno(), fcntl.LOCK_EX)
        try:
            save_state(path, state)
        finally:
            fcntl.flock(lf.fileno(), fcntl.LOCK_UN)


def next_serial(state: dict[str, Any]) -> int:
    """Allocate a handle serial (1..65535, wraps)."""
    state['serial'] = state['serial'] % 0xFFFF + 1
    return state['serial']


# ---------------------------------------------------------------- placement rules
def occupied(gpu: dict[str, Any]) -> set[int]:
    """Memory slots taken by existing GPU instances."""
    slots: set[int] = set()
    for gi in gpu['gpu_instances']:
        slots.update(range(gi['start'], gi['start'] + gi['size']))
    return slots


def gi_blocked(model: dict[str, Any], gpu: dict[str, Any], prof: dict[str, Any]) -> bool:
    """True when the profile's instance cap or media-engine rules forbid one more instance."""
    gis = gpu['gpu_instances']
    if sum(1 for g in gis if g['profile_id'] == prof['id']) >= prof['instances']:
        return True
    pid = prof['id']
    for group in model.get('exclusive_groups', []):
        if pid in group and any(g['profile_id'] in group for g in gis):
            return True
    all_me = model.get('all_me_profiles', [])
    no_me = model.get('no_me_profiles', [])
    if all_me:
        if any(g['profile_id'] in all_me for g in gis) and pid not in no_me:
            return True
        if pid in all_me and any(g['profile_id'] not in no_me for g in gis):
            return True
    return False


def free_gi_placements(model: dict[str, Any], gpu: dict[str, Any], prof: dict[str, Any]) -> list[int]:
    """Legal starts of ``prof`` that overlap no existing GPU instance."""
    occ = occupied(gpu)
    size = prof['placement_size']
    return [s for s in prof['placement_starts'] if not occ.intersection(range(s, s + size))]


def remaining_gi(model: dict[str, Any], gpu: dict[str, Any], prof: dict[str, Any]) -> int:
    """How many more instances of ``prof`` fit (greedy interval packing, capped)."""
    if not gpu['mig_current']:
        return prof['instances']
    if gi_blocked(model, gpu, prof):
        return 0
    cap = prof['instances'] - sum(1 for g in gpu['gpu_instances'] if g['profile_id'] == prof['id'])
    if any(prof['id'] in grp for grp in model.get('exclusive_groups', [])) or prof['id'] in model.get('all_me_profiles', []):
        cap = min(cap, 1)
    occ = occupied(gpu)
    n = 0
    size = prof['placement_size']
    for s in sorted(prof['placement_starts']):
        r = set(range(s, s + size))
        if not occ & r:
            occ |= r
            n += 1
    return min(n, cap)


def default_gi_start(model: dict[str, Any], gpu: dict[str, Any], prof: dict[str, Any]) -> int | None:
    """The driver's default placement (INF, mig-hardware.md section 3).

    Best fit in a buddy grid: slots without a compute slice of their own (slot 7 on 8-slot GPUs) count as
    used for scoring. Prefer a placement that covers such a slot, then the one whose smallest enclosing
    buddy block is already partly used, then the lowest start. Reproduces the MIG guide's A100 sequences
    (19,14,5 / 19,19,14,9 fails at the 3g / 9,19,14,19 / 14,19x5) and RTX PRO 2g,1g,1g.
    """
    occ = occupied(gpu)
    virt = set(model.get('virtual_slots', []))
    grid = model['memory_slots']
    size = prof['placement_size']
    best: tuple[int, float, int] | None = None
    for s in free_gi_placements(model, gpu, prof):
        span = set(range(s, s + size))
        covers = len(span & virt)
        level: float = float('inf')
        k = size * 2
        while k <= grid:
            bs = (s // k) * k
            block = set(range(bs, bs + k)) - span
            if block & (occ | virt):
                level = k
                break
            k *= 2
        key = (-covers, level, s)
        if best is None or key < best:
            best = key
    return None if best is None else best[2]


def gi_id_for(model: dict[str, Any], gpu: dict[str, Any], size: int, start: int) -> int:
    """GI ID from the per-size pool: pool_base + start/size (pool_base = grid/size - 1)."""
    grid = model['memory_slots']
    used = {g['id'] for g in gpu['gpu_instances']}
    base = max(grid // size - 1, 0)
    cand = base + start // size
    if cand not in used:
        return cand
    for i in range(base, base + grid // size):
        if i not in used:
            return i
    return max(used) + 1


# ---------------------------------------------------------------- compute instances
def gi_profile(model: dict[str, Any], gi: dict[str, Any]) -> dict[str, Any]:
    """Model profile of a GPU instance."""
    return model['_by_id'][gi['profile_id']]


def is_rev2(prof: dict[str, Any]) -> bool:
    """True for the double-memory 1g profile (NVML index 9)."""
    return prof['index'] == 9


def ci_profiles(model: dict[str, Any], gprof: dict[str, Any]) -> dict[int, dict[str, Any]]:
    """CI profiles a GI offers: C <= G and (C == G or 2C <= G+1) (section 6.1); REV2 GI on Hopper+ uses ID 7."""
    g = gprof['slices']
    out: dict[int, dict[str, Any]] = {}
    if is_rev2(gprof):
        cid = model.get('rev2_full_ci_profile', 0)
        out[cid] = _ci(model, gprof, cid, 1, True)
        return out
    for cid in (0, 1, 2, 3, 4, 6, 5):
        c = CI_PROFILE_SLICES[cid]
        if c <= g and (c == g or 2 * c <= g + 1):
            out[cid] = _ci(model, gprof, cid, c, c == g)
    return out


def _ci(model: dict[str, Any], gprof: dict[str, Any], cid: int, c: int, full: bool) -> dict[str, Any]:
    g = gprof['slices']
    sm = gprof['sm'] if full else model.get('ci_sm_per_slice', 0) * c
    name = gprof['name'] if full else '%dc.%s' % (c, gprof['name'])
    align = 1
    while align < c:
        align *= 2
    starts = [s for s in range(0, g, align) if s + c <= g]
    return {'id': cid, 'slices': c, 'instances': g // c, 'sm': sm, 'name': name, 'starts': starts, 'full': full}


def default_ci_profile(model: dict[str, Any], gprof: dict[str, Any]) -> int:
    """CI profile ID that `nvidia-smi mig -cgi X -C` creates (the full one)."""
    for cid, p in ci_profiles(model, gprof).items():
        if p['full']:
            return cid
    return 0


def ci_free_starts(gi: dict[str, Any], cprof: dict[str, Any]) -> list[int]:
    """Legal CI starts that overlap no existing CI of the GI."""
    occ: set[int] = set()
    for ci in gi['compute_instances']:
        occ.update(range(ci['start'], ci['start'] + ci['size']))
    return [s for s in cprof['starts'] if not occ.intersection(range(s, s + cprof['slices']))]


def remaining_ci(gi: dict[str, Any], cprof: dict[str, Any]) -> int:
    """How many more CIs of ``cprof`` fit in ``gi``."""
    cap = cprof['instances'] - sum(1 for c in gi['compute_instances'] if c['profile_id'] == cprof['id'])
    occ: set[int] = set()
    for ci in gi['compute_instances']:
        occ.update(range(ci['start'], ci['start'] + ci['size']))
    n = 0
    for s in cprof['starts']:
        r = set(range(s, s + cprof['slices']))
        if not occ & r:
            occ |= r
            n += 1
    return max(0, min(n, cap))


# ---------------------------------------------------------------- lifecycle
def mig_devices(gpu: dict[str, Any]) -> list[tuple[dict[str, Any], dict[str, Any]]]:
    """(gi, ci) pairs in MIG device index order: by GI placement start, then CI start."""
    out = []
    for gi in sorted(gpu['gpu_instances'], key=lambda g: (g['start'], g['id'])):
        for ci in sorted(gi['compute_instances'], key=lambda c: (c['start'], c['id'])):
            out.append((gi, ci))
    return out


# NVML_GPU_VIRTUALIZATION_MODE_* values (nvml.h).
VIRTUALIZATION_MODES = {'none': 0, 'passthrough': 1, 'vgpu': 2, 'host-vgpu': 3, 'host-vsga': 4}


def resettable(gpu: dict[str, Any]) -> bool:
    """A GPU passed through to a VM cannot be reset from inside it (`nvidia-smi --gpu-reset`: not supported)."""
    return bool(gpu.get('resettable', True)) and gpu.get('virtualization_mode', 0) != VIRTUALIZATION_MODES['passthrough']


def reset_gpu(state: dict[str, Any], gpu: dict[str, Any], reboot: bool = False) -> None:
    """GPU reset / reboot: instances and processes vanish; pending mode becomes current; Hopper+ loses MIG on reboot."""
    gpu['gpu_instances'] = []
    gpu['processes'] = []
    gpu['mig_current'] = gpu['mig_pending']
    if reboot and not load_model(gpu['model']).get('mig_mode_persistent', False):
        gpu['mig_current'] = 0
        gpu['mig_pending'] = 0


def profile_label(model: dict[str, Any], gi: dict[str, Any]) -> str:
    """GI profile name like '3g.40gb'."""
    return model['_by_id'][gi['profile_id']]['name']


def show(state: dict[str, Any]) -> dict[str, Any]:
    """Human/JSON view used by `migsim show`."""
    gpus = []
    for gpu in state['gpus']:
        model = load_model(gpu['model'])
        gis = []
        for gi in sorted(gpu['gpu_instances'], key=lambda g: g['id']):
            gprof = gi_profile(model, gi)
            cps = ci_profiles(model, gprof)
            cis = [{'id': ci['id'], 'profile': cps[ci['profile_id']]['name'] if ci['profile_id'] in cps else str(ci['profile_id']),
                    'profile_id': ci['profile_id'], 'placement': {'start': ci['start'], 'size': ci['size']}, 'mig_uuid': ci['uuid']}
                   for ci in sorted(gi['compute_instances'], key=lambda c: c['id'])]
            gis.append({'id': gi['id'], 'profile': gprof['name'], 'profile_id': gi['profile_id'],
                        'placement': {'start': gi['start'], 'size': gi['size']}, 'compute_instances': cis})
        onoff = {0: 'disabled', 1: 'enabled'}
        gpus.append({'index': gpu['index'], 'model': gpu['model'], 'name': model['name'], 'uuid': gpu['uuid'],
                     'pci_bus_id': gpu['pci_bus_id'], 'mig_capable': bool(model.get('mig_capable')),
                     'mig_mode': {'current': onoff[gpu['mig_current']], 'pending': onoff[gpu['mig_pending']]},
                     'resettable': gpu.get('resettable', True),
                     'virtualization_mode': gpu.get('virtualization_mode', 0), 'gpu_instances': gis,
                     'processes': [dict(p) for p in gpu['processes']]})
    return {'driver': state['driver'], 'driver_loaded': state['driver_loaded'], 'root': state['root'], 'gpus': gpus}
