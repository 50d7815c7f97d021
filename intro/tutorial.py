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
# # Normalizing flows: where to start
#
# This notebook is the door to the repository. It builds, from one idea, everything the five
# paper notebooks take for granted:
#
# 1. what a normalizing flow is;
# 2. the change of variables, derived from conservation of probability mass in 1-D (where the
#    data's CDF followed by the base's inverse CDF is the one right flow), then in $D$ dimensions
#    with the Jacobian;
# 3. why triangular Jacobians make flows cheap;
# 4. the two ways to train a flow, forward KL and reverse KL, and what each needs;
# 5. the contract every layer of the repository follows (`forward`, `inverse`, `Inverse`, `Flow`),
#    and a layer of your own, written, checked by the repository's Jacobian harness and trained;
# 6. the reading order through the five papers.
#
# Five exercises are marked *Exercise*. Each has a cell holding `...` and a check: write your
# answer in place of `...` and run the cell; the check says whether it is right, or what it
# expected. Our solution is in the folded cell right below it (in Jupyter, click the collapsed
# cell's bar or its "..." to open it; on the course site, open the "Solution" box), and running it
# sets the answer for the cells after it. With `FLOWS_FAST=1` the notebook runs in seconds.

# %%
# The repository root on the path, whether Jupyter starts in this notebook's folder or at the root
# (the same cell opens every notebook of the repository).
import sys
from pathlib import Path

ROOT = Path.cwd() if (Path.cwd() / "common").is_dir() else Path.cwd().parent
sys.path.insert(0, str(ROOT))

# %%

import copy

import matplotlib.pyplot as plt
import torch
from torch.autograd.functional import jacobian

from common.checkpoint import load_checkpoint
from common.flows import Flow, Inverse, Permute, Transform
from common.metrics import nll_gap, reverse_kl
from common.plot import flow_log_prob, plot_densities, plot_layers, view
from common.runtime import fast_mode, seed_everything
from common.targets import get_target
from common.train import train_forward_kl, train_reverse_kl
from intro.tutorial_checks import (
    check_cdf_flow,
    check_layer,
    check_lognormal,
    check_reverse_kl,
    check_triangular,
)
from tests.harness import check_transform, perturb  # the Jacobian harness, as the tests call it

FAST = fast_mode()
torch.set_num_threads(1)  # small models: one thread is fastest (more would wait on each other)
seed_everything(0)

# %% [markdown]
# ## 1. What a flow is
#
# A **normalizing flow** is an invertible, differentiable map $f$ between data $x \in \mathbb
# R^D$ and noise $z = f(x) \in \mathbb R^D$, with a simple **base** density on the noise, here
# $p_Z = \mathcal N(0, I)$. It gives a model $p_X$ that can do two things exactly:
#
# * **sample**: draw $z \sim p_Z$ and return $x = f^{-1}(z)$;
# * **evaluate the density** of any $x$: $\log p_X(x) = \log p_Z(f(x)) + \log|\det J_f(x)|$ (the
#   change of variables, derived below).
#
# A flow is built as a chain $f = f_K \circ \dots \circ f_1$ of simple layers, each invertible
# with a cheap log-determinant. "Normalizing": read from data to noise, the chain turns a
# complicated density into a standard normal one. The five papers of this repository are five
# answers to one question: which simple layers?
#
# ## 2. The change of variables, from conservation of mass
#
# **In 1-D.** Let $f$ be increasing and $z = f(x)$. The event "$x$ lies in $[x_0, x_0 +
# \Delta]$" is the same event as "$z$ lies in $[f(x_0), f(x_0 + \Delta)]$": the same points, so the
# same probability mass,
#
# $$p_X(x_0)\,\Delta \approx p_Z(f(x_0))\,\big(f(x_0 + \Delta) - f(x_0)\big) \approx
#   p_Z(f(x_0))\, f'(x_0)\,\Delta .$$
#
# Divide by $\Delta$ and let it go to 0. A decreasing $f$ flips the interval, hence the absolute
# value:
#
# $$p_X(x) = p_Z\big(f(x)\big)\,\big|f'(x)\big|, \qquad
#   \log p_X(x) = \log p_Z\big(f(x)\big) + \log\big|f'(x)\big| .$$
#
# Where $f$ stretches ($|f'| > 1$), a short interval of $x$ gets a long interval of $z$ and its
# mass: the density of $x$ there is *higher* than $p_Z(f(x))$, the base's density at the matching
# point. The figure shows it for
# $f(x) = \operatorname{asinh}(2x)$; read it from right to left: the same blue strip of mass in $z$
# and in $x$.

