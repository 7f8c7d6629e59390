#!/usr/bin/env bash
# Copyright (c) gpuops.mig contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
#
# `make test`: run each tier (a make target) in order, stop at the first failure, print one
# line per tier and a summary. Each tier's whole output goes to LOGS/TIER.log.
#
# usage: run-tiers.sh LOGS TIER...   (MAKE names the make to call; default make)
set -euo pipefail

logs=${1:?usage: run-tiers.sh LOGS TIER...}
shift
make_cmd=${MAKE:-make}
mkdir -p "$logs"

passed=0
failed=0
summary=""
for tier in "$@"; do
  start=$(date +%s)
  rc=0
  "$make_cmd" "$tier" >"$logs/$tier.log" 2>&1 || rc=$?
  secs=$(( $(date +%s) - start ))
  last=$( { grep -v -e '^[[:space:]]*$' -e '^make' -e '^WARNING' "$logs/$tier.log" || true; } | tail -n 1 | cut -c1-100)
  if [[ $rc -eq 0 ]]; then
    passed=$((passed + 1))
    line="PASS $tier (${secs}s) $last"
    echo "$line"
  else
    failed=$((failed + 1))
    line="FAIL $tier (${secs}s) log: $logs/$tier.log"
    echo "---- last 120 lines of $logs/$tier.log"
    tail -n 120 "$logs/$tier.log"
    echo "----"
    echo "$line"
    summary+="$line"$'\n'
    break
  fi
  summary+="$line"$'\n'
done

echo "==== make test summary"
printf '%s' "$summary"
echo "tiers: $passed passed, $failed failed"
[[ $failed -eq 0 ]]
