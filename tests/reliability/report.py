# Copyright (c) 2026 gpuops.mig contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Collects the suite's figures and writes docs/reliability.md at the end of a run."""

from __future__ import annotations

import datetime
import os
import platform
import subprocess
import sys
import typing as t

FIGURES: dict[str, t.Any] = {}

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))


def _cpu() -> str:
    try:
        with open('/proc/cpuinfo', encoding='utf-8') as f:
            for line in f:
                if line.startswith('model name'):
                    return line.split(':', 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or 'unknown CPU'


def _versions() -> str:
    parts = ['Python %s' % platform.python_version()]
    try:
        from ansible.release import __version__ as ansible_core  # pylint: disable=import-outside-toplevel
        parts.append('ansible-core %s' % ansible_core)
    except ImportError:
        pass
    try:
        from importlib.metadata import version  # pylint: disable=import-outside-toplevel
        parts.append('nvidia-ml-py %s' % version('nvidia-ml-py'))
        parts.append('hypothesis %s' % version('hypothesis'))
    except Exception:  # pylint: disable=broad-except
        pass
    return ', '.join(parts)


def _commit() -> str:
    try:
        head = subprocess.run(['git', '-C', ROOT, 'rev-parse', '--short', 'HEAD'], capture_output=True, text=True,
                              check=False).stdout.strip()
        dirty = subprocess.run(['git', '-C', ROOT, 'status', '--porcelain', '--untracked-files=no'], capture_output=True,
                               text=True, check=False).stdout.strip()
        return head + (' with uncommitted changes' if dirty else '') if head else 'unknown'
    except OSError:
        return 'unknown'


def _g(section: str, key: str, default: t.Any = 'not run') -> t.Any:
    return FIGURES.get(section, {}).get(key, default)


def _fmt(value: t.Any) -> str:
    if isinstance(value, dict):
        return ', '.join('%s %s' % (k, v) for k, v in value.items()) or 'none'
    if isinstance(value, (list, tuple)):
        return ', '.join(map(str, value)) or 'none'
    return str(value)


def _rows() -> list[tuple[str, str, str]]:
    rows = []
    f = 'faults'
    rows += [
        ('1 Fault injection', 'transitions (models)', '%s (%s); %s on 2-GPU hosts; %s with a process on a kept instance'
         % (_g(f, 'transitions'), _fmt(_g(f, 'models', [])), _g(f, 'two_gpu_transitions'), _g(f, 'with_process'))),
        ('', 'mutating calls in the plans / calls given a fault', '%s / %s' % (_g(f, 'injection_points'), _g(f, 'points_tried'))),
        ('', 'faults injected', '%s (%s single-fault runs%s; full product would be %s runs)'
         % (_g(f, 'faults_injected'), _g(f, 'single_fault_runs'), ', sampled' if _g(f, 'sampled', True) else '',
            _g(f, 'full_product'))),
        ('', 'faults by call', _fmt(_g(f, 'by_call', {}))),
        ('', 'faults by error', _fmt(_g(f, 'by_error', {}))),
        ('', 'states verified against migsim show', str(_g(f, 'states_verified'))),
        ('', 'rollbacks complete', str(_g(f, 'rollback_complete'))),
        ('', 'rollbacks incomplete (single fault)',
         '%s%s' % (_g(f, 'rollback_incomplete'),
                   ' (%s)' % _fmt(_g(f, 'incomplete_reasons', {})) if _g(f, 'rollback_incomplete', 0) else '')),
        ('', 'pending mode changes reported (reset_required)', str(_g(f, 'pending_reported'))),
        ('', 'fault on the rollback itself: runs / reported incomplete / rerun reached B',
         '%s / %s / %s' % (_g(f, 'rollback_fault_runs'), _g(f, 'rollback_fault_incomplete_reported'),
                           _g(f, 'rollback_fault_reruns_ok'))),
        ('', 'runs checked for a process on a kept instance (still running, instance intact)', str(_g(f, 'runs_with_process'))),
        ('', 'tracebacks', str(_g(f, 'tracebacks'))),
    ]
    b = 'bad_input'
    rows += [
        ('2 Bad input', 'cases tried', '%s (%s)' % (_g(b, 'cases'), _fmt(_g(b, 'by_test', {})))),
        ('', 'tracebacks', str(_g(b, 'tracebacks'))),
        ('', 'errors without a field in the message', str(_g(b, 'no_field'))),
        ('', 'mutating NVML calls', str(_g(b, 'mutating_calls'))),
        ('', 'module runs (ansible-playbook): failed / named the field / traceback',
         '%s / %s / %s' % (_g(b, 'module_failed'), _g(b, 'module_field'), _g(b, 'module_tracebacks'))),
    ]
    c = 'concurrency'
    rows += [
        ('3 Concurrency', 'concurrent module runs (rounds x runs)', _fmt(_g(c, 'rounds', {}))),
        ('', 'final state equal to one requested layout / mixed', '%s / %s' % (_g(c, 'final_ok'), _g(c, 'mixed'))),
        ('', 'next run after a SIGKILLed lock holder', '%s s' % _g(c, 'after_sigkill_s')),
    ]
    k = 'crash'
    rows += [
        ('4 Crash consistency', 'transitions / SIGKILLs (one after each mutating call)',
         '%s / %s' % (_g(k, 'transitions'), _g(k, 'kills'))),
        ('', 'reruns that reached the layout / leaked or duplicated instances',
         '%s / %s' % (_g(k, 'converged'), _g(k, 'leaks'))),
        ('', 'longest wait for the dead holder\'s lock', '%s s' % _g(k, 'max_lock_wait_s')),
    ]
    r = 'reboot'
    rows += [
        ('5 Reboots', 'layouts restored by gpuops-mig-apply after migsim reboot',
         '%s of %s (%s through the script as a subprocess)'
         % (_g(r, 'restored'), _g(r, 'layouts'), _g(r, 'subprocess'))),
        ('', 'Hopper+ (mode lost) / Ampere (mode kept) cases', '%s / %s' % (_g(r, 'mode_lost'), _g(r, 'mode_kept'))),
    ]
    s = 'security'
    rows += [
        ('6 Security', 'files scanned for shell use / findings', '%s / %s' % (_g(s, 'files_scanned'), _g(s, 'shell_findings'))),
        ('', 'role tasks writing files checked (owner root, no group/other write)',
         '%s / %s findings' % (_g(s, 'file_tasks'), _g(s, 'mode_findings'))),
        ('', 'non-root run: failed with a permission message, no traceback',
         {True: 'yes', False: 'NO'}.get(_g(s, 'non_root'), str(_g(s, 'non_root')))),
        ('', 'oversized inputs refused', str(_g(s, 'oversized'))),
    ]
    return rows


def write(path: str, figures: dict[str, t.Any], stats: dict[str, int], seconds: float) -> None:
    now = datetime.datetime.now(datetime.timezone.utc).strftime('%Y-%m-%d %H:%M UTC')
    lines = [
        '# Reliability',
        '',
        '<!-- Generated by tests/reliability/run.sh; edit tests/reliability/report.py, not this file. -->',
        '',
        'Figures of the last run of `tests/reliability/run.sh` (`make reliability`) against the NVML simulator',
        '(`tests/nvml_sim`). Each figure comes with a test that fails when its promise breaks; what is tested and',
        'why is in [security.md](security.md) and in the docstrings of `tests/reliability/test_*.py`.',
        '',
        '* Date: %s' % now,
        '* Machine: %s, %s, %d CPUs (shared)' % (platform.system() + ' ' + platform.release(), _cpu(), os.cpu_count() or 0),
        '* Software: %s' % _versions(),
        '* Commit: %s' % _commit(),
        '* Result: %d passed, %d failed%s%s in %.0f s' % (
            stats.get('passed', 0), stats.get('failed', 0) + stats.get('error', 0),
            ', %d skipped' % stats['skipped'] if stats.get('skipped') else '',
            ', %d xfailed (known bug below)' % stats['xfailed'] if stats.get('xfailed') else '', seconds),
        '',
        '| Part | Figure | Value |',
        '|---|---|---|',
    ]
    for part, name, value in _rows():
        lines.append('| %s | %s | %s |' % (part, name, value.replace('|', '\\|')))
    lines += ['', '## Sampling', '',
              'Per transition, fault injection picks one call of each NVML function in the plan (its first, last',
              'or a middle occurrence, in turn) and injects one error there, rotating through the six errors; every',
              'fifth transition gets all six at its first picked call; a pending mode change is tried at every',
              'picked `nvmlDeviceSetMigMode`. Rollback faults: two picked calls in every eighth transition and all',
              '2-GPU ones. `RELIABILITY_FULL=1 tests/reliability/run.sh` injects every error at every call.',
              '']
    lines += ['## Bugs found by this suite', '']
    lines += ['* %s' % b for b in BUGS]
    lines += ['', '## Not covered', '']
    lines += ['* %s' % n for n in NOT_COVERED]
    lines.append('')
    tmp = path + '.tmp'
    with open(tmp, 'w', encoding='utf-8') as f:
        f.write('\n'.join(lines))
    os.replace(tmp, path)
    sys.stderr.write('\nreliability: wrote %s\n' % path)


BUGS = [
    'Fixed, `plugins/module_utils/_apply.py` `_fail()`: a rollback whose MIG mode restore stayed pending (the GPU '
    'kept MIG enabled) was reported as "GPU n has its original layout again" because only instances were compared; '
    'MIG mode is compared now and reported. Test: `test_bugs.py::test_rollback_that_leaves_mig_mode_pending_is_not_called_complete`.',
    'Fixed, `_apply.py` `_rollback()`: when recreating a destroyed GPU instance failed, its compute instances were '
    'recreated "in" its old GPU instance ID, which the driver may have given to another instance meanwhile (compute '
    'instances created in the wrong GPU instance); they are skipped now (the failure is already reported). '
    'Test: `test_bugs.py::test_rollback_does_not_put_compute_instances_into_a_reused_gpu_instance_id`.',
    'Fixed, `_apply.py` `describe_action()`: messages said "creating compute instance X in None at slots ..." for '
    'compute instances of a new GPU instance. Test: `test_bugs.py::test_message_names_the_gpu_instance_of_a_compute_instance`.',
    'Fixed, `plugins/module_utils/_converge.py` `converge()`: planner errors without a field (instance caps, placement '
    'conflicts) gave a ConvergeError with `field=None` and no field in the message; the layout entry '
    '(`layouts[i]`, `config_file: mig-configs.NAME[i]`) is used now. Test: `test_bad_input.py` (every message names a field).',
    'Fixed, `_converge.py` `converge()`: when reading a GPU back after its plan was applied failed, NvmlCallError '
    'escaped converge(): mig_layout failed with "NVML call failed" and changed=false although the GPU had changed, and '
    'later GPUs were silently skipped. It is a ConvergeError now with changed=true and the GPUs converged so far. '
    'Test: `test_bugs.py::test_failed_read_after_a_successful_plan_reports_changed`.',
    'Fixed, `plugins/module_utils/_planner.py` `ci_options()`: without NVML\'s CI placements (no GPU instance of the '
    'profile exists yet) every contiguous start was assumed legal; NVML accepts only starts aligned to the next power '
    'of two >= the CI size, so 3c+2c+1c in a new 7g.80gb failed with INVALID_ARGUMENT. '
    'Test: `test_bugs.py::test_partial_compute_instances_in_a_new_gpu_instance_get_legal_placements`.',
]
NOT_COVERED = [
    'Faults on read calls (GetGpuInstances, GetInfo, ...) and faults that are not one-shot (a GPU that stays lost); '
    'only the five mutating calls are injected.',
    'A mutating call that fails but took effect anyway (e.g. TIMEOUT after the driver created the instance): the '
    'simulator\'s faults never apply the call. The executor would report the extra instance ("layout differs").',
    'Real hardware: everything here runs against tests/nvml_sim, whose CI placement rules and GPU instance IDs are '
    'partly inferred (tests/nvml_sim/README.md, "Known gaps").',
    'The roles themselves are not run here (tests/roles); role task modes are checked statically.',
]
