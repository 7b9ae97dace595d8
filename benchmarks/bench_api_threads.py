"""run_lockstep from Python against the same run on the machine's default thread counts.

run_lockstep runs torch and NumPy's BLAS on one thread each, as the command line does
(compare.interactive.threads.single_threaded); before, a call from Python ran on the defaults
(every core), and on a busy machine the idle threads' hand-overs made each step many times slower.
Both variants run the same preset in turn (interleaved, so that the machine's load falls on both
alike), ``--repeats`` times; the table gives each one's median and spread, and the ratio.

    python benchmarks/bench_api_threads.py                 # spiral, 5 repeats
    python benchmarks/bench_api_threads.py --preset moons --repeats 9
"""
import argparse
import statistics
import time

import torch

from backprop_oracle.compare.experiments.presets import PRESETS
from backprop_oracle.compare.lockstep.run import LockstepRun, run_lockstep


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--preset", default="spiral")
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    preset = PRESETS[args.preset]
    spec = next(iter(preset.runs.values()))
    variants = {f"default threads (torch {torch.get_num_threads()})": lambda: LockstepRun(spec).run(),
                "run_lockstep (one thread)": lambda: run_lockstep(spec, progress=False)}
    times = {name: [] for name in variants}
    for name, fn in variants.items():      # warm up: imports, first allocations
        fn()
    for _ in range(args.repeats):
        for name, fn in variants.items():
            start = time.perf_counter()
            assert fn().passed
            times[name].append(time.perf_counter() - start)
    print(f"{args.preset}: {args.repeats} interleaved repeats of each")
    for name, ts in times.items():
        print(f"  {name:<28} median {statistics.median(ts):7.3f} s   min {min(ts):7.3f}   max {max(ts):7.3f}")
    slow, fast = (statistics.median(ts) for ts in times.values())
    print(f"  ratio default / run_lockstep: {slow / fast:.2f}x")


if __name__ == "__main__":
    main()
