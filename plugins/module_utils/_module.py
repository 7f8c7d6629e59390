# Copyright (c) 2026 gpuops.mig contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""Ansible-side glue shared by the modules: the NVML session with clean failures, GPU selection."""

from __future__ import annotations

import contextlib
import typing as t

from ansible_collections.gpuops.mig.plugins.module_utils._model import Gpu, SpecError
from ansible_collections.gpuops.mig.plugins.module_utils._nvml import NvmlAdapter, NvmlCallError, NvmlUnavailable


@contextlib.contextmanager
def nvml_session(module: t.Any) -> t.Iterator[NvmlAdapter]:
    """One NVML session for the module run; any NVML trouble ends the module with a clear message."""
    adapter = NvmlAdapter()
    try:
        adapter.__enter__()
    except NvmlUnavailable as exc:
        module.fail_json(msg='NVML is not usable on this host: %s' % exc)
    try:
        yield adapter
    except NvmlCallError as exc:
        module.fail_json(msg='NVML call failed: %s' % exc, nvml_call=exc.call, nvml_error=exc.error_name)
    finally:
        adapter.__exit__(None, None, None)


def select_gpus(gpus: list[Gpu], selectors: list[str], field: str) -> list[Gpu]:
    """GPUs named by ``all`` or by indexes, UUIDs, PCI bus IDs; a selector that matches nothing is an error."""
    if [s.strip().lower() for s in selectors] == ['all']:
        return list(gpus)
    # Imported here: the common case, all GPUs, does not need the layout parser (mig_info stays light).
    from ansible_collections.gpuops.mig.plugins.module_utils._spec import _parse_devices

    parsed = _parse_devices(selectors, field, config_style=False)
    if parsed is None:
        return list(gpus)
    for sel in parsed:
        if not any(sel.matches(g) for g in gpus):
            raise SpecError(sel.path, '%s matches no GPU on this host (GPUs: %s)'
                            % (sel.text(), ', '.join('%d %s %s' % (g.index, g.uuid, g.pci_bus_id) for g in gpus) or 'none'))
    return [g for g in gpus if any(sel.matches(g) for sel in parsed)]


def select_gpus_or_fail(module: t.Any, gpus: list[Gpu], selectors: list[str], field: str) -> list[Gpu]:
    try:
        return select_gpus(gpus, selectors, field)
    except SpecError as exc:
        module.fail_json(msg=str(exc), field=exc.field)
        raise  # not reached
