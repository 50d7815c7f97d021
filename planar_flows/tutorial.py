# ---
# jupyter:
#   jupytext:
#     formats: ipynb,py:percent
#     text_representation:
#       extension: .py
#       format_name: percent
#   kernelspec:
#     display_name: Python 3
#     language: python
#     name: python3
# ---

# %% [markdown]
# # Planar and radial flows: variational inference with normalizing flows
#
# Rezende & Mohamed, *Variational Inference with Normalizing Flows*, ICML 2015
# ([arXiv:1505.05770](https://arxiv.org/abs/1505.05770)).
#
# The paper's question: given a density known only **up to its normalising constant**, $p(x) =
# e^{-U(x)} / Z$, find a distribution $q$ that we can sample from and whose density we know, as
# close to $p$ as possible. Its answer: push a Gaussian through a chain of simple invertible maps (a
# *normalizing flow*) and fit the maps by minimising the *free energy*. This notebook builds the two
# maps of the paper (planar and radial), fits them to the paper's four test energies, and shows the
# price of the objective: reverse KL is *mode-seeking*.
#
# Run it in Jupyter, or as a script from the repository root: `python -m planar_flows.tutorial`.
# With `FLOWS_FAST=1` every training run is cut to a few dozen steps. Each *Exercise* has a cell
# holding `...` and a check: write your answer in place of `...` and run the cell. Our solution is
# in the folded cell right below it (in Jupyter, click the collapsed cell's bar or its "..." to
# open it; on the course site, open the "Solution" box).

# %%
# The repository root on the path, whether Jupyter starts in this notebook's folder or at the root
# (the same cell opens every notebook of the repository).
import sys
from pathlib import Path

ROOT = Path.cwd() if (Path.cwd() / "common").is_dir() else Path.cwd().parent
sys.path.insert(0, str(ROOT))

# %%
import math

import matplotlib.pyplot as plt
import torch

from common.checkpoint import load_checkpoint
from common.metrics import nll_gap, reverse_kl
from common.plot import density_grid, flow_log_prob, plot_densities, plot_layers, show_density
from common.runtime import fast_mode, seed_everything
from common.targets import get_target
from common.train import train_forward_kl, train_reverse_kl
from planar_flows import Planar, PlanarFlow, Radial
from planar_flows.tutorial_checks import check_lemma, check_min_slope, lemma_inputs

FAST = fast_mode()  # FLOWS_FAST=1: a short run to see training, then the converged weights
CHECKPOINTS = ROOT / "planar_flows" / "checkpoints"  # written by the demo, see the README
STEPS = 20 if FAST else 1000  # Adam steps per flow (python -m planar_flows uses 1000)
N_EVAL = 5_000 if FAST else 100_000  # samples of q for each KL estimate
GRID = 60 if FAST else 150  # pixels a side of each density image
torch.set_num_threads(1)  # small models: one thread is fastest (more would wait on each other)
seed_everything(0)

# %% [markdown]
# ## 1. The free energy: why only $U$ is needed
#
# For $q$ with samples and log-density, the reverse Kullback-Leibler divergence is
#
# $$\mathrm{KL}(q \,\|\, p) = \mathbb{E}_{q}\big[\log q(x) - \log p(x)\big]
#   = \underbrace{\mathbb{E}_{q}\big[\log q(x) + U(x)\big]}
#     _{\mathcal{F}(q),\ \text{the free energy}} + \log Z .$$
#
# $\log Z$ does not depend on $q$, so minimising $\mathcal{F}$ minimises the KL, and $\mathcal{F}$
# needs only the unnormalised $U$. (In the paper $U(z) = -\log p(x, z)$ for a latent-variable model,
# and $-\mathcal{F}$ is the evidence lower bound, Eq. 15; since $\mathrm{KL} \ge 0$, $\mathcal{F}
# \ge -\log Z$.) Maximum likelihood, $\mathrm{KL}(p \,\|\, q)$, would need samples of $p$, which we
# do not have.
#
# Two ingredients make $\mathcal{F}$ trainable by stochastic gradients:
#
# * **samples with a log-density**: $x = f_K \circ \dots \circ f_1(z_0)$,
#   $z_0 \sim \mathcal{N}(0, I)$, and
#   $\log q(x) = \log \mathcal{N}(z_0) - \sum_k \log |\det \partial f_k / \partial z_{k-1}|$
#   (Eq. 13);
# * **reparameterisation**: $x$ is a differentiable function of the parameters, so the gradient of
#   the Monte-Carlo estimate of $\mathcal{F}$ flows through the samples.
#
# `Flow.rsample_and_log_prob(n)` returns exactly those two things; `common.train.train_reverse_kl`
# is a loop around it. The paper anneals an inverse temperature, minimising $\mathbb{E}_q[\log q +
# \beta_t U]$ with $\beta_t = \min(1, 0.01 + t/T)$: early on the target is nearly flat, so $q$
# spreads out before it commits.
#
# The test energies (Table 1 of the paper). $U_2$ to $U_4$ do not decay along $x_1$, so they are not
# normalisable as written; the repository confines them with $0.5\,(\max(|x_1| - 4, 0)/0.1)^2$, zero
# on the plotted window, and computes $\log Z$ by quadrature, so every KL below is an absolute
# number (0 = exact).

