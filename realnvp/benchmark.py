"""Milliseconds per training step of RealNVP against zuko's coupling flow at equal architecture.

8 affine couplings with alternating masks, MLP 2 x 64, batch 512, 2-D data, one thread (as in
shared/reference/peers.md). zuko is optional: ``pip install zuko==1.6.0`` to compare.

    python -m realnvp.benchmark [--steps 200] [--features 2 8]
"""

import argparse

import torch

from common.bench import ms_per_training_step
from realnvp import RealNVP


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--steps", type=int, default=200, help="timed steps (median reported)")
    parser.add_argument("--features", type=int, nargs="+", default=[2, 8], help="data dimensions D")
    parser.add_argument("--batch", type=int, default=512)
    args = parser.parse_args()
    torch.set_num_threads(1)
    try:
        import zuko
    except ImportError:
        zuko = None
        print("zuko is not installed: timing this repository only (pip install zuko==1.6.0 to compare)")
    print(f"{'D':>3} {'RealNVP ms/step':>16} {'zuko ms/step':>13} {'ratio':>6}")
    for d in args.features:
        torch.manual_seed(0)
        sample = lambda: torch.randn(args.batch, d)
        ours = RealNVP(d, transforms=8, hidden_features=(64, 64))
        ms = ms_per_training_step(ours.log_prob, ours.parameters(), sample, steps=args.steps)
        if zuko is None:
            print(f"{d:>3} {ms:>16.2f}")
            continue
        peer = zuko.flows.RealNVP(d, transforms=8, hidden_features=(64, 64))
        ms_peer = ms_per_training_step(lambda x: peer().log_prob(x), peer.parameters(), sample, steps=args.steps)
        print(f"{d:>3} {ms:>16.2f} {ms_peer:>13.2f} {ms / ms_peer:>6.2f}")


if __name__ == "__main__":
    main()