# %%
f = lambda x: torch.asinh(2 * x)  # noqa: E731  an increasing map, data x -> noise z
df = lambda x: 2 / torch.sqrt(1 + 4 * x**2)  # noqa: E731  its derivative
normal = torch.distributions.Normal(0.0, 1.0)
xs = torch.linspace(-4, 4, 801)
p_x = normal.log_prob(f(xs)).exp() * df(xs)  # the change of variables
samples = torch.sinh(torch.randn(200_000)) / 2  # x = f^{-1}(z), z ~ N(0, 1)

fig, axes = plt.subplots(1, 3, figsize=(12, 3.4), layout="constrained")
x0, width = 0.6, 0.25
axes[0].plot(xs, f(xs), lw=2)
axes[0].axvspan(x0, x0 + width, color="C0", alpha=0.3)
axes[0].axhspan(f(torch.tensor(x0)), f(torch.tensor(x0 + width)), color="C0", alpha=0.3)
axes[0].set(title="z = f(x) = asinh(2x)", xlabel="x", ylabel="z")
zs = torch.linspace(-4, 4, 401)
axes[1].plot(zs, normal.log_prob(zs).exp(), "k", lw=2)
axes[1].axvspan(f(torch.tensor(x0)), f(torch.tensor(x0 + width)), color="C0", alpha=0.3)
axes[1].set(title="base density p_Z = N(0, 1)", xlabel="z")
axes[2].hist(samples, bins=200, range=(-4, 4), density=True, color="0.8", label="samples f^-1(z)")
axes[2].plot(xs, p_x, "C1", lw=2, label="p_Z(f(x)) |f'(x)|")
axes[2].axvspan(x0, x0 + width, color="C0", alpha=0.3)
axes[2].set(title="the flow's density p_X", xlabel="x")
axes[2].legend(fontsize=8)
plt.show()
mass = p_x.sum() * (xs[1] - xs[0])
print(f"integral of p_X over [-4, 4]: {mass:.4f}")

# %% [markdown]
# ### Exercise 1: the log-normal density
#
# If $z \sim \mathcal N(0, 1)$ and $x = e^z$, then $x$ is log-normal. The flow's map (data to
# noise) is $f(x) = \log x$. Write $\log p_X(x)$ for a tensor `x` of positive numbers with the
# change of variables, using `normal.log_prob` for $\log p_Z$.

# %%
x = torch.linspace(0.05, 6, 50)

# %% tags=["exercise"]
log_p = ...  # your answer: log p_X(x), a tensor of the shape of x
check_lognormal(log_p, x)

# %% jupyter={"source_hidden": true} tags=["solution"]
# Our solution (folded: open it after you have tried).
# BEGIN SOLUTION intro.notebook_lognormal
# log p_X(x) = log p_Z(f(x)) + log|f'(x)| with f(x) = log x, so f'(x) = 1 / x. Name it log_p.
log_p = normal.log_prob(torch.log(x)) - torch.log(x)
# END SOLUTION
check_lognormal(log_p, x)

# %% [markdown]
# ### In 1-D, every density is a flow: its CDF
#
# In one dimension the map is known in closed form. The data's cumulative distribution function
# $F_X(x) = P(X \le x)$ is increasing, its derivative is $p_X$, and it makes the data uniform:
# $P(F_X(X) \le u) = P(X \le F_X^{-1}(u)) = u$ for $u \in (0, 1)$. Read backwards, $x =
# F_X^{-1}(u)$ with $u \sim U(0, 1)$ is a sample of $p_X$ (inverse-CDF sampling): every
# continuous density on the line is the pushforward of $U(0, 1)$ by its inverse CDF, and the same
# holds for the base $\mathcal N(0, 1)$ with its own CDF $\Phi$ (its density $\varphi = \Phi'$).
# The base, not $U(0, 1)$, is what a flow must reach.
#
# ### Exercise 2: a two-mode density as a flow
#
# `mixture` below is $p_X = 0.3\,\mathcal N(-2, 0.5^2) + 0.7\,\mathcal N(1.5, 0.8^2)$, a
# `torch.distributions` object in float64. Write `to_noise(x)`, an increasing map $f$ that
# carries it to $\mathcal N(0, 1)$, for a tensor `x`, from what the paragraph above says the two
# CDFs do, with torch's distributions (`mixture` and `normal` have the methods `cdf`, `icdf`,
# `log_prob`). The check maps 20,000 samples of the mixture and asks for mean 0, standard
# deviation 1 and a small Kolmogorov-Smirnov distance to $\mathcal N(0, 1)$; then, on a grid of
# 901 points over $[-4.5, 4.5]$, it compares $\log \varphi(f(x)) + \log f'(x)$ (with $f'$ by
# autograd) with `mixture.log_prob(x)`.