# %%
energies = {name: get_target(name) for name in ("U1", "U2", "U3", "U4")}
panels = [
    (e.log_prob, f"{name}, log Z = {e.log_z():.3f}", e.bounds) for name, e in energies.items()
]
plot_densities([panels], None, n=GRID)
plt.show()

# %% [markdown]
# ## 2. The planar layer
#
# $$f(z) = z + u\, h(w^\top z + b), \qquad h = \tanh \qquad \text{(Eq. 10)}.$$
#
# It moves every point along one direction $u$, by an amount that depends only on its position along
# $w$: it contracts or expands space around the hyperplane $w^\top z + b = 0$. The Jacobian is a
# rank-one update of the identity, $I + u\, \psi(z)^\top$ with $\psi(z) = h'(w^\top z + b)\, w$, so
# by the matrix determinant lemma
#
# $$\left|\det \frac{\partial f}{\partial z}\right| = \left|1 + u^\top \psi(z)\right|
#   \qquad \text{(Eq. 11-12)},$$
#
# $O(D)$ instead of $O(D^3)$. In this repository `forward` always maps data to noise, so the paper's
# $f$ (noise to data) is the layer's `inverse`:

# %%
import inspect  # noqa: E402

print(inspect.getsource(Planar.inverse))

# %% [markdown]
# **Exercise 1.** Check the matrix determinant lemma numerically: for the $u, \psi \in
# \mathbb R^5$ below, write $\log|\det(I + u \psi^\top)|$ without forming a determinant. Here
# $1 + \psi^\top u < 0$: a layer that folds, so mind the sign.

# %%
u, psi = lemma_inputs()  # float64, seeded

# %% tags=["exercise"]
logdet_lemma = ...  # your answer: log|det(I + u psi^T)|, a 0-d tensor
check_lemma(logdet_lemma, u, psi)

# %% jupyter={"source_hidden": true} tags=["solution"]
# Our solution (folded: open it after you have tried).
# BEGIN SOLUTION planar_flows.notebook_lemma
# det(I + u psi^T) = 1 + psi^T u (the matrix determinant lemma): one dot product, O(D).
# Name its log-absolute value logdet_lemma (a 0-d tensor).
logdet_lemma = torch.log(torch.abs(1 + psi @ u))
# END SOLUTION
check_lemma(logdet_lemma, u, psi)

# %% [markdown]
# One layer with hand-set parameters, applied to samples of the base: space is stretched across the
# line $w^\top z + b = 0$ when $w^\top u > 0$ and squeezed towards it when $-1 < w^\top u < 0$.

