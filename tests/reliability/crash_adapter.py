# Copyright (c) 2026 gpuops.mig contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""A test-only NVML adapter that SIGKILLs its own process right after its K-th mutating call.

It wraps the collection's real ``NvmlAdapter`` (the real pynvml against the simulator): the K-th
mutation really happens, then the process dies the way an OOM kill or a power-cut-like crash of
the Ansible worker would, with no ``finally`` blocks, no rollback and the host lock still held.

Standalone use (the reliability worker forks instead, to save the interpreter start)::

    eval "$(tests/nvml_sim/migsim env STATE)"
    python tests/reliability/crash_adapter.py --kill-after 3 --lock-file /tmp/lock \
        --layouts '[{"devices": "all", "mig_enabled": true, "mig_devices": {"3g.40gb": 2}}]'
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import sys
import typing as t


def crash_adapter_class() -> type:
    from ansible_collections.gpuops.mig.plugins.module_utils._nvml import NvmlAdapter  # pylint: disable=import-outside-toplevel

    class CrashAfter(NvmlAdapter):  # type: ignore[misc,valid-type]
        def __init__(self, kill_after: int) -> None:
            super().__init__()
            self.kill_after = kill_after
            self.mutations = 0

        def _mutated(self) -> None:
            self.mutations += 1
            if self.mutations >= self.kill_after:
                sys.stdout.flush()
                os.kill(os.getpid(), signal.SIGKILL)

        def set_mig_mode(self, index: int, enabled: bool) -> int:
            status = super().set_mig_mode(index, enabled)
            self._mutated()
            return status

        def create_gpu_instance(self, index: int, profile_id: int, placement: t.Any) -> int:
            gi = super().create_gpu_instance(index, profile_id, placement)
            self._mutated()
            return gi

        def create_compute_instance(self, index: int, gi_id: int, ci_profile_id: int, placement: t.Any) -> int:
            ci = super().create_compute_instance(index, gi_id, ci_profile_id, placement)
            self._mutated()
            return ci

        def destroy_compute_instance(self, index: int, gi_id: int, ci_id: int) -> None:
            super().destroy_compute_instance(index, gi_id, ci_id)
            self._mutated()

        def destroy_gpu_instance(self, index: int, gi_id: int) -> None:
            super().destroy_gpu_instance(index, gi_id)
            self._mutated()

    return CrashAfter


def converge_and_die(layouts: list[t.Any], kill_after: int, lock_file: str) -> dict[str, t.Any]:
    """Take the host lock and converge; the process is SIGKILLed after mutation ``kill_after``."""
    from ansible_collections.gpuops.mig.plugins.module_utils._converge import converge  # pylint: disable=import-outside-toplevel
    from ansible_collections.gpuops.mig.plugins.module_utils._lock import host_lock  # pylint: disable=import-outside-toplevel
    with host_lock(lock_file, timeout=30):
        with crash_adapter_class()(kill_after) as nvml:
            return converge(nvml, layouts=layouts)


def main(argv: list[str]) -> int:
    p = argparse.ArgumentParser(description=__doc__.split('\n', 1)[0])
    p.add_argument('--kill-after', type=int, required=True)
    p.add_argument('--lock-file', required=True)
    p.add_argument('--layouts', required=True, help='the layouts option as JSON')
    args = p.parse_args(argv)
    result = converge_and_die(json.loads(args.layouts), args.kill_after, args.lock_file)
    print(json.dumps({'survived': True, 'changed': result['changed']}))
    return 0


if __name__ == '__main__':
    sys.exit(main(sys.argv[1:]))
