# SPDX-License-Identifier: GPL-3.0-or-later
"""Driver behaviours of the simulator, exercised through the real pynvml."""
from __future__ import annotations

import sys

import pytest

E = {'INVALID_ARGUMENT': 'ERR 2', 'NOT_SUPPORTED': 'ERR 3', 'NO_PERMISSION': 'ERR 4', 'NOT_FOUND': 'ERR 6',
     'DRIVER_NOT_LOADED': 'ERR 9', 'IN_USE': 'ERR 19', 'INSUFFICIENT_RESOURCES': 'ERR 23'}


def test_mig_disabled_queries_and_create(make_sim):
    sim = make_sim('h100-80gb:1')
    got = sim.py('''
        out({'create': mk(19), 'rem': n.nvmlDeviceGetGpuInstanceRemainingCapacity(h, 19),
             'idx16': err(n.nvmlDeviceGetGpuInstanceProfileInfo, h, 16), 'idx17': err(n.nvmlDeviceGetGpuInstanceProfileInfo, h, 17),
             'id21': err(n.nvmlDeviceGetGpuInstanceRemainingCapacity, h, 21),
             'maxmig': n.nvmlDeviceGetMaxMigDeviceCount(h), 'mig0': err(n.nvmlDeviceGetMigDeviceHandleByIndex, h, 0)})
    ''')
    assert got == {'create': E['NOT_SUPPORTED'], 'rem': 7, 'idx16': E['NOT_SUPPORTED'], 'idx17': E['INVALID_ARGUMENT'],
                   'id21': E['NOT_SUPPORTED'], 'maxmig': 0, 'mig0': E['NOT_FOUND']}


@pytest.mark.parametrize('seq,want', [
    ([19, 14, 5], [[13, 6, 1], [5, 4, 2], [1, 0, 4]]),
    ([19, 19, 14, 9], [[13, 6, 1], [11, 4, 1], [3, 0, 2], E['INSUFFICIENT_RESOURCES']]),
    ([9, 19, 14, 19], [[2, 4, 4], [7, 0, 1], [4, 2, 2], [8, 1, 1]]),
    ([14, 19, 19, 19, 19, 19], [[5, 4, 2], [13, 6, 1], [7, 0, 1], [8, 1, 1], [9, 2, 1], [10, 3, 1]]),
])
def test_default_placement_a100_guide(make_sim, seq, want):
    """MIG guide A100 examples (mig-hardware.md section 3)."""
    sim = make_sim('a100-40gb:1', mig='enabled')
    assert sim.py('out([mk(p) for p in %r])' % seq) == want


def test_rtx_pro_default_and_all_me(make_sim):
    sim = make_sim('rtx-pro-6000:1', mig='enabled')
    got = sim.py('''
        h = n.nvmlDeviceGetHandleByIndex(0)
        res = []
        for pid in (5, 14, 14):
            i = n.nvmlGpuInstanceGetInfo(n.nvmlDeviceCreateGpuInstance(h, pid))
            res.append([i.id, i.placement.start, i.placement.size])
        out(res)
    ''')
    assert got == [[1, 0, 6], [5, 6, 3], [6, 9, 3]]
    sim2 = make_sim('rtx-pro-6000:1', mig='enabled')
    got = sim2.py('''
        h = n.nvmlDeviceGetHandleByIndex(0)
        n.nvmlDeviceCreateGpuInstance(h, 65)
        out([err(lambda: n.nvmlDeviceCreateGpuInstance(h, 14) and 'ok'), err(lambda: n.nvmlDeviceCreateGpuInstance(h, 67) and 'ok')])
    ''')
    assert got == [E['INSUFFICIENT_RESOURCES'], 'ok']


def test_overlap_count_me_and_invalid_placement(make_sim):
    sim = make_sim('h100-80gb:1', mig='enabled')
    got = sim.py('''
        out([mk(9, 0), mk(5, 0), mk(19, 2), mk(20, 4), mk(20, 5), mk(14, 6), mk(19, 7), mk(9, 4), mk(9, 4),
             n.nvmlDeviceGetGpuInstanceRemainingCapacity(h, 19)])
    ''')
    ins = E['INSUFFICIENT_RESOURCES']
    assert got == [[1, 0, 4], ins, ins, [11, 4, 1], ins, E['INVALID_ARGUMENT'], E['INVALID_ARGUMENT'], ins, ins, 2]


