# Copyright (c) 2026 gpuops.mig contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Shared helpers of the reliability suite: the simulator's CLI, state snapshots, layout signatures.

Imported by the pytest files and by the worker subprocesses (worker.py). Importing this module
never loads pynvml; ``converge_b`` and friends import the collection lazily.

The simulator is driven through its own CLI code (``tests/nvml_sim/migsim``): bulk cases call the
CLI's ``main()`` in-process (no interpreter start per call), the representative cases run the
``migsim`` executable.
"""

from __future__ import annotations

import contextlib
import importlib.machinery
import importlib.util
import io
import json
import os
import re
import subprocess
import sys
import threading
import typing as t

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
SIM_DIR = os.path.join(ROOT, 'tests', 'nvml_sim')
MIGSIM = os.path.join(SIM_DIR, 'migsim')
BOOT_SCRIPT = os.path.join(ROOT, 'roles', 'mig', 'files', 'gpuops-mig-apply')

# The five mutating NVML calls and the plan actions that make them.
SET_MODE = 'nvmlDeviceSetMigMode'
CREATE_GI = 'nvmlDeviceCreateGpuInstanceWithPlacement'
CREATE_CI = 'nvmlGpuInstanceCreateComputeInstanceWithPlacement'
DESTROY_CI = 'nvmlComputeInstanceDestroy'
DESTROY_GI = 'nvmlGpuInstanceDestroy'
MUTATING = (SET_MODE, CREATE_GI, CREATE_CI, DESTROY_CI, DESTROY_GI)
ACTION_CALL = {
    ('set_mode', 'gpu'): SET_MODE,
    ('create', 'gpu_instance'): CREATE_GI,
    ('create', 'compute_instance'): CREATE_CI,
    ('destroy', 'compute_instance'): DESTROY_CI,
    ('destroy', 'gpu_instance'): DESTROY_GI,
}
# Errors a mutating call plausibly returns; PENDING is the simulator's "mode change left pending".
ERRORS = ('INSUFFICIENT_RESOURCES', 'IN_USE', 'NO_PERMISSION', 'UNKNOWN', 'GPU_IS_LOST', 'TIMEOUT')
PENDING = 'PENDING'

_CLI = None
_CLI_LOCK = threading.Lock()     # redirect_stdout is process-wide


def migsim_cli_module() -> t.Any:
    """The migsim CLI module (the executable has no .py suffix)."""
    global _CLI  # pylint: disable=global-statement
    if _CLI is None:
        if SIM_DIR not in sys.path:
            sys.path.insert(0, SIM_DIR)
        loader = importlib.machinery.SourceFileLoader('migsim_cli', MIGSIM)
        spec = importlib.util.spec_from_loader('migsim_cli', loader)
        mod = importlib.util.module_from_spec(spec)
        loader.exec_module(mod)
        _CLI = mod
    return _CLI


def sim_core() -> t.Any:
    migsim_cli_module()
    import migsim_core  # pylint: disable=import-outside-toplevel
    return migsim_core


def migsim(*args: t.Any) -> str:
    """Run one migsim verb in-process (same code as the executable); return its stdout."""
    buf = io.StringIO()
    with _CLI_LOCK, contextlib.redirect_stdout(buf):
        rc = migsim_cli_module().main([str(a) for a in args])
    if rc:
        raise RuntimeError('migsim %s: exit %s' % (' '.join(map(str, args)), rc))
    return buf.getvalue()


def migsim_exe(*args: t.Any, env: dict[str, str] | None = None) -> str:
    """Run the real migsim executable (representative cases)."""
    proc = subprocess.run([sys.executable, MIGSIM, *map(str, args)], capture_output=True, text=True, check=False, env=env)
    if proc.returncode != 0:
        raise RuntimeError('migsim %s failed (%d): %s' % (' '.join(map(str, args)), proc.returncode, proc.stderr))
    return proc.stdout


def sim_env(state: str) -> dict[str, str]:
    """The variables ``migsim env STATE`` exports (parsed from its output, as eval would)."""
    out = migsim('env', state)
    env = {}
    for line in out.splitlines():
        m = re.match(r'^export ([A-Za-z_][A-Za-z0-9_]*)=(.*)$', line.strip())
        if m:
            env[m.group(1)] = m.group(2).strip('\'"')
    if 'LD_LIBRARY_PATH' not in env or 'MIGSIM_STATE' not in env:
        raise RuntimeError('unexpected `migsim env` output: %r' % out)
    return env


def show(state: str) -> dict[str, t.Any]:
    return json.loads(migsim('show', state))


def calls(state: str) -> dict[str, int]:
    return json.loads(migsim('calls', state))


def mutating_calls(state: str) -> dict[str, int]:
    c = calls(state)
    return {k: c.get(k, 0) for k in MUTATING if c.get(k, 0)}


def snapshot(state: str) -> str:
    core = sim_core()
    with core.locked_state(state, write=False) as st:
        return json.dumps(st, separators=(',', ':'), sort_keys=True)


def restore(state: str, snap: str) -> None:
    core = sim_core()
    with core.locked_state(state) as st:
        st.clear()
        st.update(json.loads(snap))


def pending_faults(state: str) -> list[dict[str, t.Any]]:
    core = sim_core()
    with core.locked_state(state, write=False) as st:
        return list(st.get('faults', []))


# --- layouts as migsim show reports them ------------------------------------------------------------

def gi_key(gi: dict[str, t.Any]) -> tuple[t.Any, ...]:
    return (gi['profile_id'], gi['placement']['start'], gi['placement']['size'],
            tuple(sorted((c['profile_id'], c['placement']['start'], c['placement']['size']) for c in gi['compute_instances'])))


def signature(gpu: dict[str, t.Any]) -> dict[str, t.Any]:
    """What must be equal for two GPUs to hold the same layout: MIG mode, profiles, placements, CI structure."""
    return {'mig_mode': dict(gpu['mig_mode']), 'instances': sorted(gi_key(g) for g in gpu['gpu_instances'])}


def counts(gpu: dict[str, t.Any]) -> dict[str, t.Any]:
    """Placement-free layout: MIG mode, and per GPU instance profile the sorted list of its CI profile lists."""
    per: dict[str, list] = {}
    for gi in gpu['gpu_instances']:
        per.setdefault(gi['profile'], []).append(sorted(c['profile'] for c in gi['compute_instances']))
    return {'mig_current': gpu['mig_mode']['current'], 'instances': {k: sorted(v) for k, v in sorted(per.items())}}


def holds_from_show(gpu: dict[str, t.Any]) -> list[tuple[t.Any, ...]]:
    """``migsim show`` GPU as (profile, GI id, first slot, last slot, ((CI profile, CI id), ...)), sorted."""
    return sorted(
        (gi['profile'], gi['id'], gi['placement']['start'], gi['placement']['start'] + gi['placement']['size'] - 1,
         tuple(sorted((c['profile'], c['id']) for c in gi['compute_instances'])))
        for gi in gpu['gpu_instances'])


_HOLDS_RE = re.compile(r'GPU (\d+) (?:now holds|has its original layout again): (.*?)\.(?: GPUs already converged|$)', re.S)
_GI_RE = re.compile(r'^(\S+) \(GPU instance (\d+)\) at slots? (\d+)(?:-(\d+))? \[(.*)\]$')
_CI_RE = re.compile(r'^(\S+) \(CI (\d+)\)$')


def parse_holds(msg: str) -> tuple[int, list[tuple[t.Any, ...]]] | None:
    """The layout an ApplyError message claims (GPU index, holds list as holds_from_show); None if absent."""
    m = _HOLDS_RE.search(msg)
    if not m:
        return None
    index, text = int(m.group(1)), m.group(2).strip()
    if text == 'no GPU instances':
        return index, []
    out = []
    for part in text.split('; '):
        g = _GI_RE.match(part.strip())
        if not g:
            raise ValueError('cannot parse GPU instance %r in %r' % (part, msg))
        first = int(g.group(3))
        last = int(g.group(4)) if g.group(4) is not None else first
        cis_text = g.group(5)
        cis = []
        if cis_text != 'no compute instances':
            for c in cis_text.split(', '):
                cm = _CI_RE.match(c.strip())
                if not cm:
                    raise ValueError('cannot parse compute instance %r in %r' % (c, msg))
                cis.append((cm.group(1), int(cm.group(2))))
        out.append((g.group(1), int(g.group(2)), first, last, tuple(sorted(cis))))
    return index, sorted(out)


def plan_calls(plan: list[dict[str, t.Any]]) -> list[tuple[int, str, int, dict[str, t.Any]]]:
    """Every mutating NVML call a plan makes, in execution order: (GPU index, function, k-th call of it, action)."""
    seen: dict[str, int] = {}
    out = []
    for gpu_plan in plan:
        for act in gpu_plan['actions']:
            fn = ACTION_CALL.get((act['action'], act['target']))
            if fn is None:
                continue
            seen[fn] = seen.get(fn, 0) + 1
            out.append((gpu_plan['index'], fn, seen[fn], act))
    return out


def rollback_nth(fn_forward: str, k_forward: int, fn_rollback: str, rollback_calls_before: int,
                 forward_calls_of_rollback_fn: int) -> int:
    """``--nth`` for a second fault that must hit the (rollback_calls_before+1)-th rollback call of fn_rollback.

    The simulator counts a fault down only on calls where no earlier fault of the same function
    fires, so when both faults name one function the forward fault's call is not counted.
    """
    target = forward_calls_of_rollback_fn + rollback_calls_before + 1     # absolute call number
    if fn_rollback == fn_forward and target > k_forward:
        return target - 1
    return target


def gpu_by_index(shown: dict[str, t.Any], index: int) -> dict[str, t.Any]:
    return next(g for g in shown['gpus'] if g['index'] == index)


def layout_entry(spec: dict[str, t.Any], devices: t.Any = 'all') -> dict[str, t.Any]:
    """A corpus layout (``{'mig_enabled':..., 'mig_devices' | 'instances':...}``) as a ``layouts`` entry."""
    entry = {'devices': devices}
    entry.update(spec)
    return entry


def write_json(path: str, data: t.Any) -> None:
    tmp = path + '.tmp'
    with open(tmp, 'w', encoding='utf-8') as f:
        json.dump(data, f)
    os.replace(tmp, path)


def select_points(points: t.Sequence[tuple[t.Any, ...]], seq: int, full: bool) -> list[int]:
    """Indexes of the plan's mutating calls that get a fault.

    All of them when ``full``. Otherwise one call per NVML function of the plan, taking in turn
    (by transition) the first, the last and a middle occurrence, so that over the corpus every
    function is hit at its first call, at its last call and in between.
    """
    if full:
        return list(range(len(points)))
    by_fn: dict[str, list[int]] = {}
    for i, p in enumerate(points):
        by_fn.setdefault(p[1], []).append(i)
    chosen = set()
    for n, fn in enumerate(MUTATING):
        occ = by_fn.get(fn)
        if occ:
            chosen.add((occ[0], occ[-1], occ[len(occ) // 2])[(seq + n) % 3])
    return sorted(chosen)


def errors_for(seq: int, point: int, fn: str, full: bool) -> list[str]:
    """Errors injected at one call of one transition.

    Every error of ERRORS when ``full``. Otherwise every error at the first selected call of
    every fifth transition, and one error elsewhere, rotating through ERRORS so each error is
    used about equally often. A mode change left pending (PENDING) is always tried on
    nvmlDeviceSetMigMode.
    """
    if full or (seq % 5 == 0 and point == 0):
        errs = list(ERRORS)
    else:
        errs = [ERRORS[(seq * 5 + point) % len(ERRORS)]]
    if fn == SET_MODE:
        errs.append(PENDING)
    return errs


UNDO_CALL = {SET_MODE: SET_MODE, CREATE_GI: DESTROY_GI, CREATE_CI: DESTROY_CI, DESTROY_CI: CREATE_CI, DESTROY_GI: CREATE_GI}
ROLLBACK_ERRORS = ('UNKNOWN', 'IN_USE', 'GPU_IS_LOST', 'INSUFFICIENT_RESOURCES')


# The planner bug reported in test_bugs.py::test_partial_compute_instances_in_a_new_gpu_instance_get_legal_placements:
# a run that creates partial compute instances of mixed sizes in a new GPU instance fails this way.
