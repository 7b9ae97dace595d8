"""Every table of ``backprop-oracle bench`` from one run: the measurements as a dict (what
``--json`` writes) and the text the command prints. Each ratio is computed from the medians
printed beside it; the spread is [min-max] over the interleaved repeats."""
import contextlib
import os
import platform

import numpy as np
import torch
from threadpoolctl import threadpool_info, threadpool_limits

from backprop_oracle.compare.bench import gradients, layers, overhead, steps
from backprop_oracle.compare.bench.timing import clock
from backprop_oracle.compare.tables import aligned

# (repeats, seconds per timed run) for the full run and for --quick
SETTINGS = {
    False: dict(step_repeats=5, step_target=0.05, lockstep_repeats=3, lockstep_warmup=1, lockstep_epochs=None,
                loop_repeats=5,
                check_repeats=20, full_gradcheck=True),
    True: dict(step_repeats=1, step_target=0, lockstep_repeats=1, lockstep_warmup=0, lockstep_epochs=2,
               loop_repeats=1,
               check_repeats=1, full_gradcheck=False),
}
QUICK_LOCKSTEP_EPOCHS = {"or-gate": 200}    # the OR gate's epochs are one step each


def machine():
    """What the numbers were measured on."""
    cpu = platform.processor() or platform.machine()
    with contextlib.suppress(OSError):
        with open("/proc/cpuinfo") as f:
            names = [line.split(":", 1)[1].strip() for line in f if line.startswith("model name")]
        cpu = names[0] if names else cpu
    blas = [f"{i.get('internal_api')} {i.get('version')}"
            + (f", {i['architecture']} kernels" if i.get("architecture") else "")
            for i in threadpool_info() if i.get("user_api") == "blas"]
    # OpenBLAS runs the kernels this names instead of the ones it would pick for the processor
    forced = {k: os.environ[k] for k in ("OPENBLAS_CORETYPE", "OPENBLAS_L2_SIZE") if os.environ.get(k)}
    return {"cpu": cpu, "cores": os.cpu_count(), "python": platform.python_version(), "numpy": np.__version__,
            "blas": blas[0] if blas else "unknown", "torch": torch.__version__, "blas_forced": forced}


@contextlib.contextmanager
def threads(n):
    """NumPy's BLAS and torch on ``n`` threads each, then both restored."""
    previous = torch.get_num_threads()
    torch.set_num_threads(n)
    try:
        with threadpool_limits(limits=n):
            yield
    finally:
        torch.set_num_threads(previous)


def run_bench(quick=False, n_threads=1, device="cpu", timer="wall", say=lambda line: None, cli_run=None):
    """All the measurements, timed by ``timer`` ("wall" or "cpu", see compare.bench.timing; a GPU
    is always timed by the wall clock); ``say`` gets a line as each part starts (progress).
    ``cli_run(name, spec)``: the command line's way of running a preset's spec, for the row that
    holds the Python API against it (left out when None)."""
    s = SETTINGS[bool(quick)]
    out = {"machine": machine(), "threads": n_threads, "quick": bool(quick), "clock": timer,
           "settings": {k: v for k, v in s.items()}}
    with threads(n_threads), clock(timer):
        say("time per training step")
        out["steps"] = [steps.measure_step(net, dtype, s["step_repeats"], s["step_target"])
                        for net in steps.NETS for dtype in steps.DTYPES]
        say("time per training step of the convolutional networks")
        out["conv_steps"] = [layers.measure(net, dtype, s["step_repeats"], s["step_target"])
                             for net in layers.NETS for dtype in layers.DTYPES]
        say("NumPy's GEMM rate")
        out["gemm"] = {dt: steps.gemm_rate(dt, s["step_repeats"], s["step_target"]) for dt in steps.DTYPES}
        out["gemm_fraction"] = steps.gemm_fractions(out["steps"], out["gemm"])
        say("lockstep overhead")
        out["lockstep"] = [overhead.measure_overhead(
            name, s["lockstep_repeats"], QUICK_LOCKSTEP_EPOCHS.get(name, s["lockstep_epochs"]) if quick else None,
            s["lockstep_warmup"])
            for name in overhead.PRESETS]
        say("per-example loop against the vectorized gradient")
        out["loop_vs_vectorized"] = gradients.loop_vs_vectorized(s["loop_repeats"])
        say("gradient check against gradcheck")
        out["gradcheck"] = gradients.check_vs_gradcheck(s["check_repeats"], full=s["full_gradcheck"])
    if cli_run is not None:
        say("the Python API against the command line")
        with clock(timer):        # outside the threads above: each side chooses its own
            out["api"] = overhead.measure_api(cli_run, repeats=s["lockstep_repeats"], warmup=s["lockstep_warmup"],
                                              epochs=QUICK_LOCKSTEP_EPOCHS.get(overhead.API_PRESET, s["lockstep_epochs"]) if quick else None)
    if device != "cpu":
        say(f"the torch side on {device}")
        with threads(n_threads):
            out["cuda"] = [steps.measure_cuda(net, dtype, s["step_repeats"], s["step_target"], device)
                           for net in steps.NETS for dtype in steps.DTYPES]
    return out


