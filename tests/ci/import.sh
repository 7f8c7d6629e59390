#!/usr/bin/env bash
# galaxy-importer on the built collection tarball (make import). Fails on errors, and on warnings unless
# IMPORT_ALLOW_WARNINGS is set; the importer's whole output goes to LOGDIR/import.out.
# Usage: tests/ci/import.sh TARBALL LOGDIR ATEST...   (ATEST: the command prefix that runs a tool with the
# collection's test environment, as the Makefile builds it)
set -euo pipefail
tarball=${1:?usage: import.sh TARBALL LOGDIR ATEST...}
logdir=${2:?usage: import.sh TARBALL LOGDIR ATEST...}
shift 2
mkdir -p "$logdir"
out="$logdir/import.out"
rc=0
(cd "$(dirname "$tarball")" && "$@" python -m galaxy_importer.main "$tarball") > "$out" 2>&1 || rc=$?
grep -E '^(ERROR|WARNING)|rror' "$out" || true
if [ "$rc" -ne 0 ]; then
    tail -n 40 "$out"
    echo "make import: galaxy-importer exited $rc" >&2
    exit 1
fi
if grep -q '^ERROR' "$out"; then
    echo "make import: errors reported" >&2
    exit 1
fi
if [ -z "${IMPORT_ALLOW_WARNINGS:-}" ] && grep -q '^WARNING' "$out"; then
    echo "make import: warnings reported (IMPORT_ALLOW_WARNINGS=1 to accept)" >&2
    exit 1
fi
if ! grep -q 'Importer processing completed successfully' "$out"; then
    tail -n 40 "$out"
    exit 1
fi
echo "import: Importer processing completed successfully"
