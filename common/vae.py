"""A small variational autoencoder whose approximate posterior is pluggable: the experiment both
flow papers run.

Rezende & Mohamed (2015, Sec. 4) and Kingma et al. (2016, Sec. 3 and 5) improve the approximate
posterior q(z | x) of a VAE (Kingma & Welling 2014) with a normalizing flow. What they share lives
here; the flows live in their paper folders and are passed in:

* encoder: an MLP x -> (mu, log sigma, h): a diagonal Gaussian q_0(z_0 | x) and a context vector h;
* posterior: ``None`` (q = q_0) or a Transform whose ``inverse`` (the sampling direction of this
  repository's contract, noise -> data) maps z_0 to z_K given h, so that log q_K(z_K | x) = log
  q_0(z_0 | x) - ladj;
* decoder: an MLP z -> 64 Bernoulli logits, p(x | z); prior p(z) = N(0, I);
* ELBO  E_q[log p(x, z) - log q(z | x)]  and the importance-weighted estimate of the marginal
  likelihood, log p(x) >= log (1/k) sum_j p(x, z_j) / q(z_j | x), z_j ~ q (Burda et al. 2016): it
  rises with k and reaches log p(x) as k -> infinity; the papers report it with k = 128 (IAF) and
  more.

Data: ``binarized_digits()``, scikit-learn's 8 x 8 digits with the fixed split of ``common.data``
and the fixed threshold binarisation ``common.data.binarize`` (pixel > 8 of 16). The experiment both
``vae`` scripts run (flags, seeds, the table) is ``common.vae_experiment``.
"""

import math

import torch
import torch.nn.functional as F
from torch import nn

from common.checks import check_input
from common.data import binarize, load_digits_split
from common.flows import StandardNormal
from common.nets import MLP
from common.train import TrainingRun, batches


def binarized_digits(seed=0):
    """The digits' train / val / test split (1257 / 180 / 360 images), each pixel 1.0 if its value
    is > 8."""
    split = load_digits_split(seed)
    return {name: binarize(split[name]) for name in ("train", "val", "test")}


class VAE(nn.Module):
    """Encoder MLP -> q_0 = N(mu, diag sigma^2) and context h; optional flow ``posterior``;
    Bernoulli decoder MLP.

    Args:
        data_features: pixels per image (64).
        latent_features: size of z.
        hidden_features: hidden sizes of the encoder (the decoder uses them reversed).
        context_features: size of h, the encoder's extra output fed to the posterior flow (0
            without flow).
        posterior: None or a Transform with ``inverse(z_0, context=h) -> (z_K, log|det
            dz_K/dz_0|)``.
    """

    def __init__(
        self,
        data_features=64,
        latent_features=8,
        hidden_features=(128, 128),
        context_features=0,
        posterior=None,
    ):
        super().__init__()
        for name, value in (("data_features", data_features), ("latent_features", latent_features)):
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"{name} must be an integer >= 1, got {value!r}")
        if posterior is None and context_features:
            raise ValueError(
                f"context_features={context_features} feeds a posterior flow, but posterior is None"
            )
        self.data_features, self.latent_features, self.context_features = (
            data_features,
            latent_features,
            context_features,
        )
        self.encoder = MLP(data_features, 2 * latent_features + context_features, hidden_features)
        self.decoder = MLP(latent_features, data_features, tuple(hidden_features)[::-1])
        self.posterior = posterior
        self.prior = StandardNormal(latent_features)

    def encode(self, x):
        """x (batch, P) -> mu, log sigma (batch, D) and h (batch, C)."""
        return self.encoder(x).split(
            [self.latent_features, self.latent_features, self.context_features], dim=-1
        )

    def sample_posterior(self, x, k=1):
        """k reparameterised samples z ~ q(z | x) per point, (k, batch, D), and log q(z | x),
        (k, batch)."""
        mu, log_sigma, h = self.encode(x)
        eps = torch.randn(k, *mu.shape, dtype=mu.dtype, device=mu.device)
        z = mu + log_sigma.exp() * eps  # z_0 = mu + sigma * eps (Kingma & Welling 2014)
        log_q = (-0.5 * eps**2 - log_sigma - 0.5 * math.log(2 * math.pi)).sum(
            -1
        )  # log N(z_0; mu, sigma^2)
        if (
            self.posterior is not None
        ):  # z_K = f_K(... f_1(z_0)), log q_K = log q_0 - sum log|det df/dz| (Eq. 13)
            zk, ladj = self.posterior.inverse(
                z.flatten(0, 1), h.repeat(k, 1) if self.context_features else None
            )
            z, log_q = zk.view_as(z), log_q - ladj.view(k, -1)
        return z, log_q

    def log_likelihood(self, x, z):
        """log p(x | z) of the Bernoulli decoder: x (batch, P), z (k, batch, D) -> (k, batch)."""
        logits = self.decoder(z)
        return -F.binary_cross_entropy_with_logits(
            logits, x.expand_as(logits), reduction="none"
        ).sum(-1)

    def log_weights(self, x, k=1):
        """log p(x, z_j) - log q(z_j | x) for k samples z_j ~ q(z | x) per point: (k, batch)."""
        check_input(x, self.data_features, next(self.parameters()).dtype)
        z, log_q = self.sample_posterior(x, k)
        return self.log_likelihood(x, z) + self.prior.log_prob(z) - log_q

    def elbo(self, x, k=1):
        """The evidence lower bound E_q[log p(x, z) - log q(z | x)], averaged over k samples:
        (batch,)."""
        return self.log_weights(x, k).mean(0)

    def iw_log_px(self, x, k):
        """Importance-weighted log p(x) >= log (1/k) sum_j w_j (Burda et al. 2016): (batch,)."""
        return torch.logsumexp(self.log_weights(x, k), 0) - math.log(k)


