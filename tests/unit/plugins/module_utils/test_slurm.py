# Copyright (c) 2026 gpuops.mig contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""Slurm GRES type names of MIG devices, per model, against Slurm's NVML autodetection (gpu_nvml.c).

Memory sizes (memorySizeMB) come from the simulator's models (tests/nvml_sim/models; the H100 80GB and
H200 rows there were read from real GPUs) and, for the H100 80GB, from the read-only run on real
H100s (tests/hardware/results). The expected names are written out by hand from the rule
``<GPU name lower-cased, spaces as '_', cut at the first '-'>_<gpuInstanceSliceCount>g.<roundl(MB/1024)>gb``.
"""

from __future__ import annotations

import json
import pathlib

import pytest

from ansible_collections.gpuops.mig.plugins.module_utils._slurm import (
    SlurmGresError, gpu_type, mig_type, node_gres, parse_mig_minors, rule_for_version,
)

TESTS = pathlib.Path(__file__).resolve().parents[3]
MODELS = TESTS / 'nvml_sim' / 'models'

# model file -> (type prefix, {NVML GI profile: type under the attributes rule (Slurm 21.08 - 23.02.5)})
EXPECTED = {
    'a100-40gb': ('nvidia_a100', {
        '1g.5gb': 'nvidia_a100_1g.5gb', '1g.5gb+me': 'nvidia_a100_1g.5gb', '1g.10gb': 'nvidia_a100_1g.10gb',
        '2g.10gb': 'nvidia_a100_2g.10gb', '3g.20gb': 'nvidia_a100_3g.20gb', '4g.20gb': 'nvidia_a100_4g.20gb',
        '7g.40gb': 'nvidia_a100_7g.39gb'}),
    'a100-80gb': ('nvidia_a100', {
        '1g.10gb': 'nvidia_a100_1g.10gb', '1g.10gb+me': 'nvidia_a100_1g.10gb', '1g.20gb': 'nvidia_a100_1g.20gb',
        '2g.20gb': 'nvidia_a100_2g.20gb', '3g.40gb': 'nvidia_a100_3g.39gb', '4g.40gb': 'nvidia_a100_4g.39gb',
        '7g.80gb': 'nvidia_a100_7g.79gb'}),
    'a30-24gb': ('nvidia_a30', {
        '1g.6gb': 'nvidia_a30_1g.6gb', '1g.6gb+me': 'nvidia_a30_1g.6gb', '2g.12gb': 'nvidia_a30_2g.12gb',
        '2g.12gb+me': 'nvidia_a30_2g.12gb', '4g.24gb': 'nvidia_a30_4g.23gb'}),
    'h100-80gb': ('nvidia_h100_80gb_hbm3', {
        '1g.10gb': 'nvidia_h100_80gb_hbm3_1g.10gb', '1g.10gb+me': 'nvidia_h100_80gb_hbm3_1g.10gb',
        '1g.20gb': 'nvidia_h100_80gb_hbm3_1g.20gb', '2g.20gb': 'nvidia_h100_80gb_hbm3_2g.20gb',
        '3g.40gb': 'nvidia_h100_80gb_hbm3_3g.40gb', '4g.40gb': 'nvidia_h100_80gb_hbm3_4g.40gb',
        '7g.80gb': 'nvidia_h100_80gb_hbm3_7g.79gb'}),
    'h100-94gb': ('nvidia_h100_nvl', {
        '1g.12gb': 'nvidia_h100_nvl_1g.11gb', '1g.12gb+me': 'nvidia_h100_nvl_1g.11gb', '1g.24gb': 'nvidia_h100_nvl_1g.22gb',
        '2g.24gb': 'nvidia_h100_nvl_2g.22gb', '3g.47gb': 'nvidia_h100_nvl_3g.46gb', '4g.47gb': 'nvidia_h100_nvl_4g.46gb',
        '7g.94gb': 'nvidia_h100_nvl_7g.93gb'}),
    'h200-141gb': ('nvidia_h200', {
        '1g.18gb': 'nvidia_h200_1g.16gb', '1g.18gb+me': 'nvidia_h200_1g.16gb', '1g.35gb': 'nvidia_h200_1g.33gb',
        '2g.35gb': 'nvidia_h200_2g.33gb', '3g.71gb': 'nvidia_h200_3g.70gb', '4g.71gb': 'nvidia_h200_4g.70gb',
        '7g.141gb': 'nvidia_h200_7g.140gb'}),
    'b200': ('nvidia_b200', {
        '1g.23gb': 'nvidia_b200_1g.22gb', '1g.23gb+me': 'nvidia_b200_1g.22gb', '1g.45gb': 'nvidia_b200_1g.44gb',
        '2g.45gb': 'nvidia_b200_2g.44gb', '3g.90gb': 'nvidia_b200_3g.89gb', '4g.90gb': 'nvidia_b200_4g.89gb',
        '7g.180gb': 'nvidia_b200_7g.178gb'}),
    'rtx-pro-6000': ('nvidia_rtx_pro_6000_blackwell_server_edition', {
        '1g.24gb': 'nvidia_rtx_pro_6000_blackwell_server_edition_1g.24gb',
        '1g.24gb-me': 'nvidia_rtx_pro_6000_blackwell_server_edition_1g.24gb',
        '1g.24gb+gfx': 'nvidia_rtx_pro_6000_blackwell_server_edition_1g.24gb',
        '2g.48gb': 'nvidia_rtx_pro_6000_blackwell_server_edition_2g.47gb',
        '4g.96gb': 'nvidia_rtx_pro_6000_blackwell_server_edition_4g.95gb'}),
}


def _model(key: str) -> dict:
    return json.loads((MODELS / ('%s.json' % key)).read_text())


def _cases() -> list:
    return [(key, prof, want) for key, (_prefix, table) in EXPECTED.items() for prof, want in table.items()]


@pytest.mark.parametrize('key,profile,want', _cases())
def test_attributes_rule_per_model(key: str, profile: str, want: str) -> None:
    model = _model(key)
    prof = {p['name']: p for p in model['gi_profiles']}[profile]
    got = mig_type(model['name'], prof['slices'], prof['slices'], prof['memory_mib'], 'attributes', profile)
    assert got == want
    assert gpu_type(model['name'], True) == EXPECTED[key][0]


@pytest.mark.parametrize('key,profile,want', _cases())
def test_profile_rule_per_model(key: str, profile: str, want: str) -> None:
    """Slurm 23.02.6+: the profile of the MIG device's NVML name, after the same GPU prefix."""
    model = _model(key)
    prof = {p['name']: p for p in model['gi_profiles']}[profile]
    got = mig_type(model['name'], prof['slices'], prof['slices'], prof['memory_mib'], 'profile', profile)
    assert got == EXPECTED[key][0] + '_' + profile


