# Copyright (c) 2026 gpuops.mig contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Shared helpers of the benchmark scripts (tests/bench/*.py).

The scripts import the collection as ``ansible_collections.gpuops.mig`` from the snapshot that
tests/bench/run.sh copies into its work directory (``BENCH_COLLECTIONS``), so edits made to the
checkout while the benchmark runs do not mix into one run.
"""

from __future__ import annotations

import contextlib
import json
import os
import statistics
import subprocess
import sys
import time
import typing as t

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
SIM_DIR = os.path.join(ROOT, 'tests', 'nvml_sim')
MIGSIM = os.path.join(SIM_DIR, 'migsim')

# The four models the benchmark covers, as the simulator names them.
MODELS = ('h100-80gb', 'a100-40gb', 'a30-24gb', 'rtx-pro-6000')


def setup_collection_path() -> None:
    """Put the collection snapshot (or, for ad-hoc runs, a symlink tree to the checkout) on sys.path."""
    base = os.environ.get('BENCH_COLLECTIONS')
    if not base:
        base = os.path.join(os.environ.get('TMPDIR', '/tmp'), 'gpuops-bench-collections-%d' % os.getuid())
        link = os.path.join(base, 'ansible_collections', 'gpuops', 'mig')
        if not os.path.exists(link):
            os.makedirs(os.path.dirname(link), exist_ok=True)
            os.symlink(ROOT, link)
    if base not in sys.path:
        sys.path.insert(0, base)


def migsim(*args: str, capture: bool = True) -> str:
    proc = subprocess.run([sys.executable, MIGSIM] + list(args), capture_output=capture, text=True, check=True)
    return proc.stdout if capture else ''


def sim_env(state: str) -> dict[str, str]:
    """``migsim env STATE`` as a dict (builds the library when missing)."""
    env = {}
    for line in migsim('env', state).splitlines():
        line = line.strip()
        if line.startswith('export '):
            k, dummy, v = line[len('export '):].partition('=')
            env[k] = v.strip('\'"')
    return env


def activate_sim(state: str) -> dict[str, str]:
    """Point this process at ``state`` before pynvml loads libnvidia-ml.so.1.

    ``LD_LIBRARY_PATH`` is read by the dynamic loader only at process start, so the library is
    loaded here by absolute path first; pynvml's later ``CDLL('libnvidia-ml.so.1')`` then finds
    the already loaded soname.
    """
    env = sim_env(state)
    os.environ.update(env)
    import ctypes
    ctypes.CDLL(os.path.join(env['LD_LIBRARY_PATH'], 'libnvidia-ml.so.1'), mode=ctypes.RTLD_GLOBAL)
    return env


def sim_core() -> t.Any:
    """The simulator's core module as the loaded engine uses it (valid after nvmlInit)."""
    mod = sys.modules.get('_migsim_core')
    if mod is None:
        import importlib.util
        spec = importlib.util.spec_from_file_location('_migsim_core', os.path.join(SIM_DIR, 'migsim_core.py'))
        assert spec is not None and spec.loader is not None
        mod = importlib.util.module_from_spec(spec)
        sys.modules['_migsim_core'] = mod
        spec.loader.exec_module(mod)
    return mod


def sim_reset_gpus(state_path: str, indexes: t.Iterable[int] | None = None) -> None:
    """Empty GPUs directly in the state file (what ``migsim reset`` does, without a process start)."""
    core = sim_core()
    with core.locked_state(state_path) as state:
        for gpu in state['gpus']:
            if indexes is None or gpu['index'] in indexes:
                core.reset_gpu(state, gpu)


def sim_calls(state_path: str) -> dict[str, int]:
    with open(state_path, encoding='utf-8') as f:
        return dict(json.load(f).get('calls', {}))


def calls_delta(before: dict[str, int], after: dict[str, int]) -> dict[str, int]:
    return {k: after.get(k, 0) - before.get(k, 0) for k in set(before) | set(after) if after.get(k, 0) != before.get(k, 0)}


def median(values: t.Sequence[float]) -> float:
    return float(statistics.median(values)) if values else float('nan')


def write_json(path: str, data: t.Any) -> None:
    tmp = path + '.tmp'
    with open(tmp, 'w', encoding='utf-8') as f:
        json.dump(data, f, indent=1, sort_keys=True)
    os.replace(tmp, path)


def loadavg() -> list[float]:
    try:
        return [round(x, 2) for x in os.getloadavg()]
    except OSError:
        return []


@contextlib.contextmanager
def stage(name: str) -> t.Iterator[dict[str, t.Any]]:
    """Time a stage and note the load average before and after (the machine is shared)."""
    info: dict[str, t.Any] = {'stage': name, 'load_before': loadavg()}
    start = time.perf_counter()
    log('%s: start (load %s)' % (name, info['load_before']))
    yield info
    info['seconds'] = round(time.perf_counter() - start, 1)
    info['load_after'] = loadavg()
    log('%s: done in %.1f s (load %s)' % (name, info['seconds'], info['load_after']))


def log(msg: str) -> None:
    sys.stderr.write('[%s] %s\n' % (time.strftime('%H:%M:%S'), msg))
    sys.stderr.flush()