# %%
f64 = {"dtype": torch.float64}
mixture = torch.distributions.MixtureSameFamily(
    torch.distributions.Categorical(torch.tensor([0.3, 0.7], **f64)),
    torch.distributions.Normal(torch.tensor([-2.0, 1.5], **f64), torch.tensor([0.5, 0.8], **f64)),
)


# %% tags=["exercise"]
def to_noise(x):
    return ...  # your answer: z = f(x), a tensor of x's shape


check_cdf_flow(to_noise, mixture)


# %% jupyter={"source_hidden": true} tags=["solution"]
# Our solution (folded: open it after you have tried).
def to_noise(x):
    # BEGIN SOLUTION intro.notebook_cdf
    # The data's CDF takes x to u ~ U(0, 1), the base's inverse CDF takes u to z ~ N(0, 1).
    return normal.icdf(mixture.cdf(x))
    # END SOLUTION


check_cdf_flow(to_noise, mixture)

# %% [markdown]
# The map is $f = \Phi^{-1} \circ F_X$, and the chain rule gives its slope,
#
# $$f'(x) = \frac{F_X'(x)}{\Phi'\big(f(x)\big)} = \frac{p_X(x)}{\varphi\big(f(x)\big)},
#   \qquad \log \varphi\big(f(x)\big) + \log f'(x) = \log p_X(x):$$
#
# the change of variables gives $p_X$ back exactly. Every increasing map that carries $p_X$ to
# $\mathcal N(0, 1)$ is this one, so a 1-D flow has one right answer, and the learned 1-D maps of
# the papers ahead (affine maps, NSF's splines) approximate it. In $D$ dimensions the chain rule
# $p(x) = \prod_i p(x_i \mid x_{<i})$ gives one such map per conditional: a triangular map, the
# shape of the layers of Section 3.
#
# The figure follows 100,000 samples of the mixture through the map: $F_X$ squeezes each mode
# into a part of $(0, 1)$ as wide as its weight, and $\Phi^{-1}$ stretches $(0, 1)$ onto the
# line. The slope $f'$ is a ratio: $f$ is steep where the data is denser than the base at the
# matching point $f(x)$, not simply where $p_X$ is high (the far left tail, where $p_X$ is small,
# is steeper than the left mode).

# %%
with torch.no_grad():
    xs = torch.linspace(-4.5, 4.5, 901, **f64)
    draws = mixture.sample((100_000,))
    fig, axes = plt.subplots(1, 4, figsize=(14, 3.2), layout="constrained")
    axes[0].hist(draws, bins=150, range=(-4.5, 4.5), density=True, color="0.8", label="samples")
    axes[0].plot(xs, mixture.log_prob(xs).exp(), "C1", lw=2, label="p_X")
    axes[0].set(title="data: a two-mode mixture", xlabel="x", ylabel="density")
    axes[0].legend(fontsize=8)
    axes[1].plot(xs, mixture.cdf(xs), "C0", lw=2)
    axes[1].set(title="u = F_X(x), the data's CDF", xlabel="x", ylabel="u")
    axes[2].plot(xs, to_noise(xs), "C2", lw=2)
    axes[2].set(title="z = f(x) = Φ⁻¹(F_X(x))", xlabel="x", ylabel="z")
    mapped = to_noise(draws)
    zs = torch.linspace(-4, 4, 401, **f64)
    axes[3].hist(mapped, bins=150, range=(-4, 4), density=True, color="0.8", label="f(samples)")
    axes[3].plot(zs, normal.log_prob(zs).exp(), "k", lw=2, label="N(0, 1)")
    axes[3].set(title="noise: the samples mapped by f", xlabel="z", ylabel="density")
    axes[3].legend(fontsize=8)
    plt.show()
print(f"f(samples): mean {mapped.mean():.4f} (N(0, 1): 0), std {mapped.std():.4f} (N(0, 1): 1)")

