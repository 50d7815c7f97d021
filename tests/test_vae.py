"""The VAE of common/vae.py.

The importance-weighted bound against the ELBO and against an exact log p(x), and the amortised
posteriors (planar with per-point u, w, b; IAF with the encoder's h in every MADE) in the harness.
"""

import math

import pytest
import torch

from common.flows import Compose, Transform
from common.vae import VAE, binarized_digits, evaluate, train_vae
from common.vae_experiment import parse_args
from iaf import IAF
from planar_flows import Planar
from tests.harness import check_transform, perturb


def amortised_planar_chain(features, context):
    return perturb(Compose(*[Planar(features, context) for _ in range(3)]).double(), seed=4)


def conditional_iaf(features, context):
    return perturb(IAF(features, 2, (16, 16), context).double(), scale=0.25, seed=5).transform


# The two posteriors as the VAE uses them: per-example parameters through the context h (batch, C).
HARNESS_CASES = [
    ("amortised-planar-chain", amortised_planar_chain, (3,)),
    ("conditional-iaf", conditional_iaf, (3,)),
]


@pytest.mark.parametrize("features", [1, 3, 5])
@pytest.mark.parametrize("name,factory,contexts", HARNESS_CASES, ids=[c[0] for c in HARNESS_CASES])
def test_harness(name, factory, contexts, features):
    for context in contexts:
        check_transform(factory(features, context), features, context, tol=1e-8)


def test_amortised_planar_parameters_differ_between_points():
    layer = perturb(Planar(4, context=3).double())
    h = torch.randn(6, 3, dtype=torch.float64)
    u, w, b = layer.flow_parameters(h)
    assert u.shape == w.shape == (6, 4) and b.shape == (6,)
    assert (w[1:] - w[:1]).abs().min() > 0 and (b[1:] - b[:1]).abs().min() > 0
    # the invertibility constraint holds for every point (Appendix A.1)
    assert ((w * u).sum(-1) >= -1).all()


class Affine(Transform):
    """Test helper: z = m(h) + L z_0, fixed lower-triangular L, maps N(0, I) to N(m(h), L L^T)."""

    def __init__(self, L, mean):
        super().__init__()
        self.L, self.mean = L, mean

    def inverse(self, z, context=None):
        return self.mean(context) + z @ self.L.T, torch.diagonal(self.L).log().sum().expand(
            z.shape[0]
        )


class LinearGaussian(VAE):
    """p(z) = N(0, I), p(x | z) = N(A z + c, s^2 I): log p(x) and the posterior are known in closed
    form.

    ``q``: "exact-diagonal" (A has orthogonal columns, so the posterior is diagonal: the encoder
    outputs it), "exact-flow" (general A: q_0 = N(0, I) and a posterior flow z = m(x) + L z_0 with L
    L^T the posterior covariance; this checks the sign of the flow's ladj in log q), or "prior" (q =
    p(z), a poor proposal).
    """

    def __init__(self, q, P=5, D=3, s=0.5, seed=0):
        gen = torch.Generator().manual_seed(seed)
        A = torch.randn(P, D, generator=gen, dtype=torch.float64)
        if q == "exact-diagonal":
            # A^T A diagonal
            A = torch.linalg.qr(A)[0] * torch.tensor([0.5, 1.5, 3.0], dtype=torch.float64)
        c = torch.randn(P, generator=gen, dtype=torch.float64)
        # posterior covariance
        cov = torch.linalg.inv(torch.eye(D, dtype=torch.float64) + A.T @ A / s**2)
        mean = lambda x: (x - c) @ A @ cov / s**2  # posterior mean S A^T (x - c) / s^2, (batch, D)
        flow = Affine(torch.linalg.cholesky(cov), mean) if q == "exact-flow" else None
        super().__init__(P, D, (4,), P if flow else 0, flow)
        self.double()
        self.q, self.A, self.c, self.s, self.cov, self.mean = q, A, c, s, cov, mean

    def encode(self, x):
        zeros = x.new_zeros(x.shape[0], self.latent_features)
        if self.q == "exact-diagonal":
            return self.mean(x), 0.5 * torch.diagonal(self.cov).log().expand_as(zeros), x[:, :0]
        return zeros, zeros, x  # q_0 = N(0, I); h = x for the posterior flow

    def log_likelihood(self, x, z):
        r = (x - z @ self.A.T - self.c) / self.s
        return (-0.5 * r**2 - math.log(self.s) - 0.5 * math.log(2 * math.pi)).sum(-1)

    def sample_data(self, n, seed=1):
        gen = torch.Generator().manual_seed(seed)
        z = torch.randn(n, self.A.shape[1], generator=gen, dtype=torch.float64)
        return (
            z @ self.A.T
            + self.c
            + self.s * torch.randn(n, self.A.shape[0], generator=gen, dtype=torch.float64)
        )

    def exact_log_px(self, x):
        cov = self.A @ self.A.T + self.s**2 * torch.eye(self.A.shape[0], dtype=torch.float64)
        return torch.distributions.MultivariateNormal(self.c, cov).log_prob(x)


