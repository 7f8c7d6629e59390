# Copyright (c) 2026 gpuops.mig contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Test-only code lives under tests/: every module_utils file, and every public function or class in one,
is used by the shipped collection (modules, filters, other module_utils, the boot script), not only by tests."""

from __future__ import annotations

import ast
import glob
import os
import re

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), '..', '..', '..', '..'))
MU = os.path.join(ROOT, 'plugins', 'module_utils')
PREFIX = 'ansible_collections.gpuops.mig.plugins.module_utils.'


def _shipped() -> dict[str, str]:
    paths = glob.glob(os.path.join(ROOT, 'plugins', '**', '*.py'), recursive=True)
    paths.append(os.path.join(ROOT, 'roles', 'mig', 'files', 'gpuops-mig-apply'))
    out = {}
    for path in paths:
        with open(path, encoding='utf-8') as f:
            out[path] = f.read()
    return out


def _imported_names(source: str) -> set[str]:
    names = set()
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith(PREFIX):
            names.add(node.module[len(PREFIX):])
        elif isinstance(node, ast.ImportFrom) and node.module == PREFIX.rstrip('.'):
            names.update(a.name for a in node.names)
    return names


def test_every_module_utils_file_is_imported_by_shipped_code():
    shipped = _shipped()
    for path in sorted(glob.glob(os.path.join(MU, '*.py'))):
        name = os.path.basename(path)[:-3]
        if name == '__init__':
            continue
        users = [p for p, src in shipped.items() if p != path and name in _imported_names(src)]
        assert users, 'plugins/module_utils/%s.py is imported by no shipped file (only by tests?)' % name


def test_every_top_level_definition_is_used_by_shipped_code():
    shipped = _shipped()
    for path in sorted(glob.glob(os.path.join(MU, '*.py'))):
        with open(path, encoding='utf-8') as f:
            tree = ast.parse(f.read())
        for node in tree.body:
            if not isinstance(node, (ast.FunctionDef, ast.ClassDef)) or node.name.startswith('__'):
                continue
            word = re.compile(r'\b%s\b' % re.escape(node.name))
            uses = sum(len(word.findall(src)) for src in shipped.values())
            assert uses > 1, '%s.%s is used by no shipped code (only by tests?)' % (os.path.basename(path)[:-3], node.name)


def test_planner_stays_split_by_concern():
    # The planner is the search and its steps; packing, error text, action building, the desired-layout
    # checks and the safety rules live in their own modules (issue 15 set the bound at 300 lines).
    with open(os.path.join(MU, '_planner.py'), encoding='utf-8') as f:
        lines = f.read().count('\n')
    assert lines < 300, '_planner.py has %d lines: move a concern out (see its module docstring)' % lines
