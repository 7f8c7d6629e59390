# Copyright (c) 2026 gpuops.mig contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Write docs/benchmarks.md from the JSON results of one benchmark run (fully regenerated each time)."""

from __future__ import annotations

import argparse
import glob
import json
import os
import platform
import re
import typing as t

MODEL_LABEL = {
    'h100-80gb': 'H100 80GB',
    'a100-40gb': 'A100 40GB',
    'a30-24gb': 'A30 24GB',
    'rtx-pro-6000': 'RTX PRO 6000',
}
VARIANT_LABEL = {
    'planner': 'A placed by our planner',
    'driver': "A placed by mig-parted's method (driver default placement)",
    'placed': 'every maximal *placed* layout (fragmented ones included)',
}


def ordered(d: t.Mapping[str, t.Any], keys: t.Sequence[str]) -> list[tuple[str, t.Any]]:
    """Items of ``d`` in the order of ``keys``, then any others sorted."""
    return [(k, d[k]) for k in keys if k in d] + sorted((k, v) for k, v in d.items() if k not in keys)


def load(results: str, name: str) -> t.Any:
    path = os.path.join(results, name)
    if not os.path.exists(path):
        return None
    with open(path, encoding='utf-8') as f:
        return json.load(f)


def tsv(results: str, name: str) -> list[list[str]]:
    path = os.path.join(results, name)
    if not os.path.exists(path):
        return []
    with open(path, encoding='utf-8') as f:
        return [line.rstrip('\n').split('\t') for line in f if line.strip()]


def s(x: float | None, digits: int = 2) -> str:
    if x is None:
        return 'n/a'
    return '%.*f' % (digits, x)


def ms(x: float | None) -> str:
    return 'n/a' if x is None else '%.0f ms' % (x * 1e3)


def pct(part: float, whole: float) -> str:
    return 'n/a' if not whole else '%.1f%%' % (100.0 * part / whole)


def real_gpus(results_dir: str) -> str:
    """' (N x NAME)' for a recorded real-hardware run, from the mig_info answer saved beside its overhead.txt."""
    try:
        with open(os.path.join(results_dir, 'mig_info.json'), encoding='utf-8') as f:
            names = [g['name'] for g in json.load(f)['gpus']]
    except (OSError, ValueError, KeyError, TypeError):
        return ''
    return ' (%s)' % ', '.join('%d x %s' % (names.count(n), n) for n in sorted(set(names))) if names else ''


def payload_split(path: str) -> str | None:
    """One sentence from a recorded tests/hardware/payload_times.py output: the no-op module process
    against `command`'s, and what importing pynvml and the collection's module_utils took in it."""
    try:
        with open(path, encoding='utf-8') as f:
            text = f.read()
    except OSError:
        return None
    med = dict(re.findall(r'^(command|mig_layout|mig_info)\s+(\d+)ms', text, re.M))
    ours = re.search(r"module_utils in all: ([0-9.]+) ms", text)
    pynvml = re.search(r'^#\s+pynvml\s+([0-9.]+) ms', text, re.M)
    cached = 'its bytecode cached' in text
    if not (len(med) == 3 and ours and pynvml):
        return None
    gap = int(med['mig_layout']) - int(med['command'])
    return ('Module processes alone: the no-op `mig_layout` %s ms more than `command` (%s ms), `mig_info` %+d ms;'
            ' under `-X importtime` pynvml took %s ms (%s) and the collection\'s module_utils %.0f ms besides.'
            % (gap, med['command'], int(med['mig_info']) - int(med['command']), pynvml.group(1),
               'bytecode cached' if cached else 'no bytecode cache on that host', float(ours.group(1)) - float(pynvml.group(1))))


def table(head: list[str], rows: list[list[t.Any]]) -> list[str]:
    out = ['| ' + ' | '.join(head) + ' |', '|' + '|'.join('---' for dummy in head) + '|']
    out += ['| ' + ' | '.join(str(c) for c in r) + ' |' for r in rows]
    return out + ['']