# %%
z = torch.randn(3000, 2)
fig, axes = plt.subplots(1, 3, figsize=(12, 3.6), layout="constrained")
axes[0].scatter(*z.T, s=2, alpha=0.4)
axes[0].set_title("base N(0, I)\n", fontsize=10)
for ax, scale in zip(axes[1:], (3.0, -0.9), strict=False):
    layer = Planar(2)
    with torch.no_grad():
        layer.w.copy_(torch.tensor([1.0, 1.0]) / math.sqrt(2))
        layer.u.copy_(scale * layer.w)  # w^T u = scale (u parallel to w)
        layer.b.zero_()
        x, ladj = layer.inverse(z)
    dots = ax.scatter(*x.T, s=2, alpha=0.4, c=ladj, cmap="coolwarm")
    fig.colorbar(dots, ax=ax, fraction=0.046, label="log|det df/dz|")
    ax.set_title(
        f"one planar layer\nw^T u_hat = {(layer.w @ layer.u_hat()).item():.2f}", fontsize=10
    )
for ax in axes:
    ax.set_xlim(-5, 5), ax.set_ylim(-5, 5), ax.set_aspect("equal")
plt.show()

# %% [markdown]
# ## 3. The constraint $w^\top \hat u \ge -1$
#
# Write $a = w^\top z$. Then $w^\top f(z) = a + (w^\top u) \tanh(a + b)$, whose slope in $a$ is $1 +
# (w^\top u)\,\mathrm{sech}^2(a + b)$. If $w^\top u < -1$ the slope turns negative near $a = -b$:
# the map folds space onto itself and is not invertible (and the log-determinant hits $\log 0$).
# Appendix A.1 keeps the raw $u$ free and uses instead
#
# $$\hat u = u + \big[m(w^\top u) - w^\top u\big] \frac{w}{\|w\|^2},
#   \qquad m(x) = -1 + \log(1 + e^x),$$
#
# which changes only the component of $u$ along $w$ and sets $w^\top \hat u = m(w^\top u) > -1$.
# (`torch.nn.functional.softplus` computes $\log(1 + e^x)$ without overflow.)

# %%
a = torch.linspace(-4, 4, 401)  # an odd count: the grid holds a = 0
fig, ax = plt.subplots(figsize=(5.5, 3.5))
for wu in (-3.0, -1.0, 0.0, 2.0):
    m = -1 + torch.nn.functional.softplus(torch.tensor(wu))
    ax.plot(a, a + wu * torch.tanh(a), "--", label=f"raw w^T u = {wu:g}")
    ax.plot(
        a,
        a + m * torch.tanh(a),
        "-",
        color=ax.lines[-1].get_color(),
        label=f"  constrained: {m.item():.2f}",
    )
ax.set_xlabel("a = w^T z"), ax.set_ylabel("w^T f(z)"), ax.legend(fontsize=7)
ax.set_title("the raw map folds (dashed); the constrained one is increasing")
plt.show()

# %% [markdown]
# **Exercise 2.** Where does the fold start? Write `min_slope(wu)`: the smallest slope (the
# derivative in $a$) of $a \mapsto a + (w^\top u) \tanh(a)$ over the grid `a` above, as a
# float. The map is invertible exactly when that slope stays positive.


# %% tags=["exercise"]
def min_slope(wu):
    return ...  # your answer: the smallest slope over the grid a, a float


check_min_slope(min_slope, a)


# %% jupyter={"source_hidden": true} tags=["solution"]
# Our solution (folded: open it after you have tried).
def min_slope(wu):
    # BEGIN SOLUTION planar_flows.notebook_fold
    # the slope is 1 + wu sech^2(a), with sech(a) = 1 / cosh(a); return its minimum over the
    # grid a as a float.
    slopes = 1 + wu / torch.cosh(a) ** 2  # sech^2 = 1 - tanh^2
    return slopes.min().item()
    # END SOLUTION


check_min_slope(min_slope, a)

# %%
print(
    "the map folds (slope < 0) exactly when w^T u < -1:", [min_slope(v) < 0 for v in (-1.5, -0.5)]
)

