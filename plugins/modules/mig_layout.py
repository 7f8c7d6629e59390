#!/usr/bin/python
# Copyright (c) 2026 gpuops.mig contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import annotations

DOCUMENTATION = r"""
module: mig_layout
short_description: Converge NVIDIA GPUs to a declared MIG layout with exact placements and minimal disruption
version_added: 0.1.0
description:
  - Enables or disables MIG and creates or destroys GPU instances and compute instances so that every GPU that
    a layout entry selects holds exactly the declared instances. GPUs that no entry selects are left untouched.
  - Reads the GPU's profiles and legal placements from NVML, then plans placements itself and creates every
    instance with an explicit placement (C(nvmlDeviceCreateGpuInstanceWithPlacement)), never relying on the
    driver's order-dependent default placement. If any placement of the layout exists, it is found.
  - Keeps the largest possible set of existing instances that belong to the new layout and destroys only the
    rest. An instance with processes on it is never destroyed; if the layout cannot be reached without
    destroying one, the module fails before changing anything and names the GPU, instance, profile and PIDs.
  - Validates every entry and plans every GPU before the first change. Bad input fails with one message that
    names the field and the reason.
  - If a change fails midway, the module removes what this run created and recreates what it destroyed at the
    original placements, then fails with a message naming the NVML call, the NVML error and the GPU's final layout.
  - A host-wide lock (O(lock_file)) serialises concurrent runs on one host.
  - A MIG mode change that stays pending (Ampere GPUs need a GPU reset; a client may hold the GPU) is reported
    in RV(reset_required) and does not fail; that GPU's instances are created on the first run after the reset
    or reboot.
author:
  - gpuops.mig maintainers (@gpuops)
extends_documentation_fragment:
  - gpuops.mig._attributes
attributes:
  check_mode:
    support: full
    details:
      - Returns the full plan and diff and makes no mutating NVML call.
  diff_mode:
    support: full
    details:
      - The diff shows the placement diagram of every selected GPU before and after.
  idempotent:
    support: full
options:
  layouts:
    description:
      - Layout entries, with the semantics of a mig-parted config entry in snake_case.
      - Exactly one of O(layouts) or O(config_file) is required.
    type: list
    elements: dict
    suboptions:
      devices:
        description:
          - V(all) (every MIG-capable GPU), or a list of GPU indexes, GPU UUIDs or PCI bus IDs.
          - Every listed GPU must exist on the host.
        type: raw
        required: true
      device_filter:
        description:
          - PCI device ID or list of them, V(0xDDDDVVVV) with an optional V(:0xSSSSVVVV) subsystem ID, matched as
            mig-parted matches them. Only GPUs that match are selected.
        type: raw
      mig_enabled:
        description: Whether MIG is enabled on the selected GPUs.
        type: bool
        required: true
      mig_devices:
        description:
          - Map of profile name to count, as in mig-parted. GPU instance profiles (V(1g.10gb), V(1g.10gb+me),
            mig-parted's V(1g.10gb.me) spelling) get one full-size compute instance each; compute instance profiles
            (V(1c.3g.40gb)) are packed into GPU instances of their profile as mig-parted packs them.
          - Numeric profile IDs are accepted too. Mutually exclusive with O(layouts[].instances).
        type: dict
      instances:
        description:
          - Explicit GPU instances. Mutually exclusive with O(layouts[].mig_devices).
        type: list
        elements: dict
        suboptions:
          profile:
            description: GPU instance profile name or ID.
            type: raw
            required: true
          placement:
            description: Start slot on the GPU's placement grid. Left out, the planner chooses.
            type: int
          compute_instances:
            description:
              - Compute instance profiles (names or IDs) to create inside the GPU instance. Default one full-size
                compute instance; V([]) creates none.
            type: list
            elements: raw
  config_file:
    description:
      - Path on the managed node of a mig-parted v1 configuration file (kebab-case keys, as NVIDIA ships them,
        for example the GPU Operator's default configuration). Requires O(config_name).
    type: path
  config_name:
    description: Name of the configuration in O(config_file) to converge to.
    type: str
  lock_file:
    description:
      - Host-wide lock file. It must not be a symbolic link and must belong to the user running the module.
    type: path
    default: /run/gpuops-mig.lock
  lock_timeout:
    description: Seconds to wait for another run holding the lock.
    type: int
    default: 300
requirements:
  - nvidia-ml-py (imported as C(pynvml)) on the managed node
  - root (C(CAP_SYS_ADMIN)) to change MIG mode and instances
notes:
  - GPU and compute instances never survive a reboot or GPU reset, and on Hopper and later GPUs neither does MIG
    mode; the C(gpuops.mig.mig) role installs a boot service that re-applies the last converged layout.
  - In check mode the module makes no mutating NVML call and returns the full plan and diff.
seealso:
  - module: gpuops.mig.mig_info
  - name: The gpuops.mig.mig role
    description: Inventory-driven MIG layouts with GPU clients, resets, reboots and boot persistence.
    link: https://gpuops.example.org/gpuops.mig/blob/main/roles/mig/README.md
"""

