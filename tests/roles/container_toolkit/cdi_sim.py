# SPDX-License-Identifier: GPL-3.0-or-later
"""Simulated driver for the real `nvidia-ctk cdi generate` (tests/roles/container_toolkit/runtimes.sh, CDI scenario).

  cdi_sim.py layout SPEC        destroy every MIG device on the simulated GPUs ($MIGSIM_STATE) and create
                                SPEC ("3,2,1,1/7/-/..." : GI slice counts per GPU, one full CI per GI)
                                through pynvml, as an administrator would
  cdi_sim.py tree ROOT PROC     lay out what the NVIDIA driver leaves for that state: ROOT/dev/nvidia*,
                                ROOT/dev/nvidia-caps/nvidia-cap*, driver libraries under ROOT, and under
                                PROC (mounted on /proc/driver) nvidia-caps/mig-minors and
                                nvidia/capabilities/gpu*/mig/...; cap nodes of destroyed instances stay,
                                as they do on a real host
  cdi_sim.py check SPEC-FILE    the CDI spec lists exactly the live MIG devices, by index (GPU:MIG) and
                                by MIG UUID, computed from `migsim show` (not from NVML calls)
"""
from __future__ import annotations

import ctypes
import json
import os
import subprocess
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
MIGSIM = os.path.join(HERE, '..', '..', 'nvml_sim', 'migsim')
SLICES_TO_PROFILE = {1: 0, 2: 1, 3: 2, 4: 3, 7: 4}  # NVML_GPU_INSTANCE_PROFILE_<n>_SLICE / CI profile index
CAPS_PER_GI = 9  # the driver numbers mig-minors: gi access, then ci0..ci7 access
GIS_PER_GPU = 15


def show() -> dict:
    """The simulator's state."""
    out = subprocess.run([sys.executable, MIGSIM, 'show', os.environ['MIGSIM_STATE']],
                         check=True, capture_output=True, text=True).stdout
    return json.loads(out)


def gi_minor(gpu: int, gi: int) -> int:
    return 3 + gpu * GIS_PER_GPU * CAPS_PER_GI + gi * CAPS_PER_GI


def layout(spec: str) -> None:
    """Apply SPEC through pynvml."""
    import pynvml  # pylint: disable=import-outside-toplevel
    pynvml.nvmlInit()
    try:
        per_gpu = spec.split('/')
        if len(per_gpu) != pynvml.nvmlDeviceGetCount():
            raise SystemExit('layout names %d GPUs, the host has %d' % (len(per_gpu), pynvml.nvmlDeviceGetCount()))
        for index, wanted in enumerate(per_gpu):
            h = pynvml.nvmlDeviceGetHandleByIndex(index)
            pynvml.nvmlDeviceSetMigMode(h, pynvml.NVML_DEVICE_MIG_ENABLE)
            for p in range(5):
                try:
                    info = pynvml.nvmlDeviceGetGpuInstanceProfileInfo(h, p)
                except pynvml.NVMLError:
                    continue
                gis = (pynvml.c_nvmlGpuInstance_t * 8)()
                n_gi = ctypes.c_uint(8)
                pynvml.nvmlDeviceGetGpuInstances(h, info.id, gis, ctypes.byref(n_gi))
                for gi in gis[:n_gi.value]:
                    for cp in range(5):
                        try:
                            cinfo = pynvml.nvmlGpuInstanceGetComputeInstanceProfileInfo(gi, cp, 0)
                        except pynvml.NVMLError:
                            continue
                        cis = (pynvml.c_nvmlComputeInstance_t * 8)()
                        n_ci = ctypes.c_uint(8)
                        pynvml.nvmlGpuInstanceGetComputeInstances(gi, cinfo.id, cis, ctypes.byref(n_ci))
                        for ci in cis[:n_ci.value]:
                            pynvml.nvmlComputeInstanceDestroy(ci)
                    pynvml.nvmlGpuInstanceDestroy(gi)
            for n in ([] if wanted in ('', '-') else [int(x) for x in wanted.split(',')]):
                info = pynvml.nvmlDeviceGetGpuInstanceProfileInfo(h, SLICES_TO_PROFILE[n])
                gi = pynvml.nvmlDeviceCreateGpuInstance(h, info.id)
                cinfo = pynvml.nvmlGpuInstanceGetComputeInstanceProfileInfo(gi, SLICES_TO_PROFILE[n], 0)
                pynvml.nvmlGpuInstanceCreateComputeInstance(gi, cinfo.id)
    finally:
        pynvml.nvmlShutdown()


