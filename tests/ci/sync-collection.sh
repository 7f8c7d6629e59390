#!/usr/bin/env bash
# Copyright (c) gpuops.mig contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
#
# Copy the checkout to DEST (normally build/ansible_collections/gpuops/mig), because
# ansible-test only runs inside .../ansible_collections/<namespace>/<name>/ and refuses a
# symlink. In a git checkout the copy holds exactly the files git would see (tracked plus
# untracked-but-not-ignored), so sanity tests see what a fresh clone sees. Outside git it
# falls back to a tar copy with the usual exclusions.
set -euo pipefail

src=$(cd "$(dirname "$0")/../.." && pwd)
dest=${1:?usage: sync-collection.sh DEST}

case "$dest" in
  */ansible_collections/*/*) ;;
  *) echo "sync-collection.sh: refusing to copy to $dest (not an ansible_collections/NS/NAME path)" >&2; exit 2 ;;
esac

rm -rf "$dest"
mkdir -p "$dest"

cd "$src"
if git rev-parse --is-inside-work-tree >/dev/null 2>&1; then
  git ls-files -z --cached --others --exclude-standard \
    | while IFS= read -r -d '' f; do
        # skip tracked files deleted in the working tree
        if [ -e "$f" ] || [ -L "$f" ]; then printf '%s\0' "$f"; fi
      done \
    | tar --null --no-recursion -T - -cf - \
    | tar -C "$dest" -xf -
else
  tar --exclude=./build --exclude=./.venv --exclude=./tests/output --exclude=./.git \
      --exclude=./tests/nvml_sim/build --exclude='__pycache__' --exclude='*.pyc' \
      --exclude='*.tar.gz' --exclude=./.cache -cf - . \
    | tar -C "$dest" -xf -
fi

# ansible-test and ansible-lint list files through the nearest enclosing git work tree. Without
# a repository of its own the copy would resolve to the checkout, whose .gitignore hides build/.
git -C "$dest" init -q