# %% [markdown]
# **In $D$ dimensions.** Around a point $x$, $f$ is close to its linear map $J_f(x) = \partial
# f / \partial x^\top$. A small box of volume $\Delta^D$ at $x$ goes to a small parallelepiped of
# volume $|\det J_f(x)|\,\Delta^D$ at $z$ (the absolute determinant is the factor by which a linear
# map scales volumes). The same points carry the same mass:
#
# $$p_X(x)\,\Delta^D \approx p_Z(f(x))\,|\det J_f(x)|\,\Delta^D \quad\Longrightarrow\quad
#   \log p_X(x) = \log p_Z(f(x)) + \log|\det J_f(x)| .$$
#
# Chains add up: for $f = f_K \circ \dots \circ f_1$ the Jacobian is the product of the layers'
# Jacobians, so the log-determinant is the **sum** of the layers' log-determinants. Below, a
# small square of a regular grid and its image under a nonlinear 2-D map: the image's area divided
# by the square's is $|\det J|$ at that point.


# %%
def bend(v):
    """A 2-D bijection (data -> noise): z1 = x1, z2 = x2 exp(0.5 sin x1) + x1^2 / 2."""
    x1, x2 = v[..., 0], v[..., 1]
    return torch.stack([x1, x2 * torch.exp(0.5 * torch.sin(x1)) + x1**2 / 2], -1)


t = torch.linspace(-2, 2, 9)
fig, axes = plt.subplots(1, 2, figsize=(9, 4), layout="constrained")
for ax, fn, name in ((axes[0], lambda v: v, "x: a regular grid"), (axes[1], bend, "z = f(x)")):
    for v in t:
        line = torch.stack([v.expand(100), torch.linspace(-2, 2, 100)], -1)
        ax.plot(*fn(line).T, color="C0", lw=0.8)
        ax.plot(*fn(line.flip(-1)).T, color="C3", lw=0.8)
    corner, h = torch.tensor([0.5, 0.0]), 0.5
    square = corner + h * torch.tensor([[0, 0], [1, 0], [1, 1], [0, 1], [0, 0.0]])
    edge = torch.cat(
        [
            torch.lerp(a, b, torch.linspace(0, 1, 20)[:, None])
            for a, b in zip(square[:-1], square[1:], strict=True)
        ]
    )
    ax.fill(*fn(edge).T, color="C1", alpha=0.6)
    ax.set(title=name, aspect="equal")
image = bend(edge)
area = 0.5 * (image[:, 0] * image[:, 1].roll(-1) - image[:, 0].roll(-1) * image[:, 1]).sum().abs()
centre = corner + h / 2
J = jacobian(bend, centre)
print(f"area of the image / area of the square = {area / h**2:.4f}")
print(f"|det J| at the square's centre         = {torch.linalg.det(J).abs():.4f}")
plt.show()

# %% [markdown]
# ## 3. Why triangular Jacobians are cheap
#
# A dense $D \times D$ determinant costs $O(D^3)$: for an image with $D$ in the thousands, at every
# training step, far too much. In the map above, $z_1$ depends only on $x_1$ and $z_2$ on $x_1$
# and $x_2$: its Jacobian is **lower triangular**, and the determinant of a triangular matrix is
# the product of its diagonal,
#
# $$\log|\det J| = \sum_i \log\left|\frac{\partial z_i}{\partial x_i}\right| \qquad O(D).$$
#
# Every layer of this repository is built that way (or, for planar flows, as a rank-one update,
# with the matrix determinant lemma): MAF and IAF make $z_i$ depend on $x_{\le i}$
# (autoregressive), Real NVP and NSF's coupling layers leave half the variables unchanged and
# transform the other half with parameters computed from the first (coupling). The network that
# computes those parameters can be as big as we like: it never enters the determinant.
#
# ### Exercise 3: the log-determinant of a triangular map
#
# For `bend` (above), write its log-determinant at each point of a batch `x` (shape (n, 2)) from
# the diagonal alone, without a Jacobian. The check compares it with autograd's.

# %%
x = torch.randn(6, 2, dtype=torch.float64)

# %% tags=["exercise"]
ladj = ...  # your answer: log|det J| of bend at each row of x, a tensor of shape (n,)
check_triangular(ladj, x, bend)

