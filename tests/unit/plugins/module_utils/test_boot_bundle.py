# Copyright (c) 2026 gpuops.mig contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""The mig role copies an explicit list of module_utils for the boot service: it must hold exactly the
files gpuops-mig-apply imports, directly or through other module_utils (function-level imports included)."""

from __future__ import annotations

import ast
import os

import yaml

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), '..', '..', '..', '..'))
MU = os.path.join(ROOT, 'plugins', 'module_utils')
PREFIX = 'ansible_collections.gpuops.mig.plugins.module_utils.'


def _imports(path: str) -> set[str]:
    with open(path, encoding='utf-8') as f:
        tree = ast.parse(f.read())
    names = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith(PREFIX):
            names.add(node.module[len(PREFIX):] + '.py')
        elif isinstance(node, ast.ImportFrom) and node.module == PREFIX.rstrip('.'):
            names.update(a.name + '.py' for a in node.names)
    return names


def test_boot_bundle_is_the_import_closure_of_the_boot_script():
    todo = _imports(os.path.join(ROOT, 'roles', 'mig', 'files', 'gpuops-mig-apply'))
    closure: set[str] = set()
    while todo:
        name = todo.pop()
        if name not in closure:
            closure.add(name)
            todo |= _imports(os.path.join(MU, name))
    with open(os.path.join(ROOT, 'roles', 'mig', 'vars', 'main.yml'), encoding='utf-8') as f:
        listed = yaml.safe_load(f)['__mig_boot_module_utils']
    assert sorted(listed) == sorted(closure)
    assert '_module.py' not in listed  # the Ansible glue stays out of the boot service