# %% [markdown]
# ## 4. The 1-D inverse: densities of new points
#
# The paper never needs $f^{-1}$: training and sampling only go from noise to data. But to evaluate
# $q(x)$ at a point that did not come from the flow (to plot the density on a grid, to score data,
# to check that it integrates to one) we must invert every layer. There is no closed form, but the
# monotone map above reduces it to one dimension: given $x = f(z)$, solve
#
# $$w^\top x = a + (w^\top \hat u) \tanh(a + b)$$
#
# for $a$ (increasing in $a$, root bracketed by $[w^\top x - |w^\top \hat u|,\ w^\top x + |w^\top
# \hat u|]$), then $z = x - \hat u \tanh(a + b)$. `common.roots.solve_increasing` runs a
# safeguarded Newton iteration on the whole batch (a Newton step that leaves the bracket becomes a
# bisection), and one last Newton step with autograd on gives the gradient of the implicit
# function, so `log_prob` is differentiable too. The cell compares the log-density of samples
# (one pass, noise to data) with the one the 1-D inverses find for the same points, and prints the
# largest difference: in float64, rounding-level.

# %%
flow = PlanarFlow(2, transforms=8).double()
with torch.no_grad():
    for p in flow.parameters():
        p.add_(0.5 * torch.randn_like(p))  # random, far from the identity
    x, log_q = flow.rsample_and_log_prob(5)
    print("log q from sampling   :", log_q.numpy().round(6))
    log_q_back = flow.log_prob(x)
    print("log q via 1-D inverses:", log_q_back.numpy().round(6))
    print(f"largest difference: {(log_q_back - log_q).abs().max().item():.1e}")
    t = torch.linspace(-10, 10, 400, dtype=torch.float64)
    grid = torch.stack(torch.meshgrid(t, t, indexing="ij"), -1).reshape(-1, 2)
    mass = flow.log_prob(grid).exp().sum() * (t[1] - t[0]) ** 2
print(f"integral of q over [-10, 10]^2: {mass.item():.5f}")

# %% [markdown]
# ## 5. The radial layer
#
# $$f(z) = z + \beta\, h(\alpha, r)\,(z - z_0), \quad r = \|z - z_0\|,
#   \quad h(\alpha, r) = \frac{1}{\alpha + r}
# \qquad \text{(Eq. 14)}$$
#
# contracts ($\beta < 0$) or expands ($\beta > 0$) space around a reference point $z_0$. Its
# Jacobian is $(1 + \beta h) I$ plus a rank-one radial term, so $\left|\det \partial f/\partial
# z\right| = [1 + \beta h]^{d-1}\,[1 + \beta h + \beta h'(\alpha, r)\, r]$. It is invertible when
# $\beta \ge -\alpha$ (Appendix A.2); the layer stores raw parameters and uses $\alpha =
# \mathrm{softplus}(\cdot) > 0$ and $\beta = -\alpha + \mathrm{softplus}(\cdot)$. Along the ray from
# $z_0$ the distance maps as $r \mapsto r + \beta r / (\alpha + r)$, increasing in $r$; here the 1-D
# equation is a quadratic, $r^2 + (\alpha + \beta - \rho) r - \alpha \rho = 0$ for $\rho = \|f(z) -
# z_0\|$, so the inverse is in closed form (its positive root, computed without cancellation).

# %%
fig, axes = plt.subplots(1, 2, figsize=(7, 3.3))
for ax, beta_raw in zip(axes, (-4.0, 2.0), strict=False):
    layer = Radial(2)
    with torch.no_grad():
        layer.z0.zero_(), layer.alpha_raw.fill_(0.0), layer.beta_raw.fill_(beta_raw)
        alpha, beta = layer.alpha_beta()
        x, _ = layer.inverse(z)
    ax.scatter(*x.T, s=2, alpha=0.4)
    ax.set_title(f"radial: alpha {alpha.item():.2f}, beta {beta.item():.2f}", fontsize=9)
    ax.set_xlim(-5, 5), ax.set_ylim(-5, 5), ax.set_aspect("equal")
plt.show()

# %% [markdown]
# ## 6. Fitting $U_1$–$U_4$ (Figure 3)
#
# Flows of $K = 2, 8, 32$ layers, each trained by minimising the annealed free energy with Adam (lr
# $10^{-2}$, 512 samples a step, $T$ = half the steps). The paper trains for 500,000 steps; here a
# thousand is enough to see the trend. The learned densities are drawn through `log_prob`, i.e.
# through the 1-D inverses, and every KL is $\mathbb{E}_q[\log q + U] + \log Z$ on fresh samples.

