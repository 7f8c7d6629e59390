# SPDX-License-Identifier: GPL-3.0-or-later
"""The migsim CLI verbs."""
from __future__ import annotations

import json
import os
import re
import subprocess
import sys

from conftest import MIGSIM, SIM_DIR, migsim

EXPECTED_MODELS = {'a100-40gb', 'a100-80gb', 'a30-24gb', 'h100-80gb', 'h100-94gb', 'h200-141gb', 'b200', 'rtx-pro-6000', 'l40s'}


def test_models_and_model_files():
    names = set(migsim('models').stdout.split())
    assert EXPECTED_MODELS <= names
    for name in names:
        with open(os.path.join(SIM_DIR, 'models', name + '.json'), encoding='utf-8') as f:
            model = json.load(f)
        assert model['key'] == name and model['confidence'] and model['sources']
        assert 'inferred' in model


def test_init_show_deterministic(tmp_path):
    a, b = str(tmp_path / 'a.json'), str(tmp_path / 'b.json')
    migsim('init', a, '--gpus', 'h100-80gb:2,a100-40gb:1', '--mig', 'enabled')
    migsim('init', b, '--gpus', 'h100-80gb:2,a100-40gb:1', '--mig', 'enabled')
    sa = json.loads(migsim('show', a).stdout)
    sb = json.loads(migsim('show', b).stdout)
    assert [g['uuid'] for g in sa['gpus']] == [g['uuid'] for g in sb['gpus']]
    assert len({g['uuid'] for g in sa['gpus']}) == 3
    g0 = sa['gpus'][0]
    assert g0['index'] == 0 and g0['model'] == 'h100-80gb' and g0['pci_bus_id'] == '00000000:10:00.0'
    assert g0['mig_mode'] == {'current': 'enabled', 'pending': 'enabled'}
    assert g0['gpu_instances'] == [] and g0['processes'] == []
    assert sa['driver'] == '580.159.04'
    assert migsim('init', a, '--gpus', 'nosuch:1', check=False).returncode != 0


def test_env_builds_library(tmp_path):
    st = str(tmp_path / 's.json')
    migsim('init', st, '--gpus', 'h100-80gb:1')
    lines = migsim('env', st).stdout.splitlines()
    assert lines[0].startswith('export LD_LIBRARY_PATH=' + os.path.join(SIM_DIR, 'build'))
    assert lines[1] == 'export MIGSIM_STATE=' + st
    assert os.path.exists(os.path.join(SIM_DIR, 'build', 'libnvidia-ml.so.1'))
    assert os.access(MIGSIM, os.X_OK)


def test_show_instances_and_processes(make_sim):
    sim = make_sim('h100-80gb:1', mig='enabled')
    sim.py('''
        gi = n.nvmlDeviceCreateGpuInstance(h, 9)
        n.nvmlGpuInstanceCreateComputeInstance(gi, 2)
        out(0)
    ''')
    gpu = sim.show()['gpus'][0]
    gi = gpu['gpu_instances'][0]
    assert gi['profile'] == '3g.40gb' and gi['profile_id'] == 9 and gi['placement'] == {'start': 4, 'size': 4} and gi['id'] == 2
    ci = gi['compute_instances'][0]
    assert ci['id'] == 0 and ci['profile'] == '3g.40gb' and ci['placement'] == {'start': 0, 'size': 3}
    assert re.match(r'^MIG-[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$', ci['mig_uuid'])
    sim.cli('process', 'add', '--gpu', '0', '--gi', '2', '--ci', '0', '--pid', '123')
    assert sim.show()['gpus'][0]['processes'] == [{'pid': 123, 'gi': 2, 'ci': 0}]
    assert sim.cli('process', 'add', '--gpu', '0', '--gi', '9', '--pid', '1', check=False).returncode != 0
    sim.cli('process', 'clear')
    assert sim.show()['gpus'][0]['processes'] == []


def test_fault_validation(make_sim):
    sim = make_sim('h100-80gb:1')
    assert sim.cli('fault', 'add', '--call', 'nvmlInit_v2', '--error', 'NOPE', check=False).returncode != 0
    assert sim.cli('fault', 'add', '--call', 'nvmlDeviceGetCount_v2', '--error', 'PENDING', check=False).returncode != 0
    sim.cli('fault', 'add', '--call', 'nvmlDeviceGetCount_v2', '--error', 'UNKNOWN')
    assert sim.py('out(err(n.nvmlDeviceGetCount))') == 'ERR 999'
    assert sim.py('out(err(n.nvmlDeviceGetCount))') == 1


def test_calls_counts(make_sim):
    sim = make_sim('h100-80gb:1')
    sim.py('out([n.nvmlDeviceGetMigMode(h) for _ in range(3)])')
    calls = sim.calls()
    assert calls['nvmlDeviceGetMigMode'] == 3 and calls['nvmlInitWithFlags'] == 1 and calls['nvmlDeviceGetHandleByIndex_v2'] == 1
    sim.cli('calls', '--clear')
    assert sim.calls() == {}


def test_reset_refused_when_not_resettable(make_sim):
    sim = make_sim('a100-40gb:1')
    sim.cli('set', '--gpu', '0', '--no-reset')
    assert sim.cli('reset', '--gpu', '0', check=False).returncode != 0
    sim.cli('reboot')


def test_unknown_symbol_is_function_not_found(make_sim):
    sim = make_sim('h100-80gb:1')
    assert sim.py('out(err(n.nvmlDeviceGetPowerUsage, h))') == 'ERR 13'


def test_call_latency(make_sim):
    """One simulated call stays near a millisecond (benchmarks count calls)."""
    sim = make_sim('h100-80gb:8', mig='enabled')
    dt = sim.py('''
        import time
        t = time.perf_counter()
        for _ in range(300):
            n.nvmlDeviceGetMigMode(h)
        out((time.perf_counter() - t) / 300)
    ''')
    assert dt < 0.002


def test_cli_runs_with_system_python(tmp_path):
    if not os.path.exists('/usr/bin/python3'):
        raise AssertionError('/usr/bin/python3 expected on the CI image')
    st = str(tmp_path / 's.json')
    out = subprocess.run(['/usr/bin/python3', MIGSIM, 'init', st, '--gpus', 'a30-24gb:1'], capture_output=True, text=True, check=False)
    assert out.returncode == 0, out.stderr
    assert sys.executable
