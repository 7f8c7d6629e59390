# Copyright (c) 2026 gpuops.mig contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import annotations

DOCUMENTATION = r"""
module: bench_result
short_description: Benchmark only - return a saved module result
description:
  - Reads a JSON file holding a module result and returns it unchanged (with C(changed=false)). The overhead
    benchmark uses it to measure what Ansible spends on a result as large as the one C(gpuops.mig.mig_layout)
    returns, with a module that imports nothing beyond C(ansible.module_utils.basic).
options:
  path:
    description: JSON file with the result.
    type: path
    required: true
author:
  - gpuops.mig contributors
"""

import json

from ansible.module_utils.basic import AnsibleModule


def main() -> None:
    module = AnsibleModule(argument_spec={'path': {'type': 'path', 'required': True}}, supports_check_mode=True)
    with open(module.params['path'], encoding='utf-8') as f:
        data = json.load(f)
    data.pop('invocation', None)
    data['changed'] = False
    module.exit_json(**data)


if __name__ == '__main__':
    main()
