# Copyright (c) 2026 gpuops.mig contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import annotations

import dataclasses
import os

import pytest
import yaml

from ansible_collections.gpuops.mig.plugins.module_utils._model import PlanError, SpecError
from ansible_collections.gpuops.mig.plugins.module_utils._planner import plan_gpu
from ansible_collections.gpuops.mig.plugins.module_utils._spec import filter_matches, resolve_layouts
from ansible_collections.gpuops.mig.tests.unit.plugins.module_utils.helpers import FIXTURES, MODELS, config_names, load

with open(os.path.join(FIXTURES, 'config-default.yaml')) as _f:
    DEFAULT_CONFIG = _f.read()
DEFAULT_PARSED = yaml.safe_load(DEFAULT_CONFIG)


def host():
    """Two H100s, an A30 and a GPU without MIG."""
    h0 = load('h100-80gb')
    h1 = dataclasses.replace(load('h100-80gb'), index=1, uuid='GPU-11111111-2222-3333-4444-555555555555', pci_bus_id='00000000:3B:00.0')
    a30 = dataclasses.replace(load('a30-24gb'), index=2, pci_bus_id='00000000:5E:00.0')
    t4 = dataclasses.replace(load('a30-24gb'), index=3, uuid='GPU-t4', name='Tesla T4', pci_bus_id='00000000:AF:00.0', pci_device_id=0x1EB810DE,
                             mig_capable=False, mig_mode=None, profiles=())
    return [h0, h1, a30, t4]


def test_default_config_parses_with_81_configs():
    names = config_names(DEFAULT_CONFIG)
    assert len(names) == 81 and 'all-balanced' in names and 'all-1g.10gb.me' in names


@pytest.mark.parametrize('model', MODELS)
def test_every_default_config_resolves_on_matching_models(model):
    gpu = load(model)
    applied = 0
    for name in config_names(DEFAULT_CONFIG):
        res = resolve_layouts([gpu], config=DEFAULT_PARSED, config_name=name)
        if not res:
            continue            # every entry filters for other GPU models
        applied += 1
        plan = plan_gpu(gpu, res[0])
        assert res[0].mig_enabled == (name != 'all-disabled')
        if res[0].mig_enabled:
            assert len(plan.target_instances) == len(res[0].instances)
    assert applied >= 7


def test_balanced_and_1g10gb_per_model():
    res = resolve_layouts(host(), config=DEFAULT_CONFIG, config_name='all-balanced')
    assert sorted(res) == [0, 1, 2]
    assert len(res[0].instances) == 4 and len(res[2].instances) == 3
    a100 = load('a100-40gb')
    res = resolve_layouts([a100], config=DEFAULT_CONFIG, config_name='all-1g.10gb')
    assert [i.profile_id for i in res[0].instances] == [15] * 4


def test_mig_devices_packing_like_mig_parted():
    h = [load('h100-80gb')]
    res = resolve_layouts(h, layouts=[{'devices': 'all', 'mig_enabled': True, 'mig_devices': {'1c.3g.40gb': 3}}])
    assert [(i.profile_id, i.compute_profile_ids) for i in res[0].instances] == [(9, (0, 0, 0))]
    res = resolve_layouts(h, layouts=[{'devices': 'all', 'mig_enabled': True, 'mig_devices': {'1c.3g.40gb': 4, '3g.40gb': 1}}])
    assert [(i.profile_id, i.compute_profile_ids) for i in res[0].instances] == [(9, None), (9, (0, 0, 0)), (9, (0,))]
    res = resolve_layouts(h, layouts=[{'devices': 'all', 'mig_enabled': True, 'mig_devices': {'2c.3g.40gb': 1, '1c.3g.40gb': 1}}])
    assert [(i.profile_id, i.compute_profile_ids) for i in res[0].instances] == [(9, (1, 0))]
    res = resolve_layouts(h, layouts=[{'devices': 'all', 'mig_enabled': True, 'mig_devices': {'1g.10gb.me': 1, '1g.10gb': 2}}])
    assert [i.profile_id for i in res[0].instances] == [20, 19, 19]


def test_selectors_and_filters():
    gpus = host()
    lay = [{'devices': [1, 'GPU-11111111-2222-3333-4444-555555555555'.lower()], 'mig_enabled': True, 'mig_devices': {'7g.80gb': 1}}]
    assert sorted(resolve_layouts(gpus, layouts=lay)) == [1]
    for bus in ['3b:00.0', '0000:3B:00.0', '00000000:3b:00.0']:
        assert sorted(resolve_layouts(gpus, layouts=[{'devices': [bus], 'mig_enabled': False}])) == [1]
    res = resolve_layouts(gpus, layouts=[{'devices': 'all', 'device_filter': '0x233010de', 'mig_enabled': True, 'mig_devices': {}}])
    assert sorted(res) == [0, 1]
    res = resolve_layouts(gpus, layouts=[{'devices': 'all', 'device_filter': ['0x20B710DE:0x153210DE'], 'mig_enabled': False}])
    assert sorted(res) == [2]
    assert not filter_matches([(0x20B710DE, 0x99999999)], gpus[2])
    # `all` skips the GPU without MIG (mig-parted semantics)
    assert sorted(resolve_layouts(gpus, layouts=[{'devices': 'all', 'mig_enabled': False}])) == [0, 1, 2]


