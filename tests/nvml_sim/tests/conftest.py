# SPDX-License-Identifier: GPL-3.0-or-later
"""Fixtures: create simulator states and run real pynvml against them in subprocesses."""
from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from typing import Any, Callable

import pytest

SIM_DIR = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
REPO_ROOT = os.path.dirname(os.path.dirname(SIM_DIR))
READINGS = os.path.join(REPO_ROOT, 'tests', 'hardware', 'readings')
MIGSIM = os.path.join(SIM_DIR, 'migsim')

PRELUDE = '''
import ctypes, json, sys
import pynvml as n
def err(fn, *a):
    try:
        r = fn(*a)
        return r
    except n.NVMLError as e:
        return 'ERR %d' % e.value
def out(x):
    print(json.dumps(x))
n.nvmlInit()
h = n.nvmlDeviceGetHandleByIndex(0)
def mk(pid, start=None):
    try:
        if start is None:
            gi = n.nvmlDeviceCreateGpuInstance(h, pid)
        else:
            pl = n.c_nvmlGpuInstancePlacement_t(); pl.start = start
            pl.size = {19: 1, 20: 1, 15: 2, 14: 2, 9: 4, 5: 4, 0: 8}.get(pid, 0)
            gi = n.nvmlDeviceCreateGpuInstanceWithPlacement(h, pid, ctypes.byref(pl))
    except n.NVMLError as e:
        return 'ERR %d' % e.value
    i = n.nvmlGpuInstanceGetInfo(gi)
    return [i.id, i.placement.start, i.placement.size]
'''


def migsim(*args: str, check: bool = True) -> subprocess.CompletedProcess:
    """Run the CLI with the current interpreter."""
    proc = subprocess.run([sys.executable, MIGSIM, *args], capture_output=True, text=True, check=False)
    if check and proc.returncode != 0:
        raise AssertionError('migsim %s failed: %s%s' % (' '.join(args), proc.stdout, proc.stderr))
    return proc


def sim_env(state: str) -> dict[str, str]:
    """Environment from `migsim env`."""
    env = dict(os.environ)
    for line in migsim('env', state).stdout.splitlines():
        key, dummy, value = line[len('export '):].partition('=')
        env[key] = value
    return env


class Sim:
    """One simulated host."""

    def __init__(self, path: str) -> None:
        self.path = path
        self._env: dict[str, str] | None = None

    @property
    def env(self) -> dict[str, str]:
        """Cached environment."""
        if self._env is None:
            self._env = sim_env(self.path)
        return self._env

    def cli(self, *args: str, check: bool = True) -> subprocess.CompletedProcess:
        """Run a migsim verb on this state (STATE inserted after the verb words)."""
        words = list(args)
        pos = 2 if words[0] in ('process', 'fault') else 1
        return migsim(*(words[:pos] + [self.path] + words[pos:]), check=check)

    def show(self) -> dict[str, Any]:
        """`migsim show` as JSON."""
        return json.loads(self.cli('show').stdout)

    def calls(self) -> dict[str, int]:
        """`migsim calls` as JSON."""
        return json.loads(self.cli('calls').stdout)

    def py(self, code: str, python: str | None = None) -> Any:
        """Run pynvml code in a subprocess; return the JSON it prints with out()."""
        src = PRELUDE + textwrap.dedent(code)
        proc = subprocess.run([python or sys.executable, '-c', src], capture_output=True, text=True, env=self.env, check=False)
        if proc.returncode != 0:
            raise AssertionError('snippet failed:\n%s\n%s' % (proc.stdout, proc.stderr))
        return json.loads(proc.stdout.strip().splitlines()[-1])

    def run_script(self, path: str) -> str:
        """Run a script file under the simulator; return stdout."""
        proc = subprocess.run([sys.executable, path], capture_output=True, text=True, env=self.env, check=True)
        return proc.stdout


@pytest.fixture
def make_sim(tmp_path: Any) -> Callable[..., Sim]:
    """Factory: make_sim('h100-80gb:1', mig='enabled')."""
    counter = [0]

    def factory(gpus: str, *extra: str, mig: str = 'disabled') -> Sim:
        counter[0] += 1
        path = str(tmp_path / ('state%d.json' % counter[0]))
        migsim('init', path, '--gpus', gpus, '--mig', mig, *extra)
        return Sim(path)
    return factory


@pytest.fixture(scope='session')
def readings_dir() -> str:
    """tests/hardware/readings: what NVML and nvidia-smi reported on the real H100 and H200."""
    if not os.path.isdir(READINGS):
        raise AssertionError('readings of the real cards not found at %s' % READINGS)
    return READINGS
