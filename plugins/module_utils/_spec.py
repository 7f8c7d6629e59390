# Copyright (c) 2026 gpuops.mig contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""Validate the ``layouts`` option and mig-parted v1 config files; produce {gpu index: DesiredGpu}.

Every problem is a :class:`SpecError` whose ``field`` is a path such as
``layouts[1].mig_devices['1g.10gb']`` or ``config_file: mig-configs.all-balanced[0].devices``.
The input is untrusted data (already-parsed YAML or the text of a config file): every type,
key and bound is checked here, and no other exception escapes.
"""

from __future__ import annotations

import dataclasses
import json
import re
import typing as t

from ansible_collections.gpuops.mig.plugins.module_utils._model import (
    ComputeInstanceProfile,
    DesiredGpu,
    DesiredInstance,
    Gpu,
    GpuInstanceProfile,
    SpecError,
)
from ansible_collections.gpuops.mig.plugins.module_utils._packing import pack_cis
from ansible_collections.gpuops.mig.plugins.module_utils._profiles import (
    full_compute_profile,
    gpu_label,
    parse_profile_name,
    resolve_ci_profile,
    resolve_gi_profile,
)

MAX_ENTRIES = 64            # layout entries (or entries of one named config)
MAX_DEVICES = 64            # selectors in one `devices` list, filters in one `device_filter`
MAX_COUNT = 64              # count of one profile in `mig_devices`
MAX_PROFILES = 64           # keys of one `mig_devices` map
MAX_INSTANCES = 64          # items of one `instances` list
MAX_COMPUTE = 64            # compute instances of one GPU instance
MAX_STRING = 256            # any string
MAX_CONFIG_BYTES = 1 << 20  # config file text
MAX_CONFIGS = 4096          # named configs in one file
MAX_INDEX = 1 << 16

_PCI_RE = re.compile(r'^(?:([0-9a-f]{1,8}):)?([0-9a-f]{1,2}):([0-9a-f]{1,2})\.([0-7])$')
_FILTER_RE = re.compile(r'^0x([0-9a-f]{8})(?::0x([0-9a-f]{8}))?$')
_UUID_RE = re.compile(r'^gpu-[0-9a-f-]{8,64}$')

LAYOUT_KEYS = ('devices', 'device_filter', 'mig_enabled', 'mig_devices', 'instances')
CONFIG_ENTRY_KEYS = ('devices', 'device-filter', 'mig-enabled', 'mig-devices')
INSTANCE_KEYS = ('profile', 'placement', 'compute_instances')


def _short(value: t.Any) -> str:
    """repr() that is safe on any parsed-YAML value (recursive, huge or deep structures)."""
    if value is None or isinstance(value, (bool, int, float)):
        text = repr(value)
    elif isinstance(value, str):
        text = repr(value if len(value) <= 60 else value[:57] + '...')
    else:
        return 'a %s' % type(value).__name__
    return text if len(text) <= 80 else text[:77] + '...'


def _key_path(path: str, key: t.Any) -> str:
    return '%s[%s]' % (path, _short(key))


def _type_name(value: t.Any) -> str:
    return {bool: 'a boolean', int: 'an integer', str: 'a string', list: 'a list', dict: 'a mapping', type(None): 'null'}.get(
        type(value), 'a %s' % type(value).__name__)


def _check_str(value: t.Any, path: str) -> str:
    if not isinstance(value, str):
        raise SpecError(path, 'must be a string, got %s' % _type_name(value))
    if len(value) > MAX_STRING:
        raise SpecError(path, 'is longer than %d characters' % MAX_STRING)
    return value


def _check_int(value: t.Any, path: str, lo: int, hi: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise SpecError(path, 'must be an integer, got %s' % _type_name(value))
    if not lo <= value <= hi:
        raise SpecError(path, 'must be between %d and %d, got %d' % (lo, hi, value))
    return value


def _check_list(value: t.Any, path: str, limit: int) -> list:
    if not isinstance(value, list):
        raise SpecError(path, 'must be a list, got %s' % _type_name(value))
    if len(value) > limit:
        raise SpecError(path, 'has %d items; at most %d are allowed' % (len(value), limit))
    return value


def _check_keys(value: t.Any, path: str, allowed: t.Sequence[str]) -> dict:
    if not isinstance(value, dict):
        raise SpecError(path, 'must be a mapping, got %s' % _type_name(value))
    if len(value) > 64:
        raise SpecError(path, 'has too many keys')
    for k in value:
        if not isinstance(k, str) or k not in allowed:
            raise SpecError(_key_path(path, k) if not isinstance(k, str) else '%s.%s' % (path, k[:MAX_STRING]),
                            'unknown key; allowed: %s' % ', '.join(allowed))
    return value


# --- selectors ----------------------------------------------------------------------------------

def normalize_pci_bus_id(text: str) -> tuple[int, int, int, int] | None:
    """(domain, bus, device, function) of ``00000000:3b:00.0``, ``0000:3B:00.0`` or ``3b:00.0``."""
    m = _PCI_RE.match(text.strip().lower())
    if not m:
        return None
    return (int(m.group(1) or '0', 16), int(m.group(2), 16), int(m.group(3), 16), int(m.group(4)))


@dataclasses.dataclass(frozen=True)
class _Selector:
    kind: str       # index, uuid, pci
    value: t.Any
    path: str

    def matches(self, gpu: Gpu) -> bool:
        if self.kind == 'index':
            return gpu.index == self.value
        if self.kind == 'uuid':
            return gpu.uuid.lower() == self.value
        return normalize_pci_bus_id(gpu.pci_bus_id) == self.value

    def text(self) -> str:
        if self.kind == 'pci':
            return '%04x:%02x:%02x.%d' % self.value
        return str(self.value)


def _list_hint(value: t.Any) -> str:
    """The YAML list a scalar ``devices`` probably meant: ``"0,1"`` -> ``[0, 1]``, ``"GPU-x"`` -> ``['GPU-x']``."""
    items = [s for s in re.split(r'[\s,;]+', str(value).strip()) if s][:MAX_DEVICES] if isinstance(value, str) else [value]
    shown = ', '.join(str(s) if isinstance(s, int) or (isinstance(s, str) and s.isdigit() and len(s) <= 5) else _short(s) for s in items)
    return '[%s]%s' % (shown, ' for one GPU' if len(items) == 1 else '')


def _parse_devices(value: t.Any, path: str, config_style: bool) -> list[_Selector] | None:
    """None means ``all``."""
    if isinstance(value, str) and value.strip().lower() == 'all':
        return None
    if isinstance(value, str) or (isinstance(value, int) and not isinstance(value, bool)):
        raise SpecError(path, 'must be "all" or a list (write %s)' % _list_hint(value))
    lst = _check_list(value, path, MAX_DEVICES)
    if not lst:
        raise SpecError(path, 'must not be empty; use "all" or list GPUs')
    out = []
    for i, item in enumerate(lst):
        p = '%s[%d]' % (path, i)
        if isinstance(item, int) and not isinstance(item, bool):
            out.append(_Selector('index', _check_int(item, p, 0, MAX_INDEX), p))
            continue
        if config_style:
            raise SpecError(p, 'must be a GPU index (integer), got %s' % _type_name(item))
        if not isinstance(item, str):
            raise SpecError(p, 'must be a GPU index, a GPU UUID (GPU-...) or a PCI bus ID, got %s' % _type_name(item))
        s = _check_str(item, p).strip()
        if s.isdigit() and len(s) <= 5:
            out.append(_Selector('index', int(s), p))
        elif _UUID_RE.match(s.lower()):
            out.append(_Selector('uuid', s.lower(), p))
        elif normalize_pci_bus_id(s) is not None:
            out.append(_Selector('pci', normalize_pci_bus_id(s), p))
        else:
            raise SpecError(p, '%s is not a GPU index, a GPU UUID (GPU-...) or a PCI bus ID (0000:3b:00.0)' % _short(item))
    return out


def _parse_filters(value: t.Any, path: str) -> list[tuple[int, int | None]]:
    items = [value] if isinstance(value, str) else _check_list(value, path, MAX_DEVICES)
    out = []
    for i, item in enumerate(items):
        p = path if isinstance(value, str) else '%s[%d]' % (path, i)
        s = _check_str(item, p).strip().lower()
        m = _FILTER_RE.match(s)
        if not m:
            raise SpecError(p, '%s is not a PCI device ID like 0x233010DE (device and vendor), optionally with :0x16C110DE (subsystem)'
                            % _short(item))
        out.append((int(m.group(1), 16), int(m.group(2), 16) if m.group(2) else None))
    return out


def filter_matches(filters: t.Sequence[tuple[int, int | None]], gpu: Gpu) -> bool:
    """mig-parted semantics: device ID match; with a subsystem, device and subsystem must both match."""
    if not filters:
        return True
    return any(gpu.pci_device_id == dev and (sub is None or gpu.pci_subsystem_id == sub) for dev, sub in filters)


# --- entries --------------------------------------------------------------------------------------

@dataclasses.dataclass
class _Entry:
    path: str
    selectors: list[_Selector] | None
    filters: list[tuple[int, int | None]]
    mig_enabled: bool
    mig_devices: list[tuple[t.Any, int, str]] | None      # (key, count, path)
    instances: list[tuple[t.Any, int | None, list[tuple[t.Any, str]] | None, str]] | None
    config_style: bool


def _parse_entry(raw: t.Any, path: str, config_style: bool) -> _Entry:
    keys = CONFIG_ENTRY_KEYS if config_style else LAYOUT_KEYS
    k_dev, k_filter, k_enabled, k_migdev = keys[0], keys[1], keys[2], keys[3]
    d = _check_keys(raw, path, keys)
    if k_dev not in d:
        raise SpecError('%s.%s' % (path, k_dev), 'is required ("all" or a list of GPUs)')
    selectors = _parse_devices(d[k_dev], '%s.%s' % (path, k_dev), config_style)
    filters = _parse_filters(d[k_filter], '%s.%s' % (path, k_filter)) if d.get(k_filter) is not None else []
    if k_enabled not in d:
        raise SpecError('%s.%s' % (path, k_enabled), 'is required (true or false)')
    enabled = d[k_enabled]
    if not isinstance(enabled, bool):
        raise SpecError('%s.%s' % (path, k_enabled), 'must be a boolean, got %s' % _type_name(enabled))
    mig_devices = None
    if d.get(k_migdev) is not None:
        mp = '%s.%s' % (path, k_migdev)
        md = d[k_migdev]
        if not isinstance(md, dict):
            raise SpecError(mp, 'must be a mapping of profile name to count, got %s' % _type_name(md))
        if len(md) > MAX_PROFILES:
            raise SpecError(mp, 'has %d profiles; at most %d' % (len(md), MAX_PROFILES))
        mig_devices = []
        for key, count in md.items():
            kp = _key_path(mp, key)
            if isinstance(key, bool) or not isinstance(key, (str, int)):
                raise SpecError(kp, 'a profile must be a name or a profile ID, got %s' % _type_name(key))
            if isinstance(key, str):
                _check_str(key, kp)
            mig_devices.append((key, _check_int(count, kp, 0, MAX_COUNT), kp))
    instances = None
    if not config_style and d.get('instances') is not None:
        ip = '%s.instances' % path
        instances = []
        for i, item in enumerate(_check_list(d['instances'], ip, MAX_INSTANCES)):
            p = '%s[%d]' % (ip, i)
            it = _check_keys(item, p, INSTANCE_KEYS)
            if 'profile' not in it:
                raise SpecError('%s.profile' % p, 'is required')
            prof = it['profile']
            if isinstance(prof, bool) or not isinstance(prof, (str, int)):
                raise SpecError('%s.profile' % p, 'must be a profile name or ID, got %s' % _type_name(prof))
            if isinstance(prof, str):
                _check_str(prof, '%s.profile' % p)
            start = None
            if it.get('placement') is not None:
                start = _check_int(it['placement'], '%s.placement' % p, 0, 1023)
            cis = None
            if it.get('compute_instances') is not None:
                cp = '%s.compute_instances' % p
                cis = []
                for j, ci in enumerate(_check_list(it['compute_instances'], cp, MAX_COMPUTE)):
                    cpj = '%s[%d]' % (cp, j)
                    if isinstance(ci, bool) or not isinstance(ci, (str, int)):
                        raise SpecError(cpj, 'must be a compute-instance profile name or ID, got %s' % _type_name(ci))
                    if isinstance(ci, str):
                        _check_str(ci, cpj)
                    cis.append((ci, cpj))
            instances.append((prof, start, cis, p))
    if enabled:
        if mig_devices is not None and instances is not None:
            raise SpecError(path, 'give either mig_devices or instances, not both')
        if mig_devices is None and instances is None:
            raise SpecError('%s.%s' % (path, k_migdev), 'is required when MIG is enabled (use {} for no instances)'
                            if config_style else 'mig_devices or instances is required when mig_enabled is true (use [] for none)')
    else:
        if mig_devices and any(item[1] for item in mig_devices):
            raise SpecError('%s.%s' % (path, k_migdev), 'must be empty when %s is false' % k_enabled)
        if instances:
            raise SpecError('%s.instances' % path, 'must be empty when mig_enabled is false')
    return _Entry(path, selectors, filters, enabled, mig_devices, instances, config_style)


# --- per-GPU resolution -----------------------------------------------------------------------------

def _flatten_key(gpu: Gpu, key: t.Any, path: str) -> tuple[GpuInstanceProfile, ComputeInstanceProfile]:
    if isinstance(key, str):
        parsed = parse_profile_name(key)
        if parsed is not None and parsed.c is not None and parsed.c != parsed.g:
            gi = resolve_gi_profile(gpu, parsed.gi_name, path)
            return gi, resolve_ci_profile(gpu, gi, parsed.name, path)
    gi = resolve_gi_profile(gpu, key, path)
    full = full_compute_profile(gpu, gi)
    if full is None:
        raise SpecError(path, '%s offers no full-size compute-instance profile on %s' % (gi.name, gpu_label(gpu)))
    return gi, full


def _ci_fits(gpu: Gpu, gi: GpuInstanceProfile, cis: list[ComputeInstanceProfile], new: ComputeInstanceProfile) -> bool:
    if sum(c.slice_count for c in cis) + new.slice_count > gi.slice_count:
        return False
    if sum(1 for c in cis if c.id == new.id) + 1 > new.instance_count:
        return False
    return pack_cis(gi, cis + [new]) is not None


def pack_mig_devices(gpu: Gpu, mig_devices: t.Sequence[tuple[t.Any, int, str]], source: str) -> tuple[DesiredInstance, ...]:
    """Turn ``{profile: count}`` into GPU instances exactly as mig-parted packs them.

    mig-parted (``pkg/types/mig_config.go`` Flatten, ``pkg/mig/config/config.go``) lists one item
    per instance sorted largest first (G, then C descending, attribute profiles before plain
    ones), then walks the list: an item whose GI profile equals the previous item's reuses that
    GPU instance when its CI still fits there, otherwise a new GPU instance is created. So
    ``1c.3g.40gb: 3`` is one 3g.40gb GI with three 1c CIs.
    """
    flat = []
    for key, count, path in mig_devices:
        if count == 0:
            continue
        gi, ci = _flatten_key(gpu, key, path)
        parsed = parse_profile_name(gi.name)
        attr = 0 if parsed is not None and parsed.attr else 1
        flat.extend([(-gi.slice_count, -ci.slice_count, attr, gi.name, ci.id, gi, ci, path)] * count)
    flat.sort(key=lambda x: x[:5])
    groups: list[tuple[GpuInstanceProfile, list[ComputeInstanceProfile], str]] = []
    for item in flat:
        gi, ci, path = item[5], item[6], item[7]
        if groups and groups[-1][0].id == gi.id and _ci_fits(gpu, gi, groups[-1][1], ci):
            groups[-1][1].append(ci)
        else:
            groups.append((gi, [ci], path))
    out = []
    for gi, cis, path in groups:
        full = full_compute_profile(gpu, gi)
        ids = None if (len(cis) == 1 and full is not None and cis[0].id == full.id) else tuple(c.id for c in cis)
        out.append(DesiredInstance(profile_id=gi.id, placement_start=None, compute_profile_ids=ids, source=path,
                                   profile=gi, compute_profiles=None if ids is None else tuple(cis)))
    return tuple(out)


def _resolve_instances(gpu: Gpu, entry: _Entry) -> tuple[DesiredInstance, ...]:
    out = []
    for prof, start, cis, path in entry.instances or ():
        gi = resolve_gi_profile(gpu, prof, '%s.profile' % path)
        ids: tuple[int, ...] | None = None
        cips: tuple[ComputeInstanceProfile, ...] | None = None
        if cis is not None:
            cips = tuple(resolve_ci_profile(gpu, gi, ref, cpath) for ref, cpath in cis)
            ids = tuple(c.id for c in cips)
        if start is not None and start not in {p.start for p in gi.placements}:
            raise SpecError('%s.placement' % path, 'placement %d is not a legal start for %s on %s; legal: %s'
                            % (start, gi.name, gpu_label(gpu), ', '.join(str(p.start) for p in sorted(gi.placements)) or 'none'))
        out.append(DesiredInstance(profile_id=gi.id, placement_start=start, compute_profile_ids=ids, source=path,
                                   profile=gi, compute_profiles=cips))
    return tuple(out)


def _apply_entries(gpus: t.Sequence[Gpu], entries: list[_Entry], config_style: bool) -> dict[int, DesiredGpu]:
    result: dict[int, DesiredGpu] = {}
    claimed: dict[int, str] = {}
    for e in entries:
        dev_path = '%s.%s' % (e.path, 'devices')
        if e.selectors is None:
            candidates = [g for g in gpus if g.mig_capable]
        else:
            candidates = []
            for sel in e.selectors:
                hit = [g for g in gpus if sel.matches(g)]
                if not hit:
                    raise SpecError(sel.path, 'no GPU %s on this host; GPUs: %s' % (
                        sel.text(), ', '.join('%d %s %s' % (g.index, g.uuid, g.pci_bus_id) for g in gpus) or 'none'))
                candidates.extend(h for h in hit if h not in candidates)
        matched = [g for g in candidates if filter_matches(e.filters, g)]
        if not matched:
            if config_style and e.filters:
                continue    # mig-parted: an entry for another GPU model does not apply here
            if e.selectors is None and not e.filters:
                if config_style:
                    continue
                raise SpecError(dev_path, 'matches no MIG-capable GPU on this host')
            raise SpecError(dev_path if not e.filters else '%s.%s' % (e.path, 'device-filter' if config_style else 'device_filter'),
                            'matches no GPU on this host (GPU device IDs: %s)'
                            % (', '.join('%d: 0x%08X:0x%08X' % (g.index, g.pci_device_id, g.pci_subsystem_id) for g in gpus) or 'none'))
        for g in matched:
            if g.index in claimed:
                raise SpecError(e.path, 'GPU %d (%s) is claimed by both %s and %s' % (g.index, g.uuid, claimed[g.index], e.path))
            claimed[g.index] = e.path
            if e.mig_enabled and not g.mig_capable:
                raise SpecError(dev_path, '%s is not MIG-capable; mig_enabled: true cannot apply to it' % gpu_label(g))
            if not e.mig_enabled:
                result[g.index] = DesiredGpu(index=g.index, mig_enabled=False, source=e.path)
                continue
            if e.instances is not None:
                inst = _resolve_instances(g, e)
            else:
                inst = pack_mig_devices(g, e.mig_devices or (), e.path)
            result[g.index] = DesiredGpu(index=g.index, mig_enabled=True, instances=inst, source=e.path)
    return result


def _load_config(config: t.Any, label: str) -> t.Any:
    if isinstance(config, bytes):
        if len(config) > MAX_CONFIG_BYTES:
            raise SpecError(label, 'is larger than %d bytes' % MAX_CONFIG_BYTES)
        try:
            config = config.decode('utf-8')
        except UnicodeDecodeError:
            raise SpecError(label, 'is not UTF-8 text')
    if isinstance(config, dict):
        return config
    if not isinstance(config, str):
        raise SpecError(label, 'must be YAML text or a mapping, got %s' % _type_name(config))
    if len(config) > MAX_CONFIG_BYTES or len(config.encode('utf-8', 'replace')) > MAX_CONFIG_BYTES:
        raise SpecError(label, 'is larger than %d bytes' % MAX_CONFIG_BYTES)
    try:
        import yaml     # PyYAML comes with Ansible; without it (boot service) JSON, a YAML subset, still works
    except ImportError:
        yaml = None
    try:
        if yaml is not None:
            return yaml.safe_load(config)
        return json.loads(config)
    except Exception as exc:   # any parser failure (incl. RecursionError on absurd nesting) is bad input
        text = str(exc).replace('\n', ' ')
        raise SpecError(label, 'is not valid %s: %s' % ('YAML' if yaml is not None else 'JSON (PyYAML is not installed)', text[:300]))


def parse_config(config: t.Any, config_name: str | None, label: str = 'config_file') -> tuple[str, list[_Entry]]:
    """Validate a mig-parted v1 config and return (selected name, its entries)."""
    data = _load_config(config, label)
    if not isinstance(data, dict):
        raise SpecError(label, 'must be a mapping with version and mig-configs, got %s' % _type_name(data))
    for k in data:
        if k not in ('version', 'mig-configs'):
            raise SpecError('%s: %s' % (label, k if isinstance(k, str) and len(k) <= MAX_STRING else _short(k)),
                            'unexpected field; allowed: version, mig-configs')
    if data.get('version') != 'v1':
        raise SpecError('%s: version' % label, 'must be v1, got %s' % _short(data.get('version')))
    configs = data.get('mig-configs')
    if not isinstance(configs, dict) or not configs:
        raise SpecError('%s: mig-configs' % label, 'must be a non-empty mapping of config name to entries')
    if len(configs) > MAX_CONFIGS:
        raise SpecError('%s: mig-configs' % label, 'has more than %d configs' % MAX_CONFIGS)
    names = []
    for k in configs:
        if not isinstance(k, str) or not k or len(k) > MAX_STRING:
            raise SpecError('%s: mig-configs' % label, 'config names must be non-empty strings of at most %d characters, got %s'
                            % (MAX_STRING, _short(k)))
        names.append(k)
    if config_name is None:
        if len(names) != 1:
            raise SpecError('config_name', 'is required when the config file has several configs; available: %s' % _names_text(names))
        config_name = names[0]
    else:
        _check_str(config_name, 'config_name')
        if config_name not in configs:
            raise SpecError('config_name', 'no config %s in %s; available: %s' % (_short(config_name), label, _names_text(names)))
    base = '%s: mig-configs.%s' % (label, config_name)
    raw = configs[config_name]
    lst = _check_list(raw, base, MAX_ENTRIES)
    if not lst:
        raise SpecError(base, 'must have at least one entry')
    return config_name, [_parse_entry(item, '%s[%d]' % (base, i), True) for i, item in enumerate(lst)]


def _names_text(names: t.Sequence[str]) -> str:
    shown = sorted(names)[:100]
    return ', '.join(shown) + (' ... (%d in all)' % len(names) if len(names) > len(shown) else '')


@dataclasses.dataclass(frozen=True)
class ParsedLayouts:
    """``layouts`` or a named config, checked as far as it can be without reading the GPUs."""

    entries: tuple[_Entry, ...]
    config_style: bool


def parse_layouts(layouts: t.Any = None, config: t.Any = None, config_name: t.Any = None,
                  config_label: str = 'config_file') -> ParsedLayouts:
    """The GPU-independent half of :func:`resolve_layouts` (same arguments), run before the lock and the NVML read."""
    if layouts is not None and config is not None:
        raise SpecError('layouts', 'give either layouts or %s, not both' % config_label)
    if layouts is None and config is None:
        raise SpecError('layouts', 'one of layouts or %s is required' % config_label)
    if config is not None:
        return ParsedLayouts(tuple(parse_config(config, config_name, config_label)[1]), True)
    if config_name is not None:
        raise SpecError('config_name', 'only applies together with %s' % config_label)
    lst = _check_list(layouts, 'layouts', MAX_ENTRIES)
    return ParsedLayouts(tuple(_parse_entry(item, 'layouts[%d]' % i, False) for i, item in enumerate(lst)), False)


def resolve_layouts(gpus: t.Sequence[Gpu], layouts: t.Any = None, config: t.Any = None, config_name: t.Any = None,
                    config_label: str = 'config_file', parsed: ParsedLayouts | None = None) -> dict[int, DesiredGpu]:
    """The desired layout of every GPU the spec selects, keyed by GPU index.

    Give ``parsed`` (from :func:`parse_layouts`), or exactly one of ``layouts`` (list of snake_case entries: ``devices``, ``device_filter``,
    ``mig_enabled``, ``mig_devices`` or ``instances``) or ``config`` (a mig-parted v1 config as
    YAML text or parsed mapping) with ``config_name`` (optional when the file has one config).
    ``config_label`` is the option name used in error paths. GPUs no entry selects are absent.
    ``devices: all`` means all MIG-capable GPUs (mig-parted semantics). In a config file, an
    entry whose device filter matches no GPU here is skipped (it is for another GPU model); in
    ``layouts`` every entry must match a GPU.
    """
    if parsed is None:
        parsed = parse_layouts(layouts, config, config_name, config_label)
    return _apply_entries(gpus, list(parsed.entries), parsed.config_style)