# %%
Ks = (2, 8, 32)
rows, table = [], []
for name, energy in energies.items():
    row, kls = [(energy.log_prob, name)], []
    for K in Ks:
        seed_everything(0)
        flow = PlanarFlow(2, transforms=K)
        train_reverse_kl(
            flow, energy, steps=STEPS, batch_size=512, lr=1e-2, anneal=STEPS // 2, progress=False
        )
        if FAST:  # the converged weights: 1000 steps of `python -m planar_flows --save`
            load_checkpoint(flow, CHECKPOINTS / f"planar_{name}_K{K}.pt")
        kl = reverse_kl(flow, energy, n=N_EVAL)
        kls.append(kl["kl"])
        row.append((flow_log_prob(flow), f"K = {K}: KL {kl['kl']:.3f}"))
    rows.append(row)
    table.append((name, kls))
plot_densities(rows, [e.bounds for e in energies.values()], n=GRID)  # one colour scale per energy
plt.show()
print(f"KL(q || p) in nats (n = {N_EVAL:,} samples, {1000 if FAST else STEPS} steps)")
for name, kls in table:
    print(f"{name}: " + "  ".join(f"K={K}: {v:.3f}" for K, v in zip(Ks, kls, strict=False)))

# %% [markdown]
# The last flow ($U_4$, $K = 32$) at work: the base, then the samples and a grid of the base after
# every few planar layers. Each layer bends space along one hyperplane.

# %%
plot_layers(flow)
plt.show()

# %% [markdown]
# (In fast mode each flow trains 20 steps to show the loop, then loads the converged weights of
# `python -m planar_flows --save`.) Longer flows fit better: with 1,000 steps the KL falls with $K$
# on all four energies, as the bound does in the paper's Figure 3b (`python -m planar_flows` prints
# the table for planar and radial flows; `planar_flows/README.md` shows it). A planar layer bends
# space along a single hyperplane, so curved shapes like $U_2$–$U_4$ need many of them.
#
# ## 7. Reverse KL is mode-seeking
#
# $\mathrm{KL}(q \,\|\, p) = \mathbb{E}_q[\log q - \log p]$ is an average over **$q$'s** samples. It
# punishes $q$ for putting mass where $p$ has none, but says nothing about mass of $p$ that $q$
# never visits. Take two equal, well-separated Gaussians, one close to the base distribution and one
# far away: $p = \tfrac12 \mathcal{N}((2, 0), 0.5^2 I) + \tfrac12 \mathcal{N}((-3, 4), 0.5^2 I)$,
# $\log Z$ in closed form. If $q$ fits one mode exactly and ignores the other, $\log q - \log p =
# \log 2$ on its samples: a reverse KL of $\log 2 \approx 0.693$ nats, however much of $p$ is
# missing. The samples of the flow never reach the far mode, so no gradient ever tells it that the
# mode exists.
#
# Maximum likelihood, $\mathrm{KL}(p \,\|\, q)$, averages over $p$'s samples and would punish the
# missing mode without limit. We can train the same planar flow that way too (we have samples of
# this toy $p$), but only because the layers have the 1-D inverse: `log_prob` of data runs it.


# %%
class TwoModes:
    """The mixture p = 0.5 N(m1, s^2 I) + 0.5 N(m2, s^2 I).

    Given as an energy (reverse KL) and with samples (forward KL).
    """

    dim, bounds = 2, (-6, 6)

    def __init__(self, m1=(2.0, 0.0), m2=(-3.0, 4.0), s=0.5):
        self.m, self.s = torch.tensor([m1, m2]), s

    def energy(self, x):
        d2 = ((x[:, None, :] - self.m.to(x)) ** 2).sum(-1)  # (n, 2)
        return -torch.logsumexp(-0.5 * d2 / self.s**2, -1)

    def log_z(self):
        # two unnormalised Gaussians, each of mass 2 pi s^2
        return math.log(2 * 2 * math.pi * self.s**2)

    def log_prob(self, x):
        return -self.energy(x) - self.log_z()

    def sample(self, n):
        return self.m[torch.randint(2, (n,))] + self.s * torch.randn(n, 2)

    def entropy(self):  # the modes do not overlap: log 2 + the entropy of one Gaussian
        return math.log(2) + math.log(2 * math.pi * math.e * self.s**2), 0.0


