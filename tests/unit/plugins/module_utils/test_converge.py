# Copyright (c) 2026 gpuops.mig contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""converge: a layout that is wrong whatever the GPUs are fails before NVML is read (and, in the module and
the boot script, before the host lock is taken: both call parse_spec first)."""

from __future__ import annotations

import pytest

from ansible_collections.gpuops.mig.plugins.module_utils._converge import ConvergeError, converge, parse_spec
from ansible_collections.gpuops.mig.plugins.module_utils._model import MigError


class NoReads:
    """An adapter that fails the test if anything reads the GPUs."""

    def read_gpus(self, with_remaining=True):
        raise AssertionError('the GPUs were read before the layout was checked')

    read_gpu = read_gpus


@pytest.mark.parametrize('kwargs, field', [
    ({'layouts': [{'devices': 'all', 'mig_enabled': 'maybe'}]}, 'layouts[0].mig_enabled'),
    ({'layouts': [{'devices': 'all', 'mig_enabled': True, 'mig_devicez': {}}]}, 'layouts[0]'),
    ({'layouts': 'all'}, 'layouts'),
    ({'config': 'version: v1\nmig-configs: {a: [{devices: all, mig-enabled: true}]}', 'config_name': 'b'}, 'config_name'),
    ({}, 'layouts'),
])
def test_bad_layout_fails_before_any_nvml_read(kwargs, field):
    with pytest.raises(ConvergeError) as err:
        converge(NoReads(), **kwargs)
    assert err.value.field is not None and err.value.field.startswith(field)
    assert isinstance(err.value, MigError)
    with pytest.raises(ConvergeError) as again:
        parse_spec(**kwargs)
    assert str(again.value) == str(err.value) and again.value.field == err.value.field
