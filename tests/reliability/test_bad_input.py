# Copyright (c) 2026 gpuops.mig contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Part 2: bad input. Property-based (hypothesis, derandomized) over ``layouts`` and mig-parted config files.

Promises: only the API's exception types arise (SpecError from ``_spec.resolve_layouts``,
ConvergeError from ``_converge.converge``), never a traceback of another type; every message
names a field (``exc.field`` is set and appears in the message); no mutating NVML call is made
(``migsim calls``). The host is simulated: GPU 0 H100 80GB, GPU 1 A100 40GB, GPU 2 L40S (no MIG).

Most examples drive the real ``converge()`` with an adapter that serves the GPUs read once from
the simulator and records any mutation attempt (thousands of examples in seconds); a sample
drives it with the real NvmlAdapter and counts mutating calls in the simulator; a handful go
through the real module with ansible-playbook.
"""

from __future__ import annotations

import collections
import json
import re
import time
import typing as t

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import relib
import report
from conftest import converge_in_process, run_playbook

from ansible_collections.gpuops.mig.plugins.module_utils._converge import ConvergeError, converge
from ansible_collections.gpuops.mig.plugins.module_utils._model import SpecError
from ansible_collections.gpuops.mig.plugins.module_utils._spec import MAX_CONFIG_BYTES, normalize_pci_bus_id, resolve_layouts

HOST = 'h100-80gb:1,a100-40gb:1,l40s:1'
FIG = report.FIGURES.setdefault('bad_input', {'cases': 0, 'tracebacks': 0, 'no_field': 0, 'mutating_calls': 0,
                                              'by_test': collections.Counter()})


def hyp(n: int) -> t.Callable:
    return settings(max_examples=n, derandomize=True, deadline=None, database=None, print_blob=False,
                    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture,
                                           HealthCheck.data_too_large, HealthCheck.filter_too_much])


# --- the simulated host -----------------------------------------------------------------------------

class Recorder:
    """Adapter serving a fixed GPU list; mutation attempts are recorded and refused."""

    def __init__(self, gpus: list[t.Any]) -> None:
        self.gpus = gpus
        self.mutations: list[str] = []

    def read_gpus(self, with_remaining: bool = True) -> list[t.Any]:
        return list(self.gpus)

    def read_gpu(self, index: int, with_remaining: bool = True) -> t.Any:
        return self.gpus[index]

    def _mutate(self, name: str) -> t.NoReturn:
        self.mutations.append(name)
        raise AssertionError('mutating call %s on bad input' % name)

    def set_mig_mode(self, *a: t.Any) -> int:
        self._mutate('set_mig_mode')

    def create_gpu_instance(self, *a: t.Any) -> int:
        self._mutate('create_gpu_instance')

    def create_compute_instance(self, *a: t.Any) -> int:
        self._mutate('create_compute_instance')

    def destroy_compute_instance(self, *a: t.Any) -> None:
        self._mutate('destroy_compute_instance')

    def destroy_gpu_instance(self, *a: t.Any) -> None:
        self._mutate('destroy_gpu_instance')


@pytest.fixture(scope='module')
def host(tmp_path_factory: pytest.TempPathFactory) -> t.Iterator[dict[str, t.Any]]:
    """The simulated host with a few instances on GPU 0 and 1, its GPUs read once, and its state file."""
    from ansible_collections.gpuops.mig.plugins.module_utils._nvml import NvmlAdapter  # pylint: disable=import-outside-toplevel
    state = str(tmp_path_factory.mktemp('badinput') / 'state.json')
    relib.migsim('init', state, '--gpus', HOST)
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv('MIGSIM_STATE', state)
        res = converge_in_process(state, [
            {'devices': [0], 'mig_enabled': True, 'mig_devices': {'3g.40gb': 1, '1g.10gb': 2}},
            {'devices': [1], 'mig_enabled': True, 'mig_devices': {'2g.10gb': 2}}])
        assert res['ok'], res
        with NvmlAdapter() as nvml:
            gpus = nvml.read_gpus()
        relib.migsim('calls', state, '--clear')
        yield {'state': state, 'gpus': gpus, 'shown': relib.show(state)}


def count(test: str) -> None:
    FIG['cases'] += 1
    FIG['by_test'][test] += 1


def expect_spec_error(gpus: list[t.Any], test: str, **kwargs: t.Any) -> SpecError:
    count(test)
    try:
        resolve_layouts(gpus, **kwargs)
    except SpecError as exc:
        if not exc.field or exc.field not in str(exc):
            FIG['no_field'] += 1
            raise AssertionError('SpecError without its field in the message: field=%r msg=%s' % (exc.field, exc))
        return exc
    except Exception:
        FIG['tracebacks'] += 1
        raise
    raise AssertionError('accepted: %r' % (kwargs,))


def expect_converge_error(adapter: t.Any, test: str, **kwargs: t.Any) -> ConvergeError:
    count(test)
    try:
        converge(adapter, **kwargs)
    except ConvergeError as exc:
        if not exc.field or exc.field not in str(exc):
            FIG['no_field'] += 1
            raise AssertionError('ConvergeError without a field in the message: field=%r msg=%s' % (exc.field, exc))
        return exc
    except Exception:
        FIG['tracebacks'] += 1
        raise
    finally:
        FIG['mutating_calls'] += len(getattr(adapter, 'mutations', ()))
    raise AssertionError('accepted: %r' % (kwargs,))


# --- strategies ---------------------------------------------------------------------------------------

scalars = st.one_of(st.none(), st.booleans(), st.integers(-2**70, 2**70), st.floats(allow_nan=True),
                    st.text(max_size=20))
json_values = st.recursive(scalars, lambda inner: st.one_of(st.lists(inner, max_size=4),
                                                            st.dictionaries(st.text(max_size=8), inner, max_size=4)),
                           max_leaves=12)
not_list = st.one_of(st.none(), st.booleans(), st.integers(), st.floats(), st.text(max_size=10).filter(lambda s: s.strip().lower() != 'all'),
                     st.dictionaries(st.text(max_size=5), scalars, max_size=3))
not_bool = st.one_of(st.none(), st.integers(), st.floats(), st.text(max_size=6), st.lists(scalars, max_size=2))
not_int = st.one_of(st.none(), st.booleans(), st.floats(), st.text(max_size=6), st.lists(scalars, max_size=2),
                    st.dictionaries(st.text(max_size=3), scalars, max_size=2))
# No digits: cannot be a profile name (they all have digits) nor a numeric profile ID.
garbage_name = st.text(alphabet='abcgkmxz.+-_ /:', min_size=0, max_size=20)
MALFORMED_NAMES = [
    '0g.10gb', '9g.10gb', '8g.80gb', '1g.11gb', '1g.10gb+xx', '1g.10gb+me+me', '8c.7g.80gb', '1c.2g.40gb', '4c.3g.40gb',
    '1g', 'g.10gb', '1g.10', '10gb', '1g.10gb.', '.1g.10gb', '1gg.10gb', '1g.10gb.all', 'MIG', '-1', '99', '1000', '1e3',
    '0x13', '1g.10gb 1g.10gb', '1c.1c.3g.40gb', '3g.40gb+gfx', '1g.24gb', '7g.96gb']
malformed_names = st.sampled_from(MALFORMED_NAMES)
bad_index = st.one_of(st.integers(min_value=3, max_value=2**16), st.integers(max_value=-1), st.integers(min_value=2**16 + 1))
bad_selector_text = st.one_of(
    st.text(alphabet='GPUabcdefx0123456789-:.', max_size=30).filter(
        lambda s: not (s.strip().isdigit() and len(s.strip()) <= 5) and not s.strip().lower().startswith('gpu-')
        and normalize_pci_bus_id(s) is None and s.strip().lower() != 'all'),
    st.sampled_from(['GPU-', 'gpu-xyz', '00000000:1X:00.0', '0000:zz:00.0', '1:2:3:4.0', ':00.0', '3b:00.8', 'all ', 'ALL0', '1.0']))
bad_filter = st.one_of(
    st.text(max_size=24).filter(lambda s: not s.strip().lower().startswith('0x')),
    st.sampled_from(['0x1234', '0x233010DE:', '0x233010DE:0x', '233010DE', '0x233010DEF', '0xZZZZZZZZ', '0x233010DE:16C110DE',
                     '0x233010DE::0x16C110DE', '0X233010DE0']),
    st.lists(st.sampled_from(['0x1234', 'x', '']), min_size=1, max_size=3))
long_text = st.text(alphabet='ab', min_size=257, max_size=400)


def base_entries() -> list[dict[str, t.Any]]:
    return [{'devices': [0], 'mig_enabled': True, 'mig_devices': {'1g.10gb': 2, '2g.20gb': 1}},
            {'devices': [1], 'mig_enabled': True,
             'instances': [{'profile': '3g.20gb', 'placement': 0, 'compute_instances': ['1c.3g.20gb', '2c.3g.20gb']}]}]


@st.composite
def bad_layouts(draw: st.DrawFn) -> tuple[t.Any, str]:
    """(layouts, field the error must name) that _spec must reject."""
    entries = base_entries()
    i = draw(st.integers(0, 1))
    e = entries[i]
    p = 'layouts[%d]' % i
    kind = draw(st.sampled_from([
        'top_type', 'entry_type', 'unknown_key', 'missing_devices', 'missing_enabled', 'devices_type', 'devices_empty',
        'devices_item_type', 'devices_text', 'devices_index', 'filter', 'filter_nomatch', 'enabled_type', 'migdev_type',
        'migdev_name', 'migdev_malformed', 'migdev_id', 'count_type', 'count_negative', 'count_huge', 'instances_type',
        'instance_type', 'instance_key', 'instance_missing_profile', 'instance_profile', 'placement_type', 'placement_range',
        'placement_illegal', 'ci_type', 'ci_name', 'ci_list', 'both', 'neither', 'disabled_with_devices', 'claimed_twice',
        'non_mig', 'too_many_entries', 'too_many_devices', 'long_string', 'ci_gi_mismatch']))
    field = p
    if kind == 'top_type':
        return draw(not_list.filter(lambda v: v is not None)), 'layouts'
    if kind == 'entry_type':
        entries[i] = draw(st.one_of(scalars, st.lists(scalars, max_size=3)))
    elif kind == 'unknown_key':
        key = draw(st.text(min_size=1, max_size=12).filter(
            lambda k: k not in ('devices', 'device_filter', 'mig_enabled', 'mig_devices', 'instances')))
        e[key] = draw(scalars)
    elif kind == 'missing_devices':
        del e['devices']
        field = p + '.devices'
    elif kind == 'missing_enabled':
        del e['mig_enabled']
        field = p + '.mig_enabled'
    elif kind == 'devices_type':
        e['devices'] = draw(st.one_of(st.integers(), st.floats(), st.booleans(), st.dictionaries(st.text(max_size=3), scalars, max_size=2),
                                      st.text(max_size=8).filter(lambda s: s.strip().lower() != 'all')))
        field = p + '.devices'
    elif kind == 'devices_empty':
        e['devices'] = []
        field = p + '.devices'
    elif kind == 'devices_item_type':
        e['devices'] = [draw(st.one_of(st.floats(), st.booleans(), st.none(), st.lists(scalars, max_size=2),
                                       st.dictionaries(st.text(max_size=3), scalars, max_size=2)))]
        field = p + '.devices[0]'
    elif kind == 'devices_text':
        e['devices'] = [draw(bad_selector_text)]
        field = p + '.devices[0]'
    elif kind == 'devices_index':
        e['devices'] = [draw(bad_index)]
        field = p + '.devices[0]'
    elif kind == 'filter':
        e['device_filter'] = draw(bad_filter)
        field = p + '.device_filter'
    elif kind == 'filter_nomatch':
        e['device_filter'] = '0x%08X' % draw(st.integers(0, 2**32 - 1).filter(lambda v: v not in (0x233010DE, 0x20B010DE, 0x26B910DE)))
        field = p + '.device_filter'
    elif kind == 'enabled_type':
        e['mig_enabled'] = draw(not_bool)
        field = p + '.mig_enabled'
    elif kind == 'migdev_type':
        e.pop('instances', None)
        e['mig_devices'] = draw(st.one_of(st.lists(scalars, max_size=3), st.integers(), st.text(max_size=5), st.booleans(), st.floats()))
        field = p + '.mig_devices'
    elif kind in ('migdev_name', 'migdev_malformed', 'migdev_id'):
        e.pop('instances', None)
        name = draw(garbage_name if kind == 'migdev_name' else malformed_names if kind == 'migdev_malformed'
                    else st.integers(100, 2**20))
        e['mig_devices'] = {name: 1}
        field = p + '.mig_devices'
    elif kind in ('count_type', 'count_negative', 'count_huge'):
        e.pop('instances', None)
        e['mig_devices'] = {'1g.10gb' if i == 0 else '1g.5gb': draw(
            not_int if kind == 'count_type' else st.integers(max_value=-1) if kind == 'count_negative' else st.integers(min_value=65))}
        field = p + '.mig_devices'
    elif kind == 'instances_type':
        e.pop('mig_devices', None)
        e['instances'] = draw(not_list.filter(lambda v: v is not None))
        field = p + '.instances'
    elif kind == 'instance_type':
        e.pop('mig_devices', None)
        e['instances'] = [draw(st.one_of(scalars.filter(lambda v: v is not None), st.lists(scalars, max_size=2)))]
        field = p + '.instances[0]'
    elif kind == 'instance_key':
        e.pop('mig_devices', None)
        key = draw(st.text(min_size=1, max_size=10).filter(lambda k: k not in ('profile', 'placement', 'compute_instances')))
        e['instances'] = [{'profile': '1g.10gb' if i == 0 else '1g.5gb', key: 1}]
        field = p + '.instances[0]'
    elif kind == 'instance_missing_profile':
        e.pop('mig_devices', None)
        e['instances'] = [{'placement': 0}]
        field = p + '.instances[0].profile'
    elif kind == 'instance_profile':
        e.pop('mig_devices', None)
        e['instances'] = [{'profile': draw(st.one_of(garbage_name, malformed_names, st.booleans(), st.floats(),
                                                     st.lists(scalars, max_size=2), st.integers(100, 10**6)))}]
        field = p + '.instances[0].profile'
    elif kind in ('placement_type', 'placement_range', 'placement_illegal'):
        e.pop('mig_devices', None)
        val = draw(not_int.filter(lambda v: v is not None) if kind == 'placement_type'
                   else st.one_of(st.integers(max_value=-1), st.integers(min_value=1024)) if kind == 'placement_range'
                   else st.sampled_from([1, 2, 3, 5, 7, 8, 100]))
        e['instances'] = [{'profile': '3g.40gb' if i == 0 else '3g.20gb', 'placement': val}]
        field = p + '.instances[0].placement'
    elif kind in ('ci_type', 'ci_name', 'ci_list'):
        e.pop('mig_devices', None)
        if kind == 'ci_type':
            cis = draw(not_list.filter(lambda v: v is not None))
        elif kind == 'ci_name':
            cis = [draw(st.one_of(garbage_name, malformed_names, st.floats(), st.booleans(), st.none(), st.integers(50, 10**6)))]
        else:
            cis = ['1c.3g.40gb' if i == 0 else '1c.3g.20gb'] * draw(st.integers(65, 80))
        e['instances'] = [{'profile': '3g.40gb' if i == 0 else '3g.20gb', 'compute_instances': cis}]
        field = p + '.instances[0].compute_instances'
    elif kind == 'ci_gi_mismatch':
        e.pop('mig_devices', None)
        e['instances'] = [{'profile': '2g.20gb' if i == 0 else '2g.10gb', 'compute_instances': ['1c.3g.40gb' if i == 0 else '1c.3g.20gb']}]
        field = p + '.instances[0].compute_instances[0]'
    elif kind == 'both':
        e['mig_devices'] = {}
        e['instances'] = []
    elif kind == 'neither':
        e.pop('mig_devices', None)
        e.pop('instances', None)
    elif kind == 'disabled_with_devices':
        e['mig_enabled'] = False
        e.pop('instances', None)
        e['mig_devices'] = {'1g.10gb' if i == 0 else '1g.5gb': draw(st.integers(1, 7))}
    elif kind == 'claimed_twice':
        other = dict(base_entries()[1 - i])
        sel = draw(st.sampled_from(['index', 'str_index', 'uuid', 'uuid_upper', 'pci', 'pci_short', 'all']))
        gpu = i
        other['devices'] = {'index': [gpu], 'str_index': [str(gpu)], 'uuid': ['<uuid%d>' % gpu], 'uuid_upper': ['<UUID%d>' % gpu],
                            'pci': ['<pci%d>' % gpu], 'pci_short': ['<pcishort%d>' % gpu], 'all': 'all'}[sel]
        other['mig_enabled'] = False
        other.pop('mig_devices', None)
        other.pop('instances', None)
        entries = [e, other] if draw(st.booleans()) else [other, e]
        return entries, 'layouts[1]'
    elif kind == 'non_mig':
        e['devices'] = [2]
        field = p + '.devices'
    elif kind == 'too_many_entries':
        return [{'devices': [0], 'mig_enabled': False}] * draw(st.integers(65, 100)), 'layouts'
    elif kind == 'too_many_devices':
        e['devices'] = [0] * draw(st.integers(65, 100))
        field = p + '.devices'
    elif kind == 'long_string':
        where = draw(st.sampled_from(['devices', 'filter', 'profile']))
        text = draw(long_text)
        if where == 'devices':
            e['devices'] = [text]
            field = p + '.devices[0]'
        elif where == 'filter':
            e['device_filter'] = text
            field = p + '.device_filter'
        else:
            e.pop('mig_devices', None)
            e['instances'] = [{'profile': text}]
            field = p + '.instances[0].profile'
    return entries, field


def resolve_placeholders(value: t.Any, gpus: list[t.Any]) -> t.Any:
    """Replace <uuidN>/<pciN> markers (the strategy does not know the simulated host)."""
    if isinstance(value, list):
        return [resolve_placeholders(v, gpus) for v in value]
    if isinstance(value, dict):
        return {k: resolve_placeholders(v, gpus) for k, v in value.items()}
    m = re.match(r'^<(uuid|UUID|pci|pcishort)(\d)>$', value) if isinstance(value, str) else None
    if m:
        tag, g = m.group(1), gpus[int(m.group(2))]
        return {'uuid': g.uuid, 'UUID': g.uuid.upper(), 'pci': g.pci_bus_id, 'pcishort': g.pci_bus_id.split(':', 1)[1].upper()}[tag]
    return value


@st.composite
def bad_plans(draw: st.DrawFn) -> tuple[t.Any, str]:
    """Layouts that are well-formed but cannot be placed: only the planner rejects them."""
    i = draw(st.integers(0, 1))
    p = 'layouts[0]'
    if i == 0:
        md = draw(st.sampled_from([{'1g.10gb': 8}, {'4g.40gb': 1, '3g.40gb': 2}, {'7g.80gb': 1, '1g.10gb': 1},
                                   {'1g.10gb': 7, '1g.10gb+me': 1}, {'2g.20gb': 4}, {'3g.40gb': 3}, {'1g.20gb': 5},
                                   {'1c.3g.40gb': 4, '3g.40gb': 2}, {'1g.10gb+me': 2}]))
        if draw(st.booleans()):
            md = {k: v * draw(st.integers(1, 8)) for k, v in md.items()}
            md = {k: min(v, 64) for k, v in md.items()}
        return [{'devices': [0], 'mig_enabled': True, 'mig_devices': md}], p
    inst = draw(st.sampled_from([
        [{'profile': '3g.20gb', 'placement': 0}, {'profile': '4g.20gb'}],
        [{'profile': '2g.10gb', 'placement': 2}, {'profile': '3g.20gb', 'placement': 0}],
        [{'profile': '1g.5gb', 'placement': 6}, {'profile': '1g.10gb', 'placement': 6}],
        [{'profile': '3g.20gb', 'compute_instances': ['1c.3g.20gb'] * 4}],
        [{'profile': '3g.20gb', 'compute_instances': ['2c.3g.20gb', '2c.3g.20gb']}],
        [{'profile': '7g.40gb'}, {'profile': '1g.5gb'}]]))
    return [{'devices': [1], 'mig_enabled': True, 'instances': inst}], p


# --- tests ----------------------------------------------------------------------------------------------

@hyp(600)
@given(case=bad_layouts())
def test_spec_rejects_bad_layouts(host: dict[str, t.Any], case: tuple[t.Any, str]) -> None:
    layouts, field = case
    layouts = resolve_placeholders(layouts, host['gpus'])
    exc = expect_spec_error(host['gpus'], 'resolve_layouts', layouts=layouts)
    assert exc.field.startswith(field) or field.startswith(exc.field), 'field %r, expected %r: %s' % (exc.field, field, exc)


@hyp(400)
@given(case=st.one_of(bad_layouts(), bad_plans()))
def test_converge_rejects_bad_layouts_before_any_mutation(host: dict[str, t.Any], case: tuple[t.Any, str]) -> None:
    layouts, field = case
    layouts = resolve_placeholders(layouts, host['gpus'])
    exc = expect_converge_error(Recorder(host['gpus']), 'converge', layouts=layouts)
    assert exc.field.startswith(field) or field.startswith(exc.field), 'field %r, expected %r: %s' % (exc.field, field, exc)


@hyp(400)
@given(layouts=st.one_of(json_values, st.lists(json_values, max_size=3),
                         st.lists(st.fixed_dictionaries({'devices': json_values, 'mig_enabled': json_values},
                                                        optional={'mig_devices': json_values, 'instances': json_values,
                                                                  'device_filter': json_values}), max_size=3)))
def test_converge_survives_any_value(host: dict[str, t.Any], layouts: t.Any) -> None:
    """Arbitrary JSON-like values: ConvergeError naming a field, or a valid plan (check mode: no mutation)."""
    count('converge (any value)')
    adapter = Recorder(host['gpus'])
    try:
        converge(adapter, layouts=layouts, check_mode=True)
    except ConvergeError as exc:
        if not exc.field or exc.field not in str(exc):
            FIG['no_field'] += 1
            raise AssertionError('no field: %s' % exc)
    except Exception:
        FIG['tracebacks'] += 1
        raise
    assert not adapter.mutations


@hyp(40)
@given(case=st.one_of(bad_layouts(), bad_plans()))
def test_bad_layouts_make_no_mutating_nvml_call(host: dict[str, t.Any], case: tuple[t.Any, str]) -> None:
    """The real NvmlAdapter against the simulator: migsim calls shows no mutating call, migsim show no change."""
    layouts = resolve_placeholders(case[0], host['gpus'])
    count('converge with NVML')
    res = converge_in_process(host['state'], layouts)
    mutated = relib.mutating_calls(host['state'])
    FIG['mutating_calls'] += sum(mutated.values())
    if res.get('traceback'):
        FIG['tracebacks'] += 1
    assert res['type'] == 'ConvergeError', res
    assert res['field'] and res['field'] in res['msg'], res
    assert not mutated, mutated
    assert relib.show(host['state']) == host['shown']


# --- mig-parted config files ---------------------------------------------------------------------------

VALID_CONFIG = """version: v1
mig-configs:
  all-disabled:
    - devices: all
      mig-enabled: false
  mixed:
    - devices: [0]
      mig-enabled: true
      mig-devices:
        "1g.10gb": 2
        "3g.40gb": 1
    - devices: [1]
      device-filter: ["0x20B010DE"]
      mig-enabled: true
      mig-devices:
        "2g.10gb": 3
