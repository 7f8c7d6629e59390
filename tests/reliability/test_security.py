# Copyright (c) 2026 gpuops.mig contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Part 6: security checks. See docs/security.md for the threats each test answers.

* No shell anywhere: Python (AST) in plugins/, roles/ (incl. the boot script), playbooks/,
  tests/nvml_sim and this suite uses no shell=True, os.system/os.popen or string commands;
  YAML in roles/ and playbooks/ uses no shell/raw/script module and runs commands as argv only.
  The checkers are tested on planted bad snippets first, so they can fail.
* Files the roles install are root:root and not group/other-writable (static check of every
  file-writing task's owner/group/mode).
* The lock refuses symlinks and foreign-owned files, through the module (the unit tests in
  tests/unit/plugins/module_utils/test_lock.py cover _lock itself).
* A non-root run fails with a permission message and no traceback, and changes nothing.
* Input sizes are bounded (the module refuses config files over 1 MiB; spec bounds are tested
  in test_bad_input.py).
"""

from __future__ import annotations

import ast
import os
import re
import typing as t

import pytest
import yaml

import relib
import report
from conftest import run_module

ROOT = relib.ROOT
SCAN_DIRS = ['plugins', 'roles', 'playbooks', 'tests/nvml_sim', 'tests/reliability']
FIG = report.FIGURES.setdefault('security', {})

# --- Python -----------------------------------------------------------------------------------------------

SHELL_CALLS = {'os.system', 'os.popen', 'os.spawnl', 'os.spawnlp', 'os.spawnv', 'os.spawnvp', 'os.execl', 'os.execlp',
               'subprocess.getoutput', 'subprocess.getstatusoutput', 'commands.getoutput', 'asyncio.create_subprocess_shell',
               'pty.spawn'}
PROC_CALLS = {'subprocess.run', 'subprocess.call', 'subprocess.check_call', 'subprocess.check_output', 'subprocess.Popen',
              'run_command', 'module.run_command', 'self.module.run_command'}


def _dotted(node: ast.AST) -> str:
    if isinstance(node, ast.Name):
        return node.id
    if isinstance(node, ast.Attribute):
        return '%s.%s' % (_dotted(node.value), node.attr)
    return '?'


def _stringy(node: ast.AST) -> bool:
    """An expression that is certainly a string (a command line, not an argv list)."""
    if isinstance(node, ast.Constant):
        return isinstance(node.value, str)
    if isinstance(node, ast.JoinedStr):
        return True
    if isinstance(node, ast.BinOp) and isinstance(node.op, (ast.Add, ast.Mod)):
        return _stringy(node.left) or (isinstance(node.op, ast.Add) and _stringy(node.right))
    if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.func.attr in ('format', 'join'):
        return isinstance(node.func.value, ast.Constant) and isinstance(node.func.value.value, str)
    return False


def python_findings(source: str, name: str) -> list[str]:
    out = []
    tree = ast.parse(source, name)
    for node in ast.walk(tree):
        if not isinstance(node, ast.Call):
            continue
        fn = _dotted(node.func)
        line = '%s:%d' % (name, node.lineno)
        if fn in SHELL_CALLS or fn.split('.')[-1] in ('system', 'popen') and fn.startswith('os'):
            out.append('%s: %s() runs a shell' % (line, fn))
        for kw in node.keywords:
            if kw.arg in ('shell', 'use_unsafe_shell') and not (isinstance(kw.value, ast.Constant) and kw.value.value is False):
                out.append('%s: %s(%s=...) runs a shell' % (line, fn, kw.arg))
        if (fn in PROC_CALLS or fn.endswith('.run_command')) and node.args and _stringy(node.args[0]):
            out.append('%s: %s() with a string command (must be an argv list)' % (line, fn))
        if fn in PROC_CALLS and any(kw.arg == 'args' and _stringy(kw.value) for kw in node.keywords):
            out.append('%s: %s(args=string)' % (line, fn))
    return out


def python_files() -> list[str]:
    files = []
    for d in SCAN_DIRS:
        for base, dirs, names in os.walk(os.path.join(ROOT, d)):
            dirs[:] = [x for x in dirs if x not in ('__pycache__', 'build', 'output')]
            for n in names:
                p = os.path.join(base, n)
                if n.endswith('.py'):
                    files.append(p)
                elif '.' not in n and os.path.isfile(p):
                    with open(p, 'rb') as f:
                        if re.match(rb'#!.*python', f.readline()):
                            files.append(p)
    return sorted(files)


BAD_PY = '''
import os, subprocess
os.system("nvidia-smi -L")
os.popen("ls")
subprocess.run("nvidia-smi -i 0", check=True)
subprocess.check_output(["ls"], shell=True)
subprocess.Popen("a " + x)
subprocess.call(f"ls {x}")
subprocess.run("{} -L".format(x))
module.run_command("nvidia-smi --gpu-reset -i %d" % i)
module.run_command(["ls"], use_unsafe_shell=True)
'''
GOOD_PY = '''
import subprocess
subprocess.run(["nvidia-smi", "-L"], check=True)
subprocess.run([exe, "--gpu-reset", "-i", str(i)], shell=False)
module.run_command(argv)
'''


def test_python_checker_catches_planted_shell_use() -> None:
    found = python_findings(BAD_PY, 'bad.py')
    assert sorted({int(f.split(':')[1]) for f in found}) == list(range(3, 12)), found
    assert python_findings(GOOD_PY, 'good.py') == []


def test_no_shell_in_python() -> None:
    files = python_files()
    assert any(f.endswith('gpuops-mig-apply') for f in files), 'the boot script (no .py suffix) must be scanned'
    assert len(files) >= 20
    findings = []
    for f in files:
        with open(f, encoding='utf-8') as fh:
            findings += python_findings(fh.read(), os.path.relpath(f, ROOT))
    FIG['files_scanned'] = FIG.get('files_scanned', 0) + len(files)
    FIG['shell_findings'] = FIG.get('shell_findings', 0) + len(findings)
    assert not findings, '\n'.join(findings)


# --- YAML ---------------------------------------------------------------------------------------------------

SHELL_MODULES = {'shell', 'raw', 'script', 'expect', 'telnet'}
COMMAND_MODULES = {'command'}


def _short_name(key: str) -> str:
    for prefix in ('ansible.builtin.', 'ansible.legacy.', 'ansible.windows.', 'community.general.'):
        if key.startswith(prefix):
            return key[len(prefix):]
    return key


def yaml_findings(data: t.Any, name: str) -> list[str]:
    """Tasks that use a shell-like module or run a command from a string (anywhere: blocks, handlers, plays)."""
    out = []

    def walk(node: t.Any) -> None:
        if isinstance(node, list):
            for item in node:
                walk(item)
            return
        if not isinstance(node, dict):
            return
        label = node.get('name') if isinstance(node.get('name'), str) else '(unnamed)'
        for key, value in node.items():
            short = _short_name(key) if isinstance(key, str) else None
            # A module key: fully qualified, or a short name in a task (a mapping with a name).
            if short in SHELL_MODULES | COMMAND_MODULES and (key != short or 'name' in node):
                if short in SHELL_MODULES:
                    out.append('%s: task %r uses %s' % (name, label, key))
                elif not (isinstance(value, dict) and 'argv' in value):
                    out.append('%s: task %r runs %s from a string, not argv: %r' % (name, label, key, value))
            walk(value)
    walk(data)
    return out


def yaml_files() -> list[str]:
    files = []
    for d in ('roles', 'playbooks'):
        for base, dirs, names in os.walk(os.path.join(ROOT, d)):
            dirs[:] = [x for x in dirs if x != '__pycache__']
            files += [os.path.join(base, n) for n in names if n.endswith(('.yml', '.yaml'))]
    return sorted(files)


BAD_YAML = '''
- name: a
  ansible.builtin.shell: nvidia-smi -L
- name: b
  shell: echo hi
- name: c
  ansible.builtin.command: nvidia-smi --gpu-reset -i 0
- name: d
  ansible.builtin.command:
    cmd: nvidia-smi -L
- name: e
  block:
    - name: e1
      ansible.builtin.raw: reboot
    - name: e2
      command: "{{ reset_command }}"
- name: f
  ansible.legacy.script: x.sh
'''
GOOD_YAML = '''
- name: a
  ansible.builtin.command:
    argv: [nvidia-smi, -L]
- name: b
  ansible.builtin.command:
    argv: "{{ mig_reset_command + [item | string] }}"
- name: c
  ansible.builtin.set_fact:
    command: not a task keyword here
'''


def test_yaml_checker_catches_planted_shell_use() -> None:
    bad = yaml_findings(yaml.safe_load(BAD_YAML), 'bad.yml')
    assert len(bad) == 7, bad
    assert yaml_findings(yaml.safe_load(GOOD_YAML), 'good.yml') == [], yaml_findings(yaml.safe_load(GOOD_YAML), 'good.yml')


def test_no_shell_in_yaml() -> None:
    files = yaml_files()
    assert len(files) >= 20
    findings: list[str] = []
    unparsed: list[str] = []
    for f in files:
        with open(f, encoding='utf-8') as fh:
            text = fh.read()
        try:
            data = yaml.safe_load(text)
        except yaml.YAMLError:
            # Not parseable (someone's work in progress): fall back to a line grep for module keys.
            data = None
            for n, line in enumerate(text.splitlines(), 1):
                m = re.match(r'^\s*-?\s*((?:ansible\.(?:builtin|legacy)\.)?(shell|raw|script|command)):\s*(.*)$', line)
                if m and (m.group(2) != 'command' or m.group(3).strip()):
                    findings.append('%s:%d: %s' % (os.path.relpath(f, ROOT), n, line.strip()))
            unparsed.append(os.path.relpath(f, ROOT))
        findings += yaml_findings(data, os.path.relpath(f, ROOT))
        for pattern in ('shell=True', 'os.system', '/bin/sh -c', 'bash -c'):
            if pattern in text:
                findings.append('%s: contains %r' % (os.path.relpath(f, ROOT), pattern))
    for base, _dirs, names in os.walk(os.path.join(ROOT, 'roles')):
        for n in names:
            if n.endswith('.j2'):
                with open(os.path.join(base, n), encoding='utf-8') as fh:
                    text = fh.read()
                for pattern in ('/bin/sh -c', 'bash -c', 'sh -c '):
                    if pattern in text:
                        findings.append('%s: template contains %r' % (n, pattern))
    FIG['files_scanned'] = FIG.get('files_scanned', 0) + len(files)
    FIG['shell_findings'] = FIG.get('shell_findings', 0) + len(findings)
    FIG['yaml_unparsed'] = unparsed
    assert not findings, '\n'.join(findings)


# --- what the roles install ----------------------------------------------------------------------------------

FILE_MODULES = {'copy', 'template', 'file', 'lineinfile', 'blockinfile', 'get_url', 'unarchive', 'assemble', 'ini_file',
                'community.general.ini_file'}
# Modes taken from the file being replaced (so a site's own, possibly tighter, mode is kept).
# A site's own configuration file keeps the mode it has (the role only adds nvidia's settings to it).
MODE_PRESERVED = {('roles/container_toolkit/tasks/runtime-docker.yml', 'Docker | Write the merged daemon configuration'),
                  ('roles/container_toolkit/tasks/runtime-containerd.yml',
                   'Containerd | Add the drop-in directory to the imports of the main configuration')}


def file_tasks() -> list[tuple[str, str, str, dict[str, t.Any]]]:
    out = []
    for f in yaml_files():
        rel = os.path.relpath(f, ROOT)
        if not rel.startswith('roles/') or '/tasks/' not in rel and '/handlers/' not in rel:
            continue
        with open(f, encoding='utf-8') as fh:
            data = yaml.safe_load(fh)

        def walk(node: t.Any) -> None:
            if isinstance(node, list):
                for x in node:
                    walk(x)
            elif isinstance(node, dict):
                for key, value in node.items():
                    if isinstance(key, str) and _short_name(key) in FILE_MODULES and isinstance(value, dict):
                        out.append((rel, str(node.get('name')), _short_name(key), value))
                    elif key in ('block', 'rescue', 'always'):
                        walk(value)
        walk(data)
    return out


def mode_findings(tasks: list[tuple[str, str, str, dict[str, t.Any]]]) -> list[str]:
    out = []
    for rel, name, module, args in tasks:
        where = '%s: %r' % (rel, name)
        if module == 'file' and args.get('state') in ('absent', 'link', 'hard'):
            continue
        if module in ('lineinfile', 'blockinfile') and not args.get('create'):
            continue
        if args.get('owner') != 'root' or args.get('group') != 'root':
            out.append('%s: owner/group must be root:root, got %s:%s' % (where, args.get('owner'), args.get('group')))
        mode = args.get('mode')
        if mode is None:
            out.append('%s: no mode (the umask would decide)' % where)
            continue
        if isinstance(mode, str) and '{{' in mode:
            if (rel, name) not in MODE_PRESERVED:
                out.append('%s: templated mode %r' % (where, mode))
            continue
        if not (isinstance(mode, str) and re.fullmatch(r'0[0-7]{3}', mode)):
            out.append('%s: mode %r must be a quoted octal string like "0644"' % (where, mode))
            continue
        if int(mode, 8) & 0o022:
            out.append('%s: mode %s is group- or world-writable' % (where, mode))
        if int(mode, 8) & 0o7000:
            out.append('%s: mode %s sets setuid/setgid/sticky' % (where, mode))
    return out


def test_mode_checker_catches_planted_loose_modes() -> None:
    planted = [('roles/x/tasks/a.yml', 'a', 'copy', {'dest': '/etc/x', 'owner': 'root', 'group': 'root', 'mode': '0666'}),
               ('roles/x/tasks/a.yml', 'b', 'template', {'dest': '/etc/x', 'owner': 'root', 'group': 'root'}),
               ('roles/x/tasks/a.yml', 'c', 'copy', {'dest': '/etc/x', 'owner': 'nobody', 'group': 'root', 'mode': '0644'}),
               ('roles/x/tasks/a.yml', 'd', 'file', {'path': '/etc/x', 'state': 'directory', 'owner': 'root', 'group': 'root', 'mode': 644}),
               ('roles/x/tasks/a.yml', 'e', 'copy', {'dest': '/etc/x', 'owner': 'root', 'group': 'root', 'mode': '4755'}),
               ('roles/x/tasks/a.yml', 'f', 'copy', {'dest': '/etc/x', 'owner': 'root', 'group': 'root', 'mode': '{{ m }}'})]
    assert len(mode_findings(planted)) == 6, mode_findings(planted)
    assert mode_findings([('r', 'ok', 'copy', {'owner': 'root', 'group': 'root', 'mode': '0644'})]) == []


def test_installed_files_are_root_owned_and_not_writable_by_others() -> None:
    tasks = file_tasks()
    mig = [x for x in tasks if x[0].startswith('roles/mig/')]
    # The boot service: library, entry script, unit, layout record, device map, state directory.
    dests = ' '.join(str(a.get('dest') or a.get('path')) for _rel, _name, _module, a in mig)
    for must in ('mig_boot_lib_dir', 'gpuops-mig-apply', 'gpuops-mig.service', 'mig-layout.json', 'mig-devices.json', 'mig_state_dir'):
        assert must in dests, 'no task installs %s (checker out of date?)' % must
    findings = mode_findings(tasks)
    FIG['file_tasks'] = len(tasks)
    FIG['mode_findings'] = len(findings)
    assert not findings, '\n'.join(findings)


def test_state_and_lock_paths_are_root_only_locations() -> None:
    """The role's defaults keep the lock in /run and state in /etc (not in world-writable /tmp or /var/tmp)."""
    with open(os.path.join(ROOT, 'roles/mig/defaults/main.yml'), encoding='utf-8') as f:
        defaults = yaml.safe_load(f)
    assert defaults['mig_lock_file'].startswith('/run/')
    for key in ('mig_state_dir', 'mig_boot_lib_dir', 'mig_boot_libexec_dir', 'mig_boot_unit_dir', 'mig_lock_file'):
        assert not defaults[key].startswith(('/tmp', '/var/tmp', '/dev/shm')), (key, defaults[key])
    src = open(relib.BOOT_SCRIPT, encoding='utf-8').read()  # pylint: disable=consider-using-with
    # One lock default (_lock.DEFAULT_LOCK_PATH): the boot script takes it from there, the role's default says the same.
    lock_src = open(os.path.join(ROOT, 'plugins/module_utils/_lock.py'), encoding='utf-8').read()  # pylint: disable=consider-using-with
    assert "DEFAULT_LOCK_PATH = '/run/gpuops-mig.lock'" in lock_src
    assert "DEFAULT_LOCK_TIMEOUT = 300\n" in lock_src
    assert (defaults['mig_lock_file'], defaults['mig_lock_timeout']) == ('/run/gpuops-mig.lock', 300)
    assert 'args.lock_file or DEFAULT_LOCK_PATH' in src and 'gpuops-mig.lock' not in src
    assert 'os.replace(' in src and 'mkstemp(' in src, 'the device map must be written by rename (no writing through symlinks)'


# --- the lock, through the module ------------------------------------------------------------------------------

@pytest.fixture
def host(tmp_path: t.Any) -> str:
    state = str(tmp_path / 'state.json')
    relib.migsim('init', state, '--gpus', 'h100-80gb:1')
    return state


LAYOUT = [{'devices': 'all', 'mig_enabled': True, 'mig_devices': {'3g.40gb': 2}}]


def _no_nvml_use(state: str) -> bool:
    return relib.calls(state) == {}


@pytest.mark.parametrize('kind', ['symlink', 'foreign', 'directory'])
def test_lock_file_attacks_are_refused(tmp_path: t.Any, host: str, kind: str) -> None:
    """A pre-created lock file (symlink to a victim file, owned by another user, or not a file) stops the run
    before NVML is touched. _lock itself: tests/unit/plugins/module_utils/test_lock.py."""
    lock = tmp_path / 'gpuops-mig.lock'
    victim = tmp_path / 'victim'
    victim.write_text('precious\n')
    if kind == 'symlink':
        lock.symlink_to(victim)
        expect = 'symbolic link'
    elif kind == 'foreign':
        if os.geteuid() != 0:
            pytest.skip('needs root to create a file owned by another user')
        lock.write_text('')
        os.chown(lock, 65534, 65534)
        expect = 'belongs to uid 65534'
    else:
        lock.mkdir()
        expect = 'lock'
    relib.migsim('calls', host, '--clear')
    res = run_module({'layouts': LAYOUT, 'lock_file': str(lock)}, host, str(tmp_path))
    assert res.get('failed') and res.get('field') == 'lock_file', res
    assert expect in res['msg'] and res['msg'].startswith('lock_file:'), res['msg']
    assert 'Traceback' not in res['_raw']
    assert _no_nvml_use(host), relib.calls(host)
    assert victim.read_text() == 'precious\n'


# --- non-root ----------------------------------------------------------------------------------------------

def test_non_root_run_fails_with_a_permission_message(tmp_path: t.Any, host: str) -> None:
    from conftest import run_playbook  # pylint: disable=import-outside-toplevel
    relib.migsim_exe('set', host, '--non-root')
    before = relib.migsim_exe('show', host)
    out = run_playbook([{'name': 'converge', 'gpuops.mig.mig_layout': {'layouts': LAYOUT, 'lock_file': str(tmp_path / 'lock')},
                         'ignore_errors': True}], host, tmp_path)
    res = out['results']['converge']
    FIG['non_root'] = bool(res.get('failed') and re.search(r'permission|root', res.get('msg', ''), re.I)
                           and 'Traceback (most recent' not in out['raw'])
    assert res.get('failed'), res
    assert re.search(r'permission|root', res['msg'], re.I), res['msg']
    assert 'Traceback (most recent' not in out['raw'] and 'MODULE FAILURE' not in out['raw'], out['raw'][-3000:]
    assert not res.get('changed')
    assert relib.migsim_exe('show', host) == before


# --- sizes -------------------------------------------------------------------------------------------------

def test_module_refuses_config_files_over_1_mib(tmp_path: t.Any, host: str) -> None:
    from ansible_collections.gpuops.mig.plugins.module_utils import _spec  # pylint: disable=import-outside-toplevel
    from ansible_collections.gpuops.mig.plugins.modules import mig_layout  # pylint: disable=import-outside-toplevel
    assert mig_layout.MAX_CONFIG_BYTES == _spec.MAX_CONFIG_BYTES == 1 << 20
    big = tmp_path / 'config.yaml'
    big.write_text('version: v1\nmig-configs: {a: [{devices: all, mig-enabled: false}]}\n' + '#' * (1 << 20))
    relib.migsim('calls', host, '--clear')
    res = run_module({'config_file': str(big), 'config_name': 'a', 'lock_file': str(tmp_path / 'lock')}, host, str(tmp_path))
    assert res.get('failed') and res.get('field') == 'config_file' and 'limit' in res['msg'], res
    assert _no_nvml_use(host)
    FIG['oversized'] = 'module config_file > 1 MiB; ' + ', '.join(FIG.get('oversized_cases', []))


# --- the boot-time layout file ---------------------------------------------------------------------------

def test_boot_script_refuses_a_layout_file_others_can_write(tmp_path: t.Any) -> None:
    import subprocess  # pylint: disable=import-outside-toplevel
    import sys  # pylint: disable=import-outside-toplevel
    script = os.path.join(relib.ROOT, 'roles', 'mig', 'files', 'gpuops-mig-apply')
    layout = tmp_path / 'mig-layout.json'
    layout.write_text('{"layouts": [{"devices": "all", "mig_enabled": false}]}')
    # No simulator and no collection on the path: nothing here may reach a GPU.
    env = {k: v for k, v in os.environ.items() if k not in ('PYTHONPATH', 'LD_LIBRARY_PATH', 'MIGSIM_STATE')}
    args = ['--layout-file', str(layout), '--lib-dir', str(tmp_path / 'nothing'), '--lock-file', str(tmp_path / 'lock'),
            '--device-map', str(tmp_path / 'map.json')]
    for mode in (0o666, 0o620):
        os.chmod(layout, mode)
        proc = subprocess.run([sys.executable, script] + args, capture_output=True, text=True, check=False, env=env)
        assert proc.returncode == 2, (mode, proc.stdout, proc.stderr)
        assert 'refusing to apply it' in proc.stderr, proc.stderr
    # the same file with safe permissions gets past the check (and then fails on the missing library, exit 1)
    os.chmod(layout, 0o644)
    proc = subprocess.run([sys.executable, script] + args, capture_output=True, text=True, check=False, env=env)
    assert not (tmp_path / 'map.json').exists()
    assert proc.returncode == 1 and 'cannot import' in proc.stderr, (proc.stdout, proc.stderr)
    FIG['boot_layout_file'] = 'group/other-writable mig-layout.json refused (modes 0666, 0620)'
