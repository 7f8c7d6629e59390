# Copyright (c) 2026 gpuops.mig contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Fixtures of the reliability suite. Run it with tests/reliability/run.sh (it sets the environment)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import time
import traceback
import typing as t

import pytest

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)

import relib  # noqa: E402  pylint: disable=wrong-import-position
import report  # noqa: E402  pylint: disable=wrong-import-position

SIM_BUILD = os.path.join(relib.SIM_DIR, 'build')


def _environment_problem() -> str | None:
    if SIM_BUILD not in os.environ.get('LD_LIBRARY_PATH', '').split(':'):
        return ('LD_LIBRARY_PATH does not hold %s: pynvml would not load the simulator. '
                'Run tests/reliability/run.sh, which exports `migsim env` before Python starts.' % SIM_BUILD)
    try:
        import ansible_collections.gpuops.mig.plugins.module_utils._converge  # noqa: F401  pylint: disable=unused-import,import-outside-toplevel
    except ImportError as exc:
        return 'the collection is not importable as ansible_collections.gpuops.mig (%s); run tests/reliability/run.sh' % exc
    return None


def pytest_configure(config: pytest.Config) -> None:
    problem = _environment_problem()
    if problem:
        raise pytest.UsageError(problem)
    config.reliability_start = time.time()  # type: ignore[attr-defined]


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    out = os.environ.get('RELIABILITY_REPORT')
    if not out:
        return
    start = getattr(session.config, 'reliability_start', time.time())
    tr = session.config.pluginmanager.get_plugin('terminalreporter')
    stats = {k: len(v) for k, v in (tr.stats.items() if tr else []) if k in ('passed', 'failed', 'error', 'skipped', 'xfailed')}
    report.write(out, report.FIGURES, stats, time.time() - start)


@pytest.fixture(scope='session')
def work_dir() -> t.Iterator[str]:
    base = os.environ.get('RELIABILITY_WORK')
    if base:
        os.makedirs(base, exist_ok=True)
        yield tempfile.mkdtemp(prefix='pytest.', dir=base)
    else:
        with tempfile.TemporaryDirectory(prefix='gpuops-reliability.') as d:
            yield d


@pytest.fixture
def sim(tmp_path: t.Any, monkeypatch: pytest.MonkeyPatch) -> t.Callable[..., str]:
    """sim('h100-80gb:1', *init_args) -> a fresh state file, made current for in-process NVML calls."""
    def make(gpus: str, *args: str, name: str = 'state.json') -> str:
        state = str(tmp_path / name)
        relib.migsim('init', state, '--gpus', gpus, *args)
        monkeypatch.setenv('MIGSIM_STATE', state)
        return state
    return make


def converge_in_process(state: str, layouts: t.Any = None, check_mode: bool = False, **kwargs: t.Any) -> dict[str, t.Any]:
    """converge() with the real NvmlAdapter against ``state``; returns an observation dict, never raises."""
    from ansible_collections.gpuops.mig.plugins.module_utils._converge import ConvergeError, converge  # pylint: disable=import-outside-toplevel
    from ansible_collections.gpuops.mig.plugins.module_utils._nvml import NvmlAdapter  # pylint: disable=import-outside-toplevel
    os.environ['MIGSIM_STATE'] = state
    out: dict[str, t.Any] = {}
    try:
        with NvmlAdapter() as nvml:
            res = converge(nvml, layouts=layouts, check_mode=check_mode, **kwargs)
        out.update(ok=True, type=None, result=res)
    except ConvergeError as exc:
        out.update(ok=False, type='ConvergeError', msg=str(exc), field=exc.field, result=exc.result)
    except Exception as exc:  # pylint: disable=broad-except
        out.update(ok=False, type=type(exc).__name__, msg=str(exc), traceback=traceback.format_exc())
    return out


@pytest.fixture
def converge_run() -> t.Callable[..., dict[str, t.Any]]:
    return converge_in_process


