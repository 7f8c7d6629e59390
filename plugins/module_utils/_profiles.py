# Copyright (c) 2026 gpuops.mig contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""Profile names: parse them and resolve them against the profiles one GPU reports.

Accepted spellings (case-insensitive, an optional ``MIG `` prefix is ignored):

* GPU instance profiles as NVML names them: ``1g.10gb``, ``1g.10gb+me``, ``1g.24gb-me``,
  ``1g.24gb+me.all``, ``4g.96gb+gfx``;
* the same in mig-parted config-key form, where ``+`` is written ``.`` but ``-me`` is kept:
  ``1g.10gb.me``, ``1g.24gb.me.all``, ``4g.96gb.gfx``;
* compute-instance profiles ``<c>c.<gi profile>`` (``1c.3g.40gb``); the full-size CI of a GI is
  named like the GI itself (``3g.40gb``);
* numeric profile IDs (an int or a string of digits). These are NVML profile *IDs* (what the
  create calls take), never profile indices.
"""

from __future__ import annotations

import dataclasses
import re
import typing as t

from ansible_collections.gpuops.mig.plugins.module_utils._model import (
    ComputeInstanceProfile,
    Gpu,
    GpuInstanceProfile,
    SpecError,
)

# NVML_GPU_INSTANCE_PROFILE_* indices with a special meaning for the planner.
GI_INDEX_1_SLICE_REV2 = 0x9
GI_INDEX_NO_ME = (0x0D, 0x0E)
GI_INDEX_ALL_ME = (0x0F, 0x10)

# NVML_COMPUTE_INSTANCE_PROFILE_* index (= ID) per compute-slice count, as go-nvlib enumerates them.
CI_ID_BY_SLICES = {1: 0, 2: 1, 3: 2, 4: 3, 7: 4}
CI_ID_1_SLICE_REV1 = 0x7
NVML_DEVICE_ARCH_HOPPER = 9

_ATTRS = ('+me.all', '+me', '+gfx', '-me')
_NAME_RE = re.compile(
    r'^(?:(?P<c>[1-9][0-9]?)c\.)?(?P<g>[1-9][0-9]?)g\.(?P<gb>[0-9]{1,4})gb'
    r'(?P<attr>(?:[+.](?:me\.all|me|gfx))|-me)?$')
MAX_NAME_LEN = 256


@dataclasses.dataclass(frozen=True)
class ProfileName:
    """A parsed profile name. ``c`` is None for a GPU instance profile name."""

    g: int
    gb: int
    attr: str = ''          # one of '', '+me', '+me.all', '+gfx', '-me' (canonical NVML form)
    c: int | None = None

    @property
    def gi_name(self) -> str:
        return '%dg.%dgb%s' % (self.g, self.gb, self.attr)

    @property
    def name(self) -> str:
        if self.c is None:
            return self.gi_name
        return '%dc.%s' % (self.c, self.gi_name)


def parse_profile_name(text: str) -> ProfileName | None:
    """Parse a profile name in NVML or mig-parted spelling; None when it is not one."""
    if not isinstance(text, str) or len(text) > MAX_NAME_LEN:
        return None
    s = text.strip().lower()
    if s.startswith('mig '):
        s = s[4:].strip()
    m = _NAME_RE.match(s)
    if not m:
        return None
    attr = m.group('attr') or ''
    if attr.startswith('.'):
        attr = '+' + attr[1:]
    c = int(m.group('c')) if m.group('c') else None
    return ProfileName(g=int(m.group('g')), gb=int(m.group('gb')), attr=attr, c=c)


def canonical_name(text: str) -> str | None:
    """NVML spelling of a profile name (``1g.10gb.me`` -> ``1g.10gb+me``), None if unparsable."""
    p = parse_profile_name(text)
    return p.name if p else None


def mig_parted_key(name: str) -> str:
    """mig-parted config-key spelling of an NVML profile name (``1g.10gb+me`` -> ``1g.10gb.me``)."""
    return name.replace('+', '.')


def _as_profile_id(ref: t.Any) -> int | None:
    if isinstance(ref, bool):
        return None
    if isinstance(ref, int):
        return ref
    if isinstance(ref, str) and ref.strip().isdigit() and len(ref.strip()) <= 9:
        return int(ref.strip())
    return None


def _describe_ref(ref: t.Any) -> str:
    text = repr(ref)
    return text if len(text) <= 80 else text[:77] + '...'


def gpu_label(gpu: Gpu) -> str:
    return 'GPU %d (%s)' % (gpu.index, gpu.name)


def valid_gi_profiles_text(gpu: Gpu) -> str:
    return ', '.join('%s (ID %d)' % (p.name, p.id) for p in sorted(gpu.profiles, key=lambda p: (-p.slice_count, p.name)))


def resolve_gi_profile(gpu: Gpu, ref: t.Any, field: str) -> GpuInstanceProfile:
    """The GPU instance profile ``ref`` (name or ID) names on ``gpu``; SpecError otherwise."""
    pid = _as_profile_id(ref)
    if pid is not None:
        prof = gpu.profile_by_id(pid)
        if prof is None:
            raise SpecError(field, 'no GPU instance profile with ID %d on %s; valid: %s'
                            % (pid, gpu_label(gpu), valid_gi_profiles_text(gpu) or 'none'))
        return prof
    parsed = parse_profile_name(ref) if isinstance(ref, str) else None
    if parsed is None:
        raise SpecError(field, '%s is not a profile name (like 1g.10gb, 1g.10gb+me, 1g.10gb.me) or a profile ID; valid on %s: %s'
                        % (_describe_ref(ref), gpu_label(gpu), valid_gi_profiles_text(gpu) or 'none'))
    if parsed.c is not None and parsed.c != parsed.g:
        raise SpecError(field, '%s is a compute-instance profile; a GPU instance profile is needed here; valid on %s: %s'
                        % (parsed.name, gpu_label(gpu), valid_gi_profiles_text(gpu) or 'none'))
    for prof in gpu.profiles:
        if canonical_name(prof.name) == parsed.gi_name:
            return prof
    raise SpecError(field, 'unknown GPU instance profile %s on %s; valid: %s'
                    % (_describe_ref(ref), gpu_label(gpu), valid_gi_profiles_text(gpu) or 'none'))


def derive_compute_profiles_go_nvlib(gpu: Gpu, gi_profile: GpuInstanceProfile) -> tuple[ComputeInstanceProfile, ...]:
    """CI profiles a GI of ``gi_profile`` offers, by go-nvlib's heuristic (mig-hardware.md 6.1).

    Used only when NVML listed none: NVML cannot list CI profiles without a GI, so a GPU read
    with MIG disabled has none. Rule: C <= G and, if C < G, 2C <= G+1; CI profile ID = index
    (0..4 for 1c, 2c, 3c, 4c, 7c); the full CI of the Hopper 1-slice REV2 GI is ID 7.
    Instance counts G // C and SM counts ``c * SM(G) // G`` are inferred.
    """
    g = gi_profile.slice_count
    out = []
    for c, cid in sorted(CI_ID_BY_SLICES.items()):
        if c > g or (c < g and 2 * c > g + 1):
            continue
        if c == g:
            if gi_profile.index == GI_INDEX_1_SLICE_REV2 and gpu.architecture == NVML_DEVICE_ARCH_HOPPER:
                cid = CI_ID_1_SLICE_REV1
            out.append(ComputeInstanceProfile(id=cid, name=gi_profile.name, slice_count=c, instance_count=1,
                                              multiprocessors=gi_profile.multiprocessors))
        else:
            out.append(ComputeInstanceProfile(id=cid, name='%dc.%s' % (c, gi_profile.name), slice_count=c,
                                              instance_count=g // c, multiprocessors=gi_profile.multiprocessors * c // g))
    return tuple(out)


def compute_profiles_for(gpu: Gpu, gi_profile: GpuInstanceProfile) -> tuple[ComputeInstanceProfile, ...]:
    """CI profiles of ``gi_profile``: NVML's when it listed any, else the go-nvlib derivation."""
    if gi_profile.compute_profiles:
        return gi_profile.compute_profiles
    return derive_compute_profiles_go_nvlib(gpu, gi_profile)


