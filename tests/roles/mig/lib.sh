# shellcheck shell=bash
# Shared by the mig-role tier's scripts (tests/roles/mig/*.sh, tests/fleet/run.sh). Sourced, not executed.

# use_collection: sets COLLECTIONS (a path that holds ansible_collections/gpuops/mig) and COLL (the
# collection in it): $GPUOPS_COLLECTIONS_PATH when it has the collection, else a snapshot of the checkout
# under $WORK, not a symlink, so that edits in the working tree during the run do not leak into it.
# Needs ROOT and WORK.
use_collection() {
  if [ -n "${GPUOPS_COLLECTIONS_PATH:-}" ] && [ -d "$GPUOPS_COLLECTIONS_PATH/ansible_collections/gpuops/mig" ]; then
    COLLECTIONS=$GPUOPS_COLLECTIONS_PATH
  else
    COLLECTIONS=$WORK/collections
    mkdir -p "$COLLECTIONS/ansible_collections/gpuops/mig"
    tar -C "$ROOT" --exclude=./build --exclude=./.venv --exclude=./.git --exclude=./tests/output -cf - . \
      | tar -C "$COLLECTIONS/ansible_collections/gpuops/mig" -xf -
  fi
  # shellcheck disable=SC2034 # read by the script that sources this file
  COLL=$COLLECTIONS/ansible_collections/gpuops/mig
}