@pytest.mark.parametrize("q", ["exact-diagonal", "exact-flow"])
def test_with_the_exact_posterior_the_bound_equals_log_px(q):
    model = LinearGaussian(q)
    x = model.sample_data(50)
    exact = model.exact_log_px(x)
    for k in (1, 7, 64):
        result = evaluate(model, x, k=k)
        assert torch.allclose(torch.from_numpy(result["iw"]), exact, atol=1e-10, rtol=0), (q, k)
        assert torch.allclose(torch.from_numpy(result["elbo"]), exact, atol=1e-10, rtol=0), (q, k)


def test_with_a_poor_posterior_the_bound_rises_with_k_towards_log_px():
    model = LinearGaussian("prior")
    x = model.sample_data(400)
    exact = model.exact_log_px(x).mean().item()
    torch.manual_seed(0)
    means = []
    for k in (1, 4, 16, 64, 256):
        result = evaluate(model, x, k=k)
        assert (result["iw"] >= result["elbo"] - 1e-12).all()  # Jensen, on the same samples
        means.append(result["iw"].mean())
    assert all(a < b for a, b in zip(means, means[1:], strict=False)), means
    assert means[0] < exact - 1.0 and abs(means[-1] - exact) < 0.2 * abs(means[0] - exact), (
        means,
        exact,
    )


@pytest.mark.parametrize("posterior", ["diagonal", "planar", "iaf"])
def test_bernoulli_vae_bound_above_elbo_and_rising_with_k(posterior):
    torch.manual_seed(0)
    flow = {
        "diagonal": None,
        "planar": Compose(Planar(4, 6), Planar(4, 6)),
        "iaf": IAF(4, 2, (16,), 6).transform,
    }
    vae = VAE(64, 4, (32,), 0 if posterior == "diagonal" else 6, flow[posterior])
    x = binarized_digits()["test"][:100]
    assert set(x.unique().tolist()) == {0.0, 1.0}
    one = evaluate(vae, x, k=1)
    assert (one["iw"] == one["elbo"]).all()  # one sample: the two estimates coincide
    means = []
    for k in (1, 8, 64):
        result = evaluate(vae, x, k=k)
        assert (result["iw"] >= result["elbo"] - 1e-4).all()
        means.append(result["iw"].mean())
    assert means[0] < means[1] < means[2], means


@pytest.mark.parametrize("posterior", ["planar", "iaf"])
def test_log_q_of_posterior_samples_matches_the_density_direction(posterior):
    """log q from sampling (one pass of ``inverse``) equals log q_0(f^{-1}(z)) + ladj of ``forward``
    at z:
    the VAE subtracts the sampling ladj with the right sign and feeds every layer the same h."""
    torch.manual_seed(0)
    C, D = 5, 3
    flow = {"planar": amortised_planar_chain, "iaf": conditional_iaf}[posterior](D, C)
    vae = perturb(VAE(8, D, (16,), C, flow).double(), scale=0.3)
    x = torch.randint(0, 2, (10, 8)).double()
    z, log_q = vae.sample_posterior(x, k=4)  # (4, 10, D), (4, 10)
    mu, log_sigma, h = vae.encode(x)
    z0, ladj = flow(z.flatten(0, 1), h.repeat(4, 1))
    eps = (z0.view_as(z) - mu) / log_sigma.exp()
    log_q0 = (-0.5 * eps**2 - log_sigma - 0.5 * math.log(2 * math.pi)).sum(-1)
    assert torch.allclose(log_q0 + ladj.view(4, 10), log_q, atol=1e-8, rtol=0)


def test_training_improves_the_elbo_and_bad_input_raises(tmp_path):
    torch.manual_seed(0)
    data = binarized_digits()
    vae = VAE(64, 4, (32,), 4, Compose(Planar(4, 4)))
    before = evaluate(vae, data["val"], k=4)["elbo"].mean()
    history = train_vae(
        vae,
        data["train"],
        data["val"],
        steps=60,
        batch_size=50,
        lr=3e-3,
        val_every=20,
        progress=False,
    )
    assert max(v for _, v in history["val"]) > before + 5
    with pytest.raises(ValueError, match="64"):
        vae.elbo(torch.zeros(3, 63))
    with pytest.raises(ValueError, match="posterior is None"):
        VAE(64, 4, context_features=3)
    with pytest.raises(ValueError, match="latent_features"):
        VAE(64, 0)
    assert parse_args("python -m x.vae", "", ["--quick", "--out", str(tmp_path)]).steps <= 150