"""

broken_yaml = st.one_of(
    st.sampled_from(['{', '[', 'a: b: c', 'version: v1\nmig-configs: {a: [', '"unterminated', '*alias', '&a [*a]',
                     '!!python/object/apply:os.system ["id"]', '!!python/name:os.system', 'version: !!binary AAAA\n',
                     '---\na: 1\n---\nb: 2\n', '%YAML 9.9\n---\na: 1', '\t- x', 'key: @bad', '? [a\n', 'a:\n  - b\n c: d',
                     'version: v1\nmig-configs:\n  x:\n    - devices: all\n     mig-enabled: true']),
    st.text(max_size=200).map(lambda s: s + '\n: [')).filter(bool)


@st.composite
def bad_configs(draw: st.DrawFn) -> tuple[t.Any, str | None, str]:
    """(config text, config_name, field prefix) that must be rejected."""
    kind = draw(st.sampled_from(['broken', 'not_mapping', 'version', 'extra_key', 'configs_type', 'configs_empty', 'name',
                                 'entries_type', 'entry', 'bytes', 'python_tag']))
    if kind == 'broken':
        return draw(broken_yaml), 'mixed', 'config_file'
    if kind == 'python_tag':
        return ('version: v1\nmig-configs:\n  mixed: !!python/object/apply:os.system ["touch /tmp/pwned"]\n'), 'mixed', 'config_file'
    if kind == 'not_mapping':
        return json.dumps(draw(st.one_of(scalars, st.lists(scalars, max_size=3)))), 'mixed', 'config_file'
    if kind == 'bytes':
        return b'\xff\xfe' + draw(st.binary(max_size=20)), 'mixed', 'config_file'
    data: dict[str, t.Any] = {'version': 'v1', 'mig-configs': {
        'mixed': [{'devices': [0], 'mig-enabled': True, 'mig-devices': {'1g.10gb': 2}},
                  {'devices': [1], 'device-filter': ['0x20B010DE'], 'mig-enabled': True, 'mig-devices': {'2g.10gb': 3}}]}}
    name: str | None = 'mixed'
    field = 'config_file'
    if kind == 'version':
        data['version'] = draw(st.one_of(scalars.filter(lambda v: v != 'v1'), st.sampled_from(['v2', 'V1', 'v1 '])))
    elif kind == 'extra_key':
        data[draw(st.text(min_size=1, max_size=10).filter(lambda k: k not in ('version', 'mig-configs')))] = 1
    elif kind == 'configs_type':
        data['mig-configs'] = draw(st.one_of(scalars, st.lists(scalars, max_size=2)))
    elif kind == 'configs_empty':
        data['mig-configs'] = {}
    elif kind == 'name':
        name = draw(st.one_of(st.text(max_size=20).filter(lambda s: s != 'mixed'), long_text))
        field = 'config_name'
    elif kind == 'entries_type':
        data['mig-configs']['mixed'] = draw(st.one_of(scalars, st.just([]), st.dictionaries(st.text(max_size=3), scalars, max_size=2)))
    else:
        entry = data['mig-configs']['mixed'][0]
        sub = draw(st.sampled_from(['snake_case', 'devices_str', 'devices_uuid', 'count', 'profile', 'filter', 'enabled']))
        if sub == 'snake_case':
            entry['mig_devices'] = entry.pop('mig-devices')
        elif sub == 'devices_str':
            entry['devices'] = [draw(st.text(max_size=10))]       # config files take GPU indexes only
        elif sub == 'devices_uuid':
            entry['devices'] = ['GPU-00000000-0000-0000-0000-000000000000']
        elif sub == 'count':
            entry['mig-devices'] = {'1g.10gb': draw(st.one_of(not_int, st.integers(max_value=-1), st.integers(min_value=65)))}
        elif sub == 'profile':
            entry['mig-devices'] = {draw(st.one_of(garbage_name, malformed_names)): 1}
        elif sub == 'filter':
            entry['device-filter'] = draw(bad_filter)
        else:
            entry['mig-enabled'] = draw(not_bool)
    text = draw(st.sampled_from(['json', 'yaml']))
    if text == 'json':
        return json.dumps(data), name, field
    import yaml  # pylint: disable=import-outside-toplevel
    return yaml.safe_dump(data), name, field


@hyp(400)
@given(case=bad_configs())
def test_config_files_rejected(host: dict[str, t.Any], case: tuple[t.Any, str | None, str]) -> None:
    config, name, field = case
    exc = expect_converge_error(Recorder(host['gpus']), 'config file', config=config, config_name=name)
    assert exc.field.startswith(field), 'field %r, expected %r: %s' % (exc.field, field, exc)


@hyp(200)
@given(text=st.text(max_size=300))
def test_any_text_as_config_file(host: dict[str, t.Any], text: str) -> None:
    expect_converge_error(Recorder(host['gpus']), 'config file (any text)', config=text, config_name='mixed')


def test_valid_config_still_accepted(host: dict[str, t.Any]) -> None:
    """Control: the base config of the strategies is valid, so the rejections above are about the mutation."""
    desired = resolve_layouts(host['gpus'], config=VALID_CONFIG, config_name='mixed')
    assert sorted(desired) == [0, 1]
    for layouts in (base_entries(),):
        assert sorted(resolve_layouts(host['gpus'], layouts=layouts)) == [0, 1]


def test_strategy_profile_names_are_really_unknown(host: dict[str, t.Any]) -> None:
    """Control for the strategies: none of the 'malformed' names is a profile on GPU 0 or GPU 1."""
    from ansible_collections.gpuops.mig.plugins.module_utils._profiles import resolve_gi_profile  # pylint: disable=import-outside-toplevel
    for name in MALFORMED_NAMES:
        for gpu in host['gpus'][:2]:
            with pytest.raises(SpecError):
                resolve_gi_profile(gpu, name, 'x')


def test_duplicate_selector_within_one_entry_is_harmless(host: dict[str, t.Any]) -> None:
    """``devices: [0, 0]`` (or index and UUID of one GPU) selects GPU 0 once, exactly like ``[0]``; documented behaviour."""
    gpus = host['gpus']
    one = resolve_layouts(gpus, layouts=[{'devices': [0], 'mig_enabled': True, 'mig_devices': {'1g.10gb': 2}}])
    for devices in ([0, 0], [0, gpus[0].uuid], ['0', gpus[0].pci_bus_id.lower()]):
        assert resolve_layouts(gpus, layouts=[{'devices': devices, 'mig_enabled': True, 'mig_devices': {'1g.10gb': 2}}]) == one


@pytest.mark.parametrize('what', ['text', 'bytes', 'nested', 'aliases', 'configs', 'keys'])
def test_oversized_and_pathological_configs(host: dict[str, t.Any], what: str) -> None:
    """Inputs sized to hurt: > 1 MiB, deep nesting, alias expansion, thousands of configs. Refused fast, with a field."""
    name = 'mixed'
    if what == 'text':
        config: t.Any = VALID_CONFIG + '#' * (MAX_CONFIG_BYTES + 1)
    elif what == 'bytes':
        config = (VALID_CONFIG + '#' * (MAX_CONFIG_BYTES + 1)).encode()
    elif what == 'nested':
        config = '[' * 20000 + ']' * 20000
    elif what == 'aliases':   # "billion laughs": 9 levels of 9 aliases
        lines = ['a0: &a0 [x, x, x, x, x, x, x, x, x]']
        for n in range(1, 10):
            lines.append('a%d: &a%d [%s]' % (n, n, ', '.join(['*a%d' % (n - 1)] * 9)))
        lines.append('version: v1\nmig-configs:\n  mixed:\n    - devices: *a9\n      mig-enabled: true\n      mig-devices: {}')
        config = '\n'.join(lines)
    elif what == 'configs':
        config = 'version: v1\nmig-configs:\n' + ''.join('  c%d: [{devices: all, mig-enabled: false}]\n' % n for n in range(5000))
        name = 'c1'
    else:
        config = 'version: v1\nmig-configs:\n  mixed:\n    - devices: [0]\n      mig-enabled: true\n      mig-devices:\n' + \
            ''.join('        "%dg.%dgb": 1\n' % (n, n) for n in range(1, 70))
    start = time.monotonic()
    exc = expect_converge_error(Recorder(host['gpus']), 'oversized', config=config, config_name=name)
    assert time.monotonic() - start < 60, 'took %.0fs' % (time.monotonic() - start)   # catches hangs, not slowness
    assert exc.field.startswith('config_file')
    report.FIGURES.setdefault('security', {}).setdefault('oversized_cases', []).append(what)


SPEC_BOUNDS = {
    'entries': ([{'devices': [0], 'mig_enabled': False}] * 65, 'layouts'),
    'devices': ([{'devices': [0] * 65, 'mig_enabled': False}], 'layouts[0].devices'),
    'profiles': ([{'devices': [0], 'mig_enabled': True, 'mig_devices': {'%dg.10gb' % n: 1 for n in range(65)}}], 'layouts[0].mig_devices'),
    'count': ([{'devices': [0], 'mig_enabled': True, 'mig_devices': {'1g.10gb': 65}}], "layouts[0].mig_devices['1g.10gb']"),
    'instances': ([{'devices': [0], 'mig_enabled': True, 'instances': [{'profile': '1g.10gb'}] * 65}], 'layouts[0].instances'),
    'compute': ([{'devices': [0], 'mig_enabled': True, 'instances': [{'profile': '7g.80gb', 'compute_instances': ['1c.7g.80gb'] * 65}]}],
                'layouts[0].instances[0].compute_instances'),
    'string': ([{'devices': ['x' * 257], 'mig_enabled': False}], 'layouts[0].devices[0]'),
    'index': ([{'devices': [2 ** 16 + 1], 'mig_enabled': False}], 'layouts[0].devices[0]'),
}


@pytest.mark.parametrize('bound', sorted(SPEC_BOUNDS))
def test_spec_bounds(host: dict[str, t.Any], bound: str) -> None:
    layouts, field = SPEC_BOUNDS[bound]
    exc = expect_spec_error(host['gpus'], 'bounds', layouts=layouts)
    assert exc.field == field, exc


# --- through the real module ----------------------------------------------------------------------------

MODULE_CASES = [
    ('layouts not a list', {'layouts': 'all'}, 'layouts'),
    ('unknown profile', {'layouts': [{'devices': [0], 'mig_enabled': True, 'mig_devices': {'9g.99gb': 1}}]}, 'layouts[0].mig_devices'),
    ('negative count', {'layouts': [{'devices': [0], 'mig_enabled': True, 'mig_devices': {'1g.10gb': -3}}]}, 'layouts[0].mig_devices'),
    ('huge count', {'layouts': [{'devices': [0], 'mig_enabled': True, 'mig_devices': {'1g.10gb': 10 ** 12}}]}, 'layouts[0].mig_devices'),
    ('over the instance cap', {'layouts': [{'devices': [0], 'mig_enabled': True, 'mig_devices': {'1g.10gb': 8}}]}, 'layouts[0]'),
    ('claimed twice', {'layouts': [{'devices': [0, 1], 'mig_enabled': False}, {'devices': ['<uuid1>'], 'mig_enabled': False}]},
     'layouts[1]'),
    ('malformed filter', {'layouts': [{'devices': 'all', 'device_filter': '0x2330', 'mig_enabled': False}]}, 'layouts[0].device_filter'),
    ('bad placement', {'layouts': [{'devices': [1], 'mig_enabled': True, 'instances': [{'profile': '3g.20gb', 'placement': 2}]}]},
     'layouts[0].instances[0].placement'),
    ('broken YAML file', {'config_file': '<broken>', 'config_name': 'mixed'}, 'config_file'),
    ('oversized file', {'config_file': '<huge>', 'config_name': 'mixed'}, 'config_file'),
]


def test_module_rejects_bad_input(host: dict[str, t.Any], tmp_path: t.Any, playbook: t.Callable[..., t.Any]) -> None:
    """ansible-playbook runs mig_layout on each bad input: failed, field named, no traceback, nothing changed."""
    state = host['state']
    broken = tmp_path / 'broken.yaml'
    broken.write_text('version: v1\nmig-configs: {mixed: [\n')
    huge = tmp_path / 'huge.yaml'
    huge.write_text(VALID_CONFIG + '#' * (MAX_CONFIG_BYTES + 10))
    tasks = []
    for name, args, _field in MODULE_CASES:
        args = resolve_placeholders(args, host['gpus'])
        if args.get('config_file') == '<broken>':
            args['config_file'] = str(broken)
        if args.get('config_file') == '<huge>':
            args['config_file'] = str(huge)
        tasks.append({'name': name, 'gpuops.mig.mig_layout': dict(args, lock_file=str(tmp_path / 'lock')), 'ignore_errors': True})
    relib.migsim_exe('calls', state, '--clear')
    before = relib.migsim_exe('show', state)
    out = playbook(tasks, state)
    results = out['results']
    after = relib.migsim_exe('show', state)
    mutated = {k: v for k, v in json.loads(relib.migsim_exe('calls', state)).items() if k in relib.MUTATING}
    fig = FIG
    fig['module_failed'] = sum(1 for r in results.values() if r.get('failed'))
    fig['module_field'] = sum(1 for (name, _args, field) in MODULE_CASES if field in results[name].get('msg', ''))
    fig['module_tracebacks'] = out['raw'].count('Traceback') + out['raw'].count('MODULE FAILURE')
    for name, _args, field in MODULE_CASES:
        r = results[name]
        count('module')
        assert r.get('failed'), (name, r)
        assert field in r.get('msg', ''), (name, r.get('msg'))
        assert not r.get('changed'), (name, r)
        assert 'Traceback (most recent' not in json.dumps(r), (name, r)
    assert fig['module_tracebacks'] == 0, out['raw'][-3000:]
    assert not mutated, mutated
    assert before == after


@pytest.fixture
def playbook(tmp_path: t.Any) -> t.Callable[..., dict[str, t.Any]]:
    return lambda tasks, state, **kw: run_playbook(tasks, state, tmp_path, **kw)
