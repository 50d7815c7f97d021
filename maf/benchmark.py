"""Speed of this MAF against zuko's (a script, not a test: timings are not assertions).

    python -m maf.benchmark            # D = 2, 8, 64
    python -m maf.benchmark --quick    # D = 2, 8 and fewer points

Same architecture on both sides: 5 affine autoregressive layers, MADE 2 x 64 with ReLU, order reversed between
layers, standard-normal base (equal parameter counts, printed). One thread, as in the peers' measurements.
Reported: ms per training step (batch 512: log_prob, backward, Adam; drawing the batch not timed), seconds for
log_prob of 100k points (one MADE pass per layer) and for 100k samples (D MADE passes per layer).
Ratio = zuko / ours: above 1 means this implementation is faster. zuko is optional (pip install zuko==1.6.0).
"""

import argparse

import torch

from common.bench import ms_per_training_step, seconds
from maf import MAF


def measure(log_prob, sample, params, features, n, repeat):
    data = torch.randn(n, features)
    return {
        "train ms/step": ms_per_training_step(log_prob, params, lambda: torch.randn(512, features)),
        "log_prob s": seconds(lambda: log_prob(data), repeat),
        "sample s": seconds(lambda: sample(n), repeat if features < 64 else 1),
    }


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="D = 2, 8 only, 10k points")
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
    print(f"{'D':>3} {'params':>7} {'':>14} {'ours':>9} {'zuko':>9} {'zuko/ours':>9}")
    for features in (2, 8) if args.quick else (2, 8, 64):
        torch.manual_seed(0)
        ours = MAF(features, transforms=5, hidden_features=(64, 64))
        rows = measure(ours.log_prob, ours.sample, ours.parameters(), features, n, repeat=3)
        theirs = {}
        if zuko is not None:
            flow = zuko.flows.MAF(features, 0, transforms=5, hidden_features=(64, 64))
            assert sum(p.numel() for p in flow.parameters()) == sum(p.numel() for p in ours.parameters())
            theirs = measure(lambda x: flow().log_prob(x), lambda k: flow().sample((k,)), flow.parameters(),
                             features, n, repeat=3)
        for i, (name, value) in enumerate(rows.items()):
            head = f"{features:>3} {sum(p.numel() for p in ours.parameters()):>7}" if i == 0 else " " * 11
            other = f"{theirs[name]:9.3f} {theirs[name] / value:9.2f}" if theirs else ""
            print(f"{head} {name:>14} {value:9.3f} {other}")


if __name__ == "__main__":
    main()