def write(path: str, text: str) -> None:
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, 'w', encoding='utf-8') as f:
        f.write(text)


def char_dev(path: str, major: int, minor: int) -> None:
    os.makedirs(os.path.dirname(path), exist_ok=True)
    if not os.path.exists(path):
        os.mknod(path, 0o666 | 0o020000, os.makedev(major, minor))


def tree(root: str, proc: str) -> None:
    """The driver's files for the current state (idempotent; stale cap nodes stay)."""
    st = show()
    drv = st['driver']
    for name, minor in (('nvidiactl', 255), ('nvidia-modeset', 254)):
        char_dev(os.path.join(root, 'dev', name), 195, minor)
    char_dev(os.path.join(root, 'dev', 'nvidia-uvm'), 510, 0)
    char_dev(os.path.join(root, 'dev', 'nvidia-uvm-tools'), 510, 1)
    libdir = os.path.join(root, 'usr', 'lib', 'x86_64-linux-gnu')
    for lib in ('libcuda.so', 'libnvidia-ml.so', 'libnvidia-ptxjitcompiler.so', 'libnvidia-nvvm.so'):
        write(os.path.join(libdir, '%s.%s' % (lib, drv)), '')
    minors = ['config 1', 'monitor 2']
    caps = os.path.join(proc, 'nvidia', 'capabilities')
    for name, minor in (('config', 1), ('monitor', 2)):
        write(os.path.join(caps, 'mig', name), 'DeviceFileMinor: %d\nDeviceFileMode: 256\nDeviceFileModify: 1\n' % minor)
        char_dev(os.path.join(root, 'dev', 'nvidia-caps', 'nvidia-cap%d' % minor), 508, minor)
    for gpu in st['gpus']:
        i = gpu['index']
        char_dev(os.path.join(root, 'dev', 'nvidia%d' % i), 195, i)
        write(os.path.join(proc, 'nvidia', 'gpus', gpu['pci_bus_id'].lower()[4:], 'information'),
              'Model: \t\t %s\nGPU UUID: \t %s\nBus Location: \t %s\nDevice Minor: \t %d\n'
              % (gpu['name'], gpu['uuid'], gpu['pci_bus_id'].lower()[4:], i))
        for gi in range(GIS_PER_GPU):
            minors.append('gpu%d/gi%d/access %d' % (i, gi, gi_minor(i, gi)))
            for ci in range(CAPS_PER_GI - 1):
                minors.append('gpu%d/gi%d/ci%d/access %d' % (i, gi, ci, gi_minor(i, gi) + 1 + ci))
        gpudir = os.path.join(caps, 'gpu%d' % i, 'mig')
        # The driver's proc entries follow the live instances.
        subprocess.run(['rm', '-rf', gpudir], check=True)
        for gi in gpu['gpu_instances']:
            m = gi_minor(i, gi['id'])
            write(os.path.join(gpudir, 'gi%d' % gi['id'], 'access'), 'DeviceFileMinor: %d\nDeviceFileMode: 292\nDeviceFileModify: 1\n' % m)
            char_dev(os.path.join(root, 'dev', 'nvidia-caps', 'nvidia-cap%d' % m), 508, m)
            for ci in gi['compute_instances']:
                cm = m + 1 + ci['id']
                write(os.path.join(gpudir, 'gi%d' % gi['id'], 'ci%d' % ci['id'], 'access'),
                      'DeviceFileMinor: %d\nDeviceFileMode: 292\nDeviceFileModify: 1\n' % cm)
                char_dev(os.path.join(root, 'dev', 'nvidia-caps', 'nvidia-cap%d' % cm), 508, cm)
    write(os.path.join(proc, 'nvidia-caps', 'mig-minors'), '\n'.join(minors) + '\n')