def test_instances_entries():
    h = [load('h100-80gb')]
    res = resolve_layouts(h, layouts=[{'devices': [0], 'mig_enabled': True, 'instances': [
        {'profile': '3g.40gb', 'placement': 4, 'compute_instances': ['1c.3g.40gb', '2c.3g.40gb']},
        {'profile': 14}, {'profile': '1g.10gb', 'compute_instances': []}]}])
    inst = res[0].instances
    assert (inst[0].profile_id, inst[0].placement_start, inst[0].compute_profile_ids) == (9, 4, (0, 1))
    assert inst[1].compute_profile_ids is None and inst[2].compute_profile_ids == ()
    plan = plan_gpu(h[0], res[0])
    assert plan.changes


BAD = [
    (dict(layouts='x'), 'layouts'),
    (dict(layouts=[{'devices': 'all'}]), 'layouts[0].mig_enabled'),
    (dict(layouts=[{'mig_enabled': True, 'mig_devices': {}}]), 'layouts[0].devices'),
    (dict(layouts=[{'devices': 'all', 'mig_enabled': 'yes', 'mig_devices': {}}]), 'layouts[0].mig_enabled'),
    (dict(layouts=[{'devices': 'all', 'mig_enabled': True}]), 'layouts[0].mig_devices'),
    (dict(layouts=[{'devices': 'all', 'mig_enabled': True, 'mig_devices': {}, 'colour': 1}]), 'layouts[0].colour'),
    (dict(layouts=[{'devices': 0, 'mig_enabled': False}]), 'layouts[0].devices'),
    (dict(layouts=[{'devices': [9], 'mig_enabled': False}]), 'layouts[0].devices[0]'),
    (dict(layouts=[{'devices': ['zz:00.0'], 'mig_enabled': False}]), 'layouts[0].devices[0]'),
    (dict(layouts=[{'devices': [True], 'mig_enabled': False}]), 'layouts[0].devices[0]'),
    (dict(layouts=[{'devices': 'all', 'device_filter': '0x2330', 'mig_enabled': False}]), 'layouts[0].device_filter'),
    (dict(layouts=[{'devices': 'all', 'device_filter': '0x12345678', 'mig_enabled': False}]), 'layouts[0].device_filter'),
    (dict(layouts=[{'devices': [0], 'mig_enabled': True, 'mig_devices': {'1g.10gb': 65}}]), "layouts[0].mig_devices['1g.10gb']"),
    (dict(layouts=[{'devices': [0], 'mig_enabled': True, 'mig_devices': {'1g.10gb': -1}}]), "layouts[0].mig_devices['1g.10gb']"),
    (dict(layouts=[{'devices': [0], 'mig_enabled': True, 'mig_devices': {'1g.99gb': 1}}]), "layouts[0].mig_devices['1g.99gb']"),
    (dict(layouts=[{'devices': [0], 'mig_enabled': False, 'mig_devices': {'1g.10gb': 1}}]), 'layouts[0].mig_devices'),
    (dict(layouts=[{'devices': [0], 'mig_enabled': False, 'instances': [{'profile': 19}]}]), 'layouts[0].instances'),
    (dict(layouts=[{'devices': [0], 'mig_enabled': True, 'mig_devices': {}, 'instances': []}]), 'layouts[0]'),
    (dict(layouts=[{'devices': [0], 'mig_enabled': True, 'instances': [{'placement': 0}]}]), 'layouts[0].instances[0].profile'),
    (dict(layouts=[{'devices': [0], 'mig_enabled': True, 'instances': [{'profile': '3g.40gb', 'placement': 2}]}]),
     'layouts[0].instances[0].placement'),
    (dict(layouts=[{'devices': [0], 'mig_enabled': True, 'instances': [{'profile': '3g.40gb', 'compute_instances': ['1c.2g.20gb']}]}]),
     'layouts[0].instances[0].compute_instances[0]'),
    (dict(layouts=[{'devices': [3], 'mig_enabled': True, 'mig_devices': {}}]), 'layouts[0].devices'),
    (dict(layouts=[{'devices': [0], 'mig_enabled': False}, {'devices': 'all', 'mig_enabled': False}]), 'layouts[1]'),
    (dict(layouts=[{'devices': 'all', 'mig_enabled': False}] * 65), 'layouts'),
    (dict(config='version: v2\nmig-configs: {}\n', config_name='x'), 'config_file: version'),
    (dict(config='version: v1\nmig-configs: {a: [{devices: all}]}\n', config_name='a'), 'config_file: mig-configs.a[0].mig-enabled'),
    (dict(config='version: v1\nmig-configs: {a: [{devices: [x], mig-enabled: false}]}\n', config_name='a'),
     'config_file: mig-configs.a[0].devices[0]'),
    (dict(config='version: v1\nmig-configs: {a: [{devices: all, mig-enabled: true}]}\n', config_name='a'),
     'config_file: mig-configs.a[0].mig-devices'),
    (dict(config='version: v1\nmig-configs: {a: [{devices: all, mig-enabled: false}]}\n', config_name='b'), 'config_name'),
    (dict(config='version: v1\nmig-configs: {a: []}\nextra: 1\n', config_name='a'), 'config_file: extra'),
    (dict(config=': : :\n[', config_name='a'), 'config_file'),
    (dict(config='x' * (1 << 20 + 1), config_name='a'), 'config_file'),
    (dict(config=DEFAULT_CONFIG), 'config_name'),
    (dict(layouts=[], config=DEFAULT_CONFIG), 'layouts'),
]


