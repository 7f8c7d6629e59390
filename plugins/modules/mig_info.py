#!/usr/bin/python
# Copyright (c) 2026 gpuops.mig contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import annotations

DOCUMENTATION = r"""
module: mig_info
short_description: Report NVIDIA MIG state exactly as the driver sees it
version_added: 0.1.0
description:
  - Reads every GPU of the host through NVML (the C{pynvml} bindings from the C(nvidia-ml-py) package) and returns
    its identity, MIG capability and mode (current and pending), the GPU instance profiles with their legal
    placements and remaining capacity, the GPU and compute instances that exist with their MIG UUIDs, the
    processes running on them, and a text diagram of the placement grid.
  - Profile and placement queries work while MIG is disabled on drivers that support it (R550 and later), so the
    module can be used to plan a layout before MIG is enabled.
  - Changes nothing on the host.
author:
  - gpuops.mig maintainers (@gpuops)
extends_documentation_fragment:
  - gpuops.mig._attributes
  - gpuops.mig._attributes.info_module
options:
  gpus:
    description:
      - Which GPUs to report. V(all), or a list of GPU indexes, GPU UUIDs (C(GPU-...)) or PCI bus IDs
        (C(00000000:3B:00.0), case-insensitive, the domain may be left out).
    type: list
    elements: str
    default: [all]
  other_owners:
    description:
      - Look for other MIG owners on the host and return them in RV(mig_owners). Looked for are C(nvidia-mig-manager.service)
        (mig-parted) enabled, the kubelet plugin socket of NVIDIA's DRA driver (C(gpu.nvidia.com)), and, from
        O(kubernetes_node) and O(kubernetes_pods), the GPU Operator's mig-manager (node label
        C(nvidia.com/mig.config), its pod) and HAMi's dynamic MIG (node annotation C(hami.io/node-nvidia-register)
        with a GPU in mode C(mig)).
      - Reads a few paths and makes no NVML call for it.
    type: bool
    default: true
  host_root:
    description: Directory the host paths of O(other_owners) are looked up under (V(/) on a host; a container's view of the host otherwise).
    type: path
    default: /
  kubernetes_node:
    description:
      - The Kubernetes Node object of this host, as C(kubectl get node NAME -o json) prints it. Used by O(other_owners).
    type: dict
  kubernetes_pods:
    description:
      - The pods on this node (the C(items) of C(kubectl get pods -A --field-selector spec.nodeName=NAME -o json)).
        Used by O(other_owners).
    type: list
    elements: dict
  kubernetes_mig_strategy:
    description:
      - Return in RV(kubernetes_resources) the extended resources the NVIDIA device plugin advertises for the current
        layout of all GPUs of the host with this MIG strategy (C(migStrategy) of the plugin).
      - V(single) fails when the layout cannot be advertised that way (MIG on some GPUs only, more than one MIG
        device type, a MIG-enabled GPU without MIG devices), as the plugin itself would.
    type: str
    choices: [mixed, single]
requirements:
  - nvidia-ml-py (imported as C(pynvml)) on the managed node
  - an NVIDIA driver; MIG needs a MIG-capable GPU (A100, A30, H100, H200, B200, RTX PRO 6000 Blackwell, ...)
notes:
  - Profile IDs differ between GPU families (ID 14 is C(2g.20gb) on an H100 but C(1g.6gb) on an A30); the module
    reports what NVML says for each GPU and never uses a built-in table.
seealso:
  - module: gpuops.mig.mig_layout
"""

EXAMPLES = r"""
- name: Read MIG state of every GPU
  gpuops.mig.mig_info:
  register: mig

- name: Show the placement grid of GPU 0
  ansible.builtin.debug:
    msg: "{{ mig.gpus[0].layout_diagram }}"

- name: Read two GPUs by index and UUID
  gpuops.mig.mig_info:
    gpus:
      - 0
      - GPU-7cbab77b-03cd-ac40-d229-21b247852123
"""