def _ms(spread, scale=1.0):
    k = 1e3 * scale
    return f"{spread['median'] * k:.4g} [{spread['min'] * k:.3g}-{spread['max'] * k:.3g}]"


def _met(ok):
    return "met" if ok else "NOT met"


def format_bench(r):
    m = r["machine"]
    repeats = r["settings"]["step_repeats"]
    lines = [f"{m['cpu']}, {m['cores']} cores; Python {m['python']}, NumPy {m['numpy']} ({m['blas']}), "
             f"torch {m['torch']}; {r['threads']} thread(s){'; --quick' if r['quick'] else ''}",
             f"{'CPU' if r['clock'] == 'cpu' else 'wall-clock'} times: median [min-max] over interleaved repeats; "
             "every ratio is of the medians shown", ""]
    if m.get("blas_forced"):
        names = " ".join(f"{k}={v}" for k, v in m["blas_forced"].items())
        unset = " ".join(f"-u {k}" for k in m["blas_forced"])
        lines[-1:-1] = [f"{names} is set here: NumPy's OpenBLAS runs those kernels, not the ones it picks for this "
                        "processor (torch's BLAS is its own);",
                        f"`env {unset} backprop-oracle bench` measures NumPy as it runs by itself"]

    lines.append(f"(a) time per training step, ms (zero_grad, forward, loss, backward, SGD step with momentum {steps.MOMENTUM:g}; {repeats} repeats)")
    rows = [["net", "dtype", "manual", "torch", "manual/torch", "goal"]]
    for row in r["steps"]:
        sp = row["seconds_per_step"]
        rows.append([row["net"], row["dtype"], _ms(sp["manual"]), _ms(sp["torch"]), f"{row['ratio']:.3g}",
                     f"<= {row['goal']:g} {_met(row['met'])}"])
    lines += aligned(rows, rule=True, indent="  ") + [""]

    g = r["gemm"]
    lines.append("(b) NumPy's GEMM rate (" + ", ".join(
        f"{dt} {v['n']}x{v['n']} @ {v['n']}x{v['n']}: {v['flop_per_s'] / 1e9:.1f} GFLOP/s" for dt, v in g.items())
        + ") and each large step's rate as a fraction of it")
    rows = [["net", "dtype", "manual GFLOP/s", "fraction", "torch GFLOP/s", "fraction", "goal",
             "products alone GFLOP/s", "fraction", "best manual/torch"]]
    for e in r["gemm_fraction"]:
        goal = f">= {e['goal']:.0%} {_met(e['met'])}" if "goal" in e else ""
        best = [f"{e['products']['flop_per_s'] / 1e9:.1f}", f"{e['products']['fraction']:.0%}",
                f"{e['best_ratio']:.3g} (goal <= {e['ratio_goal']:g})"] if "products" in e else ["", "", ""]
        rows.append([e["net"], e["dtype"], f"{e['manual']['flop_per_s'] / 1e9:.1f}", f"{e['manual']['fraction']:.0%}",
                     f"{e['torch']['flop_per_s'] / 1e9:.1f}", f"{e['torch']['fraction']:.0%}", goal] + best)
    lines += aligned(rows, rule=True, indent="  ")
    lines += ["  products alone: the step's matrix products by themselves (NumPy's BLAS, the same shapes and",
              "  layouts), timed in rounds of their own beside torch's step; best manual/torch = their time over",
              "  torch's: the lowest ratio of (a) NumPy's BLAS allows here, if activations, loss and update cost nothing",
              ""]

    lines.append("(c) lockstep overhead: lockstep run / (manual.fit + torch_ref.fit), seconds per run "
                 f"({r['settings']['lockstep_repeats']} repeat(s))")
    rows = [["preset", "steps", "lockstep", "manual.fit", "torch_ref.fit", "ratio", "goal"]]
    for e in r["lockstep"]:
        sec = e["seconds"]
        rows.append([e["preset"], str(e["steps"]), _ms(sec["lockstep"], 1e-3), _ms(sec["manual.fit"], 1e-3),
                     _ms(sec["torch_ref.fit"], 1e-3), f"{e['ratio']:.3g}", f"<= {e['goal']:g} {_met(e['met'])}"])
    lines += aligned(rows, rule=True, indent="  ") + [""]

    lv = r["loop_vs_vectorized"]
    lines.append(f"(d) the OR-gate article's two batch gradients, {lv['net']} network, {lv['batch']} examples, ms "
                 f"(the gradients agree to {lv['max_abs_grad_gap']:.1e})")
    rows = [["method", "time", "vs vectorized"],
            ["per-example loop (loop_value_and_grad)", _ms(lv["seconds"]["loop"]), f"{lv['ratio']:.1f}x"],
            ["vectorized (value_and_grad)", _ms(lv["seconds"]["vectorized"]), "1x"]]
    lines += aligned(rows, rule=True, indent="  ") + [""]

    gc = r["gradcheck"]
    check = gc["seconds"]["check"]["median"]
    lines.append(f"(e) a full gradient check of the {gc['net']} network ({gc['parameters']:,} parameters, batch "
                 f"{gc['batch']}, float64) against torch.autograd.gradcheck, ms")
    rows = [["", "time", "vs check"]]
    for key, label in gradients.CHECK_ROWS.items():
        if key in gc["seconds"]:
            sp = gc["seconds"][key]
            rows.append([label, _ms(sp), f"{sp['median'] / check:.3g}x"])
    lines += aligned(rows, rule=True, indent="  ")

    if "api" in r:
        a = r["api"]
        lines += ["", f"(f) the Python API against the command line: {a['preset']}, {a['epochs']} epochs, seconds "
                      f"per run ({r['settings']['lockstep_repeats']} repeat(s), each with its own thread choice)"]
        rows = [["", "time", "ratio", "goal"],
                ["run_lockstep(spec)", _ms(a["seconds"]["run_lockstep"], 1e-3), f"{a['ratio']:.3g}",
                 f"<= {a['goal']:g} {_met(a['met'])}"],
                ["the command line's run", _ms(a["seconds"]["command line"], 1e-3), "1", ""]]
        lines += aligned(rows, rule=True, indent="  ")
    if "cuda" in r:
        c = r["cuda"][0]
        lines += ["", f"(g) the torch side alone on {c['device']} ({c['name']}): the steps of (a), eager and replayed "
                      "from CUDA graphs (train's default on CUDA), interleaved"]
        rows = [["net", "dtype", "eager ms/step", "graph ms/step", "speedup", "samples/s eager", "samples/s graph",
                 "TFLOP/s graph", "goal"]]
        for e in r["cuda"]:
            sp, sm = e["seconds_per_step"], e["samples_per_s"]
            goal = f">= {e['goal']:g}x {_met(e['met'])}" if "goal" in e else ""
            rows.append([e["net"], e["dtype"], _ms(sp["eager"]), _ms(sp["graph"]), f"{e['graph_speedup']:.3g}x",
                         f"{sm['eager']:,.0f}", f"{sm['graph']:,.0f}", f"{e['tflop_per_s']['graph']:.3g}", goal])
        lines += aligned(rows, rule=True, indent="  ")
    else:
        lines += ["", "(g) the torch side on a GPU, eager and replayed from CUDA graphs: not measured in this run "
                      "(bench --device cuda adds it where CUDA is present)"]
    if "conv_steps" in r:
        lines += [""] + layers.table_lines(r["conv_steps"], repeats, _ms, _met)
    return "\n".join(lines)