@torch.no_grad()
def evaluate(vae, x, k=256, rows=16384):
    """Per-point ELBO and importance-weighted log p(x), (n,) each, from the SAME k samples per
    point.

    Computed in chunks of about ``rows`` = k * points decoder rows. Returns a dict of numpy arrays.
    """
    vae.eval()
    elbo, iw = [], []
    for chunk in x.split(max(1, rows // k)):
        log_w = vae.log_weights(chunk, k)
        elbo.append(log_w.mean(0))
        iw.append(torch.logsumexp(log_w, 0) - math.log(k))
    return {"elbo": torch.cat(elbo).cpu().numpy(), "iw": torch.cat(iw).cpu().numpy()}


def train_vae(
    vae,
    train,
    val=None,
    steps=3000,
    batch_size=100,
    lr=1e-3,
    val_every=100,
    val_k=16,
    progress=True,
    callback=None,
):
    """Maximise the ELBO (one sample of q per point) with Adam; keep the weights with the best
    validation ELBO.

    Stops on a non-finite loss like ``common.train`` (``NonFiniteLoss``, last finite weights kept)
    and on Ctrl-C (``TrainingInterrupted``, best weights kept). ``callback(step, loss)`` is called
    after every step. Returns a history dict: "loss" per step, "val" as (step, ELBO) pairs,
    "seconds".
    """
    optimizer = torch.optim.Adam(vae.parameters(), lr=lr)
    stream = batches(train, None, batch_size)
    history = {"loss": [], "val": [], "seconds": 0.0}
    with TrainingRun(vae, steps, progress, history, callback) as run:
        for step in run:
            vae.train()
            x, _ = next(stream)
            loss = -vae.elbo(x).mean()
            run.optimise(optimizer, loss)
            history["loss"].append(loss.item())
            if val is not None and (step % val_every == 0 or step == steps):
                score = float(evaluate(vae, val, k=val_k)["elbo"].mean())
                history["val"].append((step, score))
                run.keep_if_best(step, -score)  # the highest ELBO
            shown = {"val": history["val"][-1][1]} if history["val"] else {}
            run.end_step(loss.item(), elbo=-loss.item(), **shown)
    return run.finish()