EXAMPLES = r"""
- name: Seven 1g.10gb instances on every H100 80GB
  gpuops.mig.mig_layout:
    layouts:
      - devices: all
        device_filter: "0x233010DE"
        mig_enabled: true
        mig_devices:
          1g.10gb: 7

- name: Mixed layout with a declared placement, and three compute instances in one GPU instance
  gpuops.mig.mig_layout:
    layouts:
      - devices: [0, 1]
        mig_enabled: true
        instances:
          - profile: 4g.40gb
            placement: 0
          - profile: 3g.40gb
            compute_instances: [1c.3g.40gb, 1c.3g.40gb, 1c.3g.40gb]
      - devices: [2]
        mig_enabled: false

- name: Apply a named configuration from a mig-parted config file
  gpuops.mig.mig_layout:
    config_file: /etc/nvidia-mig-manager/config.yaml
    config_name: all-balanced
  register: result

- name: Rehearse a change and look at the plan
  gpuops.mig.mig_layout:
    layouts:
      - devices: all
        mig_enabled: true
        mig_devices:
          3g.40gb: 1
          2g.20gb: 1
          1g.10gb: 2
  check_mode: true
  diff: true
  register: rehearsal
"""

RETURN = r"""
gpus:
  description: State of every GPU after the run, in the shape M(gpuops.mig.mig_info) returns (in check mode, the state before).
  returned: success or failure after reading state
  type: list
  elements: dict
plan:
  description:
    - Per GPU the layout selects, the ordered actions (V(set_mode), V(destroy), V(create), V(keep)) with
      C(target) (V(gpu), V(gpu_instance), V(compute_instance)), C(profile), C(profile_id), C(gpu_instance_id) and
      C(placement).
  returned: success
  type: list
  elements: dict
  sample:
    - index: 0
      uuid: GPU-7cbab77b-03cd-ac40-d229-21b247852123
      actions:
        - {action: set_mode, target: gpu, mig_enabled: true}
        - {action: create, target: gpu_instance, profile: 3g.40gb, profile_id: 9, gpu_instance_id: null, placement: {start: 4, size: 4}}
reset_required:
  description: Indexes of GPUs whose MIG mode change is still pending a GPU reset or reboot.
  returned: success
  type: list
  elements: int
  sample: []
mig_devices:
  description:
    - The MIG devices after the run, one per compute instance, with C(gpu), C(gpu_uuid), C(gpu_instance),
      C(gpu_instance_profile), C(compute_instance), C(profile), C(placement), C(compute_placement), C(mig_uuid).
  returned: success
  type: list
  elements: dict
diff:
  description: Placement diagrams of the selected GPUs before and after.
  returned: success, in diff mode
  type: dict
"""

import os

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.gpuops.mig.plugins.module_utils._converge import ConvergeError, converge
from ansible_collections.gpuops.mig.plugins.module_utils._lock import LockError, host_lock
from ansible_collections.gpuops.mig.plugins.module_utils._module import nvml_session

MAX_CONFIG_BYTES = 1024 * 1024


def read_config(module: AnsibleModule, path: str) -> str:
    try:
        size = os.stat(path).st_size
        if size > MAX_CONFIG_BYTES:
            module.fail_json(msg='config_file: %s is %d bytes; the limit is %d' % (path, size, MAX_CONFIG_BYTES), field='config_file')
        with open(path, encoding='utf-8') as f:
            return f.read(MAX_CONFIG_BYTES + 1)
    except (OSError, UnicodeDecodeError) as exc:
        module.fail_json(msg='config_file: cannot read %s: %s' % (path, exc), field='config_file')
        raise  # not reached


def main() -> None:
    module = AnsibleModule(
        argument_spec={
            # Entries are validated by the collection's own spec parser, which names the exact field in errors.
            'layouts': {'type': 'list', 'elements': 'dict'},
            'config_file': {'type': 'path'},
            'config_name': {'type': 'str'},
            'lock_file': {'type': 'path', 'default': '/run/gpuops-mig.lock'},
            'lock_timeout': {'type': 'int', 'default': 300},
        },
        mutually_exclusive=[('layouts', 'config_file')],
        required_together=[('config_file', 'config_name')],
        supports_check_mode=True,
    )
    p = module.params
    # Checked here, not with required_one_of: Ansible reports the first validation error only, and a
    # misspelt option (layout:) must be reported by its name rather than as a missing 'layouts'.
    if p['layouts'] is None and p['config_file'] is None:
        module.fail_json(msg='one of layouts or config_file is required')
    config = read_config(module, p['config_file']) if p['config_file'] else None
    try:
        with host_lock(p['lock_file'], p['lock_timeout']):
            with nvml_session(module) as nvml:
                result = converge(nvml, layouts=p['layouts'], config=config, config_name=p['config_name'],
                                  check_mode=module.check_mode)
    except LockError as exc:
        module.fail_json(msg='lock_file: %s' % exc, field='lock_file')
    except ConvergeError as exc:
        extra = dict(exc.result)
        extra.pop('diff', None)
        if exc.field:
            extra['field'] = exc.field
        module.fail_json(msg=str(exc), **extra)
    diff = result.pop('diff')
    if module._diff:
        result['diff'] = diff
    module.exit_json(**result)


if __name__ == '__main__':
    main()