# %% jupyter={"source_hidden": true} tags=["solution"]
# Our solution (folded: open it after you have tried).
# BEGIN SOLUTION intro.notebook_triangular
# dz1/dx1 = 1 and dz2/dx2 = exp(0.5 sin x1): log|det J| is the sum of their logs, one
# number per row of x. Name it ladj (shape (n,)).
ladj = 0.5 * torch.sin(x[:, 0])
# END SOLUTION
check_triangular(ladj, x, bend)

# %% [markdown]
# ## 4. Two ways to train a flow: forward KL and reverse KL
#
# **Forward KL (maximum likelihood)**, when we have **samples of the data** $p$ but not its
# density:
#
# $$\mathrm{KL}(p \,\|\, q) = \mathbb E_{x \sim p}[\log p(x) - \log q(x)] = -\mathbb E_{p}[\log
#   q(x)] - H(p).$$
#
# $H(p)$ does not depend on $q$: minimise the negative log-likelihood of the data. It needs $\log
# q$ at **given data points**: the data-to-noise direction $f$, for every training point. (The
# test NLL minus the exact entropy, printed in the paper notebooks as the "gap", *is* this KL.)
#
# **Reverse KL (variational inference)**, when we have an **unnormalised density** $p(x) =
# e^{-U(x)} / Z$ but no samples:
#
# $$\mathrm{KL}(q \,\|\, p) = \mathbb E_{x \sim q}[\log q(x) - \log p(x)] .$$
#
# Written with $U$, $\log p$ splits into a part that depends on $x$ and the constant $\log Z$,
# which training can ignore. It needs **samples of $q$** with
# $\log q$ **at those samples**, differentiable in the parameters: the noise-to-data direction
# $f^{-1}$. The two directions can differ enormously in cost (MAF against IAF), and the two
# objectives fail differently: reverse KL is mode-seeking (it ignores mass of $p$ that $q$ never
# visits; the planar notebook shows it), forward KL is mass-covering.
#
# Two flows from the papers ahead, one trained each way: a Real NVP (coupling layers) by forward
# KL on samples of a mixture of eight Gaussians, and an inverted neural spline flow by reverse KL
# on the energy $U(x) = 2 (\|x\|^2 - 2)^2 - \sin(\pi x_1)$, a ring. In fast mode each trains a
# few steps to show the loop, then loads the converged weights that the demos wrote
# (`python -m realnvp --target gauss8 --save`, `python -m nsf --save`; see `intro/README.md`).

# %%
from nsf import NSF  # noqa: E402  (the intro previews two papers; papers never import another)
from realnvp import RealNVP  # noqa: E402

data_target, energy = get_target("gauss8"), get_target("sine")
seed_everything(0)
by_data = RealNVP(2, transforms=8, hidden_features=(64, 64))
history = train_forward_kl(by_data, data_target, steps=100 if FAST else 2000, progress=False)
print(f"forward KL, {len(history['loss'])} steps: last loss {history['loss'][-1]:.3f}")
seed_everything(0)
by_energy = Flow(Inverse(NSF(2, transforms=3, hidden_features=(64, 64)).transform), features=2)
history = train_reverse_kl(by_energy, energy, 100 if FAST else 2048, 256, progress=False)
print(f"reverse KL, {len(history['loss'])} steps: last loss {history['loss'][-1]:.3f}")
if FAST:  # the converged weights the demos wrote (see intro/README.md)
    load_checkpoint(by_data, ROOT / "intro" / "checkpoints" / "gauss8.pt")
    load_checkpoint(by_energy, ROOT / "nsf" / "checkpoints" / "sine.pt")
gap = nll_gap(by_data, data_target, n=100_000)
kl = reverse_kl(by_energy, energy, n=100_000)
print(f"Real NVP by forward KL: test NLL - H = KL(p||q) = {gap['gap']:.3f} ± {gap['stderr']:.3f}")
print(f"NSF by reverse KL:      KL(q||p) = {kl['kl']:.3f} ± {kl['stderr']:.3f} nats")
plot_densities(
    [
        [(data_target.log_prob, "gauss8: p"), (flow_log_prob(by_data), "q by forward KL")],
        [(energy.log_prob, "ring: exp(-U) / Z"), (flow_log_prob(by_energy), "q by reverse KL")],
    ],
    [data_target.bounds, energy.bounds],
)
plt.show()

