"""The trained checkpoints the notebooks load in fast mode (``<folder>/checkpoints/*.pt``).

Each was written by a demo's own command with ``--save`` (the folder READMEs give the commands).
Every one must load into the model today's code builds (``load_checkpoint``: weights_only=True,
builder record, keys, shapes and dtypes checked) and reproduce the number the demo printed and the
READMEs state, within three combined standard errors of the two estimates (an untrained or wrong
model misses by tens of standard errors). The shipped files stay under 2.5 MB in all.
"""

import math
from pathlib import Path

import pytest
import torch

from common.checkpoint import load_checkpoint
from common.data import dequantize, load_digits_split
from common.flows import Compose, Flow, Inverse
from common.metrics import bits_per_dim, dataset_nll, nll_gap, reverse_kl
from common.runtime import seed_everything
from common.targets import get_target
from common.vae import VAE, binarized_digits, evaluate
from iaf import IAF
from maf import MAF
from nsf import NSF
from planar_flows import Planar, PlanarFlow
from realnvp import RealNVP, RealNVPImage

ROOT = Path(__file__).resolve().parents[1]
N = 50_000  # samples per estimate


def inverted_nsf():
    return Flow(Inverse(NSF(2, transforms=3, hidden_features=(64, 64)).transform), features=2)


# (file, model builder, "gap" on a sample target or "kl" on an energy, target, stated value, its
# standard error), the values as printed by the command that wrote the file
PLANAR = {  # python -m planar_flows --kind planar --save
    ("U1", 2): (0.776, 0.007), ("U1", 8): (0.090, 0.002), ("U1", 32): (0.035, 0.001),
    ("U2", 2): (0.448, 0.004), ("U2", 8): (0.220, 0.002), ("U2", 32): (0.025, 0.001),
    ("U3", 2): (1.137, 0.006), ("U3", 8): (0.403, 0.003), ("U3", 32): (0.166, 0.002),
    ("U4", 2): (0.633, 0.005), ("U4", 8): (0.420, 0.002), ("U4", 32): (0.228, 0.002),
}  # fmt: skip
CASES = [
    (f"planar_flows/checkpoints/planar_{name}_K{k}.pt", lambda k=k: PlanarFlow(2, transforms=k),
     "kl", name, *value)
    for (name, k), value in PLANAR.items()
] + [
    ("iaf/checkpoints/energy_U2.pt", lambda: IAF(2), "kl", "U2", 0.0949, 0.0012),
    ("iaf/checkpoints/energy_sine.pt", lambda: IAF(2), "kl", "sine", 0.1927, 0.0019),
    ("maf/checkpoints/banana_made_x1_first.pt", lambda: MAF(2, transforms=1), "gap", "banana",
     0.3416, 0.0054),
    ("maf/checkpoints/banana_maf5.pt", lambda: MAF(2, transforms=5), "gap", "banana", 0.0016,
     0.0032),
    ("nsf/checkpoints/checker_nsf_ar.pt", lambda: NSF(2, 5, (64, 64)), "gap", "checker", 0.1345,
     0.0012),
    ("nsf/checkpoints/checker_nsf_c.pt", lambda: NSF(2, 5, (64, 64), coupling=True), "gap",
     "checker", 0.1585, 0.0015),
    ("nsf/checkpoints/sine.pt", inverted_nsf, "kl", "sine", 0.0201, 0.0031),
    ("realnvp/checkpoints/ua_nb.pt", lambda: RealNVP(2, transforms=8, hidden_features=(64, 64)),
     "gap", "ua_nb", 0.0249, 0.0023),
    ("intro/checkpoints/gauss8.pt", lambda: RealNVP(2, transforms=8, hidden_features=(64, 64)),
     "gap", "gauss8", 0.1873, 0.0031),
]  # fmt: skip


@pytest.mark.parametrize("path, build, metric, target, stated, stderr", CASES, ids=lambda c: c)
def test_checkpoint_reproduces_its_number(path, build, metric, target, stated, stderr):
    flow = build()
    load_checkpoint(flow, ROOT / path)
    flow.eval()
    seed_everything(0)
    with torch.no_grad():
        if metric == "kl":
            result = reverse_kl(flow, get_target(target), n=N)
            value = result["kl"]
        else:
            result = nll_gap(flow, get_target(target), n=N)
            value = result["gap"]
    tolerance = 3 * math.hypot(stderr, result["stderr"])
    assert abs(value - stated) < tolerance, (
        f"{path}: {metric} {value:.4f} ± {result['stderr']:.4f}, the README states {stated} ± "
        f"{stderr} (tolerance {tolerance:.4f}): regenerate the checkpoint or the stated number"
    )


def test_realnvp_digits_checkpoint_reproduces_its_bits_per_dim():
    # python -m realnvp --data digits --save: test bits/dim 2.064 ± 0.013
    flow = RealNVPImage(shape=(1, 8, 8), scales=2, hidden_channels=32)
    load_checkpoint(flow, ROOT / "realnvp/checkpoints/digits.pt")
    flow.eval()
    test = dequantize(load_digits_split(seed=0)["test"], torch.Generator().manual_seed(2))
    with torch.no_grad():
        nll, stderr = dataset_nll(flow, test)
    assert abs(bits_per_dim(nll) - 2.064) < 0.013, f"bits/dim {bits_per_dim(nll):.4f}, stated 2.064"


# python -m planar_flows.vae --K 8 --seeds 1 --save: test ELBO and log p(x) (k = 1024, nats per
# image) of seed 0, the VAEs of planar_flows/tutorial.py's fast mode
VAES = {
    "planar_flows/checkpoints/vae_diagonal_gaussian_seed0.pt": (0, -18.004, -16.914),
    "planar_flows/checkpoints/vae_planar_k_8_seed0.pt": (8, -17.896, -16.956),
}


def test_vae_checkpoints_reproduce_their_bounds_and_the_flow_raises_the_elbo():
    digits, elbos = binarized_digits(), {}
    for path, (K, stated_elbo, stated_iw) in VAES.items():
        posterior = Compose(*[Planar(8, context=32) for _ in range(K)]) if K else None
        vae = VAE(64, 8, (128, 128), 32 if K else 0, posterior)
        load_checkpoint(vae, ROOT / path)
        seed_everything(0)
        result = evaluate(vae, digits["test"], k=1024)
        elbo, iw = result["elbo"].mean(), result["iw"].mean()
        # the test set is fixed: only the k samples of q vary, by about 0.005 nats (ELBO) and 0.01
        # (log p(x)) between seeds; an untrained VAE is tens of nats off
        assert abs(elbo - stated_elbo) < 0.03, f"{path}: ELBO {elbo:.3f}, stated {stated_elbo}"
        assert abs(iw - stated_iw) < 0.05, f"{path}: log p(x) {iw:.3f}, stated {stated_iw}"
        elbos[K] = elbo
    assert elbos[8] > elbos[0], f"planar K = 8 ELBO {elbos[8]:.3f} <= the Gaussian's {elbos[0]:.3f}"


def test_every_shipped_checkpoint_is_tested_and_all_are_small():
    shipped = sorted(str(p.relative_to(ROOT)) for p in ROOT.glob("*/checkpoints/*.pt"))
    tested = sorted([case[0] for case in CASES] + ["realnvp/checkpoints/digits.pt", *VAES])
    assert shipped == tested, f"untested or missing checkpoints: {set(shipped) ^ set(tested)}"
    total = sum((ROOT / p).stat().st_size for p in shipped)
    assert total < 2_500_000, f"the checkpoints take {total:,} bytes, more than 2.5 MB"