p = TwoModes()
steps = 100 if FAST else 500
fits = {}
seed_everything(0)
fits["reverse KL"] = PlanarFlow(2, transforms=8)
train_reverse_kl(
    fits["reverse KL"], p, steps=steps, batch_size=512, lr=1e-2, anneal=steps // 2, progress=False
)
seed_everything(0)
fits["forward KL (max. likelihood)"] = PlanarFlow(2, transforms=8)
train_forward_kl(
    fits["forward KL (max. likelihood)"], p, steps=steps, batch_size=512, lr=1e-2, progress=False
)

fig, axes = plt.subplots(1, 3, figsize=(10.6, 3.4), layout="constrained")
densities = [p.log_prob] + [flow_log_prob(flow) for flow in fits.values()]
vmax = max(density_grid(d, p.bounds, GRID)[2].max().item() for d in densities)  # one colour scale
show_density(axes[0], p.log_prob, p.bounds, "p: two equal modes", GRID, vmax=vmax)
for ax, (label, flow) in zip(axes[1:], fits.items(), strict=False):
    reverse, forward = reverse_kl(flow, p, n=N_EVAL)["kl"], nll_gap(flow, p, n=N_EVAL)["gap"]
    show_density(
        ax,
        flow_log_prob(flow),
        p.bounds,
        f"{label}\nKL(q||p) {reverse:.3f}, KL(p||q) {forward:.2f}",
        GRID,
        vmax=vmax,
    )
    print(
        f"{label:>30}: KL(q || p) = {reverse:.3f} nats (log 2 = {math.log(2):.3f}), "
        f"KL(p || q) = {forward:.2f} nats"
    )
fig.colorbar(axes[-1].images[0], ax=list(axes), fraction=0.03, pad=0.01).set_label("density")
plt.show()

# %% [markdown]
# The flow trained by reverse KL sits on the near mode: its KL(q || p) is close to $\log 2$ and its
# KL(p || q) is enormous, because half of $p$ lies where $q$ is essentially zero. The flow trained
# by maximum likelihood spreads over both modes (and pays for the mass it leaves in between with a
# larger KL(q || p)). Annealing helps only when the modes are reachable: on the symmetric $U_1$ the
# two halves of the ring are both near the base, and long flows find both.
#
# **Take-aways.** Planar and radial flows are cheap ($O(D)$ per layer) and their samples come with
# exact log-densities, which is all the free energy needs. They are weak per layer (one hyperplane
# or one centre each), so they need many layers; the invertibility constraints are easy to enforce;
# and a density at a new point costs a 1-D root find per layer. The objective, not the flow, decides
# which modes are found.

# %% [markdown]
# ## Amortised inference: a planar posterior inside a VAE (Sec. 4 and 6.2)
#
# The paper's real target is not a fixed 2-D energy but the posterior $p(z \mid x)$ of a variational
# autoencoder, a different one for every data point $x$. Fitting a flow per point would be far too
# slow, so inference is *amortised*: an encoder network reads $x$ and outputs $q_0(z_0 \mid x) =
# \mathcal N(\mu, \sigma^2)$ **and the parameters $u_k, w_k, b_k$ of every planar layer**, for that
# $x$ (Sec. 4). Here the encoder outputs a context vector $h(x)$ and `Planar(D, context=C)` turns it
# into $u_k, w_k, b_k$ with its own linear head (the last layer of the inference network). The loss
# is the negative ELBO (the free energy, Eq. 15):
#
# $$-\mathcal L(x) = \mathbb E_{q_0}\Big[\log q_0(z_0 \mid x)
#   - \sum_k \log\big|1 + u_k^\top \psi_k(z_{k-1})\big|
#   - \log p(x \mid z_K) - \log p(z_K)\Big] \;\ge\; -\log p(x),$$
#
# and $\log p(x)$ itself is estimated by importance weighting with $k$ samples of $q$, $\log \frac1k
# \sum_j p(x, z_j) / q(z_j \mid x)$, which is tighter than the ELBO and rises with $k$. The data are
# scikit-learn's 8x8 digits, binarised (pixel > 8), with a Bernoulli decoder (`common/vae.py`).