def test_every_model_profile_has_a_row() -> None:
    """A model gaining a profile must gain a row here (the +me.all and +gfx RTX variants share the 1g/2g rows)."""
    for key, (_prefix, table) in EXPECTED.items():
        names = {p['name'] for p in _model(key)['gi_profiles']}
        missing = {n for n in names - set(table) if not n.startswith(('1g.24gb+', '2g.48gb', '4g.96gb+'))}
        assert not missing, (key, missing)


def test_h100_memory_from_the_real_gpus_agrees() -> None:
    info = json.loads((TESTS / 'hardware' / 'results' / 'h100-80gb-hbm3' / 'mig_info.json').read_text())
    gpus = info['gpus'] if isinstance(info, dict) else info
    profiles = {p['name']: p for p in gpus[0]['profiles']}
    table = EXPECTED['h100-80gb'][1]
    for name, want in table.items():
        p = profiles[name]
        assert mig_type(gpus[0]['name'], p['slices'], p['slices'], p['memory_mib'], 'attributes') == want


def test_issue_example_h200_1g_18gb_is_16gb() -> None:
    assert mig_type('NVIDIA H200', 1, 1, 16384, 'attributes') == 'nvidia_h200_1g.16gb'


def test_compute_instance_named_by_its_gpu_instance() -> None:
    # 1c.3g.40gb on an H100: attributes rule drops the CI part; profile rule keeps it; fallback uses ceil.
    assert mig_type('NVIDIA H100 80GB HBM3', 3, 1, 40448, 'attributes', '1c.3g.40gb') == 'nvidia_h100_80gb_hbm3_3g.40gb'
    assert mig_type('NVIDIA H100 80GB HBM3', 3, 1, 40448, 'profile', '1c.3g.40gb') == 'nvidia_h100_80gb_hbm3_1c.3g.40gb'
    assert mig_type('NVIDIA H100 80GB HBM3', 3, 1, 40448, 'profile') == 'nvidia_h100_80gb_hbm3_1c.3g.40gb'


