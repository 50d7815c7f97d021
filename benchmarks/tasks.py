"""The four sections of the benchmark. Each yields one record (a flat dict) per model, target and
seed.

* density: forward KL on sample-based 2-D targets; test NLL on fresh samples and its gap to the
  exact entropy;
* digits: forward KL on the 8x8 digits (fixed split, dequantised, logit first); test NLL and
  bits/dim;
* vi: reverse KL on the energies U1-U4 and sine; KL(q || p) with log Z from quadrature;
* cost: ms per training step (log_prob + backward + Adam, batch 512), seconds per 100k samples and
  per 100k log_prob, at several D.

Every model sees the same target samples, budget, optimiser (Adam 1e-3, no clipping) and seed.
"""

import torch

from common.bench import ms_per_training_step, seconds
from common.data import dequantize, load_digits_split
from common.layers import set_batch_norm_stats
from common.metrics import bits_per_dim, dataset_nll, nll_gap, reverse_kl
from common.runtime import seed_everything
from common.targets import get_target
from common.train import NonFiniteLoss, train_forward_kl, train_reverse_kl

from .models import WIDE_MAF, available, density_model, digits_models, parameters, vi_models

FAMILIES = ("MAF", "NSF-AR", "NSF-C", "coupling")
DENSITY_FAMILIES = (*FAMILIES, WIDE_MAF)  # NSF against the affine flow at equal size
LIBRARIES = ("ours", "zuko", "nflows", "normflows")


def _fit(record, train, flow, data, **settings):
    """``train(flow, data, **settings)``, quietly; ``record`` gains the flow's parameter count, the
    steps and the training seconds, or, on a non-finite loss, ``diverged``.

    A diverged model keeps its last finite weights and is still scored, as a user would see it.
    """
    record.update(params=parameters(flow), steps=settings["steps"])
    try:
        record["train_seconds"] = train(flow, data, progress=False, **settings)["seconds"]
    except NonFiniteLoss as error:
        record["diverged"] = str(error)


def everything(library, name):
    return True


def density(config, seeds, log, keep=everything):
    for name in config["targets"]:
        target = get_target(name)
        for seed in seeds:
            for family in DENSITY_FAMILIES:
                for library in filter(available, LIBRARIES):
                    if not keep(library, family):
                        continue
                    seed_everything(seed)
                    flow = density_model(library, family, 2)
                    if flow is None:
                        continue
                    record = dict(
                        section="density", target=name, family=family, library=library, seed=seed
                    )
                    _fit(
                        record,
                        train_forward_kl,
                        flow,
                        target,
                        steps=config["steps"],
                        batch_size=512,
                        lr=1e-3,
                    )
                    record.update(nll_gap(flow, target, n=config["n_test"]))
                    log(record, f"{name} seed {seed} {library} {family}: gap {record['gap']:.3f}")
                    yield record


def digits(config, seeds, log, keep=everything):
    # one fixed split; the seed changes initialisation, batches and dequantisation
    split = load_digits_split(0)
    # one dequantisation of the test set
    test = dequantize(split["test"], torch.Generator().manual_seed(0))
    for seed in seeds:
        for label, (library, build) in digits_models(
            config["hidden"], config.get("nsf_hidden")
        ).items():
            if not keep(library, label):
                continue
            seed_everything(seed)
            flow = build()
            record = dict(section="digits", model=label, library=library, seed=seed)
            _fit(
                record,
                train_forward_kl,
                flow,
                split["train"],
                steps=config["steps"],
                batch_size=128,
                lr=1e-3,
                val=split["val"],
                preprocess=dequantize,
            )
            if "MAF" in label and "batch norm" in label:
                # MAF paper, Appendix B: whole training set
                set_batch_norm_stats(flow, dequantize(split["train"]))
            record["nll"], record["stderr"] = dataset_nll(flow, test)
            record["bits_per_dim"] = bits_per_dim(record["nll"])
            log(record, f"digits seed {seed} {label}: {record['bits_per_dim']:.3f} bits/dim")
            yield record


def vi(config, seeds, log, keep=everything):
    models = vi_models(config["planar_layers"])
    for name in config["energies"]:
        energy = get_target(name)
        for seed in seeds:
            for label, (library, build) in models.items():
                if not keep(library, label):
                    continue
                seed_everything(seed)
                flow = build()
                record = dict(section="vi", energy=name, model=label, library=library, seed=seed)
                _fit(
                    record,
                    train_reverse_kl,
                    flow,
                    energy,
                    steps=config["steps"],
                    batch_size=256,
                    lr=1e-3,
                )
                if "train_seconds" in record:
                    record["ms_per_step"] = 1000 * record["train_seconds"] / config["steps"]
                record.update(reverse_kl(flow, energy, n=config["n_test"]))
                log(record, f"{name} seed {seed} {label}: KL {record['kl']:.3f}")
                yield record


def cost(config, seeds, log, keep=everything):
    """Timings in rounds (one per seed), every model in turn within a round, so that load from
    other processes hits all alike. Sampling and log_prob are timed on ``n`` points and scaled to
    100k (both are linear in n)."""
    n = config["n"]
    for seed in seeds:
        for features in config["dims"]:
            data = torch.randn(n, features)
            for family in (*FAMILIES, "IAF"):
                for library in filter(available, LIBRARIES):
                    if not keep(library, family):
                        continue
                    torch.manual_seed(seed)
                    flow = (
                        density_model(library, family, features)
                        if family != "IAF" or library == "ours"
                        else None
                    )
                    if flow is None:
                        continue
                    record = dict(
                        section="cost",
                        family=family,
                        library=library,
                        features=features,
                        seed=seed,
                        params=parameters(flow),
                    )
                    record["ms_per_step"] = ms_per_training_step(
                        flow.log_prob,
                        flow.parameters(),
                        lambda features=features: torch.randn(512, features),
                        steps=config["steps"],
                        warmup=3,
                    )
                    if library in config["sample_libraries"]:
                        flow.eval()
                        flow.sample(8), flow.log_prob(data[:8])  # warm-up: first calls allocate
                        record["sample_s_per_100k"] = (
                            seconds(lambda flow=flow: flow.sample(n), repeat=1) * 100_000 / n
                        )
                        record["log_prob_s_per_100k"] = (
                            seconds(lambda flow=flow, data=data: flow.log_prob(data), repeat=1)
                            * 100_000
                            / n
                        )
                    log(
                        record,
                        f"cost D={features} seed {seed} {library} {family}: "
                        f"{record['ms_per_step']:.2f} ms",
                    )
                    yield record


SECTIONS = {"density": density, "digits": digits, "vi": vi, "cost": cost}
