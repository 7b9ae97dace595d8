"""How long a full gradient check of the 784-16-16-10 network takes, beside torch.autograd.gradcheck.

The measurement is compare.bench.gradients.check_vs_gradcheck (table (e) of
``backprop-oracle bench``): the 13,002-parameter network, sigmoid hidden layers, logits out,
cross-entropy, a batch of 4, one CPU thread; medians over interleaved repeats (the full
gradcheck: a single run).

    python benchmarks/bench_check.py            # about 15 s
    python benchmarks/bench_check.py --no-full  # without the full gradcheck
"""
import argparse

import torch

from backprop_oracle.compare.bench.gradients import CHECK_ROWS, CHECK_SIZES, check_vs_gradcheck


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--no-full", action="store_true", help="skip the full gradcheck (about 6-10 s)")
    parser.add_argument("--repeats", type=int, default=50)
    args = parser.parse_args()
    torch.set_num_threads(1)
    r = check_vs_gradcheck(args.repeats, full=not args.no_full)
    check = r["seconds"]["check"]["median"]
    print(f"{'-'.join(map(str, CHECK_SIZES))} network, {r['parameters']:,} parameters, batch {r['batch']}, float64, "
          f"torch {torch.__version__}, 1 CPU thread")
    print(f"{'':52} {'median':>10} {'vs check':>10}")
    for key, name in CHECK_ROWS.items():
        if key in r["seconds"]:
            seconds = r["seconds"][key]["median"]
            print(f"{name:52} {seconds * 1e3:8.2f} ms {seconds / check:9.1f}x")
    print(f"\ncheck_network is {r['fast_mode_over_check']:.1f}x faster than gradcheck's fast_mode"
          + ("" if args.no_full else f" and {r['full_over_check']:,.0f}x faster than full gradcheck")
          + f", and costs {r['check_over_torch_pass']:.1f} torch forward+backward passes.")


if __name__ == "__main__":
    main()
