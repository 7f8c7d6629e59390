# shellcheck shell=bash
# Shared by the mig-role tier's scripts (tests/roles/mig/*.sh, tests/fleet/run.sh). Sourced, not executed.
# Gives PY, ok (counts in the script's own `pass`) and die (a script may define its own after sourcing),
# tier_work, use_collection and sim_host_vars.

# shellcheck disable=SC2034 # read by the script that sources this file
PY=$(command -v python3)
ok() { pass=$((pass + 1)); echo "PASS: $*"; }
die() { echo "FAIL: $*" >&2; exit 1; }

# tier_work NAME: a private work directory WORK (under $TMPDIR), removed at exit unless KEEP=1.
tier_work() {
  WORK=$(mktemp -d "${TMPDIR:-/tmp}/$1.XXXXXX")
  trap tier_cleanup EXIT
}
tier_cleanup() { if [ "${KEEP:-0}" = 1 ]; then echo "kept $WORK"; else rm -rf "$WORK"; fi; }

# use_collection: sets COLLECTIONS (a path that holds ansible_collections/gpuops/mig) and COLL (the
# collection in it): $GPUOPS_COLLECTIONS_PATH when it has the collection, else a snapshot of the checkout
# under $WORK, not a symlink, so that edits in the working tree during the run do not leak into it.
# Also exports the Ansible settings every script of the tier uses (the collection, no colour or retry
# files, temp dirs under $WORK). Needs ROOT and WORK.
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
  export ANSIBLE_COLLECTIONS_PATH=$COLLECTIONS ANSIBLE_NOCOLOR=1 ANSIBLE_RETRY_FILES_ENABLED=0
  export ANSIBLE_LOCAL_TEMP=$WORK/ansible-tmp ANSIBLE_REMOTE_TEMP=$WORK/ansible-tmp ANSIBLE_DEPRECATION_WARNINGS=0
}

# sim_host_vars HOST [LINE...]: print the start of HOST's host_vars: the environment that points the role at
# HOST's simulated NVML state, the fake nvidia-smi and nvidia-ctk (logging to $WORK), plus LINEs as further
# environment entries; and make $WORK/HOST/systemd (it stands in for /etc/systemd/system, which real hosts
# have). Needs ROOT, WORK and SIMLIB.
sim_host_vars() {
  local h=$1 line
  shift
  mkdir -p "$WORK/$h/systemd"
  cat <<YAML
gpuops_mig_environment:
  LD_LIBRARY_PATH: "$SIMLIB"
  MIGSIM_STATE: "$WORK/$h.json"
  PATH: "$ROOT/tests/fakebin:$PATH"
  FAKE_NVIDIA_SMI_LOG: "$WORK/$h.nvidia-smi.log"
  FAKE_NVIDIA_CTK_LOG: "$WORK/$h.nvidia-ctk.log"
YAML
  for line in "$@"; do echo "  $line"; done
}