NODES: dict[str, list[str]] = {}


def expected() -> tuple[dict[str, str], set[str]]:
    """{"GPU:MIG": MIG UUID} of the live MIG devices in NVML's index order, and their UUIDs.

    NODES gets the device nodes each one needs: the parent GPU and its GI and CI access caps."""
    st = show()
    out = {}
    for gpu in st['gpus']:
        i = gpu['index']
        gis = sorted(gpu['gpu_instances'], key=lambda g: (g['placement']['start'], g['id']))
        j = 0
        for gi in gis:
            for ci in sorted(gi['compute_instances'], key=lambda c: (c['placement']['start'], c['id'])):
                name = '%d:%d' % (i, j)
                out[name] = ci['mig_uuid']
                m = gi_minor(i, gi['id'])
                NODES[name] = ['/dev/nvidia%d' % i, '/dev/nvidia-caps/nvidia-cap%d' % m,
                               '/dev/nvidia-caps/nvidia-cap%d' % (m + 1 + ci['id'])]
                j += 1
    return out, set(out.values())


def check(spec_file: str, gone_file: str | None) -> int:
    """Compare the CDI spec with the live MIG devices; GONE-FILE lists UUIDs that must be absent."""
    import yaml  # pylint: disable=import-outside-toplevel
    with open(spec_file, encoding='utf-8') as f:
        spec = yaml.safe_load(f)
    names = [d['name'] for d in spec['devices']]
    want, uuids = expected()
    mig_by_index = sorted(n for n in names if ':' in n)
    mig_by_uuid = sorted(n for n in names if n.startswith('MIG-'))
    ok = True
    if mig_by_index != sorted(want):
        print('MIG devices by index: spec %s, live %s' % (mig_by_index, sorted(want)))
        ok = False
    if mig_by_uuid != sorted(uuids):
        print('MIG devices by UUID: spec %s, live %s' % (mig_by_uuid, sorted(uuids)))
        ok = False
    # The index name and the UUID name of a device carry the same device nodes.
    edits = {d['name']: d['containerEdits'] for d in spec['devices']}
    for name, uuid in want.items():
        if name in edits and uuid in edits and edits[name] != edits[uuid]:
            print('%s and %s have different edits' % (name, uuid))
            ok = False
    for name, nodes in NODES.items():
        got = sorted(n['path'] for n in edits.get(name, {}).get('deviceNodes', []))
        if got != sorted(nodes):
            print('%s: device nodes %s, want %s' % (name, got, sorted(nodes)))
            ok = False
    if gone_file:
        with open(gone_file, encoding='utf-8') as f:
            gone = set(f.read().split()) - uuids
        listed = gone & set(names)
        if listed:
            print('destroyed MIG devices still listed: %s' % sorted(listed))
            ok = False
    print('%d MIG devices live, %d named by index and %d by UUID in the spec' % (len(want), len(mig_by_index), len(mig_by_uuid)))
    return 0 if ok else 1


def main() -> int:
    verb = sys.argv[1]
    if verb == 'layout':
        layout(sys.argv[2])
    elif verb == 'tree':
        tree(sys.argv[2], sys.argv[3])
    elif verb == 'uuids':
        print('\n'.join(sorted(expected()[1])))
    elif verb == 'check':
        return check(sys.argv[2], sys.argv[3] if len(sys.argv) > 3 else None)
    else:
        raise SystemExit(__doc__)
    return 0


if __name__ == '__main__':
    sys.exit(main())