# %% [markdown]
# **The bridges between the modes.** The forward-KL fit (top right) joins the eight Gaussians by
# thin bridges of density where $p$ has almost none. That is not a training failure but the price
# of being a flow: $f$ is a continuous bijection of $\mathbb R^2$ with a continuous inverse, so it
# maps the connected plane of the base onto the connected plane, and it cannot cut it. The base
# $\mathcal N(0, I)$ is positive everywhere, so $q$ is positive everywhere too, and mass that
# travels from the one blob of the base to eight separate modes must pass through the gaps between
# them. Sharper layers make the bridges thinner but never remove them; forward KL, which punishes
# missing mass far more than extra mass, tolerates them. (CS294-158's flow lecture makes the same
# point with topology: a flow cannot change the number of connected pieces of its support.)

# %% [markdown]
# ### The flow at work
#
# `common.plot.plot_layers` draws what a flow does to the base: its samples (top, each point
# keeps its colour) and a regular grid of the base (bottom) after each layer, from $\mathcal N(0,
# I)$ to the data. Each coupling moves one coordinate as a function of the other, and Real NVP's
# masks alternate from layer to layer, so the two coordinates take turns (no permutation). With
# more layers than panels an evenly spaced subset is drawn: the line above the panels names it
# (here 6 of the 8 couplings). Then the spline flow on the ring.

# %%
plot_layers(by_data, data=data_target.sample(2000))
plt.show()
plot_layers(by_energy)
plt.show()

# %% [markdown]
# ### Exercise 4: estimate the reverse KL yourself
#
# The cell below draws $n = 20{,}000$ samples `x` of $q$ with their `log_q` (one call of
# `by_energy.rsample_and_log_prob`, seeded). From them, the energy `energy.energy(x)` and
# `energy.log_z()` (by quadrature), estimate $\mathrm{KL}(q\,\|\,p)$ as a Monte Carlo average:
# first write $\log p(x)$ with $U$ and $Z$ and put it into the definition above. The check
# recomputes it on the same samples, so a right answer agrees to rounding.

# %%
torch.manual_seed(3)
with torch.no_grad():
    x, log_q = by_energy.rsample_and_log_prob(20_000)

# %% tags=["exercise"]
my_kl = ...  # your answer: KL(q || p) estimated on these samples, a float
check_reverse_kl(my_kl, x, log_q, energy)

# %% jupyter={"source_hidden": true} tags=["solution"]
# Our solution (folded: open it after you have tried).
# BEGIN SOLUTION intro.notebook_reverse_kl
# KL(q || p) = mean over samples of q of (log q + U), plus log Z. Name it my_kl (a float).
my_kl = (log_q + energy.energy(x)).mean().item() + energy.log_z()
# END SOLUTION
check_reverse_kl(my_kl, x, log_q, energy)

# %%
reference = reverse_kl(by_energy, energy, n=100_000)
print(f"your KL(q||p) = {my_kl:.4f} on these samples")
print(f"on 100,000 other samples: {reference['kl']:.4f} ± {reference['stderr']:.4f}")

# %% [markdown]
# ## 5. The contract every layer follows
#
# ```python
# z, ladj = layer(x, context=None)          # forward: data -> noise, ladj = log|det dz/dx| (batch,)
# x, ladj = layer.inverse(z, context=None)  # inverse: noise -> data, ladj = log|det dx/dz|
# Inverse(layer)                            # swaps the two directions (IAF: steps in Inverse)
# flow = Flow(transforms, features=D)       # log_prob(x), sample(n), rsample_and_log_prob(n)
# ```
#
# `Flow.log_prob` runs `forward` ($\log p(x) = \log \mathcal N(z) + \text{ladj}$, forward KL),
# `Flow.rsample_and_log_prob` runs `inverse` (reverse KL). A paper's maps often go the other way
# round (planar flows and IAF are written noise to data): then the paper's map is the layer's
# `inverse`, or the layer is wrapped in `Inverse`. The smallest layer that keeps the contract, an
# elementwise affine map $z = (x - \mu) e^{-s}$:


# %%
class Affine(Transform):
    """z = (x - mu) exp(-s), elementwise: data -> noise; log|det dz/dx| = -sum s."""

    def __init__(self, features):
        super().__init__()
        self.mu = torch.nn.Parameter(torch.zeros(features))
        self.s = torch.nn.Parameter(torch.zeros(features))

    def forward(self, x, context=None):
        return (x - self.mu) * torch.exp(-self.s), (-self.s).sum().expand(len(x))

    def inverse(self, z, context=None):
        return z * torch.exp(self.s) + self.mu, self.s.sum().expand(len(z))