def run_workers(work_dir: str, mode: str, chunks: list[list[dict[str, t.Any]]], extra: dict[str, t.Any],
                timeout: float = 1800) -> list[dict[str, t.Any]]:
    """Run worker.py on each chunk in parallel, each with its own simulator state; return all records."""
    procs = []
    for n, chunk in enumerate(chunks):
        d = tempfile.mkdtemp(prefix='%s-%d.' % (mode, n), dir=work_dir)
        state = os.path.join(d, 'state.json')
        relib.migsim('init', state, '--gpus', 'h100-80gb:1')
        env = dict(os.environ)
        env.update(relib.sim_env(state))
        task = dict(extra, mode=mode, transitions=chunk)
        if mode == 'crash':
            task['lock_file'] = os.path.join(d, 'host.lock')
        with open(os.path.join(d, 'task.json'), 'w', encoding='utf-8') as f:
            json.dump(task, f)
        out = os.path.join(d, 'out.json')
        log = open(os.path.join(d, 'worker.log'), 'w', encoding='utf-8')  # pylint: disable=consider-using-with
        procs.append((subprocess.Popen([sys.executable, os.path.join(HERE, 'worker.py'), os.path.join(d, 'task.json'), out],
                                       env=env, stdout=log, stderr=subprocess.STDOUT), out, log, d))
    records = []
    deadline = time.monotonic() + timeout
    for proc, out, log, d in procs:
        try:
            rc = proc.wait(timeout=max(1.0, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            proc.kill()
            rc = proc.wait()
        log.close()
        with open(os.path.join(d, 'worker.log'), encoding='utf-8') as f:
            text = f.read()
        if rc != 0:
            raise AssertionError('worker in %s exited %s:\n%s' % (d, rc, text[-4000:]))
        with open(out, encoding='utf-8') as f:
            records.extend(json.load(f))
    return records


def split(items: list[t.Any], n: int, weight: t.Callable[[t.Any], float]) -> list[list[t.Any]]:
    """Greedy split of items into n chunks of about equal total weight, keeping each chunk in input order."""
    buckets: list[list[t.Any]] = [[] for _chunk in range(n)]
    loads = [0.0] * n
    for item in sorted(items, key=weight, reverse=True):
        i = loads.index(min(loads))
        buckets[i].append(item)
        loads[i] += weight(item)
    order = {id(x): k for k, x in enumerate(items)}
    return [sorted(b, key=lambda x: order[id(x)]) for b in buckets if b]


def workers() -> int:
    return max(1, int(os.environ.get('RELIABILITY_WORKERS', '2')))


def module_proc(args: dict[str, t.Any], state: str, tmp_dir: str, check_mode: bool = False) -> tuple[subprocess.Popen, str]:
    """Start gpuops.mig.mig_layout as Ansible runs a module (args file, JSON on stdout), on the simulator."""
    path = os.path.join(tmp_dir, 'args-%d.json' % time.monotonic_ns())
    with open(path, 'w', encoding='utf-8') as f:
        json.dump({'ANSIBLE_MODULE_ARGS': dict(args, _ansible_check_mode=check_mode)}, f)
    env = dict(os.environ)
    env.update(relib.sim_env(state))
    proc = subprocess.Popen([sys.executable, '-m', 'ansible_collections.gpuops.mig.plugins.modules.mig_layout', path],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    return proc, path


def module_result(proc: subprocess.Popen, timeout: float = 300) -> dict[str, t.Any]:
    out, err = proc.communicate(timeout=timeout)
    start = out.find('{')
    try:
        res = json.loads(out[start:]) if start >= 0 else {}
    except ValueError:
        res = {}
    res['_rc'] = proc.returncode
    res['_raw'] = out + err
    return res


def run_module(args: dict[str, t.Any], state: str, tmp_dir: str, check_mode: bool = False, timeout: float = 300) -> dict[str, t.Any]:
    proc = module_proc(args, state, tmp_dir, check_mode)[0]
    return module_result(proc, timeout)


def run_playbook(tasks: list[dict[str, t.Any]], state: str, tmp_path: t.Any, extra_env: dict[str, str] | None = None,
                 timeout: float = 300) -> dict[str, t.Any]:
    """Run one play on localhost (local connection) with the simulator's environment; results by task name."""
    import yaml  # pylint: disable=import-outside-toplevel
    play = [{'name': 'reliability', 'hosts': 'localhost', 'gather_facts': False, 'connection': 'local',
             'environment': relib.sim_env(state), 'tasks': tasks}]
    path = os.path.join(str(tmp_path), 'play-%d.yml' % time.monotonic_ns())
    with open(path, 'w', encoding='utf-8') as f:
        yaml.safe_dump(play, f)
    env = dict(os.environ, ANSIBLE_STDOUT_CALLBACK='ansible.builtin.json', ANSIBLE_LOAD_CALLBACK_PLUGINS='1')
    env.update(extra_env or {})
    proc = subprocess.run(['ansible-playbook', '-i', 'localhost,', path], capture_output=True, text=True, env=env,
                          timeout=timeout, check=False)
    raw = proc.stdout + proc.stderr
    start = proc.stdout.find('{')
    try:
        data = json.loads(proc.stdout[start:])
    except ValueError as exc:
        raise AssertionError('ansible-playbook output is not JSON (rc %d): %s\n%s' % (proc.returncode, exc, raw[-4000:]))
    results = {}
    for p in data['plays']:
        for tk in p['tasks']:
            results[tk['task']['name']] = tk['hosts'].get('localhost', {})
    return {'rc': proc.returncode, 'results': results, 'raw': raw, 'stats': data.get('stats', {})}