RETURN = r"""
driver_version:
  description: NVIDIA driver version.
  returned: success
  type: str
  sample: 580.159.04
cuda_driver_version:
  description: Highest CUDA version the driver supports.
  returned: success
  type: str
  sample: '13.0'
nvml_version:
  description: NVML library version.
  returned: success
  type: str
  sample: 13.580.159.04
gpus:
  description: The selected GPUs in index order.
  returned: success
  type: list
  elements: dict
  contains:
    index:
      description: NVML device index.
      type: int
      sample: 0
    uuid:
      description: GPU UUID.
      type: str
      sample: GPU-7cbab77b-03cd-ac40-d229-21b247852123
    name:
      description: Product name as NVML reports it.
      type: str
      sample: NVIDIA H100 80GB HBM3
    pci_bus_id:
      description: PCI bus ID.
      type: str
      sample: 00000000:00:06.0
    pci_device_id:
      description: PCI device and vendor ID, as mig-parted device filters write it.
      type: str
      sample: '0x233010DE'
    pci_subsystem_id:
      description: PCI subsystem ID.
      type: str
      sample: '0x16C110DE'
    memory_total_mib:
      description: Total GPU memory in MiB.
      type: int
      sample: 81559
    architecture:
      description: NVML architecture number (7 Ampere, 9 Hopper, 10 Blackwell), or null when unknown.
      type: int
      sample: 9
    mig_capable:
      description: Whether the GPU supports MIG.
      type: bool
      sample: true
    mig_mode:
      description: Current and pending MIG mode (V(enabled) or V(disabled)); null when the GPU is not MIG-capable.
      type: dict
      sample: {current: disabled, pending: disabled}
    profiles:
      description:
        - GPU instance profiles as NVML reports them (name without the C(MIG) prefix), with C(id), C(index), C(name),
          C(slices), C(memory_mib), C(multiprocessors), C(copy_engines), C(decoders), C(encoders), C(jpeg_decoders),
          C(ofa_engines), C(max_instances), C(placements) (list of C(start), C(size)), C(remaining) and
          C(compute_instance_profiles) (known once a GPU instance of that profile exists).
      type: list
      elements: dict
    gpu_instances:
      description:
        - GPU instances with C(id), C(profile), C(profile_id), C(placement) and C(compute_instances) (each C(id),
          C(profile), C(profile_id), C(placement), C(mig_uuid)).
      type: list
      elements: dict
    processes:
      description: Compute processes with C(pid), C(gi) and C(ci) (null when not on a MIG device) and C(used_memory_mib).
      type: list
      elements: dict
    layout_diagram:
      description: Text rows showing which placement slots each GPU instance holds.
      type: list
      elements: str
    virtualization_mode:
      description:
        - NVML's virtualization mode (C(nvmlDeviceGetVirtualizationMode)) - V(none) (bare metal), V(passthrough) (the GPU
          is passed through to this VM, which cannot reset it), V(vgpu), V(host_vgpu), V(host_vsga); null when NVML
          cannot say.
      type: str
      sample: none
    current_layout:
      description:
        - The GPU as it is, as one C(layouts) entry of M(gpuops.mig.mig_layout) with exact C(instances) placements
          (converging to it changes nothing); null when the GPU is not MIG-capable.
      type: dict
      sample: {devices: [0], mig_enabled: true, instances: [{profile: 3g.40gb, placement: 0}, {profile: 1g.10gb, placement: 6}]}
    current_mig_parted_config:
      description:
        - The GPU as it is, as a mig-parted v1 config document (profile counts, config name C(current)); null when
          the GPU is not MIG-capable.
      type: dict
      sample: {version: v1, mig-configs: {current: [{devices: [0], mig-enabled: true, mig-devices: {3g.40gb: 1, 1g.10gb: 1}}]}}
mig_owners:
  description:
    - Other MIG owners found (O(other_owners)), each with C(name) (V(gpu-operator-mig-manager), V(mig-parted-service),
      V(dra-driver), V(hami-dynamic-mig)), C(evidence) (what gave it away) and C(way_forward).
  returned: success
  type: list
  elements: dict
  sample:
    - name: mig-parted-service
      evidence: ['enabled: /etc/systemd/system/multi-user.target.wants/nvidia-mig-manager.service']
      way_forward: nvidia-mig-manager.service (mig-parted) re-applies its own selected config at every boot ...
kubernetes_resources:
  description: Extended resource name to count, as the device plugin advertises the current layout (O(kubernetes_mig_strategy)).
  returned: when O(kubernetes_mig_strategy) is set
  type: dict
  sample: {nvidia.com/mig-1g.10gb: 7, nvidia.com/mig-3g.40gb: 1}
"""

import os

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.gpuops.mig.plugins.module_utils._module import nvml_session, select_gpus_or_fail
from ansible_collections.gpuops.mig.plugins.module_utils._adopt import current_layout, current_mig_parted_config
from ansible_collections.gpuops.mig.plugins.module_utils._render import gpu_report
from ansible_collections.gpuops.mig.plugins.module_utils._kubernetes import StrategyError, expected_resources
from ansible_collections.gpuops.mig.plugins.module_utils._owners import HOST_PATHS, find_owners


def present_paths(root: str) -> list[str]:
    """The owner evidence paths (host-absolute) that exist under ``root``; sockets and dangling links count."""
    return [p for p in HOST_PATHS if os.path.lexists(os.path.join(root, p.lstrip('/')))]


def main() -> None:
    module = AnsibleModule(
        argument_spec={
            'gpus': {'type': 'list', 'elements': 'str', 'default': ['all']},
            'other_owners': {'type': 'bool', 'default': True},
            'host_root': {'type': 'path', 'default': '/'},
            'kubernetes_node': {'type': 'dict'},
            'kubernetes_pods': {'type': 'list', 'elements': 'dict'},
            'kubernetes_mig_strategy': {'type': 'str', 'choices': ['mixed', 'single']},
        },
        supports_check_mode=True,
    )
    p = module.params
    with nvml_session(module) as nvml:
        info = nvml.system_info()
        gpus = nvml.read_gpus()
        modes = {g.index: nvml.virtualization_mode(g.index) for g in gpus}
    selected = select_gpus_or_fail(module, gpus, p['gpus'], 'gpus')
    result = dict(info, changed=False, gpus=[
        dict(gpu_report(g), virtualization_mode=modes[g.index], current_layout=current_layout(g),
             current_mig_parted_config=current_mig_parted_config(g))
        for g in selected])
    if p['other_owners']:
        result['mig_owners'] = [o.to_dict() for o in find_owners(present_paths(p['host_root']), p['kubernetes_node'],
                                                                 p['kubernetes_pods'])]
    if p['kubernetes_mig_strategy']:
        try:
            result['kubernetes_resources'] = expected_resources([gpu_report(g) for g in gpus], p['kubernetes_mig_strategy'])
        except StrategyError as exc:
            module.fail_json(msg='kubernetes_mig_strategy: %s' % exc, field='kubernetes_mig_strategy', **result)
    module.exit_json(**result)


if __name__ == '__main__':
    main()
