#!/usr/bin/python
# Copyright (c) 2026 gpuops.mig contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import annotations

DOCUMENTATION = r"""
module: mig_fleet_plan
short_description: Plan MIG layouts for a whole fleet from demand, least disruptive first
version_added: 0.2.0
description:
  - Takes what C(gpuops.mig.mig_info) returned for every host and a demand (GPU instance profile or size, and
    count, for the whole fleet or per host group) and computes, for every host, the C(layouts) for
    C(gpuops.mig.mig_layout) (the C(mig_layouts) variable of the C(gpuops.mig.mig) role) that hold the demand.
  - "Objective, in this order unless O(weights) is given: fewest destroyed existing GPU instances (an instance
    with processes is never destroyed), fewest changed GPUs, fewest changed hosts, most GPUs left without GPU
    instances, fewest created GPU instances."
  - The plan is optimal for that objective over the candidate layouts (every multiset of the profiles the demand
    names or the fleet already has, each GPU instance with one full-size compute instance, that fits a GPU;
    leaving a GPU as it is; MIG disabled). It is found by integer programming with C(scipy.optimize.milp)
    (HiGHS); per GPU, the destroys a layout needs come from the same planner C(gpuops.mig.mig_layout) uses.
  - Demand is a minimum. Existing instances beyond it are kept (destroying them would be disruption for nothing).
  - "Runs on the controller (C(delegate_to: localhost)) and changes nothing anywhere."
options:
  hosts:
    description:
      - Host name to the C(gpus) list C(gpuops.mig.mig_info) returned for it (the whole registered result is
        accepted too).
    type: dict
    required: true
  demand:
    description:
      - What the fleet must hold. Each item has C(count) and either C(profile) (a GPU instance profile name like
        C(1g.10gb), C(1g.10gb+me), or C(whole) for a GPU with MIG disabled) or C(slices) with an optional
        C(min_memory_gb) (GiB, compared with the profile's memory as NVML reports it; attribute profiles such as
        C(+me) never match by size), and optionally C(group), a key of O(groups) (default the whole fleet).
    type: list
    elements: dict
    required: true
  groups:
    description: Host groups demand items may name (for example C(groups) of the inventory).
    type: dict
    default: {}
  headroom:
    description: Percent added to every demand count (rounded up).
    type: int
    default: 0
  exclude:
    description:
      - GPUs left out of the plan (not changed and not counted), as C(HOST:INDEX), a GPU UUID or a host name.
    type: list
    elements: str
    default: []
  keep_disabled:
    description: GPUs (C(HOST:INDEX), GPU UUID or host name) that must end with MIG disabled.
    type: list
    elements: str
    default: []
  max_hosts_changed:
    description: At most this many hosts may change. Unlimited when not set.
    type: int
  weights:
    description:
      - Replace the lexicographic objective by a weighted sum of C(destroyed_instances), C(gpus_changed),
        C(hosts_changed) and C(gpus_unused) (the last one is maximised). Unmet demand always comes first and
        created instances always last.
    type: dict
  time_limit:
    description: Seconds each integer-program solve may take; a solve that stops early fails the module.
    type: float
  fail_on_infeasible:
    description:
      - When the demand cannot be met, fail (default) with the closest plan, the shortfall and the capacity per
        GPU model in the result. With V(false) the module succeeds and RV(feasible) is V(false).
    type: bool
    default: true
requirements:
  - scipy (C(scipy.optimize.milp)) on the controller only; GPU hosts keep needing only nvidia-ml-py.
seealso:
  - module: gpuops.mig.mig_info
  - module: gpuops.mig.mig_layout
author:
  - gpuops.mig maintainers (@gpuops)
extends_documentation_fragment:
  - gpuops.mig._attributes
  - gpuops.mig._attributes.info_module
"""

EXAMPLES = r"""
- name: Read every GPU host
  gpuops.mig.mig_info:
  register: mig

- name: Plan the fleet on the controller
  gpuops.mig.mig_fleet_plan:
    hosts: "{{ dict(ansible_play_hosts | zip(ansible_play_hosts | map('extract', hostvars, ['mig', 'gpus']))) }}"
    groups: "{{ groups }}"
    demand:
      - {profile: 1g.10gb, count: 64, group: rack_a}
      - {profile: 3g.40gb, count: 24, group: rack_a}
      - {profile: whole, count: 8, group: rack_a}
      - {slices: 1, min_memory_gb: 16, count: 40, group: h200}
    headroom: 10
    max_hosts_changed: 20
  delegate_to: localhost
  run_once: true
  register: plan

- name: Show the fleet diff
  ansible.builtin.debug:
    var: plan.summary
  run_once: true
"""

