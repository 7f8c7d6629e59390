# Copyright (c) 2026 gpuops.mig contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""Fingerprints of the primary keys in an OpenPGP public key file (RFC 4880 v4, RFC 9580 v6).

The roles check a downloaded repository signing key against the fingerprints they expect before
they trust it. Pure Python, so the check needs no gpg on the managed host or the controller.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import re

_ARMOR_RE = re.compile(
    r'-----BEGIN PGP PUBLIC KEY BLOCK-----\r?\n(.*?)-----END PGP PUBLIC KEY BLOCK-----', re.DOTALL)
_TAG_PUBLIC_KEY = 6


class OpenPGPError(ValueError):
    """The input is not an OpenPGP public key (armoured or binary)."""


def _dearmor(text: str) -> list[bytes]:
    blocks = []
    for body in _ARMOR_RE.findall(text):
        lines = body.replace('\r', '').split('\n')
        # Armour headers (Version:, Comment:) end at the first empty line.
        if '' in lines and any(':' in line for line in lines[:lines.index('')]):
            lines = lines[lines.index('') + 1:]
        data = ''.join(line.strip() for line in lines if line.strip() and not line.startswith('='))
        try:
            blocks.append(base64.b64decode(data, validate=True))
        except (binascii.Error, ValueError) as exc:
            raise OpenPGPError('the armoured key block is not valid base64: %s' % exc) from None
    if not blocks:
        raise OpenPGPError('no "BEGIN PGP PUBLIC KEY BLOCK" armour found')
    return blocks


def _packets(data: bytes) -> list[tuple[int, bytes]]:
    """(tag, body) of every packet; old and new packet formats, no partial lengths (keys never use them)."""
    out = []
    pos = 0
    while pos < len(data):
        head = data[pos]
        if not head & 0x80:
            raise OpenPGPError('byte %d is not an OpenPGP packet header' % pos)
        if head & 0x40:
            tag = head & 0x3F
            if pos + 1 >= len(data):
                raise OpenPGPError('truncated packet header at byte %d' % pos)
            first = data[pos + 1]
            if first < 192:
                length, pos = first, pos + 2
            elif first < 224:
                if pos + 2 >= len(data):
                    raise OpenPGPError('truncated packet header at byte %d' % pos)
                length, pos = ((first - 192) << 8) + data[pos + 2] + 192, pos + 3
            elif first == 255:
                length, pos = int.from_bytes(data[pos + 2:pos + 6], 'big'), pos + 6
            else:
                raise OpenPGPError('partial body length in a key packet at byte %d' % pos)
        else:
            tag = (head >> 2) & 0x0F
            size = {0: 1, 1: 2, 2: 4}.get(head & 0x03)
            if size is None:
                raise OpenPGPError('indeterminate packet length at byte %d' % pos)
            length, pos = int.from_bytes(data[pos + 1:pos + 1 + size], 'big'), pos + 1 + size
        if pos + length > len(data):
            raise OpenPGPError('packet at byte %d runs past the end of the key' % pos)
        out.append((tag, data[pos:pos + length]))
        pos += length
    return out


def _fingerprint(body: bytes) -> str:
    if not body:
        raise OpenPGPError('empty public key packet')
    version = body[0]
    if version == 4:
        digest = hashlib.sha1(b'\x99' + len(body).to_bytes(2, 'big') + body).hexdigest()  # nosec: RFC 4880 defines v4 fingerprints as SHA-1
    elif version == 5:
        digest = hashlib.sha256(b'\x9a' + len(body).to_bytes(4, 'big') + body).hexdigest()
    elif version == 6:
        digest = hashlib.sha256(b'\x9b' + len(body).to_bytes(4, 'big') + body).hexdigest()
    else:
        raise OpenPGPError('public key packet version %d is not supported (only 4, 5 and 6)' % version)
    return digest.upper()


def primary_fingerprints(key: str | bytes) -> list[str]:
    """Upper-case hex fingerprints of the primary keys (not subkeys), in file order.

    ``key`` is an ASCII-armoured key file (one or more blocks) or the binary form.
    """
    if isinstance(key, str):
        blocks = _dearmor(key)
    elif key.lstrip()[:5] == b'-----':
        blocks = _dearmor(key.decode('ascii', 'replace'))
    else:
        blocks = [bytes(key)]
    out = []
    for block in blocks:
        for tag, body in _packets(block):
            if tag == _TAG_PUBLIC_KEY:
                out.append(_fingerprint(body))
    if not out:
        raise OpenPGPError('the key file holds no primary public key')
    return out
