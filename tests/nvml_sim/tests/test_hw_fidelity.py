# SPDX-License-Identifier: GPL-3.0-or-later
"""The H100/H200 models reproduce the real NVML readings in tests/hardware/readings field for field."""
from __future__ import annotations

import json
import os
import re

import pytest

HW = [('h100-80gb', 'h100-80gb-hbm3'), ('h200-141gb', 'h200-141gb')]
UUID_RE = re.compile(r'^GPU-[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$')
BUS_RE = re.compile(r'^[0-9A-F]{8}:[0-9A-F]{2}:[0-9A-F]{2}\.0$')


@pytest.mark.parametrize('model,hwdir', HW)
def test_probe2_identical(make_sim, readings_dir, model, hwdir):
    """nvml_probe2.py (placements via c_nvmlGpuInstancePlacement_t arrays) gives the captured JSON exactly."""
    sim = make_sim(model + ':1')
    got = json.loads(sim.run_script(os.path.join(readings_dir, 'nvml_probe2.py.txt')))
    with open(os.path.join(readings_dir, hwdir, 'probe2.json'), encoding='utf-8') as f:
        want = json.load(f)
    assert got == want


@pytest.mark.parametrize('model,hwdir', HW)
def test_probe_identical_but_identity(make_sim, readings_dir, model, hwdir):
    """nvml_probe.py matches except UUID and bus ID values (their formats must match)."""
    sim = make_sim(model + ':1')
    got = json.loads(sim.run_script(os.path.join(readings_dir, 'nvml_probe.py.txt')))
    with open(os.path.join(readings_dir, hwdir, 'probe.json'), encoding='utf-8') as f:
        want = json.load(f)
    gd, wd = got['devices'][0], want['devices'][0]
    assert UUID_RE.match(gd.pop('uuid')) and UUID_RE.match(wd.pop('uuid'))
    gb, wb = gd['pci'].pop('busId'), wd['pci'].pop('busId')
    assert BUS_RE.match(gb) and BUS_RE.match(wb)
    assert gd == wd
    assert {k: v for k, v in got.items() if k != 'devices'} == {k: v for k, v in want.items() if k != 'devices'}


@pytest.mark.parametrize('model,hwdir', HW)
def test_lgipp_placements(make_sim, readings_dir, model, hwdir):
    """Placements agree with nvidia-smi -lgipp text."""
    sim = make_sim(model + ':1')
    got = sim.py('''
        h = n.nvmlDeviceGetHandleByIndex(0)
        res = {}
        for idx in range(16):
            try:
                info = n.nvmlDeviceGetGpuInstanceProfileInfo(h, idx)
            except n.NVMLError:
                continue
            arr = (n.c_nvmlGpuInstancePlacement_t * 16)(); cnt = ctypes.c_uint(16)
            n.nvmlDeviceGetGpuInstancePossiblePlacements(h, info.id, arr, ctypes.byref(cnt))
            res[str(info.id)] = [[arr[i].start, arr[i].size] for i in range(cnt.value)]
        out(res)
    ''')
    with open(os.path.join(readings_dir, hwdir, 'lgipp.txt'), encoding='utf-8') as f:
        text = f.read()
    want = {}
    for m in re.finditer(r'Profile ID\s+(\d+) Placements?\s*: \{([\d,]+)\}:(\d+)', text):
        want[m.group(1)] = [[int(s), int(m.group(3))] for s in m.group(2).split(',')]
    assert want and got == want


@pytest.mark.parametrize('model,hwdir', HW)
def test_smi_q_identity(make_sim, readings_dir, model, hwdir):
    """Name, PCI IDs, VBIOS, board part, FB total/reserved agree with nvidia-smi -q."""
    sim = make_sim(model + ':1')
    got = sim.py('''
        h = n.nvmlDeviceGetHandleByIndex(0)
        pci = n.nvmlDeviceGetPciInfo(h)
        m2 = n.nvmlDeviceGetMemoryInfo(h, version=n.nvmlMemory_v2)
        out({'name': n.nvmlDeviceGetName(h), 'dev': '0x%08X' % pci.pciDeviceId, 'sub': '0x%08X' % pci.pciSubSystemId,
             'vbios': n.nvmlDeviceGetVbiosVersion(h), 'bpn': n.nvmlDeviceGetBoardPartNumber(h),
             'total': m2.total // 2**20, 'reserved': m2.reserved // 2**20, 'persist': n.nvmlDeviceGetPersistenceMode(h)})
    ''')
    with open(os.path.join(readings_dir, hwdir, 'smi_q.txt'), encoding='utf-8') as f:
        text = f.read()

    def field(label):
        return re.search(r'^\s*' + re.escape(label) + r'\s+:\s*(.+)$', text, re.M).group(1).strip()
    assert got['name'] == field('Product Name')
    assert got['dev'] == field('Device Id')
    assert got['sub'] == field('Sub System Id')
    assert got['vbios'] == field('VBIOS Version')
    assert got['bpn'] == field('Board Part Number')
    fb = text[text.index('FB Memory Usage'):]
    assert '%d MiB' % got['total'] in fb.split('\n')[1]
    assert '%d MiB' % got['reserved'] in fb.split('\n')[2]
    assert field('Persistence Mode') == ('Enabled' if got['persist'] else 'Disabled')


@pytest.mark.parametrize('model,hwdir', HW)
def test_lgip_table(make_sim, readings_dir, model, hwdir):
    """Every row of nvidia-smi mig -lgip (name, ID, count, GiB, SM, DEC, ENC, CE, JPEG, OFA)."""
    sim = make_sim(model + ':1')
    got = sim.py('''
        h = n.nvmlDeviceGetHandleByIndex(0)
        res = {}
        for idx in range(16):
            try:
                i = n.nvmlDeviceGetGpuInstanceProfileInfo(h, idx)
            except n.NVMLError:
                continue
            res[i.name.decode() if isinstance(i.name, bytes) else i.name] = [i.id, i.instanceCount, '%.2f' % (i.memorySizeMB / 1024),
                i.multiprocessorCount, i.decoderCount, i.encoderCount, i.copyEngineCount, i.jpegCount, i.ofaCount]
        out(res)
    ''')
    with open(os.path.join(readings_dir, hwdir, 'lgip.txt'), encoding='utf-8') as f:
        lines = f.read().splitlines()
    want = {}
    for i, line in enumerate(lines):
        m = re.match(r'\|\s+\d+\s+(MIG \S+)\s+(\d+)\s+(\d+)/(\d+)\s+([\d.]+)\s+\w+\s+(\d+)\s+(\d+)\s+(\d+)', line)
        if m:
            m2 = re.match(r'\|\s+(\d+)\s+(\d+)\s+(\d+)', lines[i + 1])
            want[m.group(1)] = [int(m.group(2)), int(m.group(4)), m.group(5), int(m.group(6)), int(m.group(7)), int(m.group(8)),
                                int(m2.group(1)), int(m2.group(2)), int(m2.group(3))]
    assert len(want) == 7 and got == want