def test_instance_cap(make_sim):
    sim = make_sim('h100-80gb:1', mig='enabled')
    got = sim.py('out([mk(15) for _ in range(5)] + [mk(19)])')
    assert got[4] == E['INSUFFICIENT_RESOURCES'] and got[5] == E['INSUFFICIENT_RESOURCES']
    assert sorted(x[1] for x in got[:4]) == [0, 2, 4, 6]


def test_compute_instances_and_mig_devices(make_sim):
    sim = make_sim('h100-80gb:1', mig='enabled')
    got = sim.py('''
        h = n.nvmlDeviceGetHandleByIndex(0)
        gi = n.nvmlDeviceCreateGpuInstance(h, 0)
        profs = {}
        for p in range(9):
            try:
                i = n.nvmlGpuInstanceGetComputeInstanceProfileInfo(gi, p, 0)
                profs[p] = [i.sliceCount, i.instanceCount, i.multiprocessorCount, i.name.decode() if isinstance(i.name, bytes) else i.name]
            except n.NVMLError as e:
                profs[p] = e.value
        ci1 = n.nvmlGpuInstanceCreateComputeInstance(gi, 3)
        ci2 = n.nvmlGpuInstanceCreateComputeInstance(gi, 2)
        third = err(n.nvmlGpuInstanceCreateComputeInstance, gi, 2)
        arr = (n.c_nvmlComputeInstancePlacement_t * 8)(); cnt = ctypes.c_uint(8)
        n.nvmlGpuInstanceGetComputeInstancePossiblePlacements(gi, 2, arr, ctypes.byref(cnt))
        info = n.nvmlComputeInstanceGetInfo(ci2)
        md = n.nvmlDeviceGetMigDeviceHandleByIndex(h, 1)
        out({'profs': profs, 'third': third, 'pl': [[arr[i].start, arr[i].size] for i in range(cnt.value)],
             'ci2': [info.id, info.profileId, info.placement.start, info.placement.size],
             'max': n.nvmlDeviceGetMaxMigDeviceCount(h), 'is': n.nvmlDeviceIsMigDeviceHandle(md).value,
             'ids': [n.nvmlDeviceGetGpuInstanceId(md), n.nvmlDeviceGetComputeInstanceId(md)],
             'uuid': n.nvmlDeviceGetUUID(md), 'name': n.nvmlDeviceGetName(md),
             'parent': n.nvmlDeviceGetUUID(n.nvmlDeviceGetDeviceHandleFromMigDeviceHandle(md)) == n.nvmlDeviceGetUUID(h),
             'byuuid': n.nvmlDeviceGetComputeInstanceId(n.nvmlDeviceGetHandleByUUID(n.nvmlDeviceGetUUID(md))),
             'mig2': err(n.nvmlDeviceGetMigDeviceHandleByIndex, h, 2), 'mig7': err(n.nvmlDeviceGetMigDeviceHandleByIndex, h, 7),
             'gi_in_use': err(n.nvmlGpuInstanceDestroy, gi)})
    ''')
    assert got['profs'] == {'0': [1, 7, 16, 'MIG 1c.7g.80gb'], '1': [2, 3, 32, 'MIG 2c.7g.80gb'], '2': [3, 2, 48, 'MIG 3c.7g.80gb'],
                            '3': [4, 1, 64, 'MIG 4c.7g.80gb'], '4': [7, 1, 132, 'MIG 7g.80gb'], '5': 3, '6': 3, '7': 3, '8': 3}
    assert got['third'] == E['INSUFFICIENT_RESOURCES']
    assert got['pl'] == [[0, 3], [4, 3]]
    assert got['ci2'] == [1, 2, 4, 3]
    assert got['max'] == 7 and got['is'] == 1 and got['ids'] == [0, 1] and got['byuuid'] == 1 and got['parent']
    assert got['uuid'].startswith('MIG-') and got['name'] == 'NVIDIA H100 80GB HBM3 MIG 3c.7g.80gb'
    assert got['mig2'] == E['NOT_FOUND'] and got['mig7'] == E['INVALID_ARGUMENT'] and got['gi_in_use'] == E['IN_USE']


