# Copyright (c) 2026 gpuops.mig contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Part 5: reboots. After ``migsim reboot`` the boot entry script (roles/mig/files/gpuops-mig-apply)
restores every layout of the corpus.

For each layout: converge to it (as the role does), record it the way the role does
({"layouts": [...]}, or {"config_file", "config_name"}), reboot the simulated host, check what
the reboot did (Hopper and Blackwell lose MIG mode, Ampere keeps it; instances are gone), run
the script, and compare with the layout before the reboot: MIG mode, profiles, placements, CI
structure. The script also rewrites the device map (checked against migsim show; root-owned,
0644, written by rename so a planted symlink is replaced, not followed).
"""

from __future__ import annotations

import contextlib
import importlib.machinery
import importlib.util
import io
import json
import os
import stat
import subprocess
import sys
import typing as t

import pytest

import corpus
import relib
import report
from conftest import converge_in_process

AMPERE = {'a100-40gb', 'a30-24gb'}          # MIG mode survives a reboot
LAYOUTS = corpus.all_layouts()
# Run the script as a real subprocess for one layout per model (and the config-file cases); in-process otherwise.
SUBPROCESS = {(m, 'all-1g') for m in corpus.LAYOUTS}
FIG = report.FIGURES.setdefault('reboot', {'layouts': 0, 'restored': 0, 'subprocess': 0, 'mode_lost': 0, 'mode_kept': 0})


@pytest.fixture(scope='module')
def lib_dir() -> str:
    """The directory holding ansible_collections/gpuops/mig (what the role installs as mig_boot_lib_dir)."""
    import ansible_collections.gpuops.mig.plugins.module_utils._converge as conv  # pylint: disable=import-outside-toplevel
    path = os.path.dirname(conv.__file__)
    for _level in range(5):
        path = os.path.dirname(path)
    assert os.path.isdir(os.path.join(path, 'ansible_collections', 'gpuops', 'mig', 'plugins', 'module_utils'))
    return path


@pytest.fixture(scope='module')
def script() -> t.Any:
    assert os.path.isfile(relib.BOOT_SCRIPT), 'roles/mig/files/gpuops-mig-apply is missing'
    loader = importlib.machinery.SourceFileLoader('gpuops_mig_apply', relib.BOOT_SCRIPT)
    spec = importlib.util.spec_from_loader('gpuops_mig_apply', loader)
    mod = importlib.util.module_from_spec(spec)
    loader.exec_module(mod)
    return mod


def run_script(script: t.Any, argv: list[str], state: str, as_subprocess: bool) -> tuple[int, str]:
    if as_subprocess:
        env = dict(os.environ)
        env.update(relib.sim_env(state))
        proc = subprocess.run([sys.executable, relib.BOOT_SCRIPT, *argv], capture_output=True, text=True, env=env,
                              timeout=120, check=False)
        return proc.returncode, proc.stdout + proc.stderr
    os.environ['MIGSIM_STATE'] = state
    buf = io.StringIO()
    saved = list(sys.path)
    try:
        with contextlib.redirect_stdout(buf), contextlib.redirect_stderr(buf):
            rc = script.main(argv)
    finally:
        sys.path[:] = saved
    return rc, buf.getvalue()


def check_device_map(path: str, gpu: dict[str, t.Any]) -> None:
    st = os.lstat(path)
    assert stat.S_ISREG(st.st_mode), 'device map is not a regular file'
    assert st.st_uid == os.geteuid() and stat.S_IMODE(st.st_mode) == 0o644, oct(st.st_mode)
    with open(path, encoding='utf-8') as f:
        data = json.load(f)
    want = sorted(c['mig_uuid'] for gi in gpu['gpu_instances'] for c in gi['compute_instances'])
    assert sorted(d['mig_uuid'] for d in data['mig_devices']) == want
    assert [g['uuid'] for g in data['gpus']] == [gpu['uuid']]


def reboot_and_restore(tmp_path: t.Any, script: t.Any, lib_dir: str, model: str, record: dict[str, t.Any],
                       apply_kwargs: dict[str, t.Any], as_subprocess: bool) -> None:
    state = str(tmp_path / 'state.json')
    relib.migsim('init', state, '--gpus', '%s:1' % model)
    FIG['layouts'] += 1
    res = converge_in_process(state, **apply_kwargs)
    assert res['ok'], res.get('msg')
    before = relib.show(state)['gpus'][0]
    layout_file = tmp_path / 'mig-layout.json'
    layout_file.write_text(json.dumps(record, indent=2) + '\n')
    device_map = tmp_path / 'mig-devices.json'
    bait = tmp_path / 'bait'
    bait.write_text('not yours\n')
    os.symlink(str(bait), str(device_map))       # a planted symlink must be replaced, not written through
    if as_subprocess:
        relib.migsim_exe('reboot', state)
    else:
        relib.migsim('reboot', state)
    rebooted = relib.show(state)['gpus'][0]
    assert rebooted['gpu_instances'] == [] and rebooted['processes'] == []
    if model in AMPERE:
        assert rebooted['mig_mode'] == before['mig_mode'], 'Ampere keeps MIG mode over a reboot'
        FIG['mode_kept'] += before['mig_mode']['current'] == 'enabled'
    else:
        assert rebooted['mig_mode'] == {'current': 'disabled', 'pending': 'disabled'}, 'Hopper and later lose MIG mode'
        FIG['mode_lost'] += before['mig_mode']['current'] == 'enabled'
    rc, out = run_script(script, ['--lib-dir', lib_dir, '--layout-file', str(layout_file), '--device-map', str(device_map),
                                  '--lock-file', str(tmp_path / 'lock'), '--lock-timeout', '30'], state, as_subprocess)
    FIG['subprocess'] += as_subprocess
    assert rc == 0, out
    assert 'Traceback' not in out, out
    after = relib.show(state)['gpus'][0]
    assert relib.signature(after) == relib.signature(before), (relib.signature(after), relib.signature(before), out)
    assert bait.read_text() == 'not yours\n'
    check_device_map(str(device_map), after)
    # Idempotent: a second run changes nothing.
    rc2, out2 = run_script(script, ['--lib-dir', lib_dir, '--layout-file', str(layout_file), '--device-map', str(device_map),
                                    '--lock-file', str(tmp_path / 'lock'), '--check'], state, False)
    assert rc2 == 0 and 'no change needed' in out2, out2
    FIG['restored'] += 1


@pytest.mark.parametrize('model,name', [(m, n) for m, n, _spec in LAYOUTS], ids=['%s:%s' % (m, n) for m, n, _spec in LAYOUTS])
def test_reboot_restores_layout(tmp_path: t.Any, script: t.Any, lib_dir: str, model: str, name: str) -> None:
    layouts = corpus.layouts_arg([corpus.LAYOUTS[model][name]])
    reboot_and_restore(tmp_path, script, lib_dir, model, {'layouts': layouts}, {'layouts': layouts}, (model, name) in SUBPROCESS)


CONFIG = """version: v1
mig-configs:
  all-disabled:
    - devices: all
      mig-enabled: false
  balanced:
    - devices: all
      device-filter: ["0x233010DE"]
      mig-enabled: true
      mig-devices: {"1g.10gb": 2, "2g.20gb": 1, "3g.40gb": 1}
    - devices: all
      device-filter: ["0x20B010DE"]
      mig-enabled: true
      mig-devices: {"1g.5gb": 2, "2g.10gb": 1, "3g.20gb": 1}
