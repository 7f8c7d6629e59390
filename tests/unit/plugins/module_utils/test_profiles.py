# Copyright (c) 2026 gpuops.mig contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import annotations

import pytest

from ansible_collections.gpuops.mig.plugins.module_utils._model import SpecError
from ansible_collections.gpuops.mig.plugins.module_utils._profiles import (
    canonical_name, compute_profiles_for, derive_compute_profiles_go_nvlib, full_compute_profile,
    parse_profile_name, resolve_ci_profile, resolve_gi_profile,
)
from ansible_collections.gpuops.mig.plugins.module_utils._profiles import mig_parted_key
from ansible_collections.gpuops.mig.tests.unit.plugins.module_utils.helpers import load


@pytest.mark.parametrize('text,canon', [
    ('1g.10gb', '1g.10gb'), ('MIG 1g.10gb+me', '1g.10gb+me'), ('1g.10gb.me', '1g.10gb+me'), ('1g.24gb-me', '1g.24gb-me'),
    ('1g.24gb+me.all', '1g.24gb+me.all'), ('1g.24gb.me.all', '1g.24gb+me.all'), ('4g.96gb.gfx', '4g.96gb+gfx'),
    ('1C.3G.40GB', '1c.3g.40gb'), (' 7g.80gb ', '7g.80gb'),
])
def test_parse(text, canon):
    assert canonical_name(text) == canon


@pytest.mark.parametrize('text', ['', '1g', 'g.10gb', '1g.10gb+foo', '1g.10gb.me.me', 'x' * 300, '1g.10gb-gfx', '0g.10gb'])
def test_parse_rejects(text):
    assert parse_profile_name(text) is None


def test_mig_parted_key():
    assert mig_parted_key('1g.24gb+me.all') == '1g.24gb.me.all' and mig_parted_key('1g.24gb-me') == '1g.24gb-me'


def test_resolve_gi_by_name_key_and_id():
    h = load('h100-80gb')
    assert resolve_gi_profile(h, '1g.10gb', 'f').id == 19
    assert resolve_gi_profile(h, '1g.10gb.me', 'f').id == 20
    assert resolve_gi_profile(h, '1g.10gb+me', 'f').id == 20
    assert resolve_gi_profile(h, 9, 'f').name == '3g.40gb'
    assert resolve_gi_profile(h, '9', 'f').name == '3g.40gb'
    r = load('rtx-pro-6000')
    assert resolve_gi_profile(r, '1g.24gb.me.all', 'f').id == 65
    assert resolve_gi_profile(r, '1g.24gb-me', 'f').id == 67
    assert resolve_gi_profile(r, '4g.96gb.gfx', 'f').id == 32


@pytest.mark.parametrize('ref', ['1g.5gb', 1234, '1c.3g.40gb', 'nonsense', None, True, 2.5])
def test_resolve_gi_unknown_lists_valid(ref):
    h = load('h100-80gb')
    with pytest.raises(SpecError) as e:
        resolve_gi_profile(h, ref, 'layouts[0].instances[0].profile')
    assert e.value.field == 'layouts[0].instances[0].profile'
    assert '3g.40gb' in str(e.value) and '7g.80gb' in str(e.value)


def test_go_nvlib_derivation_h100():
    h = load('h100-80gb')
    got = {p.name: [(c.id, c.name, c.instance_count) for c in derive_compute_profiles_go_nvlib(h, p)] for p in h.profiles}
    assert got['7g.80gb'] == [(0, '1c.7g.80gb', 7), (1, '2c.7g.80gb', 3), (2, '3c.7g.80gb', 2), (3, '4c.7g.80gb', 1), (4, '7g.80gb', 1)]
    assert got['4g.40gb'] == [(0, '1c.4g.40gb', 4), (1, '2c.4g.40gb', 2), (3, '4g.40gb', 1)]
    assert got['3g.40gb'] == [(0, '1c.3g.40gb', 3), (1, '2c.3g.40gb', 1), (2, '3g.40gb', 1)]
    assert got['2g.20gb'] == [(0, '1c.2g.20gb', 2), (1, '2g.20gb', 1)]
    assert got['1g.10gb'] == [(0, '1g.10gb', 1)]
    assert got['1g.20gb'] == [(7, '1g.20gb', 1)]      # Hopper REV2 GI: full CI is ID 7 (mig-hardware.md 6.1)
    a = load('a100-40gb')
    rev2 = [p for p in a.profiles if p.name == '1g.10gb'][0]
    assert [c.id for c in derive_compute_profiles_go_nvlib(a, rev2)] == [0]


def test_nvml_profiles_preferred_over_derivation():
    a30 = load('a30-24gb')
    g2 = resolve_gi_profile(a30, '2g.12gb', 'f')
    assert compute_profiles_for(a30, g2) == g2.compute_profiles
    assert full_compute_profile(a30, g2).id == 1
    rtx = load('rtx-pro-6000')
    g4 = resolve_gi_profile(rtx, '4g.96gb', 'f')
    assert full_compute_profile(rtx, g4).id == 3


def test_resolve_ci():
    h = load('h100-80gb')
    g3 = resolve_gi_profile(h, '3g.40gb', 'f')
    assert resolve_ci_profile(h, g3, '1c.3g.40gb', 'f').id == 0
    assert resolve_ci_profile(h, g3, '3g.40gb', 'f').id == 2
    assert resolve_ci_profile(h, g3, 1, 'f').name == '2c.3g.40gb'
    for bad in ['1c.2g.20gb', '4c.3g.40gb', 9, 'x']:
        with pytest.raises(SpecError) as e:
            resolve_ci_profile(h, g3, bad, 'layouts[0].instances[0].compute_instances[0]')
        assert e.value.field == 'layouts[0].instances[0].compute_instances[0]' and '1c.3g.40gb' in str(e.value)