def full_compute_profile(gpu: Gpu, gi_profile: GpuInstanceProfile) -> ComputeInstanceProfile | None:
    """The CI profile spanning the whole GI (what ``nvidia-smi mig -C`` creates)."""
    full = [c for c in compute_profiles_for(gpu, gi_profile) if c.slice_count == gi_profile.slice_count]
    return max(full, key=lambda c: c.id) if full else None


def compute_profile_by_id(gpu: Gpu, gi_profile: GpuInstanceProfile, ci_profile_id: int) -> ComputeInstanceProfile | None:
    for cip in compute_profiles_for(gpu, gi_profile):
        if cip.id == ci_profile_id:
            return cip
    return None


def valid_ci_profiles_text(gpu: Gpu, gi_profile: GpuInstanceProfile) -> str:
    return ', '.join('%s (ID %d)' % (c.name, c.id) for c in compute_profiles_for(gpu, gi_profile)) or 'none'


def resolve_ci_profile(gpu: Gpu, gi_profile: GpuInstanceProfile, ref: t.Any, field: str) -> ComputeInstanceProfile:
    """The CI profile ``ref`` (``1c.3g.40gb``, the GI's own name for the full CI, or an ID) names inside a GI of ``gi_profile``."""
    cips = compute_profiles_for(gpu, gi_profile)
    pid = _as_profile_id(ref)
    if pid is not None:
        for cip in cips:
            if cip.id == pid:
                return cip
        raise SpecError(field, 'no compute-instance profile with ID %d in a %s GPU instance on %s; valid: %s'
                        % (pid, gi_profile.name, gpu_label(gpu), valid_ci_profiles_text(gpu, gi_profile)))
    parsed = parse_profile_name(ref) if isinstance(ref, str) else None
    if parsed is None:
        raise SpecError(field, '%s is not a compute-instance profile name (like 1c.3g.40gb) or ID; valid in a %s GPU instance on %s: %s'
                        % (_describe_ref(ref), gi_profile.name, gpu_label(gpu), valid_ci_profiles_text(gpu, gi_profile)))
    gi_canon = canonical_name(gi_profile.name)
    if parsed.gi_name != gi_canon:
        raise SpecError(field, 'compute-instance profile %s belongs to a %s GPU instance, not %s; valid: %s'
                        % (parsed.name, parsed.gi_name, gi_profile.name, valid_ci_profiles_text(gpu, gi_profile)))
    if parsed.c is None or parsed.c == parsed.g:
        full = full_compute_profile(gpu, gi_profile)
        if full is not None:
            return full
    else:
        for cip in cips:
            if canonical_name(cip.name) == parsed.name:
                return cip
        partial = [cip for cip in cips if cip.slice_count == parsed.c and cip.slice_count < gi_profile.slice_count]
        if partial:
            return min(partial, key=lambda cip: cip.id)
    raise SpecError(field, 'unknown compute-instance profile %s in a %s GPU instance on %s; valid: %s'
                    % (_describe_ref(ref), gi_profile.name, gpu_label(gpu), valid_ci_profiles_text(gpu, gi_profile)))


def is_all_me(prof: GpuInstanceProfile) -> bool:
    """``*_ALL_ME`` (``+me.all``): allocating one prevents all but ``*_NO_ME`` profiles (nvml.h)."""
    return prof.index in GI_INDEX_ALL_ME or prof.name.lower().endswith('+me.all')


def is_no_me(prof: GpuInstanceProfile) -> bool:
    return prof.index in GI_INDEX_NO_ME or prof.name.lower().endswith('-me')
