"""Milliseconds per training step of NSF against zuko's NSF at equal architecture.

5 autoregressive rational-quadratic transforms, 8 bins, bound 5, MADE 2 x 64, order reversed between
transforms, batch 512, one thread (as in shared/reference/peers.md); a step is log_prob + backward + Adam,
median of ``--steps`` after a warm-up. zuko is optional: ``pip install zuko==1.6.0`` to compare.
The two models are timed in alternating rounds so that a busy machine slows both alike.

    python -m nsf.benchmark [--steps 200] [--features 2 8] [--rounds 3]
"""

import argparse
import statistics

import torch

from common.bench import ms_per_training_step
from nsf import NSF


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--steps", type=int, default=200, help="timed steps per round (median reported)")
    parser.add_argument("--features", type=int, nargs="+", default=[2, 8], help="data dimensions D")
    parser.add_argument("--batch", type=int, default=512)
    parser.add_argument("--rounds", type=int, default=3, help="alternating rounds; the median round is reported")
    parser.add_argument("--coupling", action="store_true", help="time NSF-C against zuko's NSF(passes=2)")
    args = parser.parse_args()
    torch.set_num_threads(1)
    try:
        import zuko
    except ImportError:
        zuko = None
        print("zuko is not installed: timing this repository only (pip install zuko==1.6.0 to compare)")
    kind = "coupling" if args.coupling else "autoregressive"
    print(f"NSF ({kind}), 5 transforms, 8 bins, MADE/MLP 2 x 64, batch {args.batch}, 1 thread")
    print(f"{'D':>3} {'params':>7} {'NSF ms/step':>12} {'zuko ms/step':>13} {'ratio':>6}")
    for d in args.features:
        torch.manual_seed(0)
        sample = lambda: torch.randn(args.batch, d)
        ours = NSF(d, transforms=5, hidden_features=(64, 64), coupling=args.coupling)
        params = sum(p.numel() for p in ours.parameters())
        peer = None
        if zuko is not None:
            peer = zuko.flows.NSF(d, transforms=5, hidden_features=(64, 64), **({"passes": 2} if args.coupling else {}))
        mine, theirs = [], []
        for _ in range(args.rounds):
            mine.append(ms_per_training_step(ours.log_prob, ours.parameters(), sample, steps=args.steps))
            if peer is not None:
                theirs.append(ms_per_training_step(lambda x: peer().log_prob(x), peer.parameters(), sample,
                                                   steps=args.steps))
        ms = statistics.median(mine)
        if peer is None:
            print(f"{d:>3} {params:>7} {ms:>12.2f}")
            continue
        ms_peer = statistics.median(theirs)
        print(f"{d:>3} {params:>7} {ms:>12.2f} {ms_peer:>13.2f} {ms / ms_peer:>6.2f}")


if __name__ == "__main__":
    main()
