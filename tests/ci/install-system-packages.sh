#!/usr/bin/env bash
# Copyright (c) gpuops.mig contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
#
# Install the Debian/Ubuntu packages the test tiers need, from the one list
# tests/ci/debian-packages.txt. Used by `make test` and by `.ci/run`.
#
# Only packages that are missing are installed. As root they are installed with apt-get; as
# any other user the script prints the one command that installs them and exits 1. With every
# package present it prints one line and does nothing else (no apt-get update).
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
list=${1:-$here/debian-packages.txt}

mapfile -t wanted < <(sed -e 's/#.*//' -e 's/[[:space:]]//g' "$list" | grep -v '^$')
if ! command -v dpkg-query >/dev/null 2>&1; then
  echo "system packages: no dpkg-query here (not Debian/Ubuntu); make sure these are installed: ${wanted[*]}" >&2
  exit 0
fi

missing=()
for pkg in "${wanted[@]}"; do
  status=$(dpkg-query -W -f='${db:Status-Status}' "$pkg" 2>/dev/null || true)
  [[ $status == installed ]] || missing+=("$pkg")
done

if [[ ${#missing[@]} -eq 0 ]]; then
  echo "system packages: all ${#wanted[@]} in tests/ci/debian-packages.txt are installed"
  exit 0
fi

command_line="apt-get update && apt-get install -y --no-install-recommends ${missing[*]}"
if [[ $(id -u) -ne 0 ]]; then
  echo "system packages missing: ${missing[*]}" >&2
  echo "run as root, then run make again:" >&2
  echo "  sudo sh -c '$command_line'" >&2
  exit 1
fi

echo "system packages: installing ${missing[*]}"
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq </dev/null
apt-get install -y -qq --no-install-recommends "${missing[@]}" </dev/null >/dev/null
echo "system packages: installed ${missing[*]}"