def test_roundl_halves_go_up() -> None:
    assert mig_type('NVIDIA A100-SXM4-80GB', 1, 1, 9728, 'attributes') == 'nvidia_a100_1g.10gb'  # 9.5
    assert mig_type('NVIDIA A100-SXM4-80GB', 7, 7, 80640, 'attributes') == 'nvidia_a100_7g.79gb'  # 78.75


def test_gpu_without_mig_keeps_its_whole_name() -> None:
    assert gpu_type('NVIDIA A100-SXM4-40GB', False) == 'nvidia_a100-sxm4-40gb'
    assert gpu_type('NVIDIA A100-SXM4-40GB', True) == 'nvidia_a100'


@pytest.mark.parametrize('version,rule', [
    ('slurm 22.05.8', 'attributes'), ('slurm 23.02.5', 'attributes'), ('slurm 23.02.6', 'profile'),
    ('slurm 23.11.0', 'profile'), ('slurm 24.11.1', 'profile'), ('slurm-wlm 21.08.5', 'attributes'),
])
def test_rule_for_version(version: str, rule: str) -> None:
    assert rule_for_version(version) == rule


def test_rule_for_version_unreadable() -> None:
    with pytest.raises(SlurmGresError, match='mig_slurm_type_rule'):
        rule_for_version('no version here')


def _minors(gpus: int = 2) -> str:
    """/proc/driver/nvidia-caps/mig-minors as the driver writes it (15 GIs x (1 + 8 CIs) per GPU)."""
    lines, n = ['config 1', 'monitor 2'], 3
    for g in range(gpus):
        for gi in range(15):
            lines.append('gpu%d/gi%d/access %d' % (g, gi, n))
            n += 1
            for ci in range(8):
                lines.append('gpu%d/gi%d/ci%d/access %d' % (g, gi, ci, n))
                n += 1
    return '\n'.join(lines) + '\n'


def test_mig_minors_match_the_driver_layout() -> None:
    m = parse_mig_minors(_minors(32))
    assert m[(0, 0, None)] == 3 and m[(0, 0, 0)] == 4 and m[(31, 14, 7)] == 4322
    assert m[(2, 7, None)] == 336  # the H100 1g.10gb of a real `slurmd -G` listing (File=.../nvidia-cap336)


def _gpu(index: int, name: str, gis: list, profiles: list, mig: bool = True) -> dict:
    return {'index': index, 'name': name, 'pci_bus_id': '00000000:1%d:00.0' % index,
            'mig_mode': {'current': 'enabled' if mig else 'disabled'}, 'gpu_instances': gis, 'profiles': profiles}


