# Copyright (c) 2026 gpuops.mig contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""Host-wide lock so that two MIG changes on one host never interleave.

``flock`` locks die with their process, so a run killed with SIGKILL never blocks the next one.
The lock file is opened without following symlinks and must belong to the caller, so an
unprivileged user cannot pre-create it to block or redirect a root run.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import os
import stat
import time
import typing as t

from ansible_collections.gpuops.mig.plugins.module_utils._model import MigError

# The defaults of mig_layout's lock_file and lock_timeout, the boot script's and the mig role's.
DEFAULT_LOCK_PATH = '/run/gpuops-mig.lock'
DEFAULT_LOCK_TIMEOUT = 300


class LockError(MigError):
    """The host lock could not be taken; its option is ``lock_file``."""

    def __init__(self, message: str) -> None:
        super().__init__(message, 'lock_file')


@contextlib.contextmanager
def host_lock(path: str = DEFAULT_LOCK_PATH, timeout: float = DEFAULT_LOCK_TIMEOUT, poll: float = 0.05) -> t.Iterator[None]:
    """Hold an exclusive lock on ``path`` for the duration of the block; wait at most ``timeout`` seconds."""
    flags = os.O_RDWR | os.O_CREAT | getattr(os, 'O_NOFOLLOW', 0) | getattr(os, 'O_CLOEXEC', 0)
    try:
        fd = os.open(path, flags, 0o600)
    except OSError as exc:
        if exc.errno == errno.ELOOP:
            raise LockError('lock file %s is a symbolic link; refusing to use it' % path)
        raise LockError('cannot open lock file %s: %s' % (path, exc.strerror))
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            raise LockError('lock file %s is not a regular file' % path)
        if st.st_uid != os.geteuid():
            raise LockError('lock file %s belongs to uid %d, not to this user (uid %d); remove it'
                            % (path, st.st_uid, os.geteuid()))
        deadline = time.monotonic() + timeout
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except OSError as exc:
                if exc.errno not in (errno.EAGAIN, errno.EACCES):
                    raise LockError('cannot lock %s: %s' % (path, exc.strerror))
                if time.monotonic() >= deadline:
                    raise LockError('another MIG change holds %s; gave up after %.0f seconds' % (path, timeout))
                time.sleep(poll)
        os.ftruncate(fd, 0)
        os.write(fd, ('%d\n' % os.getpid()).encode())
        try:
            yield
        finally:
            fcntl.flock(fd, fcntl.LOCK_UN)
    finally:
        os.close(fd)
