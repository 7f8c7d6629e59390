# gpuops.mig developer and CI entry points.  `make help` lists the targets.
#
# Everything runs offline from the package registries: the tools live in ./.venv
# (`make venv`), ansible-test runs in a copy of the checkout under
# build/ansible_collections/gpuops/mig (`make collection`) with a private HOME
# (tests/ci/ansible_test_env.py), and the MIG tests run against the NVML simulator
# in tests/nvml_sim (`make sim`).

SHELL := bash
.SHELLFLAGS := -eu -o pipefail -c
.DEFAULT_GOAL := help
MAKEFLAGS += --no-print-directory

# The venv's Python: 3.11 where there is one (Debian 12), else the system's python3 (Ubuntu 24.04: 3.12).
PYTHON ?= $(shell command -v python3.11 2>/dev/null || echo python3)
# ansible-test runs with --local on the venv's own Python version.
TEST_PYTHON ?= $(shell test -x $(BIN)/python && $(BIN)/python -c 'import sys; print("%d.%d" % sys.version_info[:2])' || echo 3.11)
ROOT := $(CURDIR)
VENV ?= $(ROOT)/.venv
BIN := $(VENV)/bin
VENV_STAMP := $(VENV)/.gpuops-mig-venv
BUILD := $(ROOT)/build
COLLECTIONS := $(BUILD)
COLL := $(COLLECTIONS)/ansible_collections/gpuops/mig
TEST_HOME := $(BUILD)/home
DIST := $(BUILD)/dist
LOGS := $(BUILD)/logs
SIM_CLI := $(ROOT)/tests/nvml_sim/migsim
SIM_STATE ?= $(BUILD)/sim/state.json
SIM_INIT_ARGS ?= --gpus h100-80gb:8
SIM_ENV := $(BUILD)/sim/migsim.env
VERSION := $(shell sed -n 's/^version: *//p' galaxy.yml)
TARBALL := $(DIST)/gpuops-mig-$(VERSION).tar.gz
# Older target Pythons that ansible-test compiles the modules with (tests/config.yml says >=3.8);
# each one is used only where an interpreter of that version exists on the machine.
COMPAT_PYTHONS ?= 3.8 3.9 3.10 3.12 3.13

ATEST := $(BIN)/python $(ROOT)/tests/ci/ansible_test_env.py --home $(TEST_HOME) --
ANSIBLE_TEST_ARGS ?=

export PATH := $(BIN):$(PATH)
export GPUOPS_ROOT := $(ROOT)
export GPUOPS_VENV := $(VENV)
export GPUOPS_COLLECTIONS_PATH := $(COLLECTIONS)
export GPUOPS_COLLECTION_DIR := $(COLL)
export ANSIBLE_NOCOLOR ?= 1
export PY_COLORS ?= 0

# TEST_TIERS=... make test runs exactly those tiers, in that order.
TEST_TIERS ?= sim test-sim sanity units integration lint docs-lint changelog-lint build import role-tests mig-role \
              reliability ee docs-test matrix-ends

.PHONY: help venv collection sim test-sim sanity units integration lint docs-lint changelog-lint \
        build import role-tests mig-role reliability test demo bench clean system-packages docs-test ee \
        matrix-ends test-matrix

help: ## list the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | sed -E 's/^([a-z-]+):.*## /  \1\t/' | expand -t 18

# ---------------------------------------------------------------- environment

venv: $(VENV_STAMP) ## create ./.venv with the pinned tool set (tests/ci/requirements-dev.txt)

$(VENV_STAMP): tests/ci/requirements-dev.txt tests/ci/constraints.txt
	@command -v $(PYTHON) >/dev/null || { echo "make venv: $(PYTHON) not found (set PYTHON=...)" >&2; exit 1; }
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	@echo "venv: installing pinned tools into $(VENV) (a few minutes the first time)"
	@$(BIN)/python -m pip install --quiet --disable-pip-version-check --upgrade pip
	@$(BIN)/python -m pip install --quiet --disable-pip-version-check \
	    -r tests/ci/requirements-dev.txt -c tests/ci/constraints.txt 2>&1 | { grep -v "^WARNING: Location 'file:" || true; }
	@$(BIN)/ansible --version | sed -n 1p
	@touch $@

collection: ## copy the checkout to build/ansible_collections/gpuops/mig (ansible-test needs that path)
	@tests/ci/sync-collection.sh $(COLL)

# ---------------------------------------------------------------- simulator

sim: venv ## build the NVML simulator and write its environment to build/sim/migsim.env
	@test -x $(SIM_CLI) || { echo "make sim: $(SIM_CLI) is missing or not executable (owned by the simulator authors)" >&2; exit 1; }
	@mkdir -p $(dir $(SIM_ENV)) $(dir $(SIM_STATE))
	@rm -f $(SIM_STATE) && $(SIM_CLI) init $(SIM_STATE) $(SIM_INIT_ARGS) >/dev/null
	@$(SIM_CLI) env $(SIM_STATE) > $(SIM_ENV).tmp
	@mv $(SIM_ENV).tmp $(SIM_ENV)
	@echo "sim: environment for $(SIM_STATE) in $(SIM_ENV)"

test-sim: venv ## pytest the simulator itself (tests/nvml_sim/tests)
	@test -d tests/nvml_sim/tests || { echo "make test-sim: tests/nvml_sim/tests is missing" >&2; exit 1; }
	@rc=0; $(BIN)/python -m pytest -q -p no:cacheprovider tests/nvml_sim/tests || rc=$$?; \
	  if [ $$rc -eq 5 ]; then echo "make test-sim: pytest collected no tests in tests/nvml_sim/tests" >&2; fi; \
	  exit $$rc

