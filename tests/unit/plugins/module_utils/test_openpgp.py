# Copyright (c) 2026 gpuops.mig contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import annotations

import base64
import hashlib
import os

import pytest

from ansible_collections.gpuops.mig.plugins.module_utils._openpgp import (
    OpenPGPError, primary_fingerprints,
)

FIXTURES = os.path.join(os.path.dirname(__file__), 'fixtures', 'openpgp')
# Fingerprints as `gpg --with-colons --show-keys` printed them when the fixtures were made.
ED25519 = '077AF61B2EE780C5C82EC49FD0D1048095D7D5ED'
RSA2048 = '8B37C186B8F7336F1EBACEFF8CE07544D5BEEAB4'


def _read(name: str) -> str:
    with open(os.path.join(FIXTURES, name), encoding='ascii') as f:
        return f.read()


def test_one_key_as_gpg_prints_it() -> None:
    assert primary_fingerprints(_read('ed25519.asc')) == [ED25519]


def test_two_keys_subkeys_not_listed() -> None:
    # gpg's quick-gen-key keys carry no subkeys here, but user IDs and signatures sit between the keys.
    assert primary_fingerprints(_read('two-keys.asc')) == [ED25519, RSA2048]


def test_binary_and_armoured_agree() -> None:
    text = _read('two-keys.asc')
    body = text.split('\n\n', 1)[1].split('-----END')[0]
    binary = base64.b64decode(''.join(line for line in body.splitlines() if line and not line.startswith('=')))
    assert primary_fingerprints(binary) == [ED25519, RSA2048]
    assert primary_fingerprints(text.encode('ascii')) == [ED25519, RSA2048]


def test_subkey_is_not_a_primary_key() -> None:
    body = bytes([4]) + b'\x00' * 4 + bytes([22]) + b'\x01' * 10
    subkey_packet = bytes([0xC0 | 14, len(body)]) + body
    with pytest.raises(OpenPGPError, match='no primary public key'):
        primary_fingerprints(subkey_packet)


def test_v6_fingerprint_is_sha256_of_the_framed_body() -> None:
    body = bytes([6]) + b'\x00' * 4 + bytes([27]) + (32).to_bytes(4, 'big') + b'\x07' * 32
    packet = bytes([0xC0 | 6, len(body)]) + body
    want = hashlib.sha256(b'\x9b' + len(body).to_bytes(4, 'big') + body).hexdigest().upper()
    assert primary_fingerprints(packet) == [want]


def test_old_format_header() -> None:
    text = _read('ed25519.asc')
    body = text.split('\n\n', 1)[1].split('-----END')[0]
    data = base64.b64decode(''.join(line for line in body.splitlines() if line and not line.startswith('=')))
    assert data[0] & 0x40 == 0 or data[0] & 0x40  # either format is accepted
    assert primary_fingerprints(data) == [ED25519]


@pytest.mark.parametrize('bad, match', [
    ('not a key', 'no "BEGIN PGP PUBLIC KEY BLOCK"'),
    ('-----BEGIN PGP PUBLIC KEY BLOCK-----\n\n!!!!\n-----END PGP PUBLIC KEY BLOCK-----\n', 'base64'),
    (b'\x01\x02', 'not an OpenPGP packet header'),
    (bytes([0xC6, 50, 4]), 'runs past the end'),
    (bytes([0xC6, 3, 3, 0, 0]), 'version 3 is not supported'),
])
def test_bad_input_is_a_clear_error(bad: str | bytes, match: str) -> None:
    with pytest.raises(OpenPGPError, match=match):
        primary_fingerprints(bad)
