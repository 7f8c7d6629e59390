# Copyright (c) 2026 gpuops.mig contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import annotations

DOCUMENTATION = r"""
name: slurm_gres
short_description: Slurm GRES records of a node's GPUs and MIG devices
version_added: 0.1.0
author:
  - gpuops.mig contributors
description:
  - Turns the O(_input) GPU list of M(gpuops.mig.mig_info) or M(gpuops.mig.mig_layout) into the GRES records
    Slurm's NVML autodetection would report (type name and device files per MIG device) and the node's
    C(slurm.conf) C(Gres=) value.
  - Type names follow SchedMD/slurm C(src/plugins/gpu/nvml/gpu_nvml.c); see O(rule).
options:
  _input:
    description: The C(gpus) list of M(gpuops.mig.mig_info) or M(gpuops.mig.mig_layout).
    type: list
    elements: dict
    required: true
  rule:
    description:
      - V(attributes) (Slurm 21.08 to 23.02.5) names a MIG device C(<gpu>_<gpuInstanceSliceCount>g.<round(memorySizeMB/1024)>gb)
        from its NVML attributes; V(profile) (Slurm 23.02.6 and later) takes the profile of its NVML name.
      - V(auto) picks the rule of O(slurm_version).
    type: str
    choices: [auto, attributes, profile]
    default: attributes
  slurm_version:
    description: Output of C(slurmd -V) (for example C(slurm 22.05.8)), read when O(rule=auto).
    type: str
    default: ""
  mig_minors:
    description: Text of C(/proc/driver/nvidia-caps/mig-minors); needed for the device files of MIG devices.
    type: str
    default: ""
  gpu_minors:
    description: Device minor per PCI bus ID (from C(/proc/driver/nvidia/gpus/*/information)); a GPU not listed uses its index.
    type: dict
    default: {}
  need_files:
    description: Fail when a MIG device's capability minors are missing from O(mig_minors).
    type: bool
    default: true
"""

EXAMPLES = r"""
- name: GRES of this node
  ansible.builtin.set_fact:
    node_gres: "{{ mig_result.gpus | gpuops.mig.slurm_gres(rule='attributes', mig_minors=minors_text) }}"
"""

RETURN = r"""
_value:
  description:
    - C(devices) (per MIG device or non-MIG GPU C(type), C(files), C(gpu), C(gpu_instance), C(compute_instance),
      C(mig_uuid)), C(counts) (type to count), C(gres) (C(gpu:<type>:<n>,...)) and C(rule) (the rule used).
  type: dict
"""

import typing as t

from ansible.errors import AnsibleFilterError

from ansible_collections.gpuops.mig.plugins.module_utils._slurm import SlurmGresError, node_gres


def slurm_gres(gpus: t.Sequence[t.Mapping[str, t.Any]], rule: str = 'attributes', mig_minors: str = '',
               gpu_minors: t.Mapping[str, int] | None = None, need_files: bool = True,
               slurm_version: str = '') -> dict[str, t.Any]:
    try:
        return node_gres(gpus, rule, mig_minors, gpu_minors or {}, need_files, slurm_version)
    except (SlurmGresError, KeyError, TypeError, ValueError) as exc:
        raise AnsibleFilterError('slurm_gres: %s' % exc) from exc


class FilterModule:
    def filters(self) -> dict[str, t.Callable[..., t.Any]]:
        return {'slurm_gres': slurm_gres}
