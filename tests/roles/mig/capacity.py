#!/usr/bin/env python
# Copyright (c) 2026 gpuops.mig contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Plays the NVIDIA device plugin for fake_apiserver.py: the resources it advertises for a simulated host.

Written apart from the collection's _kubernetes.py on purpose (from `migsim show`, by profile names):
a MIG device is advertised when its compute instance is the full GPU instance (same profile name);
mixed: nvidia.com/mig-<profile, '+' -> '.'> per device and nvidia.com/gpu per GPU without MIG;
single: nvidia.com/gpu per MIG device. Usage: capacity.py MIGSIM STATE mixed|single
"""
import collections
import json
import subprocess
import sys

migsim, state, strategy = sys.argv[1:4]
gpus = json.loads(subprocess.check_output([migsim, 'show', state]))['gpus']
devices = collections.Counter()
full = 0
for gpu in gpus:
    if gpu['mig_mode']['current'] != 'enabled':
        full += 1
        continue
    for gi in gpu['gpu_instances']:
        for ci in gi['compute_instances']:
            if ci['profile'] == gi['profile']:
                devices['nvidia.com/mig-' + gi['profile'].replace('+', '.')] += 1
if strategy == 'single':
    out = {'nvidia.com/gpu': sum(devices.values()) or full}
else:
    out = dict(devices)
    if full:
        out['nvidia.com/gpu'] = full
print(json.dumps(out))
