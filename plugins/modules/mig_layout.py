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
  - Processes that hold a GPU without a GPU instance block GPU-instance creation in the driver; while MIG is
    enabled, a layout that would create or destroy any instance on such a GPU is refused before any change,
    naming the PIDs. A layout whose instances need more media engines (decoders, encoders, JPEG, OFA) than the
    GPU has is refused before any change, naming the engine.
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
      - Absolute path on the managed node of a mig-parted v1 configuration file (kebab-case keys, as NVIDIA ships
        them, for example the GPU Operator's default configuration). Requires O(config_name).
      - A relative path is refused, because the managed node has no directory it could be relative to. To use a file
        that lives beside your playbook, pass its text in O(config_content) instead.
      - Exactly one of O(layouts), O(config_file) or O(config_content) is required.
    type: path
  config_content:
    description:
      - The text of a mig-parted v1 configuration file, for example
        V({{ lookup('ansible.builtin.file', 'mig-config.yaml') }}) to read a file on the controller. Requires
        O(config_name). At most 1 MiB, as for O(config_file).
      - The plan in check mode is then made from exactly the text the real run applies; the P(gpuops.mig.mig#role)
        role uses it so that C(--check) with a new or edited C(mig_config_file) predicts the next run, before the
        file is installed on the host.
    type: str
  config_name:
    description: Name of the configuration in O(config_file) or O(config_content) to converge to.
    type: str
  lock_file:
    description:
      - Host-wide lock file. It must not be a symbolic link and must belong to the user running the module.
    type: path
    default: /run/gpuops-mig.lock
  lock_timeout:
    description:
      - Seconds to wait for another run holding the lock, from V(0) (do not wait) to V(86400) (one day).
    type: int
    default: 300
requirements:
  - nvidia-ml-py (imported as C(pynvml)) on the managed node
  - root (C(CAP_SYS_ADMIN)) to change MIG mode and instances
notes:
  - GPU and compute instances never survive a reboot or GPU reset, and on Hopper and later GPUs neither does MIG
    mode; the P(gpuops.mig.mig#role) role installs a boot service that re-applies the last converged layout, and
    adds inventory-driven layouts, stopping and starting GPU clients, resets and reboots.
  - In check mode the module makes no mutating NVML call and returns the full plan and diff.
seealso:
  - module: gpuops.mig.mig_info
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

- name: Apply a named configuration from a file beside the playbook (read on the controller)
  gpuops.mig.mig_layout:
    config_content: "{{ lookup('ansible.builtin.file', 'mig-config.yaml') }}"
    config_name: all-balanced

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
gpu_outcomes:
  description:
    - When a change fails on one GPU, what the run did to each GPU it planned, in index order, as C(index) and
      C(outcome) - V(converged), V(reset_required) (mode change pending a GPU reset), V(unchanged) (already as
      desired), V(rolled_back) (the failed GPU, back to its original layout), V(rollback_incomplete) (the failed
      GPU; the message says what it holds) or V(not_reached) (left as it was).
  returned: failure while applying
  type: list
  elements: dict
  sample:
    - {index: 0, outcome: converged}
    - {index: 1, outcome: rolled_back}
    - {index: 2, outcome: not_reached}
mig_devices:
  description:
    - The MIG devices after the run, one per compute instance, with C(gpu), C(gpu_uuid), C(gpu_instance),
      C(gpu_instance_profile), C(compute_instance), C(profile), C(placement), C(compute_placement), C(mig_uuid).
  returned: success
  type: list
  elements: dict
device_map:
  description:
    - The node-local MIG device map, as the C(gpuops.mig.mig) role and its boot service write it to C(mig-devices.json),
      with C(gpus) (each C(index), C(uuid), C(name), C(pci_bus_id), C(mig_mode)) and C(mig_devices) (as RV(mig_devices)).
    - In check mode, the map before the run.
  returned: success
  type: dict
diff:
  description: Placement diagrams of the selected GPUs before and after.
  returned: success, in diff mode
  type: dict
"""

import os

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.gpuops.mig.plugins.module_utils._converge import ConvergeError, converge, parse_spec
from ansible_collections.gpuops.mig.plugins.module_utils._lock import DEFAULT_LOCK_PATH, DEFAULT_LOCK_TIMEOUT, LockError, host_lock
from ansible_collections.gpuops.mig.plugins.module_utils._module import nvml_session

MAX_CONFIG_BYTES = 1024 * 1024
MAX_LOCK_TIMEOUT = 86400


def read_config(module: AnsibleModule, path: str) -> str:
    if not os.path.isabs(path):
        module.fail_json(msg='config_file: %s is a relative path; give an absolute path on the managed node, or pass the '
                             'text of a file on the controller in config_content' % path, field='config_file')
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
            'config_content': {'type': 'str'},
            'config_name': {'type': 'str'},
            'lock_file': {'type': 'path', 'default': DEFAULT_LOCK_PATH},
            'lock_timeout': {'type': 'int', 'default': DEFAULT_LOCK_TIMEOUT},
        },
        mutually_exclusive=[('layouts', 'config_file', 'config_content')],
        required_by={'config_file': 'config_name', 'config_content': 'config_name'},
        supports_check_mode=True,
    )
    p = module.params
    # Checked here, not with required_one_of: Ansible reports the first validation error only, and a
    # misspelt option (layout:) must be reported by its name rather than as a missing 'layouts'.
    if p['layouts'] is None and p['config_file'] is None and p['config_content'] is None:
        module.fail_json(msg='one of layouts, config_file or config_content is required')
    if not 0 <= p['lock_timeout'] <= MAX_LOCK_TIMEOUT:
        module.fail_json(msg='lock_timeout: must be between 0 and %d seconds, got %d' % (MAX_LOCK_TIMEOUT, p['lock_timeout']),
                         field='lock_timeout')
    if p['config_name'] is not None and p['layouts'] is not None:
        module.fail_json(msg='config_name: only used with config_file or config_content, not with layouts', field='config_name')
    if p['config_content'] is not None:
        if len(p['config_content'].encode('utf-8')) > MAX_CONFIG_BYTES:
            module.fail_json(msg='config_content: %d bytes; the limit is %d' % (len(p['config_content'].encode('utf-8')), MAX_CONFIG_BYTES),
                             field='config_content')
        config = p['config_content']
    else:
        config = read_config(module, p['config_file']) if p['config_file'] else None
    try:
        spec = parse_spec(p['layouts'], config, p['config_name'])
        with host_lock(p['lock_file'], p['lock_timeout']):
            with nvml_session(module) as nvml:
                result = converge(nvml, check_mode=module.check_mode, spec=spec)
    except LockError as exc:
        module.fail_json(msg='%s: %s' % (exc.field, exc), field=exc.field)
    except ConvergeError as exc:
        extra = dict(exc.result)
        extra.pop('diff', None)
        msg = str(exc)
        if exc.field:
            extra['field'] = exc.field
        if p['config_content'] is not None and exc.field and exc.field.startswith('config_file'):
            # The parser names the configuration text config_file; here the text came in config_content.
            extra['field'] = 'config_content' + exc.field[len('config_file'):]
            msg = msg.replace('config_file', 'config_content', 1)
        module.fail_json(msg=msg, **extra)
    diff = result.pop('diff')
    if module._diff:
        result['diff'] = diff
    module.exit_json(**result)


if __name__ == '__main__':
    main()
