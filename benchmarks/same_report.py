"""Whether two JSON reports of ``backprop-oracle run --json`` hold the same numbers, bit for bit.

A change that makes the lockstep faster must not change what it finds: every cost on both sides,
every maximum difference, every verdict, every accuracy. Only the wall-clock fields ("seconds")
may differ. Prints each value that differs, with its path, and exits 1 if any does.

    backprop-oracle run all --json before.json ...   # on the old code
    backprop-oracle run all --json after.json ...    # on the new code
    python benchmarks/same_report.py before.json after.json
"""
import json
import sys

TIMINGS = {"seconds"}


def differences(a, b, path="$"):
    """The (path, a, b) of every leaf that differs (floats compared exactly, NaN equal to NaN)."""
    if isinstance(a, dict) and isinstance(b, dict):
        out = [(f"{path}.{k}", a.get(k, "<missing>"), b.get(k, "<missing>"))
               for k in sorted(set(a) ^ set(b))]
        for k in sorted(set(a) & set(b) - TIMINGS):
            out += differences(a[k], b[k], f"{path}.{k}")
        return out
    if isinstance(a, list) and isinstance(b, list):
        if len(a) != len(b):
            return [(f"{path}[len]", len(a), len(b))]
        return [d for i, (x, y) in enumerate(zip(a, b)) for d in differences(x, y, f"{path}[{i}]")]
    same = a == b or (isinstance(a, float) and isinstance(b, float) and a != a and b != b)
    return [] if same and type(a) is type(b) else [(path, a, b)]


def leaves(x):
    if isinstance(x, dict):
        return sum(leaves(v) for k, v in x.items() if k not in TIMINGS)
    if isinstance(x, list):
        return sum(leaves(v) for v in x)
    return 1


def main(argv):
    if len(argv) != 2:
        print(__doc__)
        return 2
    with open(argv[0]) as f:
        a = json.load(f)
    with open(argv[1]) as f:
        b = json.load(f)
    found = differences(a, b)
    for path, x, y in found[:50]:
        print(f"{path}: {x!r} vs {y!r}")
    print(f"{len(found)} of {leaves(a)} values differ" + ("" if found else ": the same numbers, bit for bit"))
    return 1 if found else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
