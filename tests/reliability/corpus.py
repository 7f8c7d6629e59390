# Copyright (c) 2026 gpuops.mig contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""The layout corpus: named layouts per simulator model and the transitions between them.

A layout is the body of one ``layouts`` entry without ``devices``. Transitions are drawn from
all ordered pairs with a fixed seed, so every run uses the same corpus; the fault tests add a
process on a kept instance in every other transition that keeps one.
"""

from __future__ import annotations

import random
import typing as t

OFF = {'mig_enabled': False}


def inst(*items: dict[str, t.Any]) -> dict[str, t.Any]:
    return {'mig_enabled': True, 'instances': list(items)}


LAYOUTS: dict[str, dict[str, dict[str, t.Any]]] = {
    'h100-80gb': {
        'off': OFF,
        'empty': {'mig_enabled': True, 'mig_devices': {}},
        'all-1g': {'mig_enabled': True, 'mig_devices': {'1g.10gb': 7}},
        'balanced': {'mig_enabled': True, 'mig_devices': {'3g.40gb': 1, '2g.20gb': 1, '1g.10gb': 2}},
        'two-3g': {'mig_enabled': True, 'mig_devices': {'3g.40gb': 2}},
        '4g+3g': {'mig_enabled': True, 'mig_devices': {'4g.40gb': 1, '3g.40gb': 1}},
        'all-7g': {'mig_enabled': True, 'mig_devices': {'7g.80gb': 1}},
        'ci-3g': {'mig_enabled': True, 'mig_devices': {'1c.3g.40gb': 3, '3g.40gb': 1}},
        'ci-7g': inst({'profile': '7g.80gb', 'compute_instances': ['3c.7g.80gb', '2c.7g.80gb', '1c.7g.80gb']}),
        'placed': inst({'profile': '2g.20gb', 'placement': 4}, {'profile': '1g.10gb', 'placement': 0},
                       {'profile': '1g.20gb', 'placement': 2}, {'profile': '1g.10gb+me', 'placement': 6}),
        'no-ci': inst({'profile': '4g.40gb', 'compute_instances': []}, {'profile': '1g.10gb'}, {'profile': '2g.20gb'}),
    },
    'a100-40gb': {
        'off': OFF,
        'all-1g': {'mig_enabled': True, 'mig_devices': {'1g.5gb': 7}},
        'balanced': {'mig_enabled': True, 'mig_devices': {'3g.20gb': 1, '2g.10gb': 1, '1g.5gb': 2}},
        'two-3g': {'mig_enabled': True, 'mig_devices': {'3g.20gb': 2}},
        '4g+2g': {'mig_enabled': True, 'mig_devices': {'4g.20gb': 1, '2g.10gb': 1, '1g.5gb': 1}},
        'all-7g': {'mig_enabled': True, 'mig_devices': {'7g.40gb': 1}},
        'ci-4g': {'mig_enabled': True, 'mig_devices': {'2c.4g.20gb': 1, '1c.4g.20gb': 2, '3g.20gb': 1}},
        'me': {'mig_enabled': True, 'mig_devices': {'1g.5gb.me': 1, '1g.10gb': 2, '2g.10gb': 1}},
        'placed': inst({'profile': '3g.20gb', 'placement': 0}, {'profile': '1g.5gb', 'placement': 6},
                       {'profile': '2g.10gb', 'placement': 4, 'compute_instances': ['1c.2g.10gb', '1c.2g.10gb']}),
    },
    'a30-24gb': {
        'off': OFF,
        'empty': {'mig_enabled': True, 'mig_devices': {}},
        'all-1g': {'mig_enabled': True, 'mig_devices': {'1g.6gb': 4}},
        'two-2g': {'mig_enabled': True, 'mig_devices': {'2g.12gb': 2}},
        'all-4g': {'mig_enabled': True, 'mig_devices': {'4g.24gb': 1}},
        'mixed': {'mig_enabled': True, 'mig_devices': {'2g.12gb': 1, '1g.6gb': 2}},
        'ci-4g': {'mig_enabled': True, 'mig_devices': {'2c.4g.24gb': 1, '1c.4g.24gb': 2}},
        'me': {'mig_enabled': True, 'mig_devices': {'2g.12gb+me': 1, '1g.6gb': 2}},
        'placed': inst({'profile': '1g.6gb', 'placement': 3}, {'profile': '2g.12gb', 'placement': 0}),
    },
    'rtx-pro-6000': {
        'off': OFF,
        'all-1g': {'mig_enabled': True, 'mig_devices': {'1g.24gb': 4}},
        'two-2g': {'mig_enabled': True, 'mig_devices': {'2g.48gb': 2}},
        'all-4g': {'mig_enabled': True, 'mig_devices': {'4g.96gb': 1}},
        'mixed': {'mig_enabled': True, 'mig_devices': {'2g.48gb': 1, '1g.24gb': 2}},
        'gfx': {'mig_enabled': True, 'mig_devices': {'2g.48gb+gfx': 1, '1g.24gb+gfx': 2}},
        'me-all': {'mig_enabled': True, 'mig_devices': {'2g.48gb+me.all': 1, '1g.24gb-me': 2}},
        'ci-4g': {'mig_enabled': True, 'mig_devices': {'1c.4g.96gb': 4}},
        'placed': inst({'profile': '1g.24gb', 'placement': 9}, {'profile': '2g.48gb', 'placement': 0},
                       {'profile': '1g.24gb', 'placement': 6, 'compute_instances': []}),
    },
}

# Transitions drawn per model from all ordered pairs (A != B).
PER_MODEL = {'h100-80gb': 30, 'a100-40gb': 26, 'a30-24gb': 21, 'rtx-pro-6000': 21}
SEED = 20260417

# Two-GPU hosts: GPU 0 and GPU 1 change together; a fault on GPU 1 leaves GPU 0 converged.
MULTI = [
    ('h100-80gb', 'balanced', 'two-3g', 'all-1g', 'ci-3g'),
    ('h100-80gb', 'off', 'all-7g', 'placed', 'off'),
    ('a100-40gb', 'two-3g', 'all-1g', 'balanced', 'me'),
    ('a30-24gb', 'all-1g', 'two-2g', 'off', 'ci-4g'),
]


def gi_profiles(spec: dict[str, t.Any]) -> set[str]:
    """GPU instance profile names a layout uses (approximate: CI profile keys count for their GI)."""
    names = [i['profile'] for i in spec.get('instances', ())] + list(spec.get('mig_devices', {}))
    return {n.split('.', 1)[1] if n.count('.') >= 2 and n[0].isdigit() and n.split('.', 1)[0].endswith('c') else n
            for n in names}


def transitions() -> list[dict[str, t.Any]]:
    """Deterministic list of transitions: {id, seq, model, gpus, a: [layout per GPU], b: [...], names, with_process}."""
    rng = random.Random(SEED)
    out = []
    for model, layouts in LAYOUTS.items():
        names = sorted(layouts)
        pairs = [(a, b) for a in names for b in names if a != b]
        rng.shuffle(pairs)
        want = PER_MODEL[model]
        # Every way into and out of "off" first (mode changes), then pairs that share a GPU
        # instance profile (the plan can keep instances), then any pairs.
        chosen = [p for p in pairs if 'off' in p][:8]
        sharing = [p for p in pairs if p not in chosen and gi_profiles(layouts[p[0]]) & gi_profiles(layouts[p[1]])]
        chosen += sharing[:(want - len(chosen)) * 2 // 3]
        chosen += [p for p in pairs if p not in chosen][:want - len(chosen)]
        for a, b in chosen:
            out.append({'id': '%s:%s->%s' % (model, a, b), 'model': model, 'gpus': 1,
                        'a': [layouts[a]], 'b': [layouts[b]], 'names': [(a, b)]})
    for model, a0, b0, a1, b1 in MULTI:
        lay = LAYOUTS[model]
        out.append({'id': '%s:2gpu:%s+%s->%s+%s' % (model, a0, a1, b0, b1), 'model': model, 'gpus': 2,
                    'a': [lay[a0], lay[a1]], 'b': [lay[b0], lay[b1]], 'names': [(a0, b0), (a1, b1)]})
    for i, tr in enumerate(out):
        tr['seq'] = i
        # A process on a kept instance (when the plan keeps one) in three transitions out of four.
        tr['with_process'] = i % 4 != 3
    return out


def layouts_arg(per_gpu: t.Sequence[dict[str, t.Any]]) -> list[dict[str, t.Any]]:
    """The ``layouts`` option for a host whose GPU i gets per_gpu[i]."""
    if len(per_gpu) == 1:
        return [dict(per_gpu[0], devices='all')]
    return [dict(spec, devices=[i]) for i, spec in enumerate(per_gpu)]


def all_layouts() -> list[tuple[str, str, dict[str, t.Any]]]:
    return [(model, name, spec) for model, layouts in LAYOUTS.items() for name, spec in sorted(layouts.items())]