RETURN = r"""
feasible:
  description: Whether the plan holds the whole demand. When false, the plan is the closest one (least unmet demand).
  returned: success or infeasible demand
  type: bool
  sample: true
objective:
  description:
    - The plan's objective values, C(shortfall) (demand units not met), C(destroyed_instances), C(gpus_changed),
      C(hosts_changed), C(gpus_unused) and C(instances_created).
  returned: success or infeasible demand
  type: dict
  sample: {shortfall: 0, destroyed_instances: 0, gpus_changed: 3, hosts_changed: 2, gpus_unused: 5, instances_created: 12}
hosts:
  description:
    - Per host, C(changed), C(drain) (a GPU instance is destroyed or the MIG mode changes, so workloads must leave
      first), C(layouts) (the C(mig_layouts) for the C(gpuops.mig.mig) role, one entry per GPU with exact
      placements; GPUs that do not change are described as they are) and C(gpus) (per GPU C(index), C(uuid),
      C(changed), C(destroyed), C(created), C(instances) and C(mig_enabled) after the plan, or C(excluded)).
  returned: success or infeasible demand
  type: dict
summary:
  description:
    - Fleet diff, C(gpus_changed), C(hosts_changed), C(destroyed_instances), C(created_instances),
      C(gpus_unused), C(gpus_planned), C(gpus_excluded), C(changed_hosts), C(drain_hosts) and C(holds) (instances
      per profile, and C(whole) GPUs, after the plan).
  returned: success or infeasible demand
  type: dict
shortfall:
  description: Demand items the plan cannot meet, with C(demand) (position), C(label), C(requested), C(needed), C(missing).
  returned: success or infeasible demand
  type: list
  elements: dict
capacity:
  description:
    - When the demand is infeasible, per demand item and GPU model in its scope, C(gpus) and C(max_instances)
      (the most matching instances those GPUs could hold without touching busy instances).
  returned: success or infeasible demand
  type: list
  elements: dict
stats:
  description: Size of the integer program (classes, host classes, candidates, variables, constraints, solves).
  returned: success or infeasible demand
  type: dict
"""

from ansible.module_utils.basic import AnsibleModule, missing_required_lib

from ansible_collections.gpuops.mig.plugins.module_utils._fleet import (
    SOLVER_IMPORT_ERROR,
    SOLVER_PACKAGE,
    SolverMissing,
    plan_fleet,
    plan_to_dict,
)
from ansible_collections.gpuops.mig.plugins.module_utils._model import SpecError


def main() -> None:
    module = AnsibleModule(
        argument_spec={
            'hosts': {'type': 'dict', 'required': True},
            'demand': {'type': 'list', 'elements': 'dict', 'required': True},
            'groups': {'type': 'dict', 'default': {}},
            'headroom': {'type': 'int', 'default': 0},
            'exclude': {'type': 'list', 'elements': 'str', 'default': []},
            'keep_disabled': {'type': 'list', 'elements': 'str', 'default': []},
            'max_hosts_changed': {'type': 'int'},
            'weights': {'type': 'dict'},
            'time_limit': {'type': 'float'},
            'fail_on_infeasible': {'type': 'bool', 'default': True},
        },
        supports_check_mode=True,
    )
    if SOLVER_IMPORT_ERROR is not None:
        module.fail_json(msg=missing_required_lib(SOLVER_PACKAGE, reason='the fleet planner (scipy.optimize.milp) on the controller'),
                         exception=SOLVER_IMPORT_ERROR)
    p = module.params
    hosts = {}
    for name, value in p['hosts'].items():
        hosts[name] = value.get('gpus') if isinstance(value, dict) else value
    groups = {k: list(v) for k, v in p['groups'].items() if isinstance(v, (list, tuple))}
    try:
        plan = plan_fleet(hosts, p['demand'], groups, headroom=p['headroom'], exclude=p['exclude'],
                          keep_disabled=p['keep_disabled'], max_hosts_changed=p['max_hosts_changed'],
                          weights=p['weights'], time_limit=p['time_limit'])
    except SpecError as exc:
        module.fail_json(msg=str(exc), field=exc.field)
    except SolverMissing as exc:
        module.fail_json(msg=str(exc))
    except RuntimeError as exc:
        module.fail_json(msg='fleet planning failed: %s' % exc)
    result = plan_to_dict(plan)
    if not plan.feasible and p['fail_on_infeasible']:
        cap_by = {c['demand']: c for c in plan.capacity}
        why = '; '.join('%s: %d missing (%s)' % (s['label'], s['missing'], ', '.join(
            '%s: %d GPUs, at most %d' % (m['model'], m['gpus'], m['max_instances'])
            for m in cap_by.get(s['demand'], {}).get('models', [])) or 'no GPU in scope') for s in plan.shortfall)
        module.fail_json(msg='the demand cannot be met; closest plan in the result: %s' % why, changed=False, **result)
    module.exit_json(changed=False, **result)


if __name__ == '__main__':
    main()