@pytest.mark.parametrize('kwargs,field', BAD)
def test_spec_errors_name_the_field(kwargs, field):
    with pytest.raises(SpecError) as e:
        resolve_layouts(host(), **kwargs)
    assert e.value.field == field, str(e.value)
    assert str(e.value).startswith(field)


def test_error_texts():
    with pytest.raises(SpecError) as e:
        resolve_layouts(host(), layouts=[{'devices': [0], 'mig_enabled': False}, {'devices': 'all', 'mig_enabled': False}])
    assert 'layouts[0]' in str(e.value) and 'layouts[1]' in str(e.value) and 'GPU 0' in str(e.value)
    with pytest.raises(SpecError) as e:
        resolve_layouts(host(), layouts=[{'devices': [3], 'mig_enabled': True, 'mig_devices': {}}])
    assert 'Tesla T4' in str(e.value)
    with pytest.raises(SpecError) as e:
        resolve_layouts(host(), config=DEFAULT_CONFIG, config_name='nope')
    assert 'all-balanced' in str(e.value)
    with pytest.raises(SpecError) as e:
        resolve_layouts(host(), layouts=[{'devices': [0], 'mig_enabled': True, 'mig_devices': {'1g.99gb': 1}}])
    assert '1g.10gb' in str(e.value) and '7g.80gb' in str(e.value)


def test_infeasible_mig_devices_is_a_plan_error_not_spec_error():
    res = resolve_layouts(host(), layouts=[{'devices': [0], 'mig_enabled': True, 'mig_devices': {'4g.40gb': 1, '3g.40gb': 2}}])
    with pytest.raises(PlanError):
        plan_gpu(host()[0], res[0])


try:
    from hypothesis import given, settings, strategies as st
except ImportError:    # pragma: no cover
    given = None

if given is not None:
    scalars = st.one_of(st.none(), st.booleans(), st.integers(-3, 70), st.text(max_size=12),
                        st.sampled_from(['all', '1g.10gb', '3g.40gb', '1c.3g.40gb', '1g.10gb.me', '0x233010DE', '3b:00.0', 'GPU-x']))
    keys = st.sampled_from(['devices', 'device_filter', 'mig_enabled', 'mig_devices', 'instances', 'profile', 'placement',
                            'compute_instances', '1g.10gb', '7g.80gb', 'x'])
    values = st.recursive(scalars, lambda c: st.one_of(st.lists(c, max_size=4), st.dictionaries(keys, c, max_size=5)), max_leaves=20)

    @settings(max_examples=100, deadline=None)
    @given(values)
    def test_fuzz_layouts_only_spec_error(data):
        try:
            resolve_layouts(host(), layouts=data)
        except SpecError:
            pass

    @settings(max_examples=60, deadline=None)
    @given(st.text(max_size=200))
    def test_fuzz_config_text_only_spec_error(text):
        try:
            resolve_layouts(host(), config=text, config_name='a')
        except SpecError:
            pass


@pytest.mark.parametrize('devices,hint', [
    ('0,1', 'write [0, 1])'),
    ('0, 1 ,2', 'write [0, 1, 2])'),
    ('3', 'write [3] for one GPU)'),
    (3, 'write [3] for one GPU)'),
    ('GPU-0c6c2a3e-5e6a-4f8e-9d7a-2b1c0d9e8f7a', "write ['GPU-0c6c2a3e-5e6a-4f8e-9d7a-2b1c0d9e8f7a'] for one GPU)"),
    ('0000:3b:00.0,1', "write ['0000:3b:00.0', 1])"),
])
def test_scalar_devices_suggest_the_list_meant(devices, hint):
    with pytest.raises(SpecError) as e:
        resolve_layouts(host(), layouts=[{'devices': devices, 'mig_enabled': False}])
    assert e.value.field == 'layouts[0].devices'
    assert str(e.value).endswith(hint), str(e.value)
    assert "['0,1']" not in str(e.value)