# %%
from common.flows import Compose
from common.plot import plot_image_grid
from common.vae import VAE, binarized_digits, evaluate, train_vae

digits = binarized_digits()
LATENT, CONTEXT = 8, 32
VAE_STEPS = 300 if FAST else 5000  # python -m planar_flows.vae uses 5000 steps and 3 seeds
# the converged weights (fast mode): `python -m planar_flows.vae --K 8 --seeds 1 --save`, seed 0
saved = {
    "diagonal Gaussian": "vae_diagonal_gaussian_seed0.pt",
    "planar K = 8": "vae_planar_k_8_seed0.pt",
}
vaes, elbos = {}, {}
for name, K in (("diagonal Gaussian", 0), ("planar K = 8", 8)):
    seed_everything(0)
    posterior = Compose(*[Planar(LATENT, context=CONTEXT) for _ in range(K)]) if K else None
    vaes[name] = VAE(64, LATENT, (128, 128), CONTEXT if K else 0, posterior)
    train_vae(vaes[name], digits["train"], digits["val"], steps=VAE_STEPS, progress=False)
    for when in (f"{VAE_STEPS} steps", "converged") if FAST else (f"{VAE_STEPS} steps",):
        if when == "converged":
            load_checkpoint(vaes[name], CHECKPOINTS / saved[name])
        result = evaluate(vaes[name], digits["test"], k=256)
        elbo, iw = result["elbo"].mean(), result["iw"].mean()
        elbos[name] = elbo
        print(
            f"{name:>18}, {when:>9}: test ELBO {elbo:.2f} <= log p(x) {iw:.2f} (k = 256), "
            f"gap {iw - elbo:.2f} (0: q is the posterior)"
        )
gain = elbos["planar K = 8"] - elbos["diagonal Gaussian"]
print(f"ELBO of planar K = 8 minus the Gaussian's: {gain:+.2f} nats (trained, a richer q: >= 0)")

planar_vae = vaes["planar K = 8"]
# the per-point parameters really differ between images: w of the first layer, 3 test digits
with torch.no_grad():
    _, _, h = planar_vae.encode(digits["test"][:3])
    print(
        "w_1 for three test images:\n",
        planar_vae.posterior.transforms[0].flow_parameters(h)[1].numpy().round(2),
    )
    samples = torch.sigmoid(planar_vae.decoder(torch.randn(32, LATENT)))
plot_image_grid(samples, rows=4, title="decoder means at z ~ N(0, I), planar K = 8")
plt.show()

# %% [markdown]
# A flow enlarges the family of posteriors: its best member is at least as close to the true
# posterior as the best diagonal Gaussian, so after enough training the gap $\log p(x) -
# \text{ELBO}$ (the KL from $q$ to the posterior, up to the estimate's own bias) should shrink and
# the ELBO rise. A short run need not show it: after 300 steps the decoder barely uses $z$, so the
# true posterior is close to the prior and so is every $q$; the gaps are small, the ELBOs far lower,
# and such a decoder draws digits that all look alike. In fast mode the second line of each model
# is the converged one, the weights of `python -m planar_flows.vae --K 8 --seeds 1 --save` (5000
# steps, seed 0, those with the best validation ELBO), and the samples above come from it: there the
# flow's ELBO is the higher and its gap the smaller. On these tiny images the effect is small. With
# 5000 steps, `python -m planar_flows.vae` (diagonal Gaussian and K = 2, 8, 16,
# three seeds each) finds the test ELBO rising from -18.14 to -17.73 nats and the gap falling from
# 1.06 to 0.87 nats as K grows; `planar_flows/README.md` puts that table beside the paper's MNIST
# numbers (89.9 nats down to 85.1), whose absolute values are not comparable (784 pixels, not 64):
# only the direction is.
