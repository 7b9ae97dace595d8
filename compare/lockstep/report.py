"""The verdict as a terminal table, and as JSON."""
import json

from backprop_oracle.compare.files import write_atomic
from backprop_oracle.compare.interactive.html import result_html, svg_curves
from backprop_oracle.compare.tables import aligned


def _num(x, fmt=".3g"):
    return "-" if x is None else format(x, fmt)


def _acc(x):
    return "-" if x is None else f"{x:.3f}"


COLUMNS = ["preset", "steps", "max|Δgrad|", "max rel Δgrad", "max|Δparam|", "max|Δcost|",
           "cost manual", "cost torch", "acc manual", "acc torch", "goal", "verdict"]


def rows(results, goals=None):
    goals = goals or {}
    for r in results:
        goal = goals.get(r.name)
        yield [r.name, str(r.steps), _num(r.max_abs_grad_diff), _num(r.max_rel_grad_diff),
               _num(r.max_abs_param_diff), _num(r.max_abs_cost_diff),
               _num(r.final_cost_manual, ".6g"), _num(r.final_cost_torch, ".6g"),
               _acc(r.accuracy_manual), _acc(r.accuracy_torch),
               "-" if goal is None else ("met" if goal[0] else "MISSED"),
               r.verdict]


def format_table(results, goals=None):
    """One row per run: how far apart the sides ever were, where they ended, and the verdict.

    ``goals`` maps a run's name to (met, text) for the preset's stated accuracy or cost.
    """
    lines = aligned([COLUMNS] + list(rows(results, goals)), rule=True)
    tol = {f"{r.spec.dtype}: {r.tolerance}" for r in results}
    lines.append("")
    lines.append("tolerance per element: " + "; ".join(sorted(tol)))
    for r in results:
        if r.drifts:
            lines.append("")
            lines.append(f"{r.name}: rounding proven and resynchronised {len(r.drifts)} time(s); the first "
                         f"{r.drifts[0].describe()}")
        if r.divergence is not None:
            lines.append("")
            lines.append(f"{r.name}: {r.divergence.describe()}")
        if r.mismatch is not None:
            lines.append("")
            lines.append(f"{r.name}: the sides disagree {r.mismatch.describe()}")
    for name, (met, text) in (goals or {}).items():
        if not met:
            lines.append(f"{name}: did not reach its goal ({text})")
    agree = sum(r.passed for r in results)
    lines.append("")
    lines.append(f"{agree} of {len(results)} run(s) agree between manual and torch.")
    return "\n".join(lines)


def format_html(r, goal=None):
    """One run's verdict for a notebook: a badge (agree, or DIFFER), the table's row (red for a
    DIFFER), the tolerance, the wrong node and its proof in red, and both sides' cost curves."""
    lines = [f"{r.steps} steps, {r.seconds:.1f} s; tolerance per element: {r.spec.dtype}: {r.tolerance}"]
    lines += [f"rounding proven and resynchronised {len(r.drifts)} time(s); the first {r.drifts[0].describe()}"] if r.drifts else []
    lines += [r.divergence.describe()] if r.divergence is not None else []
    wrong = [f"the sides disagree {r.mismatch.describe()}"] if r.mismatch is not None else []
    wrong += [f"did not reach its goal ({goal[1]})"] if goal is not None and not goal[0] else []
    return result_html(r.name, r.verdict, r.passed, table=[COLUMNS] + list(rows([r], {r.name: goal} if goal else None)),
                       marked=set() if r.passed else {0}, lines=lines, wrong_lines=wrong,
                       after=[svg_curves({"manual": r.step_cost_manual, "torch": r.step_cost_torch})])


def write_json(path, payload):
    """Write ``payload`` as JSON atomically: a failure leaves no half-written file."""
    write_atomic(path, json.dumps(payload, indent=2, allow_nan=False) + "\n")
