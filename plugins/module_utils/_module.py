# Copyright (c) 2026 gpuops.mig contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""Ansible-side glue shared by the modules: the NVML session with clean failures, GPU selection."""

from __future__ import annotations

import contextlib
import typing as t

from ansible_collections.gpuops.mig.plugins.module_utils._model import Gpu, SpecError
from ansible_collections.gpuops.mig.plugins.module_utils._nvml import NvmlAdapter, NvmlCallError, NvmlUnavailable
from ansible_collections.gpuops.mig.plugins.module_utils._spec import select_gpus


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


def select_gpus_or_fail(module: t.Any, gpus: list[Gpu], selectors: list[str], field: str) -> list[Gpu]:
    try:
        return select_gpus(gpus, selectors, field)
    except SpecError as exc:
        module.fail_json(msg=str(exc), field=exc.field)
        raise  # not reached
