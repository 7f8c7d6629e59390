# Copyright (c) 2026 gpuops.mig contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import annotations

DOCUMENTATION = r"""
name: openpgp_fingerprints
short_description: Fingerprints of the primary keys in an OpenPGP public key
version_added: 0.1.0
author:
  - gpuops.mig contributors
description:
  - Returns the fingerprints (upper-case hex, no spaces) of the primary keys in an OpenPGP public key
    file, ASCII-armoured (one or more blocks) or binary. Subkeys are not listed; they are bound to
    their primary key.
  - Version 4 keys (SHA-1 fingerprints, 40 hex digits) and version 5 and 6 keys (SHA-256, 64 hex
    digits) are understood. Needs no C(gpg).
  - The gpuops.mig.container_toolkit role uses it to check a downloaded repository signing key
    before it is trusted.
options:
  _input:
    description: The key file's content.
    type: raw
    required: true
"""

EXAMPLES = r"""
- name: Refuse a signing key that is not the expected one
  ansible.builtin.assert:
    that:
      - (key.content | gpuops.mig.openpgp_fingerprints) == ['C95B321B61E88C1809C4F759DDCAE044F796ECB0']
"""

RETURN = r"""
_value:
  description: The primary keys' fingerprints in file order.
  type: list
  elements: str
"""

import typing as t

from ansible.errors import AnsibleFilterError

from ansible_collections.gpuops.mig.plugins.module_utils._openpgp import OpenPGPError, primary_fingerprints


def openpgp_fingerprints(key: t.Any) -> list[str]:
    if not isinstance(key, (str, bytes)):
        raise AnsibleFilterError('openpgp_fingerprints: the input must be the key file as a string, got %s' % type(key).__name__)
    try:
        return primary_fingerprints(key)
    except OpenPGPError as exc:
        raise AnsibleFilterError('openpgp_fingerprints: not an OpenPGP public key: %s' % exc) from None


class FilterModule:
    def filters(self) -> dict[str, t.Callable[..., t.Any]]:
        return {'openpgp_fingerprints': openpgp_fingerprints}
