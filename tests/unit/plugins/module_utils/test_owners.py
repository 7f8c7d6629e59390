# Copyright (c) 2026 gpuops.mig contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import annotations

import json

from ansible_collections.gpuops.mig.plugins.module_utils._owners import (
    DRA_SOCKETS, MIG_PARTED_OVERRIDE, MIG_PARTED_UNIT_FILES, MIG_PARTED_WANTS, find_owners,
)


def node(labels=None, annotations=None):
    return {'metadata': {'name': 'gpu-1', 'labels': labels or {}, 'annotations': annotations or {}}}


def pod(name, labels, phase='Running'):
    return {'metadata': {'name': name, 'namespace': 'gpu-operator', 'labels': labels}, 'status': {'phase': phase}}


def names(owners):
    return [o.name for o in owners]


def test_nothing_found():
    assert find_owners([], node({'nvidia.com/gpu.present': 'true'}), [pod('x', {'app': 'nvidia-device-plugin-daemonset'})]) == []


def test_mig_parted_service_only_when_enabled():
    assert find_owners(MIG_PARTED_UNIT_FILES) == []
    owners = find_owners([MIG_PARTED_WANTS[0], MIG_PARTED_OVERRIDE])
    assert names(owners) == ['mig-parted-service']
    assert MIG_PARTED_OVERRIDE in owners[0].evidence[1]
    assert 'systemctl disable --now nvidia-mig-manager.service' in owners[0].way_forward


def test_gpu_operator_label_and_pod():
    owners = find_owners([], node({'nvidia.com/mig.config': 'all-disabled', 'nvidia.com/mig.config.state': 'success'}))
    assert names(owners) == ['gpu-operator-mig-manager']
    assert owners[0].evidence == ('node label nvidia.com/mig.config=all-disabled (nvidia.com/mig.config.state=success)',)
    assert 'kubectl label node gpu-1 nvidia.com/mig.config=<config name> --overwrite' in owners[0].way_forward
    # Handed over: deploy label false and no pod -> not an owner; a pod alone still is; a finished pod is not.
    assert find_owners([], node({'nvidia.com/mig.config': 'x', 'nvidia.com/gpu.deploy.mig-manager': 'false'})) == []
    owners = find_owners([], node(), [pod('mm', {'app': 'nvidia-mig-manager'})])
    assert owners[0].evidence == ('pod gpu-operator/mm',)
    assert find_owners([], node(), [pod('mm', {'app': 'nvidia-mig-manager'}, phase='Succeeded')]) == []


def test_dra_socket():
    owners = find_owners([DRA_SOCKETS[1]])
    assert names(owners) == ['dra-driver'] and 'gpu.nvidia.com-reg.sock' in owners[0].evidence[0]


def test_hami_mig_mode_only():
    core = json.dumps([{'id': 'GPU-a', 'mode': 'hami-core'}])
    assert find_owners([], node(annotations={'hami.io/node-nvidia-register': core})) == []
    assert find_owners([], node(annotations={'hami.io/node-nvidia-register': 'not json'})) == []
    mig = json.dumps([{'id': 'GPU-a', 'mode': 'hami-core'}, {'id': 'GPU-b', 'mode': 'mig'}])
    owners = find_owners([], node(annotations={'hami.io/node-nvidia-register': mig}))
    assert names(owners) == ['hami-dynamic-mig'] and 'GPU-b in mode mig' in owners[0].evidence[0]