layer = Affine(2)
with torch.no_grad():
    layer.mu.copy_(torch.tensor([1.0, -2.0])), layer.s.copy_(torch.tensor([0.5, -0.3]))
flow = Flow([layer], features=2)
x = torch.randn(4, 2)
z, ladj = layer(x)
print("inverse(forward(x)) == x:", torch.allclose(layer.inverse(z)[0], x, atol=1e-6))
print("Inverse swaps them      :", torch.allclose(Inverse(layer)(z)[0], layer.inverse(z)[0]))
gauss = torch.distributions.Normal(layer.mu, torch.exp(layer.s))
print("log_prob == N(mu, e^s)  :", torch.allclose(flow.log_prob(x), gauss.log_prob(x).sum(-1)))

# %% [markdown]
# Every layer of the repository goes through one test harness (`tests/harness.py`): in float64,
# on random non-identity parameters, `inverse(forward(x)) = x`, `forward(inverse(z)) = z`,
# `ladj` equals `slogdet` of autograd's Jacobian in both directions, and the gradient of `ladj`
# with respect to the parameters is the log-determinant's (a `ladj` made with `.item()` has the
# right value and cannot train).
#
# ### Write a layer yourself
#
# A layer is a guess at how the data is bent. This one, made for the banana of MAF's Figure 1
# ($x_2 \sim \mathcal N(0, 4)$, $x_1 \mid x_2 \sim \mathcal N(x_2^2 / 4, 1)$), unbends $x_1$
# along a parabola in $x_2$ and then shifts and scales each coordinate. From data to noise,
#
# $$z_1 = s_1\,(x_1 - q\,x_2^2 - t_1), \qquad z_2 = s_2\,(x_2 - t_2),$$
#
# with five learned numbers: $q$, $t_1$, $t_2$, and two scales $s_1, s_2$ of either sign (not
# zero). Replace the parabola and the scale $s_1$ by neural networks of $x_2$ and you have Real
# NVP's affine coupling layer; here each is a number or two, so the layer fits in a few lines.
#
# ### Exercise 5: write a layer and put it through the harness
#
# Complete `Bend` below: `forward(x)` returns `(z, ladj)` with `z` from the formula above and
# `ladj` $= \log|\det \partial z / \partial x|$, one number per row (shape `(batch,)`), and
# `inverse(z)` returns `(x, ladj)` for the way back, with its own log-determinant. The check sets
# the five numbers (with $s_1 < 0$), compares `forward` with the formula, and then runs your
# layer through `tests/harness.py`'s `check_transform`, the test every layer of the repository
# passes: both round trips, both log-determinants against `slogdet` of autograd's Jacobian, a
# gradient to every parameter, and the log-determinant's gradient in `ladj`.


# %%
class BendParameters(Transform):
    """The five learned numbers of the bend layer; ``Bend`` below adds its two directions."""

    def __init__(self):
        super().__init__()
        self.s = torch.nn.Parameter(torch.ones(2))  # s1, s2: any sign, not zero
        self.t = torch.nn.Parameter(torch.zeros(2))  # t1, t2
        self.q = torch.nn.Parameter(torch.zeros(()))  # the parabola's curvature


# %% tags=["exercise"]
class Bend(BendParameters):
    """z1 = s1 (x1 - q x2^2 - t1), z2 = s2 (x2 - t2): data -> noise."""

    def forward(self, x, context=None):
        return ...  # your answer: (z, ladj), z of shape (batch, 2), ladj of shape (batch,)

    def inverse(self, z, context=None):
        return ...  # your answer: (x, ladj), x of shape (batch, 2), ladj of shape (batch,)


check_layer(Bend)


# %% jupyter={"source_hidden": true} tags=["solution"]
# Our solution (folded: open it after you have tried).
class Bend(BendParameters):
    """z1 = s1 (x1 - q x2^2 - t1), z2 = s2 (x2 - t2): data -> noise."""

    # BEGIN SOLUTION intro.notebook_layer
    # z2 depends on x2 alone and z1 on both: the Jacobian is triangular, its diagonal is s1, s2,
    # so log|det| = log|s1| + log|s2| for every row. The inverse undoes z2 first, then z1 with
    # the x2 it found, and its log-det is the negative.
    def forward(self, x, context=None):
        x1, x2 = x[:, 0], x[:, 1]
        z1 = self.s[0] * (x1 - self.q * x2**2 - self.t[0])  # unbend, shift, scale
        z2 = self.s[1] * (x2 - self.t[1])
        ladj = torch.log(self.s.abs()).sum()  # triangular (Section 3): log|s1| + log|s2|
        return torch.stack([z1, z2], -1), ladj.expand(len(x))

    def inverse(self, z, context=None):
        x2 = z[:, 1] / self.s[1] + self.t[1]  # undo z2 first
        x1 = z[:, 0] / self.s[0] + self.q * x2**2 + self.t[0]  # then z1, with that x2
        ladj = -torch.log(self.s.abs()).sum()  # the inverse's log-det is the negative
        return torch.stack([x1, x2], -1), ladj.expand(len(z))

    # END SOLUTION


