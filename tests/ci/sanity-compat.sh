#!/usr/bin/env bash
# Copyright (c) gpuops.mig contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
#
# `make sanity`, second half: ansible-test's compile test on each older or newer target Python
# (tests/config.yml says >=3.8) that exists on this machine (pyenv first, then the system);
# a version that is not here is skipped with one line.
#
# usage: sanity-compat.sh COLLECTION_DIR PYTHONS_DIR "VERSION..." ATEST...
#   ATEST is the command prefix that runs ansible-test with the private HOME (the Makefile's ATEST).
set -euo pipefail

usage='usage: sanity-compat.sh COLLECTION_DIR PYTHONS_DIR "VERSION..." ATEST...'
coll=${1:?$usage}
pythons=${2:?$usage}
read -r -a versions <<<"${3?$usage}"  # may be empty: no compile check on other Pythons
shift 3
atest=("$@")

mkdir -p "$pythons"
pythons=$(cd "$pythons" && pwd)
for v in "${versions[@]}"; do
  exe=$(printf '%s\n' "${PYENV_ROOT:-$HOME/.pyenv}"/versions/"$v".*/bin/python"$v" | sort -V | tail -n 1)
  [[ -x $exe ]] || exe=""
  [[ -n $exe ]] || exe=$(PATH=/usr/local/bin:/usr/bin:/bin command -v "python$v" || true)
  if [[ -z $exe ]] || ! "$exe" -c pass 2>/dev/null; then
    echo "sanity: no Python $v here, compile check skipped"
    continue
  fi
  ln -sf "$exe" "$pythons/python$v"
  echo "sanity: compile on Python $v"
  (cd "$coll" && PATH="$pythons:$PATH" "${atest[@]}" ansible-test sanity --local --python "$v" --test compile)
done
