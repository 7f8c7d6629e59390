# shellcheck shell=bash
# Shared helpers for tests/roles/run.sh and tests/roles/preflight/run.sh. Sourced, not executed.

ROLETEST_HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
ROLETEST_ROOT=$(cd "$ROLETEST_HERE/../.." && pwd)
ROLETEST_PASS=0
ROLETEST_FAIL=0
ROLETEST_FAILED_NAMES=()
ROLETEST_CLEANUP=()

log() { printf '[%(%H:%M:%S)T] %s\n' -1 "$*"; }

# Run cleanup steps in reverse order on exit.
roletest_cleanup() {
    local i
    for ((i = ${#ROLETEST_CLEANUP[@]} - 1; i >= 0; i--)); do
        eval "${ROLETEST_CLEANUP[i]}" || true
    done
}
on_exit() { ROLETEST_CLEANUP+=("$1"); }

# Work dir, collection copy and the ansible environment.
roletest_setup() {
    command -v ansible-playbook >/dev/null || { echo "ansible-playbook not on PATH" >&2; exit 2; }
    trap roletest_cleanup EXIT
    trap 'exit 130' INT TERM
    WORK=$(mktemp -d "${TMPDIR:-/tmp}/gpuops-roletest.XXXXXX")
    if [[ -z ${ROLETEST_KEEP:-} ]]; then on_exit "rm -rf '$WORK'"; else log "keeping $WORK"; fi
    mkdir -p "$WORK/logs"
    if [[ -n ${GPUOPS_COLLECTIONS_PATH:-} ]]; then
        export ANSIBLE_COLLECTIONS_PATH=$GPUOPS_COLLECTIONS_PATH
    else
        local dest=$WORK/collections/ansible_collections/gpuops/mig
        mkdir -p "$dest"
        tar -C "$ROLETEST_ROOT" --exclude=./.git --exclude=./tests/output -cf - . | tar -C "$dest" -xf -
        export ANSIBLE_COLLECTIONS_PATH=$WORK/collections
    fi
    export ANSIBLE_NOCOLOR=1 ANSIBLE_FORCE_COLOR=0 ANSIBLE_RETRY_FILES_ENABLED=0
    export ANSIBLE_STDOUT_CALLBACK=default ANSIBLE_LOAD_CALLBACK_PLUGINS=0
    export ANSIBLE_HOST_KEY_CHECKING=0 ANSIBLE_DEPRECATION_WARNINGS=0 ANSIBLE_PIPELINING=1
    printf "[defaults]\n" >"$WORK/ansible.cfg"
    export ANSIBLE_LOCAL_TEMP=$WORK/ansible-local ANSIBLE_CONFIG=$WORK/ansible.cfg
    log "collections: $ANSIBLE_COLLECTIONS_PATH; ansible: $(command -v ansible-playbook)"
}

# serve_dir DIR: serve DIR over HTTP on a free loopback port until exit (DIR must hold gpgkey, which is
# fetched to know the server is up); sets SERVED_URL.
serve_dir() {
    local port pid
    port=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
    timeout 3600 python3 -m http.server --bind 127.0.0.1 --directory "$1" "$port" >"$WORK/logs/http.log" 2>&1 &
    pid=$!
    on_exit "kill $pid 2>/dev/null"
    for _ in $(seq 50); do
        python3 -c "import urllib.request; urllib.request.urlopen('http://127.0.0.1:$port/gpgkey')" 2>/dev/null && break
        sleep 0.1
    done
    # shellcheck disable=SC2034 # read by the script that sources this file
    SERVED_URL="http://127.0.0.1:$port"
}

pass() { ROLETEST_PASS=$((ROLETEST_PASS + 1)); printf '  ok    %s\n' "$1"; }
fail() {
    ROLETEST_FAIL=$((ROLETEST_FAIL + 1)); ROLETEST_FAILED_NAMES+=("$1")
    printf '  FAIL  %s\n' "$1"
    if [[ -n ${2:-} ]]; then printf '        %s\n' "$2"; fi
}

# check NAME COMMAND...: the command's exit status decides.
check() {
    local name=$1; shift
    local out
    if out=$("$@" 2>&1); then pass "$name"; else fail "$name" "${out:0:600}"; fi
}

# play LABEL EXPECT ansible-playbook-args...
#   EXPECT: 0 (success, changed=0), changed (success, changed>0), fail (non-zero exit)
# Leaves the log in PLAY_LOG and the summed changed count in PLAY_CHANGED.
play() {
    local label=$1 expect=$2; shift 2
    PLAY_LOG=$WORK/logs/$label.log
    local rc=0 start=$SECONDS
    ansible-playbook "$@" >"$PLAY_LOG" 2>&1 || rc=$?
    PLAY_CHANGED=$(awk '/^PLAY RECAP/ {r = 1; next}
        r { for (i = 1; i <= NF; i++) if ($i ~ /^changed=/) { split($i, a, "="); s += a[2] } }
        END { print s + 0 }' "$PLAY_LOG")
    local ok=1 what="rc=$rc changed=$PLAY_CHANGED, $((SECONDS - start))s"
    case $expect in
        0) [[ $rc -eq 0 && $PLAY_CHANGED -eq 0 ]] || ok=0 ;;
        changed) [[ $rc -eq 0 && $PLAY_CHANGED -gt 0 ]] || ok=0 ;;
        fail) [[ $rc -ne 0 ]] || ok=0 ;;
        *) echo "play: bad EXPECT $expect" >&2; exit 2 ;;
    esac
    if ((ok)); then
        pass "$label (expect $expect: $what)"
    else
        fail "$label (expect $expect: $what)" "log: $PLAY_LOG"
        grep -E 'fatal:|FAILED|ERROR|changed: \[' "$PLAY_LOG" | head -20 | sed 's/^/        | /'
    fi
}

# log_has LABEL REGEX: the last play's output matches (extended regex).
log_has() { check "$1" grep -Eq -- "$2" "$PLAY_LOG"; }

roletest_summary() {
    echo
    log "role tests: $ROLETEST_PASS passed, $ROLETEST_FAIL failed"
    local n
    for n in "${ROLETEST_FAILED_NAMES[@]}"; do echo "  failed: $n"; done
    ((ROLETEST_FAIL == 0))
}

# real_nvidia_ctk CACHE: prints the path of NVIDIA's real nvidia-ctk (v1.20.0): $NVIDIA_CTK, else built
# (cached) by ../shared/tools/build-nvidia-ctk when ../shared exists; returns 1 when neither is there,
# 2 when the build fails (a failure, not a reason to skip).
real_nvidia_ctk() {
    if [[ -n ${NVIDIA_CTK:-} ]]; then echo "$NVIDIA_CTK"; return 0; fi
    local build=$ROLETEST_ROOT/../shared/tools/build-nvidia-ctk out
    [[ -x $build ]] || return 1
    out=$("$build" "$1/nvidia-ctk") || { echo "building the real nvidia-ctk failed" >&2; return 2; }
    tail -1 <<<"$out"
}
