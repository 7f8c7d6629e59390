# Copyright (c) 2026 gpuops.mig contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import annotations

import dataclasses

from ansible_collections.gpuops.mig.plugins.module_utils._model import DesiredGpu, DesiredInstance, GpuProcess, MigMode
from ansible_collections.gpuops.mig.plugins.module_utils._planner import plan_gpu
from ansible_collections.gpuops.mig.plugins.module_utils._render import layout_diagram, plan_diagram
from ansible_collections.gpuops.mig.tests.unit.plugins.module_utils.helpers import busy, execute, load


def build(model, ids):
    gpu = dataclasses.replace(load(model), mig_mode=MigMode(True, True))
    return execute(gpu, plan_gpu(gpu, DesiredGpu(0, True, tuple(DesiredInstance(i) for i in ids))))


def test_h100_8_slots():
    gpu = build('h100-80gb', [9, 19, 19])
    gpu = busy(gpu, [g for g in gpu.gpu_instances if g.profile == '3g.40gb'][0].placement.start, pid=31)
    rows = layout_diagram(gpu)
    assert rows[0] == 'slot  0 1 2 3 4 5 6 7'
    gi3 = [r for r in rows if '3g.40gb' in r][0]
    assert '[=====]' in gi3 and 'PIDs 31' in gi3
    assert rows[-1].startswith('free')
    assert rows[-1].count('.') == 2       # 8 slots - 4 (3g) - 2 x 1 (1g)
    assert len([r for r in rows if r.startswith('GI ')]) == 3


def test_a30_4_slots_and_rtx_12_units():
    rows = layout_diagram(build('a30-24gb', [5, 14]))
    assert rows[0] == 'slot  0 1 2 3'
    assert rows[-1].count('.') == 1
    rows = layout_diagram(build('rtx-pro-6000', [5, 14]))
    assert rows[0] == 'slot  0  1  2  3  4  5  6  7  8  9  10 11'
    assert any('[    2g.48gb    ]' in r for r in rows)
    assert rows[-1].count('.') == 3


def test_plan_diagram_and_disabled():
    gpu = load('h100-80gb')
    assert layout_diagram(gpu) == ['MIG disabled']
    plan = plan_gpu(gpu, DesiredGpu(0, True, (DesiredInstance(0),)))
    rows = plan_diagram(plan.target_instances, gpu.slot_count)
    assert rows[1].startswith('new') and '7g.80gb' in rows[1] and rows[-1] == 'free'
    assert layout_diagram(dataclasses.replace(gpu, mig_capable=False, mig_mode=None)) == []


def test_pid_listed_once_per_gpu_instance():
    """NVML lists a MIG process for the GPU instance and for its compute instance; the grid shows it once."""
    gpu = build('h100-80gb', [9, 19, 19])
    start = [g for g in gpu.gpu_instances if g.profile == '3g.40gb'][0].placement.start
    gpu = busy(gpu, start, pid=31)
    gi = [g for g in gpu.gpu_instances if g.placement.start == start][0]
    gpu = dataclasses.replace(gpu, processes=gpu.processes + (GpuProcess(pid=31, gi=gi.id, ci=None),))
    gi3 = [r for r in layout_diagram(gpu) if '3g.40gb' in r][0]
    assert gi3.endswith('PIDs 31')