def test_rev2_full_ci_is_profile_7_on_hopper_0_on_ampere(make_sim):
    code = '''
        h = n.nvmlDeviceGetHandleByIndex(0)
        gi = n.nvmlDeviceCreateGpuInstance(h, 15)
        res = []
        for p in range(9):
            try:
                n.nvmlGpuInstanceGetComputeInstanceProfileInfo(gi, p, 0); res.append(p)
            except n.NVMLError:
                pass
        out(res)
    '''
    assert make_sim('h100-80gb:1', mig='enabled').py(code) == [7]
    assert make_sim('a100-80gb:1', mig='enabled').py(code) == [0]


def test_processes_block_destroy_and_are_listed(make_sim):
    sim = make_sim('h100-80gb:1', mig='enabled')
    sim.py('''
        h = n.nvmlDeviceGetHandleByIndex(0)
        gi = n.nvmlDeviceCreateGpuInstance(h, 9)
        n.nvmlGpuInstanceCreateComputeInstance(gi, 2)
        out(0)
    ''')
    gi_id = sim.show()['gpus'][0]['gpu_instances'][0]['id']
    sim.cli('process', 'add', '--gpu', '0', '--gi', str(gi_id), '--ci', '0', '--pid', '4242')
    got = sim.py('''
        h = n.nvmlDeviceGetHandleByIndex(0)
        gi = n.nvmlDeviceGetGpuInstanceById(h, %d)
        ci = n.nvmlGpuInstanceGetComputeInstanceById(gi, 0)
        p = n.nvmlDeviceGetComputeRunningProcesses(h)
        md = n.nvmlDeviceGetMigDeviceHandleByIndex(h, 0)
        out({'ci': err(n.nvmlComputeInstanceDestroy, ci), 'procs': [[x.pid, x.gpuInstanceId, x.computeInstanceId] for x in p],
             'mig': [x.pid for x in n.nvmlDeviceGetComputeRunningProcesses(md)], 'mode_off': err(n.nvmlDeviceSetMigMode, h, 0)})
    ''' % gi_id)
    assert got == {'ci': E['IN_USE'], 'procs': [[4242, gi_id, 0]], 'mig': [4242], 'mode_off': E['IN_USE']}
    sim.cli('process', 'clear')
    got = sim.py('''
        h = n.nvmlDeviceGetHandleByIndex(0)
        gi = n.nvmlDeviceGetGpuInstanceById(h, %d)
        n.nvmlComputeInstanceDestroy(n.nvmlGpuInstanceGetComputeInstanceById(gi, 0))
        n.nvmlGpuInstanceDestroy(gi)
        out(n.nvmlDeviceGetComputeRunningProcesses(h))
    ''' % gi_id)
    assert got == [] and sim.show()['gpus'][0]['gpu_instances'] == []


def test_gi_create_in_use_when_gpu_held(make_sim):
    sim = make_sim('h100-80gb:1', mig='enabled')
    sim.cli('process', 'add', '--gpu', '0', '--pid', '77')
    assert sim.py('out(mk(19))') == E['IN_USE']


@pytest.mark.parametrize('model,resettable,procs,status,current', [
    ('h100-80gb', True, False, 0, 1),
    ('h100-80gb', False, False, 0, 1),
    ('h100-80gb', True, True, 19, 0),
    ('a100-40gb', True, False, 0, 1),
    ('a100-40gb', False, False, 16, 0),
    ('a100-40gb', True, True, 19, 0),
])
def test_set_mig_mode_activation(make_sim, model, resettable, procs, status, current):
    sim = make_sim(model + ':1')
    if not resettable:
        sim.cli('set', '--gpu', '0', '--no-reset')
    if procs:
        sim.cli('process', 'add', '--gpu', '0', '--pid', '99')
    got = sim.py('''
        h = n.nvmlDeviceGetHandleByIndex(0)
        out([n.nvmlDeviceSetMigMode(h, 1), n.nvmlDeviceGetMigMode(h)])
    ''')
    assert got == [status, [current, 1]]


