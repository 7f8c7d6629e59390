# Copyright (c) 2026 gpuops.mig contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""Other MIG owners on a host: who else creates, reverts or destroys MIG instances there.

Pure logic: the callers gather the evidence (which of ``HOST_PATHS`` exist on the host, the
Kubernetes Node object and the pods on that node) and this module decides. Each owner reverts or
destroys instances it did not create, so a second manager on the same GPUs fights it:

* ``gpu-operator-mig-manager``: the GPU Operator's mig-manager applies the node label
  ``nvidia.com/mig.config`` (the operator sets it to ``all-disabled`` by default) whenever its pod
  starts; a layout applied behind its back is reverted.
* ``mig-parted-service``: ``nvidia-mig-manager.service`` (mig-parted's systemd unit) re-applies
  its selected config at every boot.
* ``dra-driver``: the kubelet plugin of NVIDIA's DRA driver (``gpu.nvidia.com``); with its
  DynamicMIG feature it creates MIG devices per claim and tears down those it does not know.
* ``hami-dynamic-mig``: HAMi's device plugin in the ``mig`` operating mode drives mig-parted per
  task; it registers the node's GPUs in the annotation ``hami.io/node-nvidia-register`` with
  ``"mode": "mig"``.
"""

from __future__ import annotations

import dataclasses
import json
import typing as t

OWNER_NAMES = ('gpu-operator-mig-manager', 'mig-parted-service', 'dra-driver', 'hami-dynamic-mig')

MIG_PARTED_UNIT = 'nvidia-mig-manager.service'
# An enabled unit is a symlink in a .wants directory; units are installed in one of the unit dirs.
MIG_PARTED_WANTS = (
    '/etc/systemd/system/multi-user.target.wants/' + MIG_PARTED_UNIT,
    '/etc/systemd/system/nvidia-gpu-reset.target.wants/' + MIG_PARTED_UNIT,
)
MIG_PARTED_UNIT_FILES = tuple(d + '/' + MIG_PARTED_UNIT for d in (
    '/etc/systemd/system', '/usr/lib/systemd/system', '/lib/systemd/system'))
MIG_PARTED_OVERRIDE = '/etc/systemd/system/nvidia-mig-manager.service.d/override.conf'
DRA_DRIVER_NAME = 'gpu.nvidia.com'
DRA_SOCKETS = (
    '/var/lib/kubelet/plugins/%s/dra.sock' % DRA_DRIVER_NAME,
    '/var/lib/kubelet/plugins_registry/%s-reg.sock' % DRA_DRIVER_NAME,
)
HOST_PATHS = MIG_PARTED_WANTS + MIG_PARTED_UNIT_FILES + (MIG_PARTED_OVERRIDE,) + DRA_SOCKETS

MIG_CONFIG_LABEL = 'nvidia.com/mig.config'
MIG_CONFIG_STATE_LABEL = 'nvidia.com/mig.config.state'
MIG_MANAGER_DEPLOY_LABEL = 'nvidia.com/gpu.deploy.mig-manager'
MIG_MANAGER_POD_LABEL = ('app', 'nvidia-mig-manager')
HAMI_REGISTER_ANNOTATION = 'hami.io/node-nvidia-register'


@dataclasses.dataclass(frozen=True)
class Owner:
    name: str
    evidence: tuple[str, ...]
    way_forward: str

    def to_dict(self) -> dict[str, t.Any]:
        return {'name': self.name, 'evidence': list(self.evidence), 'way_forward': self.way_forward}


def _labels(obj: t.Mapping[str, t.Any] | None, key: str = 'labels') -> dict[str, str]:
    meta = (obj or {}).get('metadata') or {}
    return dict(meta.get(key) or {})


def _running_pods(pods: t.Iterable[t.Mapping[str, t.Any]], label: tuple[str, str]) -> list[str]:
    found = []
    for pod in pods:
        if _labels(pod).get(label[0]) != label[1]:
            continue
        if ((pod.get('status') or {}).get('phase') or 'Running') in ('Succeeded', 'Failed'):
            continue
        meta = pod.get('metadata') or {}
        found.append('%s/%s' % (meta.get('namespace', ''), meta.get('name', '')))
    return sorted(found)


def _hami_mig_devices(annotation: str) -> list[str]:
    """GPU IDs that HAMi registered in the ``mig`` mode (the annotation is a JSON list of devices)."""
    try:
        devices = json.loads(annotation)
    except ValueError:
        return []
    if not isinstance(devices, list):
        return []
    return [str(d.get('id', '?')) for d in devices if isinstance(d, dict) and str(d.get('mode', '')).lower() == 'mig']


def find_owners(present: t.Iterable[str], node: t.Mapping[str, t.Any] | None = None,
                pods: t.Iterable[t.Mapping[str, t.Any]] | None = None, node_name: str = '') -> list[Owner]:
    """Owners other than this collection, from the host paths that exist and the node's API objects."""
    present = set(present)
    pods = list(pods or [])
    node_name = node_name or str(((node or {}).get('metadata') or {}).get('name') or '<node>')
    owners: list[Owner] = []

    labels = _labels(node)
    evidence = []
    config = labels.get(MIG_CONFIG_LABEL)
    if config is not None and labels.get(MIG_MANAGER_DEPLOY_LABEL, '').lower() != 'false':
        evidence.append('node label %s=%s' % (MIG_CONFIG_LABEL, config)
                        + (' (%s=%s)' % (MIG_CONFIG_STATE_LABEL, labels[MIG_CONFIG_STATE_LABEL])
                           if MIG_CONFIG_STATE_LABEL in labels else ''))
    evidence += ['pod %s' % p for p in _running_pods(pods, MIG_MANAGER_POD_LABEL)]
    if evidence:
        owners.append(Owner('gpu-operator-mig-manager', tuple(evidence), (
            "the GPU Operator's mig-manager owns MIG on node %s. Either let it apply the layout: put the layout in "
            "its mig-parted ConfigMap and set the label (kubectl label node %s %s=<config name> --overwrite), or hand "
            "the node over to this role: kubectl label node %s %s=false --overwrite, wait until its mig-manager pod "
            "is gone, kubectl label node %s %s- , then run again (docs/kubernetes.md)"
            % (node_name, node_name, MIG_CONFIG_LABEL, node_name, MIG_MANAGER_DEPLOY_LABEL, node_name, MIG_CONFIG_LABEL))))

    wants = [p for p in MIG_PARTED_WANTS if p in present]
    if wants:
        evidence = ['enabled: %s' % p for p in wants]
        if MIG_PARTED_OVERRIDE in present:
            evidence.append('selection: %s' % MIG_PARTED_OVERRIDE)
        owners.append(Owner('mig-parted-service', tuple(evidence), (
            '%s (mig-parted) re-applies its own selected config at every boot. Either keep mig-parted and select the '
            'layout there (MIG_PARTED_SELECTED_CONFIG in %s), or disable it: systemctl disable --now %s, then run '
            'again (this role installs gpuops-mig.service for the boot)' % (MIG_PARTED_UNIT, MIG_PARTED_OVERRIDE, MIG_PARTED_UNIT))))

    sockets = [p for p in DRA_SOCKETS if p in present]
    if sockets:
        owners.append(Owner('dra-driver', tuple('kubelet plugin socket %s' % p for p in sockets), (
            "NVIDIA's DRA driver (%s) runs a kubelet plugin on this host. With its DynamicMIG feature it creates MIG "
            'devices per claim and destroys those it did not create: leave MIG to it. If DynamicMIG is off (static MIG '
            'devices consumed through DRA), set mig_owner_override to include dra-driver and restart the DRA kubelet '
            'plugin after the change' % DRA_DRIVER_NAME)))

    hami = _hami_mig_devices(_labels(node, 'annotations').get(HAMI_REGISTER_ANNOTATION, ''))
    if hami:
        owners.append(Owner('hami-dynamic-mig', ('node annotation %s: %s in mode mig' % (HAMI_REGISTER_ANNOTATION, ', '.join(hami)),), (
            "HAMi's device plugin runs node %s in its dynamic MIG mode and creates MIG instances per task. Leave MIG to "
            "HAMi, or set this node's operatingmode to hami-core in the hami-device-plugin ConfigMap, restart the "
            'hami-device-plugin pod on the node, then run again' % node_name)))
    return owners
