"""Speed of this MAF against zuko's (a script, not a test: timings are not assertions).

    python -m maf.benchmark            # D = 2, 8, 64
    python -m maf.benchmark --quick    # D = 2, 8 and fewer points

Same architecture on both sides: 5 affine autoregressive layers, MADE 2 x 64 with ReLU, order reversed between
layers, standard-normal base (equal parameter counts, printed). One thread, as in the peers' measurements.
Reported: ms per training step (batch 512: log_prob, backward, Adam; drawing the batch not timed), seconds for
log_prob of 100k points (one MADE pass per layer) and for 100k samples (D MADE passes per layer). The two
implementations are measured in turn, several rounds, keeping each one's best (the machine may be shared).
Ratio = ours / zuko: below 1 means this implementation is faster. zuko is optional (pip install zuko==1.6.0).
"""

import argparse

import torch

from common.bench import ms_per_training_step, seconds
from maf import MAF


def measure(log_prob, sample, params, features, n):
    data = torch.randn(n, features)
    return {
        "train ms/step": ms_per_training_step(log_prob, params, lambda: torch.randn(512, features)),
        "log_prob s": seconds(lambda: log_prob(data), repeat=3),
        "sample s": seconds(lambda: sample(n), repeat=3 if features < 64 else 1),
    }


def best(rounds, candidates):
    """Measure the candidates in turn, ``rounds`` times (so load from other processes hits both alike),
    and keep each one's best time per quantity."""
    results = {name: {} for name in candidates}
    for _ in range(rounds):
        for name, args in candidates.items():
            for key, value in measure(*args).items():
                results[name][key] = min(value, results[name].get(key, float("inf")))
    return results


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="D = 2, 8 only, 10k points")
    parser.add_argument("--rounds", type=int, default=3, help="alternating rounds; the best of each is kept")
    args = parser.parse_args()
    torch.set_num_threads(1)
    try:
        import zuko
    except ImportError:
        zuko = None
        print("zuko is not installed (pip install zuko==1.6.0): timing this MAF alone")
    n = 10_000 if args.quick else 100_000
    print(f"torch {torch.__version__}, 1 thread, {n} points for log_prob and sample"
          + (f", zuko {zuko.__version__}" if zuko else ""))
    print(f"{'D':>3} {'params':>7} {'':>14} {'ours':>9} {'zuko':>9} {'ours/zuko':>9}")
    for features in (2, 8) if args.quick else (2, 8, 64):
        torch.manual_seed(0)
        ours = MAF(features, transforms=5, hidden_features=(64, 64))
        candidates = {"ours": (ours.log_prob, ours.sample, list(ours.parameters()), features, n)}
        if zuko is not None:
            flow = zuko.flows.MAF(features, 0, transforms=5, hidden_features=(64, 64))
            assert sum(p.numel() for p in flow.parameters()) == sum(p.numel() for p in ours.parameters())
            candidates["zuko"] = (lambda x: flow().log_prob(x), lambda k: flow().sample((k,)),
                                  list(flow.parameters()), features, n)
        results = best(args.rounds if features < 64 else 1, candidates)
        for i, (name, value) in enumerate(results["ours"].items()):
            head = f"{features:>3} {sum(p.numel() for p in ours.parameters()):>7}" if i == 0 else " " * 11
            theirs = results.get("zuko", {}).get(name)
            other = f"{theirs:9.3f} {value / theirs:9.2f}" if theirs else ""
            print(f"{head} {name:>14} {value:9.3f} {other}", flush=True)

if __name__ == "__main__":
    main()
