# Copyright (c) 2026 gpuops.mig contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Per-call cost of the NVML read calls a no-op ``mig_layout`` run makes, on a real GPU. READ-ONLY.

Not part of ``make bench`` (it needs real hardware). Run it on a host with an NVIDIA driver and
nvidia-ml-py; it writes JSON that tests/bench/data/nvml-realhw-<gpu>.json keeps, and overhead.py
uses it to estimate the no-op task time with a real driver.

It never changes anything: only query calls, and the collection's ``converge`` in check mode with a
layout equal to the current MIG mode of every GPU (a no-op that makes no mutating call even if
the layout were different).
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import statistics
import sys
import time
import typing as t

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import common  # noqa: E402

common.setup_collection_path()


def per_call(fn: t.Callable[[], t.Any], n: int = 200, rounds: int = 5) -> float | None:
    """Median over rounds of the mean seconds per call; None when the call fails."""
    try:
        fn()
    except Exception:  # pylint: disable=broad-except
        return None
    res = []
    for dummy in range(rounds):
        s = time.perf_counter()
        for dummy in range(n):
            fn()
        res.append((time.perf_counter() - s) / n)
    return statistics.median(res)


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument('--out', required=True)
    ap.add_argument('--repeats', type=int, default=20)
    args = ap.parse_args()

    import pynvml
    from ansible_collections.gpuops.mig.plugins.module_utils._converge import converge
    from ansible_collections.gpuops.mig.plugins.module_utils._nvml import NvmlAdapter

    pynvml.nvmlInit()
    h = pynvml.nvmlDeviceGetHandleByIndex(0)

    def text(v: t.Any) -> str:
        return v.decode() if isinstance(v, bytes) else str(v)

    info: dict[str, t.Any] = {
        'date': datetime.datetime.now(datetime.timezone.utc).strftime('%Y-%m-%d %H:%M UTC'),
        'driver_version': text(pynvml.nvmlSystemGetDriverVersion()),
        'gpu_count': pynvml.nvmlDeviceGetCount(),
        'gpu_name': text(pynvml.nvmlDeviceGetName(h)),
        'pynvml_version': getattr(pynvml, '__version__', None),
        'python': sys.version.split()[0],
    }
    try:
        cur, pend = pynvml.nvmlDeviceGetMigMode(h)
        info['mig_mode'] = {'current': cur, 'pending': pend}
    except pynvml.NVMLError as exc:
        info['mig_mode'] = str(exc)
    prof = pynvml.nvmlDeviceGetGpuInstanceProfileInfo(h, 0)
    arr = (pynvml.c_nvmlGpuInstancePlacement_t * 64)()

    def placements() -> t.Any:
        import ctypes
        count = ctypes.c_uint(64)
        return pynvml.nvmlDeviceGetGpuInstancePossiblePlacements(h, prof.id, arr, ctypes.byref(count))

    micro = {
        'nvmlDeviceGetHandleByIndex': lambda: pynvml.nvmlDeviceGetHandleByIndex(0),
        'nvmlDeviceGetMigMode': lambda: pynvml.nvmlDeviceGetMigMode(h),
        'nvmlDeviceGetUUID': lambda: pynvml.nvmlDeviceGetUUID(h),
        'nvmlDeviceGetPciInfo': lambda: pynvml.nvmlDeviceGetPciInfo(h),
        'nvmlDeviceGetMemoryInfo': lambda: pynvml.nvmlDeviceGetMemoryInfo(h),
        'nvmlDeviceGetGpuInstanceProfileInfo': lambda: pynvml.nvmlDeviceGetGpuInstanceProfileInfo(h, 0),
        'nvmlDeviceGetGpuInstancePossiblePlacements': placements,
        'nvmlDeviceGetGpuInstanceRemainingCapacity': lambda: pynvml.nvmlDeviceGetGpuInstanceRemainingCapacity(h, prof.id),
        'nvmlDeviceGetComputeRunningProcesses': lambda: pynvml.nvmlDeviceGetComputeRunningProcesses(h),
        'nvmlDeviceGetCount': pynvml.nvmlDeviceGetCount,
        'nvmlDeviceGetName': lambda: pynvml.nvmlDeviceGetName(h),
        'nvmlDeviceGetArchitecture': lambda: pynvml.nvmlDeviceGetArchitecture(h),
        'nvmlDeviceGetMaxMigDeviceCount': lambda: pynvml.nvmlDeviceGetMaxMigDeviceCount(h),
        'nvmlSystemGetDriverVersion': pynvml.nvmlSystemGetDriverVersion,
    }
    info['us_per_call'] = {}
    for name, fn in micro.items():
        v = per_call(fn)
        info['us_per_call'][name] = None if v is None else round(v * 1e6, 2)
    pynvml.nvmlShutdown()

    def init_cycle() -> None:
        pynvml.nvmlInit()
        pynvml.nvmlShutdown()

    v = per_call(init_cycle, n=10, rounds=5)
    info['us_per_call']['nvmlInit+nvmlShutdown'] = None if v is None else round(v * 1e6, 2)

    # the collection's read path and a check-mode no-op converge (MIG mode as it is on every GPU)
    reads, noops = [], []
    for dummy in range(args.repeats):
        s = time.perf_counter()
        with NvmlAdapter() as ad:
            gpus = ad.read_gpus()
        reads.append((time.perf_counter() - s, ad.calls))
        layouts = [{'devices': [g.index], 'mig_enabled': bool(g.mig_mode and g.mig_mode.current)} for g in gpus if g.mig_capable]
        s = time.perf_counter()
        with NvmlAdapter() as ad:
            r = converge(ad, layouts=layouts, check_mode=True)
        noops.append((time.perf_counter() - s, ad.calls, r['changed']))
    info['read_gpus'] = {'seconds_median': statistics.median(x[0] for x in reads), 'calls': reads[0][1]}
    info['converge_noop_check_mode'] = {'seconds_median': statistics.median(x[0] for x in noops), 'calls': noops[0][1],
                                        'changed': any(x[2] for x in noops)}
    info['us_per_call_read_gpus'] = round(info['read_gpus']['seconds_median'] / info['read_gpus']['calls'] * 1e6, 2)
    vals = [v for k, v in info['us_per_call'].items() if v is not None and '+' not in k]
    info['us_per_call_median'] = round(statistics.median(vals), 2) if vals else None
    with open(args.out, 'w', encoding='utf-8') as f:
        json.dump(info, f, indent=1, sort_keys=True)
    print(json.dumps(info, indent=1, sort_keys=True))
    return 0


if __name__ == '__main__':
    sys.exit(main())