def test_pending_fault_and_reset_reboot(make_sim):
    sim = make_sim('h100-80gb:1,a100-40gb:1')
    sim.cli('fault', 'add', '--call', 'nvmlDeviceSetMigMode', '--nth', '1', '--error', 'PENDING')
    got = sim.py('''
        res = []
        for i in range(2):
            h = n.nvmlDeviceGetHandleByIndex(i)
            res.append([n.nvmlDeviceSetMigMode(h, 1), n.nvmlDeviceGetMigMode(h)])
        out(res)
    ''')
    assert got == [[16, [0, 1]], [0, [1, 1]]]
    sim.cli('reset', '--gpu', '0')
    assert sim.show()['gpus'][0]['mig_mode'] == {'current': 'enabled', 'pending': 'enabled'}
    sim.py('out(mk(0))')
    sim.cli('reboot')
    gpus = sim.show()['gpus']
    assert gpus[0]['mig_mode'] == {'current': 'disabled', 'pending': 'disabled'} and gpus[0]['gpu_instances'] == []
    assert gpus[1]['mig_mode'] == {'current': 'enabled', 'pending': 'enabled'}


def test_faults_nth_and_once(make_sim):
    sim = make_sim('h100-80gb:1', mig='enabled')
    sim.cli('fault', 'add', '--call', 'nvmlDeviceCreateGpuInstance', '--nth', '2', '--error', 'NVML_ERROR_IN_USE')
    got = sim.py('out([mk(19), mk(19), mk(19)])')
    assert got[0] != E['IN_USE'] and got[1] == E['IN_USE'] and isinstance(got[2], list)


def test_not_mig_capable_and_permissions(make_sim):
    sim = make_sim('l40s:1')
    assert sim.py('out(err(n.nvmlDeviceGetMigMode, n.nvmlDeviceGetHandleByIndex(0)))') == E['NOT_SUPPORTED']
    sim = make_sim('h100-80gb:1', '--non-root', mig='enabled')
    got = sim.py('out([mk(19), err(n.nvmlDeviceSetMigMode, h, 0)])')
    assert got == [E['NO_PERMISSION'], E['NO_PERMISSION']]


def test_driver_not_loaded(make_sim):
    sim = make_sim('h100-80gb:1')
    sim.cli('set', '--driver-not-loaded')
    with pytest.raises(AssertionError, match='Driver Not Loaded'):
        sim.py('out(0)')


def test_gi_ids_follow_pools(make_sim):
    sim = make_sim('a30-24gb:1', mig='enabled')
    got = sim.py('out([mk(5), mk(14), mk(14), mk(21), mk(6)])')
    assert got[:3] == [[1, 0, 2], [5, 2, 1], [6, 3, 1]] or got[0][0] in (1, 2)
    assert got[4] == E['INSUFFICIENT_RESOURCES']


def test_state_carries_across_processes_and_python(make_sim):
    """A second process (system python3 when present) sees instances created by the first."""
    sim = make_sim('h100-80gb:1', mig='enabled')
    sim.py('out(mk(9, 4))')
    pythons = [sys.executable] + (['/usr/bin/python3'] if sys.executable != '/usr/bin/python3' else [])
    for py in pythons:
        got = sim.py('''
            h = n.nvmlDeviceGetHandleByIndex(0)
            arr = (n.c_nvmlGpuInstance_t * 2)(); cnt = ctypes.c_uint(2)
            n.nvmlDeviceGetGpuInstances(h, 9, arr, ctypes.byref(cnt))
            out([cnt.value, n.nvmlGpuInstanceGetInfo(arr[0]).placement.start])
        ''', python=py if py == sys.executable else None)
        assert got == [1, 4]