# ---------------------------------------------------------------- ansible-test

sanity: venv collection ## ansible-test sanity, every test, no ignore files (plus compile on other Pythons)
	@if ls tests/sanity/ignore-*.txt >/dev/null 2>&1; then \
	  echo "make sanity: tests/sanity/ignore-*.txt exist; this collection keeps no ignore entries" >&2; exit 1; fi
	@cd $(COLL) && $(ATEST) ansible-test sanity --local --python $(TEST_PYTHON) --requirements $(ANSIBLE_TEST_ARGS)
	@tests/ci/sanity-compat.sh $(COLL) $(BUILD)/pythons "$(COMPAT_PYTHONS)" $(ATEST)

units: venv collection ## ansible-test units
	@cd $(COLL) && $(ATEST) ansible-test units --local --python $(TEST_PYTHON) $(ANSIBLE_TEST_ARGS)

integration: venv sim collection ## ansible-test integration against the simulator (see tests/integration/README.md)
	@ls -d tests/integration/targets/*/ >/dev/null 2>&1 || { echo "make integration: no targets in tests/integration/targets" >&2; exit 1; }
	@$(BIN)/python tests/ci/sim_env_vars.py --env-file $(SIM_ENV) --sim-cli $(SIM_CLI) --state $(SIM_STATE) \
	    --output $(COLL)/tests/integration/integration_config.yml
	@set -a; . $(SIM_ENV); set +a; \
	  cd $(COLL) && $(ATEST) ansible-test integration --local --python $(TEST_PYTHON) $(ANSIBLE_TEST_ARGS)

# ---------------------------------------------------------------- lint, docs, packaging

lint: venv collection ## ansible-lint --offline --profile production
	@cd $(COLL) && ANSIBLE_COLLECTIONS_PATH=$(COLLECTIONS) $(ATEST) ansible-lint --offline --profile production --nocolor

docs-lint: venv collection ## antsibull-docs lint-collection-docs --plugin-docs
	@cd $(COLL) && $(ATEST) antsibull-docs lint-collection-docs --plugin-docs .

changelog-lint: venv ## antsibull-changelog lint
	@$(BIN)/antsibull-changelog lint && echo "changelog-lint: fragments and changelog.yaml are valid"

build: venv collection ## ansible-galaxy collection build -> build/dist/
	@mkdir -p $(DIST) && rm -f $(TARBALL)
	@cd $(COLL) && $(ATEST) ansible-galaxy collection build --force --output-path $(DIST) >/dev/null
	@echo "build: $(TARBALL)"

import: build ## galaxy-importer on the built tarball; fails on errors and warnings (IMPORT_ALLOW_WARNINGS=1 relaxes)
	@tests/ci/import.sh $(TARBALL) $(LOGS) $(ATEST)

# ---------------------------------------------------------------- scripted tiers

define run_script
	@test -x $(1) || { echo "make $@: $(1) is missing or not executable" >&2; exit 1; }
	@$(1)
endef

role-tests: venv collection ## role tests (tests/roles/run.sh)
	$(call run_script,tests/roles/run.sh)
	$(call run_script,tests/roles/container_toolkit/runtimes.sh)

mig-role: venv collection ## the mig role and playbooks against the simulator, the HTML report in Chromium, fleet planning end to end
	$(call run_script,tests/roles/mig/run.sh)
	$(call run_script,tests/roles/mig/config_file.sh)
	$(call run_script,tests/roles/mig/owners_k8s.sh)
	$(call run_script,tests/roles/mig/report.sh)
	$(call run_script,tests/fleet/run.sh)

reliability: venv collection ## reliability tests; figures to build/reliability.md (RELIABILITY_REPORT=docs/reliability.md updates the docs)
	$(call run_script,tests/reliability/run.sh)

ee: venv ## ansible-builder create on meta/execution-environment.yml, checks the build context (tests/ee/run.sh)
	$(call run_script,tests/ee/run.sh)

docs-test: venv ## the shell blocks of README.md and docs/getting-started.md, verbatim, in a fresh copy (tests/docs/run.sh)
	$(call run_script,tests/docs/grids.sh)
	$(call run_script,tests/docs/run.sh)

demo: venv collection ## rehearse the playbooks on the simulator (tests/demo/run.sh)
	$(call run_script,tests/demo/run.sh)

matrix-ends: venv ## ansible-core 2.16 and 2.21 (oldest and newest): docs, sanity, units, integration, mig role tier
	$(call run_script,tests/ci/matrix.sh) 2.16 2.21

test-matrix: venv ## the whole ansible-core matrix, 2.16 to 2.21 (tests/ci/matrix.sh; about an hour)
	$(call run_script,tests/ci/matrix.sh)

bench: venv collection ## benchmarks (tests/bench/run.sh)
	$(call run_script,tests/bench/run.sh)

# ---------------------------------------------------------------- everything

system-packages: ## install the missing Debian/Ubuntu packages of tests/ci/debian-packages.txt (as root; else print the command)
	@tests/ci/install-system-packages.sh

test: system-packages ## every tier in order, stopping at the first failure, one summary line per tier
	@$(MAKE) -s venv
	@MAKE="$(MAKE)" tests/ci/run-tiers.sh $(LOGS) $(TEST_TIERS)

clean: ## remove build/ (the venv stays)
	rm -rf $(BUILD)
