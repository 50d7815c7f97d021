"""The experiment both ``vae`` scripts run (``python -m planar_flows.vae``, ``python -m iaf.vae``):
``parse_args`` (their shared flags on the ``common.cli`` skeleton) and ``compare``, which trains a
VAE (``common.vae``) per posterior and seed with equal budgets and prints one table of test ELBO and
importance-weighted log p(x).
"""

import os
import re
import sys

import torch

from common.cli import demo_parser, fit, parse_demo_args, positive, positive_float
from common.metrics import count_parameters
from common.report import markdown_table
from common.runtime import seed_everything
from common.vae import VAE, binarized_digits, evaluate, train_vae

FULL = {"seeds": 3, "steps": 5000, "k": 1024}
QUICK = {"seeds": 2, "steps": 150, "k": 64}  # --quick or FLOWS_FAST=1: seconds


def parse_args(prog, description, argv=None, extra=()):
    """The options both ``vae`` scripts share (on the ``common.cli`` skeleton), plus ``extra``
    (flag, argparse kwargs) pairs; --seeds, --steps and --k default to FULL, or QUICK with
    --quick."""
    parser = demo_parser(description, prog.removeprefix("python -m "))
    parser.add_argument(
        "--seeds", type=positive, help="seeds per posterior, seed, seed + 1, ... (default 3)"
    )
    parser.add_argument(
        "--steps", type=positive, help="Adam steps per model, the same for every posterior (5000)"
    )
    parser.add_argument("--batch", type=positive, default=100)
    parser.add_argument("--lr", type=positive_float, default=1e-3)
    parser.add_argument("--latent", type=positive, default=8, help="size of z")
    parser.add_argument(
        "--hidden", type=positive, default=128, help="width of the encoder's and decoder's 2 layers"
    )
    parser.add_argument(
        "--context", type=positive, default=32, help="size of h, the encoder's context for the flow"
    )
    parser.add_argument(
        "--k", type=positive, help="importance samples per test point for log p(x) (1024)"
    )
    for flag, kwargs in extra:
        parser.add_argument(flag, **kwargs)
    return parse_demo_args(parser, argv, FULL, QUICK)


COLUMNS = ("posterior", "test ELBO", "test log p(x), k = {k}", "gap", "parameters", "s / run")


def table_row(row):
    """The cells of one row of the table ``compare`` prints and writes."""
    return [
        row["posterior"],
        f"{row['elbo']:.2f} ± {row['elbo_sd']:.2f}",
        f"{row['iw']:.2f} ± {row['iw_sd']:.2f}",
        f"{row['gap']:.2f}",
        f"{row['parameters']:,}",
        f"{row['seconds']:.0f}",
    ]


def compare(posteriors, args):
    """Train a VAE per posterior and seed (same steps, batch, lr, seeds) and print a table of test
    ELBO and importance-weighted log p(x) in nats, mean ± standard deviation over seeds (also
    written to ``args.out``/table.md).

    ``posteriors``: name -> None (diagonal Gaussian) or a function returning a fresh posterior
    Transform that takes a context of size ``args.context``. Returns the rows as a list of dicts.
    """
    data = {name: x.to(args.device) for name, x in binarized_digits().items()}
    seeds = list(range(args.seed, args.seed + args.seeds))
    print(
        f"Binarised 8x8 digits (pixel > 8): train {len(data['train'])}, val {len(data['val'])}, "
        f"test {len(data['test'])}. VAE: latent {args.latent}, MLPs 2 x {args.hidden}, "
        "Bernoulli decoder."
    )
    print(
        f"Each posterior: {args.steps} Adam steps (lr {args.lr}, batch {args.batch}), weights with "
        f"the best validation ELBO kept, seeds {seeds}.\nTest ELBO and importance-weighted "
        "log p(x) "
        f"(k = {args.k}) in nats per image, mean ± sd over seeds; gap = log p(x) - ELBO.\n"
    )
    header = [c.format(k=args.k) for c in COLUMNS]
    print(markdown_table(header, []), flush=True)
    rows = []
    for name, make in posteriors.items():
        elbos, iws, seconds = [], [], []
        for seed in seeds:
            print(f"  {name}, seed {seed}", file=sys.stderr)
            seed_everything(seed)
            flow = None if make is None else make()
            vae = VAE(
                data["train"].shape[1],
                args.latent,
                (args.hidden, args.hidden),
                0 if flow is None else args.context,
                flow,
            ).to(args.device)
            label = re.sub(r"\W+", "_", name.lower()).strip("_")  # "planar K = 8" -> planar_k_8
            history = fit(
                args,
                f"vae_{label}_seed{seed}",
                train_vae,
                vae,
                data["train"],
                data["val"],
                args.steps,
                args.batch,
                args.lr,
            )
            result = evaluate(vae, data["test"], k=args.k)
            elbos.append(result["elbo"].mean())
            iws.append(result["iw"].mean())
            seconds.append(history["seconds"])
        elbo, iw = torch.tensor(elbos, dtype=torch.float64), torch.tensor(iws, dtype=torch.float64)
        sd = (lambda t: t.std().item()) if len(seeds) > 1 else (lambda t: 0.0)
        row = dict(
            posterior=name,
            elbo=elbo.mean().item(),
            elbo_sd=sd(elbo),
            iw=iw.mean().item(),
            iw_sd=sd(iw),
            gap=(iw - elbo).mean().item(),
            parameters=count_parameters(vae),
            seconds=sum(seconds) / len(seconds),
        )
        rows.append(row)
        print(markdown_table(header, [table_row(row)]).splitlines()[-1], flush=True)
    with open(os.path.join(args.out, "table.md"), "w") as f:
        f.write(markdown_table(header, [table_row(r) for r in rows]) + "\n")
    return rows
