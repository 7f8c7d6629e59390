# Copyright (c) 2026 gpuops.mig contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""Read, validate, plan, apply, report: the whole of one MIG convergence on one host.

Shared by the ``mig_layout`` module and the boot-time service, so both behave identically.
Everything is validated and planned for every GPU before the first mutation.
"""

from __future__ import annotations

import typing as t

from ansible_collections.gpuops.mig.plugins.module_utils._model import Gpu, GpuPlan, MigAdapter, MigError, PlanError, SpecError
from ansible_collections.gpuops.mig.plugins.module_utils._planner import plan_gpu
from ansible_collections.gpuops.mig.plugins.module_utils._render import device_map, gpu_report, layout_diagram, plan_diagram
from ansible_collections.gpuops.mig.plugins.module_utils._safety import whole_gpu_client_refusal, whole_gpu_pids
from ansible_collections.gpuops.mig.plugins.module_utils._spec import ParsedLayouts, parse_layouts, resolve_layouts


class ConvergeError(MigError):
    """Convergence failed, with the message the user sees (built here, once); ``result`` carries what is
    known (plan, state after) for the report."""

    def __init__(self, message: str, result: dict[str, t.Any] | None = None, field: str | None = None) -> None:
        super().__init__(message, field)
        self.result = result or {}


def _diagram_text(index: int, rows: list[str]) -> str:
    return 'GPU %d\n%s\n' % (index, '\n'.join(rows) if rows else '(MIG disabled)')


def parse_spec(layouts: list[t.Any] | None = None, config: t.Any = None, config_name: str | None = None) -> ParsedLayouts:
    """``layouts`` or the named config, checked before the host lock and the NVML read: a typo costs nothing."""
    try:
        return parse_layouts(layouts, config, config_name)
    except SpecError as exc:
        raise ConvergeError(str(exc), field=exc.field)


def converge(adapter: MigAdapter, layouts: list[t.Any] | None = None, config: t.Any = None, config_name: str | None = None,
             check_mode: bool = False, spec: ParsedLayouts | None = None) -> dict[str, t.Any]:
    """Converge every GPU that the layout names (``spec`` from :func:`parse_spec`, or the arguments it takes).

    The caller holds the host lock and the NVML session.
    """
    if spec is None:
        spec = parse_spec(layouts, config, config_name)
    gpus = adapter.read_gpus()
    try:
        desired = resolve_layouts(gpus, parsed=spec)
    except SpecError as exc:
        raise ConvergeError(str(exc), field=exc.field)
    by_index = {g.index: g for g in gpus}
    plans: list[GpuPlan] = []
    for index in sorted(desired):
        try:
            plans.append(plan_gpu(by_index[index], desired[index], whole_gpu_clients_block=not check_mode))
        except PlanError as exc:
            gpu = by_index[index]
            msg = str(exc) if str(exc).startswith('GPU %d ' % index) else 'GPU %d (%s): %s' % (index, gpu.name, exc)
            # Every error names a field: the layout entry when the planner could not name a narrower one.
            field = exc.field or desired[index].source or None
            if field and field not in msg:
                msg = '%s: %s' % (field, msg)
            raise ConvergeError('%s [%s]' % (msg, gpu.uuid), field=field)
    result: dict[str, t.Any] = {
        'changed': any(p.changes for p in plans),
        'plan': [{'index': p.index, 'uuid': by_index[p.index].uuid, 'actions': [a.to_dict() for a in p.actions]}
                 for p in plans],
        'reset_required': [],
        'diff': {
            'before': ''.join(_diagram_text(p.index, layout_diagram(by_index[p.index]) if _mig_on(by_index[p.index]) else [])
                              for p in plans),
            'after': ''.join(_diagram_text(p.index, plan_diagram(p.target_instances, by_index[p.index].slot_count)
                                           if desired[p.index].mig_enabled else [])
                             for p in plans),
        },
    }
    warnings = [w for w in (whole_gpu_client_warning(by_index[p.index], p) for p in plans) if w]
    if warnings:
        result['warnings'] = warnings
    after = dict(by_index)
    if not check_mode and result['changed']:
        # Imported here: a no-op or check-mode run never loads the executor.
        from ansible_collections.gpuops.mig.plugins.module_utils._apply import ApplyError, execute_plan

        for plan in plans:
            if not plan.changes:
                continue
            gpu = by_index[plan.index]
            try:
                outcome = execute_plan(adapter, gpu, plan)
            except ApplyError as exc:
                if exc.gpu_after is not None:
                    after[plan.index] = exc.gpu_after
                result['gpus'] = [gpu_report(g) for g in _refresh(adapter, after, plans, plan.index)]
                done = [p.index for p in plans if p.changes and p.index < plan.index]
                # Honest `changed`: GPUs converged before the failure, or a rollback that left a difference.
                result['changed'] = bool(done) or not exc.rolled_back
                result['failed_gpu'] = plan.index
                result['gpu_outcomes'] = gpu_outcomes(plans, plan.index, exc.rolled_back, result['reset_required'])
                msg = str(exc)
                if done or len(plans) > 1:
                    msg += ' GPUs already converged by this run before the failure: %s.' % (', '.join(map(str, done)) or 'none')
                if len(plans) > 1:
                    msg += ' GPU by GPU: %s.' % '; '.join(outcome_text(o) for o in result['gpu_outcomes'])
                raise ConvergeError(msg, result)
            if outcome.mode_pending:
                result['reset_required'].append(plan.index)
            try:
                after[plan.index] = adapter.read_gpu(plan.index)
            except Exception as exc:  # pylint: disable=broad-except
                # The GPU was changed: report that (changed, which GPUs) instead of a bare NVML error.
                done = [p.index for p in plans if p.changes and p.index <= plan.index]
                result['changed'] = True
                result['failed_gpu'] = plan.index
                result['gpus'] = [gpu_report(g) for g in _refresh(adapter, after, plans, plan.index)]
                raise ConvergeError('GPU %d: the plan was applied, but reading the GPU back failed: %s. '
                                    'GPUs converged by this run: %s.' % (plan.index, exc, ', '.join(map(str, done))), result)
    result['gpus'] = [gpu_report(after[i]) for i in sorted(after)]
    result['device_map'] = device_map(after[i] for i in sorted(after))
    result['mig_devices'] = result['device_map']['mig_devices']
    return result


def whole_gpu_client_warning(gpu: Gpu, plan: GpuPlan) -> str | None:
    """Check mode: the plan cannot be applied while processes hold the whole GPU (apply refuses it)."""
    if whole_gpu_client_refusal(gpu, plan.actions) is None:
        return None
    return ('GPU %d (%s): processes hold the whole GPU without a GPU instance (PIDs %s); applying this plan is refused '
            'until they stop (the driver refuses GPU-instance creation while they run)'
            % (gpu.index, gpu.name, ', '.join(str(p) for p in whole_gpu_pids(gpu))))


def gpu_outcomes(plans: list[GpuPlan], failed: int, rolled_back: bool, pending: list[int]) -> list[dict[str, t.Any]]:
    """What a failed run did to each GPU it planned, in index order.

    ``converged`` (changed and done; ``reset_required`` when the mode change waits for a reset),
    ``unchanged`` (already as desired), ``rolled_back`` (the failed GPU, back to its original layout),
    ``rollback_incomplete`` (the failed GPU, left different: the message says what it holds) and
    ``not_reached`` (left as it was: the run stopped before it).
    """
    out = []
    for p in plans:
        if not p.changes:
            outcome = 'unchanged'
        elif p.index < failed:
            outcome = 'reset_required' if p.index in pending else 'converged'
        elif p.index == failed:
            outcome = 'rolled_back' if rolled_back else 'rollback_incomplete'
        else:
            outcome = 'not_reached'
        out.append({'index': p.index, 'outcome': outcome})
    return out


_OUTCOME_TEXT = {
    'unchanged': 'already as desired, not touched',
    'converged': 'converged by this run',
    'reset_required': 'MIG mode change made, pending a GPU reset',
    'rolled_back': 'failed, rolled back to its original layout',
    'rollback_incomplete': 'failed, rollback incomplete (layout above)',
    'not_reached': 'left as it was (not reached)',
}


def outcome_text(outcome: dict[str, t.Any]) -> str:
    return 'GPU %d %s' % (outcome['index'], _OUTCOME_TEXT[outcome['outcome']])


def _mig_on(gpu: Gpu) -> bool:
    return bool(gpu.mig_mode and gpu.mig_mode.current)


def _refresh(adapter: MigAdapter, after: dict[int, Gpu], plans: list[GpuPlan], upto: int) -> list[Gpu]:
    for plan in plans:
        if plan.changes and plan.index < upto:
            try:
                after[plan.index] = adapter.read_gpu(plan.index)
            except Exception:  # pylint: disable=broad-except
                pass
    return [after[i] for i in sorted(after)]