def machine() -> dict[str, str]:
    info = {'cpu': platform.processor() or platform.machine(), 'cores': str(os.cpu_count()), 'memory': 'unknown',
            'os': '%s %s' % (platform.system(), platform.release())}
    try:
        with open('/proc/cpuinfo', encoding='utf-8') as f:
            for line in f:
                if line.startswith('model name'):
                    info['cpu'] = line.split(':', 1)[1].strip()
                    break
        with open('/proc/meminfo', encoding='utf-8') as f:
            for line in f:
                if line.startswith('MemTotal'):
                    info['memory'] = '%.1f GiB' % (int(line.split()[1]) / 1024 / 1024)
        with open('/etc/os-release', encoding='utf-8') as f:
            for line in f:
                if line.startswith('PRETTY_NAME='):
                    info['os'] = '%s, kernel %s' % (line.split('=', 1)[1].strip().strip('"'), platform.release())
    except OSError:
        pass
    return info


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument('--results', required=True)
    ap.add_argument('--output', required=True)
    ap.add_argument('--failed', default='')
    args = ap.parse_args()
    meta = dict(tuple(r[:2]) for r in tsv(args.results, 'meta.tsv') if len(r) >= 2)
    stages = tsv(args.results, 'stages.tsv')
    dis = load(args.results, 'disruption.json')
    fea = load(args.results, 'feasibility.json')
    ovh = load(args.results, 'overhead.json')
    sca = load(args.results, 'scale.json')
    failed = args.failed.split()
    m = machine()
    total_s = int(meta.get('end', 0) or 0) - int(meta.get('start', 0) or 0)

    L: list[str] = []
    w = L.append
    w('# Benchmarks')
    w('')
    w('<!-- Generated by tests/bench/run.sh (make bench). Do not edit: every figure is produced by the code in')
    w('     tests/bench/, and each run rewrites this whole file. -->')
    w('')
    w('Generated by `make bench` (`tests/bench/run.sh`) on %s in %d min %d s. Every figure below comes from the code in'
      ' `tests/bench/` in that run, except the real-driver per-call costs of section 3, which `tests/bench/nvml_realhw.py`'
      ' measured on real hardware and `tests/bench/data/` keeps. The GPUs are the NVML simulator of `tests/nvml_sim`'
      ' (the real `pynvml` loading a simulated `libnvidia-ml.so.1`), so NVML timings are the simulator\'s, not a'
      ' driver\'s.' % (meta.get('date', '?'), total_s // 60, total_s % 60))
    w('')
    if failed:
        w('**Stages that failed in this run: %s** (their sections are missing or partial).' % ', '.join(failed))
        w('')

    # ------------------------------------------------------------------ machine
    w('## Machine')
    w('')
    rows = [
        ['CPU', m['cpu']],
        ['cores', m['cores']],
        ['memory', m['memory']],
        ['OS', m['os']],
        ['Python', meta.get('python', '?')],
        ['Ansible', meta.get('ansible', '?')],
        ['nvidia-ml-py (pynvml)', meta.get('pynvml', '?')],
        ['collection', 'commit %s%s' % (meta.get('commit', '?'),
                                        ' plus %s uncommitted changes' % meta['dirty'] if meta.get('dirty', '0') != '0' else '')],
        ['repetitions', '%s per overhead measurement (medians reported)' % meta.get('runs', '?')],
    ]
    L += table(['', ''], rows)
    if stages:
        w('The machine is shared with other work: the load average (1, 5, 15 min) at the end of each stage shows how busy'
          ' it was (during the scale stage it also counts the benchmark\'s own forks). Wall times on this machine are'
          ' noisy; ratios taken inside one play (section 3) are the robust figures.')
        w('')
        L += table(['stage', 'seconds', 'exit', 'load average at end'],
                   [[r[0], int(r[2]) - int(r[1]), r[3], r[4]] for r in stages])

    # ------------------------------------------------------------------ summary
    w('## Summary')
    w('')
    if dis:
        tot = {'ours': 0, 'minimum': 0, 'mig_parted': 0, 'transitions': 0, 'eq': 0}
        for info in dis['models'].values():
            for d in info['variants'].values():
                tot['ours'] += d['ours']
                tot['minimum'] += d['minimum']
                tot['mig_parted'] += d['mig_parted']
                tot['transitions'] += d['transitions']
                tot['eq'] += d['ours_equals_min']
        w('* **Disruption**: over %d layout transitions (4 GPU models, 3 ways of placing the starting layout), our plans'
          ' destroy **%d** GPU instances, the minimum possible is **%d**, and mig-parted\'s method destroys **%d**'
          ' (%s fewer with ours). Ours equals the minimum on **%d of %d** transitions; %d mismatches.'
          % (tot['transitions'], tot['ours'], tot['minimum'], tot['mig_parted'],
             pct(tot['mig_parted'] - tot['ours'], tot['mig_parted']), tot['eq'], tot['transitions'], len(dis['mismatches'])))
    if fea:
        n = sum(i['layouts'] for i in fea['models'].values())
        of = sum(len(i['ours_failures']) for i in fea['models'].values())
        mf = sum(len(i['mp_failures']) for i in fea['models'].values())
        oc = sum(i['ours_creates']['total'] for i in fea['models'].values())
        mc = sum(i['mp_creates']['total'] for i in fea['models'].values())
        same = all({f['layout'] for f in i['ours_failures']} <= {f['layout'] for f in i['mp_failures']}
                   for i in fea['models'].values())
        reorder = sum(len(i['mp_needed_reorder']) for i in fea['models'].values())
        w('* **Feasibility**: %d valid layouts applied to empty GPUs. Ours: %d never applied%s; mig-parted\'s method:'
          ' %d never applied, %d more only after trying other creation orders. NVML create calls: %d (ours) vs %d'
          ' (mig-parted\'s method), %.2fx.' % (
              n, of, ' (layouts the simulated driver refuses whatever the placement; mig-parted\'s method fails them too)'
              if of and same else '', mf, reorder, oc, mc, mc / oc if oc else 0))
    if ovh:
        est = ovh.get('estimate', {}).get('estimates', [])
        est_txt = ''
        if est:
            est_txt = (' With a real driver\'s per-call costs (measured on an H100) in place of the simulator\'s, the'
                       ' ESTIMATED ratio is %s to %s.' % (s(min(e['ratio'] for e in est)), s(max(e['ratio'] for e in est))))
            if min(e['ratio'] for e in est) < 1.0:
                est_txt += (' (Not meaningful in this run: below 1, because the machine\'s load inflated the simulator time'
                            ' that the estimate subtracts.)')
        ip = ovh['inprocess_noop']
        info_txt = ''
        if ovh['noop'].get('info_median'):
            info_txt = ('; `mig_info` takes %s, ratio **%s** (%s)' % (
                ms(ovh['noop']['info_median']), s(ovh['noop']['info_ratio']),
                'target met' if ovh['noop']['info_ratio'] <= 1.25 else 'target <= 1.25, not met'))
        w('* **Overhead**: a no-op `mig_layout` task on an 8-GPU host takes %s against %s for `command: /bin/true` in the'
          ' same play: ratio **%s** on the simulator (%s)%s. Of the difference, the %d simulated NVML'
          ' calls take about %s, the larger module start-up (imports) about %s, the collection\'s own Python %s.%s'
          ' A full 8-GPU reconfiguration in one task takes %s; the module process uses %s CPU for %s wall.' % (
              ms(ovh['noop']['layout_median']), ms(ovh['noop']['true_median']), s(ovh['noop']['ratio']),
              'target met' if ovh['noop']['ratio'] <= 1.25 else 'target <= 1.25, not met', info_txt,
              ovh['noop']['nvml_calls_per_run'], ms(ip['nvml_median']),
              ms(ovh['direct_noop']['startup_imports_median'] - ovh['direct_noop']['true_wall_median']),
              ms(ip['python_median']), est_txt,
              ms(ovh['apply']['task_median']), ms(ovh['apply']['direct_cpu_median']), ms(ovh['apply']['direct_wall_median'])))
    if sca:
        parts = []
        for n in sorted({r['hosts'] for r in sca['runs']}):
            ap_ = [r for r in sca['runs'] if r['hosts'] == n and r['kind'] == 'apply' and r['forks'] == sca['forks_chosen']]
            tr = [r for r in sca['runs'] if r['hosts'] == n and r['kind'] == 'trivial']
            no_ = [r for r in sca['runs'] if r['hosts'] == n and r['kind'] == 'noop']
            if ap_ and tr:
                parts.append('%d hosts %.0f s (%.2fx the trivial task%s)' % (
                    n, ap_[0]['wall'], ap_[0]['wall'] / tr[0]['wall'],
                    '; no-op %.0f s, %.2fx' % (no_[0]['wall'], no_[0]['wall'] / tr[0]['wall']) if no_ else ''))
        w('* **Scale** (8 simulated GPUs per host, forks %s): converging %s.' % (sca['forks_chosen'], '; '.join(parts) or 'n/a'))
    w('')

    # ------------------------------------------------------------------ 1. disruption
    if dis:
        w('## 1. Disruption')
        w('')
        w('GPU instances destroyed when a GPU goes from layout A to layout B. A layout is a multiset of GPU instance'
          ' profiles, one full-size compute instance each (mig-parted\'s `mig-devices`). The corpus is every ordered pair of'
          ' distinct *maximal* layouts of each model: layouts the planner accepts on an empty GPU and to which no further'
          ' instance of any profile can be added, `+me` and double-memory (REV2) profiles included, enumerated from the'
          ' profiles and placements that the collection\'s NVML adapter reads from the simulator (`tests/bench/layouts.py`).'
          ' The starting GPU holds A placed three ways:')
        w('')
        for k, v in VARIANT_LABEL.items():
            w('* **%s**: %s;' % (k, v))
        w('')
        w('and B is the multiset (placements left to the planner). **ours** = `plan_gpu(before, B).destroyed_gpu_instances`'
          ' (each plan is also checked: B\'s profiles at legal, disjoint placements, kept instances unchanged);'
          ' **minimum** = `planner_reference.brute_force_min_destroys` (tests/unit/plugins/module_utils), checked against a second independent brute force'
          ' in `tests/bench/disruption.py` (they disagreed on %d transitions); **mig-parted** = every GPU instance of the'
          ' GPU, since mig-parted rebuilds a GPU whose profile counts differ in any way. The no-op transitions A -> A were'
          ' checked separately: a plan with any action there counts as a failure.' % len(dis['reference_disagreements']))
        w('')
        rows = []
        for model, info in ordered(dis['models'], list(MODEL_LABEL)):
            rows.append([MODEL_LABEL.get(model, model), info['valid_layouts'], info['maximal_layouts'],
                         info['maximal_placed_layouts'], info['maximal_without_me'], info['maximal_without_me_all_slices'],
                         info['maximal_placed_without_me_multisets']])
        L += table(['model', 'valid layouts', 'maximal layouts', 'maximal placed layouts',
                    'maximal, no +me', '... using every compute slice', 'multisets of maximal placed layouts, no +me'], rows)
        eight = [i for mdl, i in ordered(dis['models'], list(MODEL_LABEL)) if mdl in ('h100-80gb', 'a100-40gb')]
        if eight:
            i = eight[0]
            w('Cross-check with an independent hand count for the 8-slot GPUs (`+me` ignored), which lists 17'
              ' maximal layouts that use all 7 compute slices and counts 38 "maximal multisets in total incl. partially used'
              ' ones": here %d maximal layouts use every compute slice (%s), the multisets of maximal *placed* layouts'
              ' number %d (%s), and %d multisets are maximal whatever the placement. A fragmented placement can block an'
              ' instance that another placement of the same multiset would admit, which is why the placed count is larger.'
              % (i['maximal_without_me_all_slices'], 'matches' if i['maximal_without_me_all_slices'] == 17 else 'DIFFERS',
                 i['maximal_placed_without_me_multisets'], 'matches the 38' if i['maximal_placed_without_me_multisets'] == 38 else 'DIFFERS from 38',
                 i['maximal_without_me']))
            w('')
        rows = []
        totals = {'t': 0, 'o': 0, 'mn': 0, 'mp': 0, 'eq': 0}
        for model, info in ordered(dis['models'], list(MODEL_LABEL)):
            for variant, d in ordered(info['variants'], list(VARIANT_LABEL)):
                rows.append([MODEL_LABEL.get(model, model), variant, d['before_states'], d['transitions'], d['ours'], d['minimum'],
                             d['mig_parted'], '%d / %d' % (d['ours_equals_min'], d['transitions']),
                             pct(d['mig_parted'] - d['ours'], d['mig_parted']),
                             '%s / %s' % (s(d['ours'] / max(d['transitions'], 1)), s(d['mig_parted'] / max(d['transitions'], 1))),
                             '%s / %s ms' % (s(d['plan_ms_median']), s(d['plan_ms_max'], 1))])
                totals['t'] += d['transitions']
                totals['o'] += d['ours']
                totals['mn'] += d['minimum']
                totals['mp'] += d['mig_parted']
                totals['eq'] += d['ours_equals_min']
        rows.append(['**total**', '', '', '**%d**' % totals['t'], '**%d**' % totals['o'], '**%d**' % totals['mn'],
                     '**%d**' % totals['mp'], '**%d / %d**' % (totals['eq'], totals['t']),
                     '**%s**' % pct(totals['mp'] - totals['o'], totals['mp']), '', ''])
        L += table(['model', 'start', 'starting layouts', 'transitions', 'GIs destroyed: ours', 'minimum', 'mig-parted',
                    'ours = minimum', 'fewer than mig-parted', 'per transition: ours / mig-parted', 'plan time median / max'], rows)
        if dis['mismatches']:
            w('**Mismatches (ours != minimum): %d.** The first ones:' % len(dis['mismatches']))
            w('')
            L += table(['model', 'start', 'from', 'to', 'ours', 'minimum'],
                       [[x['model'], x['variant'], x['from'], x['to'], x['ours'], x['reference_min']] for x in dis['mismatches'][:20]])
        else:
            w('**Mismatches (ours != minimum): none.** Unsound plans: %d. No-op transitions with actions: %d.' % (
                len(dis['unsound_plans']),
                sum(len(d['noop_with_changes']) for i in dis['models'].values() for d in i['variants'].values())))
            w('')
        for model, info in ordered(dis['models'], list(MODEL_LABEL)):
            if info.get('driver_before_unreachable'):
                w('%s: mig-parted\'s method cannot build %s on the simulator (see section 2), so the `driver` start has %d'
                  ' starting layouts instead of %d.' % (MODEL_LABEL.get(model, model),
                                                        ', '.join('`%s`' % x for x in info['driver_before_unreachable']),
                                                        info['variants']['driver']['before_states'], info['maximal_layouts']))
                w('')
        w('The A100 40GB and H100 80GB rows are identical because both GPUs have the same 8-slot placement table.')
        w('')

    # ------------------------------------------------------------------ 2. feasibility
    if fea:
        w('## 2. Feasibility')
        w('')
        w('Every valid layout (every multiset of GPU instance profiles the planner accepts on an empty GPU, one full-size'
          ' compute instance each) applied to an empty MIG-enabled simulated GPU, two ways:')
        w('')
        w('* **ours**: `_converge.converge` with the collection\'s NVML adapter, one NVML session per layout as in one module'
          ' run (`mig_devices: {...}`): planner, then `nvmlDeviceCreateGpuInstanceWithPlacement` /'
          ' `nvmlGpuInstanceCreateComputeInstanceWithPlacement`;')
        w('* **mig-parted\'s method** (`tests/bench/migparted_method.py`, after NVIDIA/mig-parted'
          ' `pkg/mig/config/config.go`): `nvmlDeviceCreateGpuInstance` without placement (the simulator\'s model of the'
          ' driver\'s default placement decides), largest profile first, then every distinct creation order (capped at'
          ' %d; no layout here has more than %d distinct orders, so the cap never applies) with the GPU cleared between'
          ' tries, the `reuseGI` step included (an entry with the same GI profile as the previous one first tries a'
          ' compute instance in that GI).' % (fea.get('max_orders_cap', 5040), max(i['max_distinct_orders'] for i in fea['models'].values())))
        w('')
        w('A layout counts as applied when the simulator\'s state afterwards holds exactly its profile multiset. Create'
          ' calls = GPU instance + compute instance create calls, failed ones included. mig-parted\'s read calls'
          ' (`GetMigConfig` before every try) are not re-enacted; its destroy calls for clearing between tries are counted.')
        w('')
        rows = []
        for model, i in ordered(fea['models'], list(MODEL_LABEL)):
            rows.append([MODEL_LABEL.get(model, model), i['layouts'], len(i['ours_failures']), len(i['mp_failures']),
                         ('%d (up to %d orders)' % (len(i['mp_needed_reorder']), max(x['attempts'] for x in i['mp_needed_reorder']))
                          if i['mp_needed_reorder'] else '0'),
                         '%s / %d / %d' % (s(i['ours_creates']['median'], 0), i['ours_creates']['max'], i['ours_creates']['total']),
                         '%s / %d / %d' % (s(i['mp_creates']['median'], 0), i['mp_creates']['max'], i['mp_creates']['total']),
                         i['mp_destroys']['total'],
                         '%s / %d' % (s(i['ours_calls']['median'], 0), i['ours_calls']['max'])])
        L += table(['model', 'layouts', 'never applied: ours', "mig-parted's method", 'needed more than the first order',
                    'create calls ours: median / max / total', "mig-parted's method: median / max / total",
                    "destroy calls (mig-parted's clears)", 'all NVML calls ours (reads included): median / max'], rows)
        for model, i in ordered(fea['models'], list(MODEL_LABEL)):
            for f in i['ours_failures']:
                w('* %s, ours, `%s`: %s' % (MODEL_LABEL.get(model, model), f['layout'], f['error']))
            for f in i['mp_failures']:
                w('* %s, mig-parted\'s method, `%s`: every order failed (%d orders, %d create calls); last error: %s' % (
                    MODEL_LABEL.get(model, model), f['layout'], f['attempts'], f['creates'], f['error']))
        w('')
        w('Reading these results:')
        w('')
        both = [f['layout'] for i in fea['models'].values() for f in i['ours_failures']
                if f['layout'] in {m['layout'] for m in i['mp_failures']}]
        if both:
            w('* Layouts that *both* methods fail are ones the planner accepts but the simulated driver refuses (%s).'
              ' NVML\'s profile information does not state the rule that refuses them, so the planner cannot see it.'
              ' Ours fails at the first create and rolls back; mig-parted\'s method tries every order first and leaves'
              ' the GPU empty.' % ', '.join('`%s`' % x for x in both))
        else:
            w('* No valid layout fails with either method. The planner counts the media engines (decoders, encoders, JPEG'
              ' and OFA) that each GPU instance profile holds, from NVML\'s profile information, against the GPU\'s,'
              ' so the layouts the simulated A30 refuses (`1g.6gb+me` with `2g.12gb+me`: one JPEG/OFA engine) are'
              ' refused before any change and are not in the valid set.')
        w('* The simulator\'s default placement is an inferred model of the driver\'s heuristic (`tests/nvml_sim/README.md`);'
          ' it reproduces the MIG user guide\'s examples. With it, some order always works for every other valid layout,'
          ' so mig-parted\'s method fails nothing more here; its cost is extra create calls and tries. On a driver whose'
          ' heuristic differs, the figures for mig-parted\'s method change; ours do not depend on the heuristic.')
        example = None
        for model, i in ordered(fea['models'], list(MODEL_LABEL)):
            for r in i['rows']:
                if r['layout'].startswith('7x ') and ' + ' not in r['layout'] and r['ours_ok'] and r['mp_ok']:
                    example = (MODEL_LABEL.get(model, model), r)
                    break
            if example:
                break
        if example:
            w('* mig-parted\'s `reuseGI` step costs one failed compute-instance create per repeated profile: on %s, `%s`'
              ' takes %d create calls with mig-parted\'s method against our %d.' % (
                  example[0], example[1]['layout'], example[1]['mp_creates'], example[1]['ours_creates']))
        w('')

    # ------------------------------------------------------------------ 3. overhead
    if ovh:
        n = ovh['noop']
        w('## 3. Overhead')
        w('')
        w('One simulated host with 8 x H100 80GB (`migsim init --gpus h100-80gb:8`), `ansible-playbook` with a local'
          ' connection and pipelining, the collection from a snapshot on `ANSIBLE_COLLECTIONS_PATH`, the simulator\'s'
          ' `LD_LIBRARY_PATH` and `MIGSIM_STATE` set through the play\'s `environment:`. Layout A is %s on every GPU,'
          ' layout B %s. Task times come from a callback plugin (`tests/bench/callback_plugins/bench_timer.py`): task start'
          ' to the host\'s result.' % (json.dumps(ovh['layout_a'][0]['mig_devices']), json.dumps(ovh['layout_b'][0]['mig_devices'])))
        w('')
        w('### No-op task')
        w('')
        w('%d runs of one play that alternates `ansible.builtin.command: /bin/true`, `bench_result`, `gpuops.mig.mig_layout`'
          ' (layout A, already in place) and `gpuops.mig.mig_info` %d times: %d samples of each.' % (
              ovh['runs'], ovh['pairs_per_play'], len(n['layout_task'])))
        w('')
        L += table(['task', 'median', 'min', 'max'], [
            ['`command: /bin/true`', ms(n['true_median']), ms(min(n['true_task'])), ms(max(n['true_task']))],
            ['`bench_result` (bench-only module returning the no-op result of `mig_layout`, %.0f KiB)' % (ovh.get('result_bytes', 0) / 1024),
             ms(n.get('result_median')), ms(min(n.get('result_task') or [0])), ms(max(n.get('result_task') or [0]))],
            ['`mig_layout` (no-op, changed=false)', ms(n['layout_median']), ms(min(n['layout_task'])), ms(max(n['layout_task']))],
            ['**ratio of medians, `mig_layout` / `command`**', '**%s**' % s(n['ratio']), '', ''],
        ] + ([
            ['`mig_info` (all 8 GPUs)', ms(n['info_median']), ms(min(n['info_task'])), ms(max(n['info_task']))],
            ['**ratio of medians, `mig_info` / `command`**', '**%s**' % s(n['info_ratio']), '', ''],
        ] if n.get('info_task') else []))
        if n.get('result_median'):
            w('So Ansible\'s handling of the larger result costs %s per task (`bench_result` - `command`), and %s is'
              ' spent in the `mig_layout` module process beyond that (`mig_layout` - `bench_result`): start-up,'
              ' simulated NVML calls and the collection\'s Python, broken down below.' % (
                  ms(n['result_median'] - n['true_median']), ms(n['layout_median'] - n['result_median'])))
            w('')
        ip = ovh['inprocess_noop']
        d = ovh['direct_noop']
        w('Where the no-op time goes (medians):')
        w('')
        L += table(['measurement', 'value'], [
            ['NVML calls per no-op run (simulator call counters, 8 GPUs)', '%d' % n['nvml_calls_per_run']],
        ] + ([['NVML calls per `mig_info` run (8 GPUs)', '%d' % n['info_nvml_calls_per_run']]] if 'info_nvml_calls_per_run' in n else []) + [
            ['`converge()` in-process, total', ms(ip['total_median'])],
            ['... of which inside NVML calls (simulator)', '%s (%s us per call)' % (ms(ip['nvml_median']), s(ip['sim_us_per_call_in_converge'], 0))],
            ['... of which the collection\'s own Python (read, validate, plan, report)', ms(ip['python_median'])],
            ['simulator cost of one `nvmlDeviceGetMigMode` call', '%s us' % s(ip['sim_us_per_call_getmigmode'], 0)],
            ['simulator start-up in a fresh process (library load, engine import, first `nvmlInit`)', ms(ip.get('sim_init_seconds'))],
            ['module process run directly (`python -m ...mig_layout args.json`), wall', ms(d['wall_median'])],
            ['... its CPU time (user + sys, simulator included)', ms(d['cpu_median'])],
            ['... interpreter start + imports alone (ansible.module_utils.basic, pynvml, the module_utils)', ms(d['startup_imports_median'])],
            ['`command` module process run directly with `/bin/true`, wall', ms(d['true_wall_median'])],
        ] + [['start-up: %s (cumulative)' % k, ms(v)] for k, v in d.get('import_steps', [])] + [
            ['`mig_layout` task minus its module run directly (Ansible, plus running from the AnsiballZ payload)',
             ms(n['layout_median'] - d['wall_median'])],
            ['`command` task minus its module run directly (the same for `command`)', ms(n['true_median'] - d['true_wall_median'])],
        ])
        steps = dict(d.get('import_steps', []))
        if n.get('result_median') and len(steps) >= 4:
            gap = n['layout_median'] - n['true_median']
            keys = list(steps)
            parts = [
                ('simulated NVML calls (%d; each reads what the module returns: identity, MIG mode, profiles with placements'
                 ' and remaining capacity, instances, MIG devices, processes)' % n['nvml_calls_per_run'], ip['nvml_median']),
                ('NVML start-up (the simulator\'s library load and first `nvmlInit`)', ip.get('sim_init_seconds') or 0.0),
                ('importing pynvml', steps[keys[2]] - steps[keys[1]]),
                ('importing the module and its module_utils (compiled from source, as from the payload)', steps[keys[3]] - steps[keys[2]]),
                ('the collection\'s own Python (validate, plan, report)', ip['python_median']),
                ('Ansible\'s handling of the larger result (`bench_result` - `command`)', n['result_median'] - n['true_median']),
            ]
            w('What stands between the no-op `mig_layout` task and `command: /bin/true` (%s in this run), part by part'
              ' (medians of separate measurements, so the parts need not add up exactly):' % ms(gap))
            w('')
            L += table(['part', 'time', 'share of the gap'],
                       [[k, ms(v), pct(v, gap)] for k, v in parts] + [['**sum of the parts**', ms(sum(v for dummy, v in parts)), '']])
            w('Why it cannot go lower here: the NVML reads are the state the task returns (`gpus`, `mig_devices`,'
              ' `device_map`) and the plan is built from; a no-op reads no table twice (profiles and placements once per'
              ' GPU model) and stops the MIG device scan at the last compute instance. pynvml and NVML\'s start-up are'
              ' outside the collection. The collection\'s imports load only what the path needs (`mig_info` no planner,'
              ' a no-op no executor); what is left is the data model, the NVML adapter, the layout parser and the planner.'
              ' Returning less (no profile tables) would shrink the result\'s cost but change what the modules return.')
            w('')
        if ovh.get('payload_bytes'):
            pb = ovh['payload_bytes']
            npl = ovh.get('noop_no_pipelining', {})
            w('Module payload (the AnsiballZ file Ansible sends for each task; measured from a run with'
              ' `keep_remote_files`): %s. Without pipelining (one run, not a median) the tasks took %s (`mig_layout`) and'
              ' %s (`command`).' % (', '.join('`%s` %.0f KiB' % (k, v / 1024) for k, v in sorted(pb.items())),
                                    ms(npl.get('layout_median')), ms(npl.get('true_median'))))
            w('')
        top = sorted(n['calls_by_function'].items(), key=lambda kv: -kv[1])
        w('NVML calls of one no-op run by function: %s.' % ', '.join('`%s` %d' % (k, v) for k, v in top))
        w('')
        est = ovh.get('estimate', {})
        if est.get('estimates'):
            w('### ESTIMATE: the no-op task with a real driver')
            w('')
            w('This is an estimate, not a measurement. It takes the measured no-op task time, removes the simulator\'s NVML'
              ' time (%s per task: its calls plus its start-up), and adds the same NVML calls at a real driver\'s per-call cost. Per-call costs were'
              ' measured by `tests/bench/nvml_realhw.py` (read-only calls; pynvml wrapper included):' % ms(est['nvml_sim_seconds_per_task']))
            w('')
            for src in est['sources']:
                w('* `%s`: %s, driver %s, %s, MIG mode %s. MIG instance-level calls cannot be measured with MIG disabled'
                  ' (%s); they are costed at the cheapest (low) and dearest (high) MIG query measured: %s us and %s us.' % (
                      src['file'], src['gpu'], src['driver'], src['date'],
                      'disabled' if isinstance(src.get('mig_mode'), dict) and not src['mig_mode'].get('current') else src.get('mig_mode'),
                      ', '.join('`%s` x%d' % (k, v) for k, v in sorted(src['unmeasured_calls'].items(), key=lambda kv: -kv[1])),
                      s(src['mig_query_us'][0], 0), s(src['mig_query_us'][1], 0)))
            w('')
            L += table(['basis', 'NVML time per no-op run', 'estimated `mig_layout` task', 'estimated ratio to `command`'],
                       [[e['basis'], ms(e['nvml_seconds']), ms(e['layout_task']), '**%s**' % s(e['ratio'])] for e in est['estimates']])
            for src in est['sources']:
                data = {}
                try:
                    with open(os.path.join(os.path.dirname(os.path.abspath(__file__)), '..', '..', src['file']), encoding='utf-8') as f:
                        data = json.load(f).get('us_per_call', {})
                except OSError:
                    pass
                mig = {k: v for k, v in data.items() if v is not None and any(x in k for x in ('Mig', 'GpuInstance'))}
                plain = {k: v for k, v in data.items() if v is not None and k not in mig and '+' not in k}
                if mig and plain:
                    w('Measured on %s: MIG queries %s-%s us per call (`%s` the dearest), plain device queries %s-%s us,'
                      ' `nvmlInit` + `nvmlShutdown` %s ms.' % (
                          src['gpu'], s(min(mig.values()), 0), s(max(mig.values()), 0), max(mig, key=lambda k: mig[k]),
                          s(min(plain.values()), 1), s(max(plain.values()), 1),
                          s((data.get('nvmlInit+nvmlShutdown') or 0) / 1000, 1)))
                    w('')
        repo = os.path.join(os.path.dirname(os.path.abspath(__file__)), '..', '..')
        realhw = sorted(glob.glob(os.path.join(repo, 'tests', 'hardware', 'results', '*', 'overhead.txt')))
        breakdowns = sorted(glob.glob(os.path.join(repo, 'tests', 'hardware', 'results', '*', 'breakdown.txt')))
        if realhw:
            w('### Measured on real GPUs, MIG disabled')
            w('')
            w('`tests/hardware/run.sh` also times a no-op `mig_layout` (check mode: every GPU\'s MIG mode is disabled and'
              ' stays so) and `mig_info` against `command: /bin/true` on the real host it runs on'
              ' (`tests/hardware/overhead.yml`; details in docs/hardware.md). Recorded runs:')
            w('')
            for path in realhw:
                with open(path, encoding='utf-8') as f:
                    text = f.read().rstrip('\n')
                payloads = os.path.join(os.path.dirname(path), 'payloads.txt')
                if os.path.exists(payloads):
                    # The same tasks' module processes run directly (tests/hardware/payload_times.py).
                    with open(payloads, encoding='utf-8') as f:
                        text += '\n\n' + f.read().rstrip('\n')
                w('`%s`%s:' % (os.path.relpath(path, repo), real_gpus(os.path.dirname(path))))
                w('')
                w('```text')
                w(text)
                w('```')
                w('')
                split = payload_split(payloads)
                if split:
                    w(split)
                    w('')
            w('Why the real-GPU ratios stay above 1.25: in the module process, besides what `command` also pays'
              ' (the interpreter, `ansible.module_utils.basic`), a no-op pays pynvml\'s import, NVML\'s initialisation'
              ' and the read of each GPU (the state it returns and decides from), and the compiling of the collection\'s'
              ' module_utils: code imported from an AnsiballZ payload is compiled on every run, whatever the host allows'
              ' (`-X importtime` inflates that part, by about 1.7x on the development machine). pynvml and NVML are outside the collection; the planner is'
              ' imported on a no-op because deciding that nothing changes runs the same validation as a change. On the'
              ' lent machines the spread of one task is 200 to 600 ms, so a ratio moves by 0.1 to 0.3 between runs.'
              ' docs/hardware.md itemises the H200 runs.')
            w('')
        for path in breakdowns:
            with open(path, encoding='utf-8') as f:
                text = f.read().rstrip('\n')
            w('In-process start-up and read costs on a real GPU where the Ansible tasks could not be timed'
              ' (`%s`; details in docs/hardware.md):' % os.path.relpath(path, repo))
            w('')
            w('```text')
            w(text)
            w('```')
            w('')
        a = ovh['apply']
        w('### Reconfiguration of 8 GPUs in one task')
        w('')
        w('%d runs of one `mig_layout` task that switches all 8 GPUs between layouts A and B (each run changes every GPU).'
          % len(a['runs']))
        w('')
        L += table(['measurement', 'median'], [
            ['`mig_layout` task wall time', ms(a['task_median'])],
            ['NVML calls / create calls / destroy calls per run', '%d / %d / %d' % (a['calls_median'], a['creates_median'], a['destroys_median'])],
            ['`ansible-playbook` wall / CPU (controller, worker and module processes)',
             '%s / %s' % (ms(a['playbook_wall_median']), ms(a['playbook_cpu_median']))],
            ['module process run directly: wall', ms(a['direct_wall_median'])],
            ['module process run directly: CPU (user / sys)',
             '%s (%s / %s)' % (ms(a['direct_cpu_median']), ms(a['direct_user_median']), ms(a['direct_sys_median']))],
            ['module CPU / wall', s(a['direct_cpu_median'] / a['direct_wall_median'] if a['direct_wall_median'] else 0)],
        ])
        w('For comparison, mig-parted\'s users reported about 42 s of CPU for about 9 s of wall time per service run on one'
          ' 8-GPU node (CPU/wall 4.7; mig-parted PR #332, from 68-100 NVML init/shutdown cycles per run). The module makes'
          ' one NVML session per run, is single-threaded (CPU/wall <= 1), and its CPU figure above includes the'
          ' simulator, which runs inside the module\'s process and rewrites its JSON state file on every call. The wall'
          ' time of real GPU instance creation (driver work) is not modelled by the simulator and could not be measured'
          ' (the real GPU\'s MIG settings were left untouched).')
        w('')

    # ------------------------------------------------------------------ 4. scale
    if sca:
        w('## 4. Scale')
        w('')
        w('N inventory hosts on this one machine, each with `ansible_connection=local`, its own simulator state (%d x %s,'
          ' MIG enabled, empty) passed as a host variable through `environment: {MIGSIM_STATE: ...}`, and its own lock'
          ' file. **apply**: `mig_layout` from empty GPUs to %s on every GPU; **no-op**: the same again; **trivial**:'
          ' `ansible.builtin.command: /bin/true` on the same inventory and play settings. Wall = the whole'
          ' `ansible-playbook` process; CPU = all its processes (controller, workers, modules, simulator).' % (
              sca['gpus_per_host'], sca['model'], json.dumps(sca['layout'][0]['mig_devices'])))
        w('')
        trial = sca.get('forks_trial_apply_wall', {})
        w('forks: apply on %d hosts took %s; **forks %s** was used for every other run (2 cores: more forks than cores'
          ' only adds contention once the work is CPU-bound).' % (
              sca.get('trial_hosts', 0), ', '.join('%s s with forks %s' % (s(v, 1), k) for k, v in sorted(trial.items(), key=lambda kv: int(kv[0]))),
              sca['forks_chosen']))
        w('')
        rows = []
        for nh in sorted({r['hosts'] for r in sca['runs']}):
            tr = [r for r in sca['runs'] if r['hosts'] == nh and r['kind'] == 'trivial']
            base = tr[0]['wall'] if tr else None
            for r in [r for r in sca['runs'] if r['hosts'] == nh]:
                rows.append([nh, r['kind'], r['forks'], s(r['wall'], 1), s(r['cpu'], 1), s(r['wall'] / nh, 2),
                             s(r['wall'] / base) if base and r['kind'] != 'trivial' else ('1.00' if r['kind'] == 'trivial' else 'n/a'),
                             ', '.join(str(x) for x in r['load_after'])])
        L += table(['hosts', 'run', 'forks', 'wall s', 'CPU s', 'wall s per host', 'ratio to trivial', 'load after'], rows)
        w('Each size ran once (no repetitions), to keep the whole benchmark under 20 minutes on this 2-core machine.')
        if sca.get('skipped'):
            w('Skipped to stay within the time budget (%d s): %s.' % (sca['budget_s'], '; '.join(
                '%s at %d hosts (projected %d s, %d s left)' % ('+'.join(x['kinds']), x['hosts'], x['projected_s'], x['left_s'])
                for x in sca['skipped'])))
        w('')
        w('All hosts share 2 cores, so time grows linearly with hosts here once forks saturate the CPU. On a real fleet'
          ' every host brings its own CPU and the cost moves to SSH round trips and module transfer; see'
          ' [scaling.md](scaling.md).')
        w('')

    fleet = load(args.results, 'fleet.json')
    if fleet:   # fleet planning section, rendered by tests/bench/fleet.py
        import fleet as fleet_bench
        L.extend(fleet_bench.markdown(fleet))

    # ------------------------------------------------------------------ caveats
    w('## What was not measured')
    w('')
    w('* Real MIG reconfiguration time: GPU instance creation and destruction on real hardware (driver work,'
      ' milliseconds to seconds per instance) is not modelled by the simulator, and the real GPU\'s MIG settings were'
      ' left as they were. Only read-only per-call costs come from a real driver.')
    w('* The real driver\'s default placement heuristic: mig-parted\'s method runs against the simulator\'s model of it.')
    w('* mig-parted itself (Go) was not run; its apply algorithm is re-enacted in Python against the same simulator.')
    w('* Real fleets over SSH: the scale benchmark runs every host on this machine with a local connection.')
    w('')
    text = '\n'.join(L).rstrip() + '\n'
    tmp = args.output + '.tmp'
    with open(tmp, 'w', encoding='utf-8') as f:
        f.write(text)
    os.replace(tmp, args.output)
    return 0


if __name__ == '__main__':
    raise SystemExit(main())