def test_node_gres_files_and_counts() -> None:
    profiles = [{'id': 19, 'slices': 1, 'memory_mib': 9984}, {'id': 9, 'slices': 3, 'memory_mib': 40448}]
    gis = [
        {'id': 2, 'profile_id': 9, 'placement': {'start': 4, 'size': 4}, 'compute_instances': [
            {'id': 0, 'profile': '1c.3g.40gb', 'placement': {'start': 0, 'size': 1}, 'mig_uuid': 'MIG-a'},
            {'id': 1, 'profile': '1c.3g.40gb', 'placement': {'start': 1, 'size': 1}, 'mig_uuid': 'MIG-b'}]},
        {'id': 7, 'profile_id': 19, 'placement': {'start': 0, 'size': 1}, 'compute_instances': [
            {'id': 0, 'profile': '1g.10gb', 'placement': {'start': 0, 'size': 1}, 'mig_uuid': 'MIG-c'}]},
    ]
    gpus = [_gpu(0, 'NVIDIA H100 80GB HBM3', [], []), _gpu(1, 'NVIDIA H100 80GB HBM3', gis, profiles),
            _gpu(2, 'NVIDIA L40S', [], [], mig=False)]
    out = node_gres(gpus, 'attributes', _minors(2), {'0000:11:00.0': 1, '00000000:12:00.0': 2})
    assert out['gres'] == 'gpu:nvidia_h100_80gb_hbm3_1g.10gb:1,gpu:nvidia_h100_80gb_hbm3_3g.40gb:2,gpu:nvidia_l40s:1'
    first = out['devices'][0]
    base = 3 + 135  # gpu1
    assert first['files'] == ['/dev/nvidia1', '/dev/nvidia-caps/nvidia-cap%d' % (base + 7 * 9),
                              '/dev/nvidia-caps/nvidia-cap%d' % (base + 7 * 9 + 1)]
    assert out['devices'][2]['files'][2] == '/dev/nvidia-caps/nvidia-cap%d' % (base + 2 * 9 + 1 + 1)
    assert out['devices'][3]['files'] == ['/dev/nvidia2']
    assert node_gres(gpus, 'profile', _minors(2))['counts'] == {
        'nvidia_h100_80gb_hbm3_1g.10gb': 1, 'nvidia_h100_80gb_hbm3_1c.3g.40gb': 2, 'nvidia_l40s': 1}


def test_node_gres_missing_minor_names_the_file() -> None:
    profiles = [{'id': 19, 'slices': 1, 'memory_mib': 9984}]
    gis = [{'id': 7, 'profile_id': 19, 'placement': {'start': 0, 'size': 1}, 'compute_instances': [
        {'id': 0, 'profile': '1g.10gb', 'placement': {'start': 0, 'size': 1}}]}]
    with pytest.raises(SlurmGresError, match='mig-minors'):
        node_gres([_gpu(0, 'NVIDIA H100 80GB HBM3', gis, profiles)], 'attributes', '')
    assert node_gres([_gpu(0, 'NVIDIA H100 80GB HBM3', gis, profiles)], 'attributes', '', need_files=False)['gres'] \
        == 'gpu:nvidia_h100_80gb_hbm3_1g.10gb:1'


def test_node_gres_auto_rule_follows_the_slurm_version() -> None:
    profiles = [{'id': 19, 'slices': 1, 'memory_mib': 16384}]
    gis = [{'id': 7, 'profile_id': 19, 'placement': {'start': 0, 'size': 1}, 'compute_instances': [
        {'id': 0, 'profile': '1g.18gb', 'placement': {'start': 0, 'size': 1}}]}]
    gpus = [_gpu(0, 'NVIDIA H200', gis, profiles)]
    assert node_gres(gpus, 'auto', need_files=False, slurm_version='slurm 22.05.8')['gres'] == 'gpu:nvidia_h200_1g.16gb:1'
    assert node_gres(gpus, 'auto', need_files=False, slurm_version='slurm 24.11.3')['gres'] == 'gpu:nvidia_h200_1g.18gb:1'