check_layer(Bend)

# %% [markdown]
# The tests call the harness the same way, on random parameters (`perturb`) in float64. Then a
# flow of three `Bend`s, with `Permute.reverse(2)` between them so that the second one bends the
# other coordinate, learns the banana by forward KL. The gap to the exact entropy is KL(p‖q):
# 0 for a perfect fit. The three panels share the colour scale of the trained $q$ and the
# target $p$; the untrained $\mathcal N(0, I)$, which peaks higher, is clipped at it.

# %%
check_transform(perturb(Bend().double()), features=2)  # as tests/test_common.py calls it
print("tests/harness.py: check_transform passes on random parameters")
banana = get_target("banana")
seed_everything(0)
bends = Flow([Bend(), Permute.reverse(2), Bend(), Permute.reverse(2), Bend()], features=2)
untrained = copy.deepcopy(bends)
before = nll_gap(bends, banana, n=20_000)
history = train_forward_kl(bends, banana, steps=200 if FAST else 1000, lr=1e-2, progress=False)
after = nll_gap(bends, banana, n=100_000)
print(f"banana: exact entropy H = {after['entropy']:.4f} nats; gap = test NLL - H (0 = perfect)")
print(f"before training:        gap {before['gap']:.3f} ± {before['stderr']:.3f} nats")
steps = len(history["loss"])
print(f"after {steps} steps of Adam: gap {after['gap']:.4f} ± {after['stderr']:.4f} nats")
fig = plot_densities(
    [
        [
            (flow_log_prob(untrained), "3 Bends, untrained: N(0, I)"),
            (flow_log_prob(bends), "3 Bends, trained: q"),
            (banana.log_prob, "banana: p"),
        ]
    ],
    view(banana),
)
peak = max(ax.images[0].get_array().max() for ax in fig.axes[1:3])  # q's and p's peaks
for ax in fig.axes[:3]:
    ax.images[0].set_clim(0, peak)  # the untrained N(0, I) peaks higher: clipped, not dimming q
    ax.set(xlabel="x1")
fig.axes[0].set(ylabel="x2")
fig.axes[0].set_title("3 Bends, untrained: N(0, I)\n(clipped at this scale)", fontsize=9)
plt.show()

# %% [markdown]
# ## 6. Reading order
#
# 1. [`planar_flows/`](../planar_flows/README.md), Rezende & Mohamed 2015: flows for variational
#    inference; reverse KL; a rank-one layer whose determinant is one dot product.
# 2. [`maf/`](../maf/README.md), Papamakarios et al. 2017: autoregressive = triangular: MADE gives
#    every conditional in one pass; density fast, sampling $D$ passes.
# 3. [`iaf/`](../iaf/README.md), Kingma et al. 2016: the same layer inverted: sampling in one pass,
#    for VI and VAEs; the gated update.
# 4. [`realnvp/`](../realnvp/README.md), Dinh et al. 2017: coupling layers: one pass both ways;
#    masks, squeeze and multi-scale for images.
# 5. [`nsf/`](../nsf/README.md), Durkan et al. 2019: keep the architecture, replace the affine map
#    by a monotone spline: multimodal conditionals.
#
# Planar flows first because they are the origin of the idea and the simplest layer; MAF before
# IAF because IAF is MAF read backwards (IAF was published first); Real NVP after both because
# coupling is the special case of an autoregressive layer that is fast both ways; NSF last because
# it changes only the 1-D map inside the layers you already know.
#
# Then [the families compared](families.md), one page to read after the five (or to keep open beside
# them): which direction each family computes in one pass and which in $D$ passes or by a root
# finder, what each is good for, and the computation graphs of one coupling, MAF, IAF and planar
# layer.
