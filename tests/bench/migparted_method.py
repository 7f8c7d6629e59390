# Copyright (c) 2026 gpuops.mig contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""mig-parted's apply method, re-enacted with pynvml against the simulated NVML (benchmark only).

What is reproduced (NVIDIA/mig-parted @ bd7160f4,
pkg/mig/config/config.go ``SetMigConfig`` and ``iteratePermutationsUntilSuccess``,
pkg/types/mig_config.go ``Flatten``):

* The desired ``{profile: count}`` map is flattened to one entry per instance and sorted largest
  first: GI slices descending, then CI slices descending, then the attribute string descending
  (``+me`` before plain). Go's ``sort.Slice`` is not stable; entries that tie on all three keys
  (H100 ``1g.20gb`` vs ``1g.10gb``) are ordered here by GI memory descending, then profile ID.
* Every *distinct* permutation of that list is tried in the order of mig-parted's swap-based
  depth-first search (the sorted order first), at most 5040 (7!) of them.
* One attempt: if the GPU holds anything, clear it (every CI, then every GI); then for each entry
  ``nvmlDeviceCreateGpuInstance`` (no placement: the driver's default placement decides) and
  ``nvmlGpuInstanceCreateComputeInstance`` (no placement). An entry with the same GI profile as
  the previous one first tries to put its CI into the previous GI (``reuseGI``); when that fails
  it creates a new GI. The first failing create ends the attempt.
* When every order fails, the GPU is cleared and the apply fails ("all orderings failed").

Not reproduced: mig-parted's read calls (``GetMigConfig`` before every attempt, profile walks),
so only create and destroy calls are counted. Clearing between attempts is done on the
simulator's state directly (what ``migsim reset`` does); the destroy calls mig-parted would make
for it (one per CI and one per GI present) are counted, not executed.
"""

from __future__ import annotations

import dataclasses
import re
import typing as t

MAX_ORDERS = 5040


@dataclasses.dataclass(frozen=True)
class Entry:
    name: str           # GI profile name, e.g. 1g.10gb+me
    gi_index: int       # NVML_GPU_INSTANCE_PROFILE_* index (what mig-parted passes to GetGpuInstanceProfileInfo)
    gi_id: int
    ci_index: int       # NVML_COMPUTE_INSTANCE_PROFILE_* index of the full-size CI
    g: int              # GI compute slices
    c: int              # CI compute slices
    attrs: str
    memory_mib: int


def _attrs(name: str) -> str:
    m = re.match(r'^\d+g\.\d+gb(.*)$', name)
    suffix = m.group(1) if m else ''
    return suffix[1:] if suffix.startswith('+') else suffix


def entries_for(gpu: t.Any, counts: t.Mapping[int, int], full_ci: t.Callable[[t.Any, t.Any], t.Any]) -> list[Entry]:
    """mig-parted's ``Flatten()`` of ``{GI profile ID: count}`` for ``gpu`` (a ``_model.Gpu``)."""
    out = []
    for pid, n in counts.items():
        prof = gpu.profile_by_id(pid)
        ci = full_ci(gpu, prof)
        e = Entry(prof.name, prof.index, prof.id, ci.id, prof.slice_count, ci.slice_count, _attrs(prof.name), prof.memory_mib)
        out.extend([e] * n)
    out.sort(key=lambda e: (-e.g, -e.c, tuple(-ord(ch) for ch in e.attrs) + (1,), -e.memory_mib, e.gi_id))
    return out


def distinct_orders(items: list[Entry]) -> t.Iterator[list[Entry]]:
    """The permutations in the order of mig-parted's ``iteratePermutationsUntilSuccess``."""
    mps = list(items)
    n = len(mps)

    def should_swap(start: int, curr: int) -> bool:
        return all(mps[i] != mps[curr] for i in range(start, curr))

    def rec(i: int) -> t.Iterator[list[Entry]]:
        if i >= n:
            yield list(mps)
            return
        for j in range(i, n):
            if should_swap(i, j):
                mps[i], mps[j] = mps[j], mps[i]
                yield from rec(i + 1)
                mps[i], mps[j] = mps[j], mps[i]

    return rec(0)


@dataclasses.dataclass
class Outcome:
    ok: bool
    attempts: int = 0
    gi_creates: int = 0           # nvmlDeviceCreateGpuInstance calls, failed ones included
    ci_creates: int = 0           # nvmlGpuInstanceCreateComputeInstance calls, failed ones included
    destroys: int = 0             # CI + GI destroy calls mig-parted's clears would make
    first_order_ok: bool = False
    error: str = ''

    @property
    def creates(self) -> int:
        return self.gi_creates + self.ci_creates


def attempt(pynvml: t.Any, handle: t.Any, order: list[Entry], out: Outcome) -> tuple[bool, int, str]:
    """One attempt on an empty GPU; returns (ok, instances created (GIs + CIs), error)."""
    made = 0
    last = -1
    gi = None
    for e in order:
        info = pynvml.nvmlDeviceGetGpuInstanceProfileInfo(handle, e.gi_index)
        reuse = gi is not None and last == e.gi_index
        last = e.gi_index
        while True:
            if not reuse:
                out.gi_creates += 1
                try:
                    gi = pynvml.nvmlDeviceCreateGpuInstance(handle, info.id)
                except pynvml.NVMLError as exc:
                    return False, made, 'creating GPU instance %s: %s' % (e.name, exc)
                made += 1
            try:
                ci_info = pynvml.nvmlGpuInstanceGetComputeInstanceProfileInfo(gi, e.ci_index, 0)
            except pynvml.NVMLError as exc:
                if reuse:
                    reuse = False
                    continue
                return False, made, 'compute instance profile of %s: %s' % (e.name, exc)
            out.ci_creates += 1
            try:
                pynvml.nvmlGpuInstanceCreateComputeInstance(gi, ci_info.id)
            except pynvml.NVMLError as exc:
                if reuse:
                    reuse = False
                    continue
                return False, made, 'creating compute instance in %s: %s' % (e.name, exc)
            made += 1
            break
    return True, made, ''


def apply(pynvml: t.Any, handle: t.Any, entries: list[Entry], clear: t.Callable[[], None]) -> Outcome:
    """mig-parted's SetMigConfig from an empty MIG-enabled GPU. ``clear`` empties the GPU."""
    out = Outcome(ok=False)
    present = 0
    for order in distinct_orders(entries):
        if out.attempts >= MAX_ORDERS:
            break
        if present:
            out.destroys += present
            clear()
            present = 0
        out.attempts += 1
        ok, made, err = attempt(pynvml, handle, order, out)
        present = made
        if ok:
            out.ok = True
            out.first_order_ok = out.attempts == 1
            return out
        out.error = err
    if present:
        out.destroys += present
        clear()
    return out
