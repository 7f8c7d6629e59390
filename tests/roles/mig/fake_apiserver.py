#!/usr/bin/env python
# Copyright (c) 2026 gpuops.mig contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""A stand-in Kubernetes API server for the mig role's Kubernetes tests, driven by the REAL kubectl.

No kube-apiserver can be installed here (none is packaged by the registries this project uses), so this
serves the part of the core/v1 API the role's kubectl calls use: legacy discovery (/api, /apis,
/api/v1), GET node, LIST pods (all namespaces or one) with label selectors (=, ==, !=, in, notin,
exists, !exists) and field selectors (spec.nodeName, metadata.name, metadata.namespace, status.phase;
anything else is a 400 as in the real server), DELETE pod, and PATCH node status (merge patch).
What a real cluster does around it is played here, and only this:

* DaemonSet controller: a deleted pod with a ``pod-template-generation`` label is replaced by a new
  pod of the same labels on the same node (new name), after ``--respawn-delay`` seconds.
* NVIDIA device plugin: when the replacement of a pod labelled ``app=nvidia-device-plugin-daemonset``
  starts, ``--capacity-command`` (argv, JSON, with ``{node}`` replaced) prints the resources the plugin
  would advertise; they are written into the node's status.capacity and status.allocatable. Resources
  the plugin no longer reports stay with "0", as kubelet keeps them. The new plugin registers late on
  purpose: not before someone has read the node once after the restart (so a test sees the old
  capacity first, whatever the machine's speed).

Every request is appended to ``--log`` as ``METHOD PATH?QUERY``. Usage:
  fake_apiserver.py --state STATE.json --port-file PORT --log LOG [--capacity-command JSON]
"""
from __future__ import annotations

import argparse
import os
import copy
import json
import subprocess
import sys
import threading
import time
import urllib.parse
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

LOCK = threading.Lock()
STATE: dict[str, Any] = {'nodes': {}, 'pods': []}
ARGS = argparse.Namespace()
RV = [1000]
NODE_READS: dict[str, int] = {}

RESOURCES = {
    'kind': 'APIResourceList', 'apiVersion': 'v1', 'groupVersion': 'v1', 'resources': [
        {'name': 'nodes', 'singularName': 'node', 'namespaced': False, 'kind': 'Node',
         'verbs': ['get', 'list', 'patch', 'update', 'watch'], 'shortNames': ['no']},
        {'name': 'nodes/status', 'singularName': '', 'namespaced': False, 'kind': 'Node', 'verbs': ['get', 'patch', 'update']},
        {'name': 'pods', 'singularName': 'pod', 'namespaced': True, 'kind': 'Pod',
         'verbs': ['create', 'delete', 'deletecollection', 'get', 'list', 'patch', 'update', 'watch'], 'shortNames': ['po']},
        {'name': 'namespaces', 'singularName': 'namespace', 'namespaced': False, 'kind': 'Namespace',
         'verbs': ['get', 'list'], 'shortNames': ['ns']},
    ]}


class BadRequest(Exception):
    pass


def next_rv() -> str:
    RV[0] += 1
    return str(RV[0])


def parse_label_selector(text: str) -> list[tuple[str, str, set[str]]]:
    """Requirements (key, op, values); ops: in, notin, exists, !exists (= and != map to in/notin)."""
    reqs: list[tuple[str, str, set[str]]] = []
    parts, depth, cur = [], 0, ''
    for ch in text:
        depth += ch == '('
        depth -= ch == ')'
        if ch == ',' and depth == 0:
            parts.append(cur)
            cur = ''
        else:
            cur += ch
    if cur.strip():
        parts.append(cur)
    for part in (p.strip() for p in parts):
        words = part.split()
        if len(words) >= 2 and words[1] in ('in', 'notin'):
            inner = part.split(None, 2)[2].strip()
            if not (inner.startswith('(') and inner.endswith(')')):
                raise BadRequest('unable to parse requirement: %s' % part)
            reqs.append((words[0], words[1], {v.strip() for v in inner[1:-1].split(',') if v.strip()}))
        elif '!=' in part:
            k, v = part.split('!=', 1)
            reqs.append((k.strip(), 'notin', {v.strip()}))
        elif '=' in part:
            k, v = part.replace('==', '=').split('=', 1)
            reqs.append((k.strip(), 'in', {v.strip()}))
        elif part.startswith('!'):
            reqs.append((part[1:].strip(), '!exists', set()))
        elif part:
            reqs.append((part, 'exists', set()))
    return reqs


def labels_match(labels: dict[str, str], reqs: list[tuple[str, str, set[str]]]) -> bool:
    for key, op, values in reqs:
        if op == 'in' and labels.get(key) not in values:
            return False
        if op == 'notin' and key in labels and labels[key] in values:
            return False
        if op == 'exists' and key not in labels:
            return False
        if op == '!exists' and key in labels:
            return False
    return True


FIELDS = {
    'spec.nodeName': lambda p: p['spec'].get('nodeName', ''),
    'metadata.name': lambda p: p['metadata']['name'],
    'metadata.namespace': lambda p: p['metadata']['namespace'],
    'status.phase': lambda p: p.get('status', {}).get('phase', ''),
}


def fields_match(pod: dict[str, Any], text: str) -> bool:
    for part in (p.strip() for p in text.split(',') if p.strip()):
        neg = '!=' in part
        key, value = part.replace('==', '=').split('!=' if neg else '=', 1)
        if key not in FIELDS:
            raise BadRequest('field label not supported: %s' % key)
        if (FIELDS[key](pod) == value) == neg:
            return False
    return True


def merge(dst: dict[str, Any], patch: dict[str, Any]) -> None:
    for k, v in patch.items():
        if v is None:
            dst.pop(k, None)
        elif isinstance(v, dict) and isinstance(dst.get(k), dict):
            merge(dst[k], v)
        else:
            dst[k] = v


def set_capacity(node_name: str, resources: dict[str, Any]) -> None:
    node = STATE['nodes'][node_name]
    for field in ('capacity', 'allocatable'):
        cur = node.setdefault('status', {}).setdefault(field, {})
        for key in list(cur):
            if (key == 'nvidia.com/gpu' or key.startswith('nvidia.com/mig-')) and key not in resources:
                cur[key] = '0'
        cur.update({k: str(v) for k, v in resources.items()})
    node['metadata']['resourceVersion'] = next_rv()


def respawn(pod: dict[str, Any], reads_at_delete: int) -> None:
    """DaemonSet controller + the new device plugin's registration with kubelet."""
    time.sleep(ARGS.respawn_delay)
    node = pod['spec'].get('nodeName', '')
    for dummy in range(600):
        if NODE_READS.get(node, 0) > reads_at_delete:
            break
        time.sleep(0.1)
    new = copy.deepcopy(pod)
    base = pod['metadata'].get('generateName') or pod['metadata']['name'].rsplit('-', 1)[0] + '-'
    with LOCK:
        STATE['serial'] = STATE.get('serial', 0) + 1
        new['metadata']['name'] = '%s%05d' % (base, STATE['serial'])
        new['metadata']['uid'] = 'uid-%d' % STATE['serial']
        new['metadata']['resourceVersion'] = next_rv()
        new['status'] = {'phase': 'Running'}
        STATE['pods'].append(new)
    if pod['metadata'].get('labels', {}).get('app') == 'nvidia-device-plugin-daemonset' and ARGS.capacity_command:
        argv = [a.replace('{node}', node) for a in json.loads(ARGS.capacity_command)]
        out = subprocess.run(argv, capture_output=True, text=True, check=False)
        if out.returncode != 0:
            sys.stderr.write('capacity command failed: %s\n' % out.stderr)
            return
        with LOCK:
            set_capacity(node, json.loads(out.stdout))


class Handler(BaseHTTPRequestHandler):
    protocol_version = 'HTTP/1.1'

    def log_message(self, fmt: str, *args: Any) -> None:  # quiet; our own log below
        pass

    def send(self, code: int, body: Any) -> None:
        data = json.dumps(body).encode()
        self.send_response(code)
        self.send_header('Content-Type', 'application/json')
        self.send_header('Content-Length', str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def status(self, code: int, reason: str, message: str) -> None:
        self.send(code, {'kind': 'Status', 'apiVersion': 'v1', 'metadata': {}, 'status': 'Failure',
                         'message': message, 'reason': reason, 'code': code})

    def route(self, method: str) -> None:
        url = urllib.parse.urlsplit(self.path)
        query = dict(urllib.parse.parse_qsl(url.query))
        with open(ARGS.log, 'a', encoding='utf-8') as log:
            log.write('%s %s%s\n' % (method, url.path, ('?' + url.query) if url.query else ''))
        body = b''
        if int(self.headers.get('Content-Length') or 0):
            body = self.rfile.read(int(self.headers['Content-Length']))
        parts = [p for p in url.path.split('/') if p]
        try:
            with LOCK:
                self.dispatch(method, parts, query, body)
        except BadRequest as exc:
            self.status(400, 'BadRequest', str(exc))

    def dispatch(self, method: str, parts: list[str], query: dict[str, str], body: bytes) -> None:
        if method == 'GET' and parts == ['version']:
            return self.send(200, {'major': '1', 'minor': '32', 'gitVersion': 'v1.32.0-gpuops-fake', 'platform': 'linux/amd64'})
        if method == 'GET' and parts == ['api']:
            return self.send(200, {'kind': 'APIVersions', 'versions': ['v1'],
                                   'serverAddressByClientCIDRs': [{'clientCIDR': '0.0.0.0/0', 'serverAddress': '127.0.0.1'}]})
        if method == 'GET' and parts == ['apis']:
            return self.send(200, {'kind': 'APIGroupList', 'apiVersion': 'v1', 'groups': []})
        if method == 'GET' and parts == ['api', 'v1']:
            return self.send(200, RESOURCES)
        if parts[:3] == ['api', 'v1', 'nodes'] and len(parts) in (4, 5):
            node = STATE['nodes'].get(parts[3])
            if node is None:
                return self.status(404, 'NotFound', 'nodes "%s" not found' % parts[3])
            if method == 'GET':
                NODE_READS[parts[3]] = NODE_READS.get(parts[3], 0) + 1
                return self.send(200, node)
            if method == 'PATCH' and parts[4:] == ['status']:
                merge(node.setdefault('status', {}), json.loads(body or b'{}').get('status', {}))
                node['metadata']['resourceVersion'] = next_rv()
                return self.send(200, node)
        namespace = None
        rest = parts[2:]
        if parts[:3] == ['api', 'v1', 'namespaces'] and len(parts) >= 5 and parts[4] == 'pods':
            namespace, rest = parts[3], parts[4:]
        if parts[:2] == ['api', 'v1'] and rest[:1] == ['pods']:
            if method == 'GET' and len(rest) == 1:
                reqs = parse_label_selector(query.get('labelSelector', ''))
                fsel = query.get('fieldSelector', '')
                items = [p for p in STATE['pods'] if (namespace is None or p['metadata']['namespace'] == namespace)
                         and labels_match(p['metadata'].get('labels', {}), reqs) and fields_match(p, fsel)]
                return self.send(200, {'kind': 'PodList', 'apiVersion': 'v1', 'metadata': {'resourceVersion': str(RV[0])},
                                       'items': items})
            if method in ('GET', 'DELETE') and len(rest) == 2 and namespace is not None:
                pod = next((p for p in STATE['pods'] if p['metadata']['namespace'] == namespace
                            and p['metadata']['name'] == rest[1]), None)
                if pod is None:
                    return self.status(404, 'NotFound', 'pods "%s" not found' % rest[1])
                if method == 'DELETE':
                    STATE['pods'].remove(pod)
                    if 'pod-template-generation' in pod['metadata'].get('labels', {}):
                        node = pod['spec'].get('nodeName', '')
                        threading.Thread(target=respawn, args=(pod, NODE_READS.get(node, 0)), daemon=True).start()
                return self.send(200, pod)
        return self.status(404, 'NotFound', 'the server could not find the requested resource')

    def do_GET(self) -> None:  # noqa: N802
        self.route('GET')

    def do_DELETE(self) -> None:  # noqa: N802
        self.route('DELETE')

    def do_PATCH(self) -> None:  # noqa: N802
        self.route('PATCH')


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split('\n', maxsplit=1)[0])
    p.add_argument('--state', required=True, help='JSON: {"nodes": {name: Node}, "pods": [Pod]}')
    p.add_argument('--port-file', required=True)
    p.add_argument('--log', required=True)
    p.add_argument('--capacity-command', default='')
    p.add_argument('--respawn-delay', type=float, default=2.0)
    p.parse_args(namespace=ARGS)
    with open(ARGS.state, encoding='utf-8') as f:
        STATE.update(json.load(f))
    server = ThreadingHTTPServer(('127.0.0.1', 0), Handler)
    with open(ARGS.port_file + '.tmp', 'w', encoding='utf-8') as f:
        f.write(str(server.server_address[1]))
    os.replace(ARGS.port_file + '.tmp', ARGS.port_file)
    server.serve_forever()
    return 0


if __name__ == '__main__':
    sys.exit(main())