"""


@pytest.mark.parametrize('model', ['h100-80gb', 'a100-40gb'])
def test_reboot_restores_config_file_layout(tmp_path: t.Any, script: t.Any, lib_dir: str, model: str) -> None:
    cfg = tmp_path / 'mig-parted-config.yaml'
    cfg.write_text(CONFIG)
    reboot_and_restore(tmp_path, script, lib_dir, model, {'config_file': str(cfg), 'config_name': 'balanced'},
                       {'config': CONFIG, 'config_name': 'balanced'}, True)


def test_ampere_mode_change_pending_after_boot_exits_3(tmp_path: t.Any, script: t.Any, lib_dir: str) -> None:
    """An A100 that cannot be reset (passthrough VM) with MIG off: the script reports the pending change, exit 3."""
    state = str(tmp_path / 'state.json')
    relib.migsim('init', state, '--gpus', 'a100-40gb:1')
    relib.migsim('set', state, '--gpu', 0, '--no-reset')
    layout_file = tmp_path / 'mig-layout.json'
    layout_file.write_text(json.dumps({'layouts': corpus.layouts_arg([corpus.LAYOUTS['a100-40gb']['all-1g']])}))
    rc, out = run_script(script, ['--lib-dir', lib_dir, '--layout-file', str(layout_file), '--device-map',
                                  str(tmp_path / 'map.json'), '--lock-file', str(tmp_path / 'lock')], state, False)
    assert rc == 3, out
    assert 'reset' in out and 'GPU(s) 0' in out
    gpu = relib.show(state)['gpus'][0]
    assert gpu['mig_mode'] == {'current': 'disabled', 'pending': 'enabled'} and gpu['gpu_instances'] == []
    # After the reboot the change is current (Ampere keeps the pending mode), and the script completes the layout.
    relib.migsim('reboot', state)
    rc, out = run_script(script, ['--lib-dir', lib_dir, '--layout-file', str(layout_file), '--device-map',
                                  str(tmp_path / 'map.json'), '--lock-file', str(tmp_path / 'lock')], state, False)
    assert rc == 0, out
    assert relib.counts(relib.show(state)['gpus'][0])['instances'] == {'1g.5gb': [['1g.5gb']] * 7}
