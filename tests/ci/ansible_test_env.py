# Copyright (c) gpuops.mig contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Run a command (normally ansible-test) in a private, offline-capable HOME.

ansible-test strips the environment of the programs it starts down to PATH, HOME and a
few others, so pip settings given as environment variables (PIP_CERT, PIP_INDEX_URL,
...) never reach the pip runs inside its sanity virtual environments. It also fetches a
get-pip bootstrap script from a host this CI cannot reach, unless a cached copy exists
under ~/.ansible/test/cache/.

This helper:

* points HOME at a private directory (default: <repo>/build/home) so nothing is shared
  with the user's own ~/.ansible;
* writes $HOME/.config/pip/pip.conf merged from the user's pip configuration files and the
  PIP_* environment variables, so pip keeps its certificate bundle and index settings;
* writes an offline stand-in for the cached get-pip script: it runs ensurepip in a child
  process and then installs the requested packages with that pip;
* executes the given command.

Usage: python tests/ci/ansible_test_env.py [--home DIR] -- COMMAND [ARGS...]
"""

from __future__ import annotations

import argparse
import configparser
import os
import re
import sys

STAND_IN = '''\
"""Offline stand-in for ansible-test's get-pip bootstrap script (written by gpuops.mig CI)."""
import subprocess
import sys

ARGS = [arg for arg in sys.argv[1:] if arg not in ('--no-setuptools', '--no-wheel')]
# ensurepip runs in its own process: it clears pip configuration variables in the process it runs in.
subprocess.check_call([sys.executable, '-m', 'ensurepip', '--upgrade', '--default-pip'], stdout=subprocess.DEVNULL)
subprocess.check_call([sys.executable, '-m', 'pip', 'install', '--quiet'] + ARGS)
'''

# pip versions ansible-test may ask for; the installed ansible-test is searched for more.
KNOWN_PIP_VERSIONS = {'24.2'}
DEFAULT_CERT = '/etc/ssl/certs/ca-certificates.crt'


def pip_versions() -> set[str]:
    """Return the pip versions that the installed ansible-test bootstraps."""
    versions = set(KNOWN_PIP_VERSIONS)
    try:
        import ansible_test  # pylint: disable=import-outside-toplevel
    except ImportError:
        return versions
    path = os.path.join(os.path.dirname(ansible_test.__file__), '_internal', 'python_requirements.py')
    try:
        with open(path, encoding='utf-8') as handle:
            versions.update(re.findall(r"pip='([0-9.]+)'", handle.read()))
    except OSError:
        pass
    return versions


def merged_pip_config(real_home: str) -> configparser.ConfigParser:
    """Merge the user's pip configuration files and PIP_* variables into one [global] section."""
    config = configparser.ConfigParser(interpolation=None)
    config.read([
        '/etc/pip.conf',
        '/etc/xdg/pip/pip.conf',
        os.path.join(real_home, '.pip', 'pip.conf'),
        os.path.join(real_home, '.config', 'pip', 'pip.conf'),
        os.environ.get('PIP_CONFIG_FILE') or '',
    ], encoding='utf-8')
    if not config.has_section('global'):
        config.add_section('global')
    for name, value in os.environ.items():
        if name.startswith('PIP_') and name != 'PIP_CONFIG_FILE' and value:
            config.set('global', name[4:].lower().replace('_', '-'), value)
    if not config.has_option('global', 'cert') and os.path.exists(DEFAULT_CERT):
        config.set('global', 'cert', DEFAULT_CERT)
    return config


def prepare_home(home: str) -> None:
    """Create the private HOME with pip.conf and the get-pip stand-ins."""
    real_home = os.environ.get('HOME', os.path.expanduser('~'))
    if os.path.abspath(real_home) == os.path.abspath(home):
        real_home = os.environ.get('GPUOPS_REAL_HOME', real_home)
    pip_dir = os.path.join(home, '.config', 'pip')
    cache_dir = os.path.join(home, '.ansible', 'test', 'cache')
    os.makedirs(pip_dir, exist_ok=True)
    os.makedirs(cache_dir, exist_ok=True)
    with open(os.path.join(pip_dir, 'pip.conf'), 'w', encoding='utf-8') as handle:
        merged_pip_config(real_home).write(handle)
    for version in pip_versions():
        with open(os.path.join(cache_dir, 'get_pip_%s.py' % version.replace('.', '_')), 'w', encoding='utf-8') as handle:
            handle.write(STAND_IN)


def main() -> int:
    """Entry point."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--home', default=os.path.join(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))), 'build', 'home'))
    parser.add_argument('command', nargs=argparse.REMAINDER)
    args = parser.parse_args()
    command = args.command[1:] if args.command[:1] == ['--'] else args.command
    if not command:
        parser.error('no command given')
    home = os.path.abspath(args.home)
    prepare_home(home)
    os.environ.setdefault('GPUOPS_REAL_HOME', os.environ.get('HOME', ''))
    os.environ['HOME'] = home
    os.execvp(command[0], command)
    return 1  # not reached


if __name__ == '__main__':
    sys.exit(main())
