# Copyright (c) 2026 gpuops.mig contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

import pytest

from ansible_collections.gpuops.mig.plugins.module_utils._lock import LockError, host_lock

HOLD = ('import fcntl, os, sys, time; fd = os.open(sys.argv[1], os.O_RDWR | os.O_CREAT, 0o600); '
        'fcntl.flock(fd, fcntl.LOCK_EX); print("held", flush=True); time.sleep(60)')


def test_second_holder_times_out(tmp_path) -> None:
    path = str(tmp_path / 'lock')
    with host_lock(path, timeout=1):
        proc = subprocess.run([sys.executable, '-c', 'import sys; sys.path[:0] = %r\n'
                               'from ansible_collections.gpuops.mig.plugins.module_utils._lock import host_lock, LockError\n'
                               'try:\n    host_lock(%r, timeout=0.3).__enter__()\nexcept LockError as e:\n    print(e); sys.exit(3)'
                               % (sys.path, path)], capture_output=True, text=True, check=False)
    assert proc.returncode == 3, proc.stderr
    assert 'gave up after' in proc.stdout


def test_sigkilled_holder_does_not_block(tmp_path) -> None:
    path = str(tmp_path / 'lock')
    proc = subprocess.Popen([sys.executable, '-c', HOLD, path], stdout=subprocess.PIPE, text=True)
    assert proc.stdout.readline().strip() == 'held'
    with pytest.raises(LockError):
        with host_lock(path, timeout=0.2):
            pass
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    start = time.monotonic()
    with host_lock(path, timeout=5):
        assert time.monotonic() - start < 5


def test_symlink_is_refused(tmp_path) -> None:
    target = tmp_path / 'elsewhere'
    target.write_text('')
    link = tmp_path / 'lock'
    link.symlink_to(target)
    with pytest.raises(LockError, match='symbolic link'):
        with host_lock(str(link), timeout=0.1):
            pass


@pytest.mark.skipif(os.geteuid() != 0, reason='needs root to create a file owned by someone else')
def test_lock_file_owned_by_another_user_is_refused(tmp_path) -> None:
    path = tmp_path / 'lock'
    path.write_text('')
    os.chown(path, 65534, 65534)
    with pytest.raises(LockError, match='belongs to uid 65534'):
        with host_lock(str(path), timeout=0.1):
            pass
