"""Amortised planar flows in a VAE on binarised 8x8 digits: the experiment of Rezende & Mohamed
(2015, Sec. 6.2).

    python -m planar_flows.vae          # diagonal Gaussian and planar K = 2, 8, 16, 3 seeds each
    python -m planar_flows.vae --quick  # the same in seconds (or FLOWS_FAST=1)
    python -m planar_flows.vae --K 2 8 32 --seeds 5 --steps 8000

The encoder outputs q_0 = N(mu, diag sigma^2) and a context h; each of the K planar layers gets its
own u, w, b for every data point from h (the amortised layer of Sec. 4, ``Planar(latent,
context=C)``), and z_K = f_K(... f_1(z_0)) with log q_K = log q_0 - sum_k log|1 + u_k^T
psi_k(z_{k-1})| (Eq. 13). Every posterior gets the same steps, batch, learning rate and seeds; the
table gives test ELBO and the importance-weighted log p(x) in nats (the paper's Table 2 reports
-log p(x) on binarised MNIST: 89.9 for the diagonal Gaussian, down to 85.1 with K = 80).
"""

from common.cli import positive, run
from common.flows import Compose
from common.vae_experiment import compare, parse_args

from .planar import Planar


def main(argv=None):
    args = parse_args(
        "planar_flows.vae",
        __doc__,
        argv,
        extra=[
            ("--K", dict(nargs="+", type=positive, default=[2, 8, 16], help="planar flow lengths"))
        ],
    )

    def planar(K):
        return lambda: Compose(*[Planar(args.latent, context=args.context) for _ in range(K)])

    return compare(
        {"diagonal Gaussian": None, **{f"planar K = {K}": planar(K) for K in args.K}}, args
    )


if __name__ == "__main__":
    run(main)
