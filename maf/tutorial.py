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
# # Masked Autoregressive Flow
#
# Papamakarios, Pavlakou & Murray, *Masked Autoregressive Flow for Density Estimation*, NeurIPS 2017
# ([arXiv:1705.07057](https://arxiv.org/abs/1705.07057)). The code is in `maf/maf.py`.
#
# **Autoregressive densities.** Any density factorises by the chain rule, $p(x) = \prod_i p(x_i \mid
# x_{<i})$. Choose Gaussian conditionals, $p(x_i \mid x_{<i}) = \mathcal N\big(x_i \mid \mu_i,
# (e^{\alpha_i})^2\big)$ with $\mu_i = f_{\mu_i}(x_{<i})$, $\alpha_i = f_{\alpha_i}(x_{<i})$ (Eq.
# 2). To *sample*, draw $u \sim \mathcal N(0, I)$ and set $x_i = u_i e^{\alpha_i} + \mu_i$ one
# variable after the other (Eq. 3). Read backwards, the noise that produced a point is
#
# $$u_i = (x_i - \mu_i)\, e^{-\alpha_i} \qquad \text{(Eq. 4)},$$
#
# so the autoregressive model *is* a normalizing flow $x \mapsto u$, with $\log p(x) = \log \mathcal
# N(u; 0, I) - \sum_i \alpha_i$ (Eq. 5). If the model is good, the $u$ of the data look like
# $\mathcal N(0, I)$. If they do not, model them with another autoregressive model, and so on: that
# stack is MAF.
#
# **Exercises.** Each cell marked *Exercise* holds `...` and a check: write your answer in place
# of `...` and run the cell. Our solution is in the folded cell right below it (in Jupyter, click
# the collapsed cell's bar or its "..." to open it; on the course site, open the "Solution" box).

# %%
# The repository root on the path, whether Jupyter starts in this notebook's folder or at the root
# (the same cell opens every notebook of the repository).
import sys
from pathlib import Path

ROOT = Path.cwd() if (Path.cwd() / "common").is_dir() else Path.cwd().parent
sys.path.insert(0, str(ROOT))

# %%
import time

import matplotlib.pyplot as plt
import torch
from torch.autograd.functional import jacobian

from common import plot
from common.checkpoint import load_checkpoint
from common.flows import Inverse
from common.layers import set_batch_norm_stats
from common.metrics import nll_gap
from common.nets import MADE
from common.runtime import fast_mode, seed_everything
from common.targets import get_target
from common.train import train_forward_kl
from maf import MAF, MAFLayer
from maf.tutorial_checks import check_chain_rule, check_reach

torch.set_num_threads(1)  # small models: one thread is fastest (more would wait on each other)
seed_everything(0)
FAST = fast_mode()  # FLOWS_FAST=1: a short run to see training, then the converged weights
CHECKPOINTS = ROOT / "maf" / "checkpoints"  # written by the demo, see maf/README.md

# %% [markdown]
# ## MADE: all conditionals in one network pass
#
# $f_\mu, f_\alpha$ must not look at $x_i$ or later variables. MADE (Germain et al. 2015) gets this
# from an ordinary MLP by multiplying its weights with 0/1 masks: input $j$ has degree $j$ (its
# position in the order), each hidden unit a degree in $[1, D-1]$, a hidden unit may see units of
# degree $\le$ its own, and output $i$ only units of degree $<i$ (strict). Here are the masks of a
# MADE with $D = 4$ and two hidden layers of 8 units (white = connection), and their product: which
# input can reach which output.
#
# **Exercise 1.** Input $j$ reaches output $i$ when some path of connections leads from one to the
# other. Write `reach_of(masks)`: that (D, D) boolean matrix from a MADE's masks (each (out, in),
# the input layer's first). The check runs it on this MADE and on two others (another order, other
# hidden sizes).

# %%
made = MADE(4, params=1, hidden_features=(8, 8))
masks = [m.mask for m in made.net if hasattr(m, "mask")]  # (out, in) 0/1 matrices, input first


# %% tags=["exercise"]
def reach_of(masks):
    return ...  # your answer: entry (i, j) true when input j reaches output i, a (D, D) bool tensor


check_reach(reach_of)


# %% jupyter={"source_hidden": true} tags=["solution"]
# Our solution (folded: open it after you have tried).
def reach_of(masks):
    # BEGIN SOLUTION maf.notebook_reach
    # the number of paths from input j to output i is entry (i, j) of the product of the masks, the
    # last layer's on the left; reach is where it is positive (a boolean tensor).
    return (masks[2] @ masks[1] @ masks[0]) > 0
    # END SOLUTION


check_reach(reach_of)

# %%
reach = reach_of(masks)
print(f"reach (output i, input j):\n{reach.int()}\nstrictly lower triangular: output i sees x_<i")

# %%
fig, axes = plt.subplots(1, 4, figsize=(12, 3))
for ax, mask, title in zip(
    axes, masks, ["input -> hidden 1", "hidden 1 -> hidden 2", "hidden 2 -> output"], strict=False
):
    ax.imshow(mask, cmap="gray", vmin=0, vmax=1)
    ax.set(title=title, xlabel="from", ylabel="to")
axes[3].imshow(reach, cmap="gray", vmin=0, vmax=1)
axes[3].set(title="output i can see input j", xlabel="input j", ylabel="output i")
plt.tight_layout()
plt.show()

# %% [markdown]
# Strictly lower triangular: output $i$ sees exactly $x_{<i}$. So **one** pass of MADE on a data
# point gives every $\mu_i, \alpha_i$ at once.
#
# ## Why the Jacobian is triangular
#
# $u_i$ depends on $x_i$ (through $x_i - \mu_i$) and on $x_{<i}$ (through $\mu_i, \alpha_i$), never
# on later variables. So $\partial u / \partial x$ is lower triangular *in the layer's order*, with
# diagonal $\partial u_i / \partial x_i = e^{-\alpha_i}$, and its log-determinant is just $-\sum_i
# \alpha_i$: no $O(D^3)$ determinant. Autograd confirms it for a layer whose order is a random
# permutation (rows and columns sorted by that order):

# %%
D = 5
order = torch.randperm(D)
layer = MAFLayer(D, (32, 32), order=order).double()
x = torch.randn(1, D, dtype=torch.float64)
J = jacobian(lambda v: layer(v)[0], x)[0, :, 0, :]  # (D, D): J[i, j] = du_i / dx_j
by_order = torch.argsort(order)  # features sorted by their position in the order
print("du/dx, rows and columns in the layer's order:\n", J[by_order][:, by_order].numpy().round(3))
_, alpha = layer.conditioner(x)
u, ladj = layer(x)
print("diagonal       ", torch.diagonal(J).numpy().round(4))
print("exp(-alpha)    ", torch.exp(-alpha[0]).detach().numpy().round(4))
print(f"slogdet(J) = {torch.linalg.slogdet(J)[1].item():.6f},  -sum(alpha) = {ladj.item():.6f}")

# %% [markdown]
# ## Density in one pass, sampling in D passes
#
# `forward` (data $\to$ noise, Eq. 4) has all of $x$, so one MADE pass gives every $u_i$. `inverse`
# (noise $\to$ data, Eq. 3) must produce $x_i$ before it can compute $\mu_{i+1}, \alpha_{i+1}$: pass
# $k$ fixes the $k$-th variable, $D$ passes in all.
#
# **MAF and IAF are the same layer used in two directions.** IAF (Kingma et al. 2016) samples with
# Eq. 4's shape: $x = (u - \mu(u)) e^{-\alpha(u)}$, the conditioner reading the *noise*. That is
# `Inverse(MAFLayer)`: its sampling direction is the one-pass map, and the density of a new point
# costs $D$ passes. MAF is for density estimation (fast `log_prob`, training on data); IAF for
# variational inference (fast samples whose density is known, but slow density of outside points).

# %%
D = 32
maf_layer, iaf_layer = MAFLayer(D), Inverse(MAFLayer(D))
z = torch.randn(2000, D)


def timed(fn):
    start = time.perf_counter()
    with torch.no_grad():
        fn()
    return 1000 * (time.perf_counter() - start)


print(f"D = {D}, 2000 points       density (forward)   sampling (inverse)")
print(
    f"MAF layer           {timed(lambda: maf_layer(z)):12.1f} ms "
    f"{timed(lambda: maf_layer.inverse(z)):14.1f} ms"
)
print(
    f"IAF = Inverse(MAF)  {timed(lambda: iaf_layer(z)):12.1f} ms "
    f"{timed(lambda: iaf_layer.inverse(z)):14.1f} ms"
)

# %% [markdown]
# ## Figure 1: a single MADE fails where MAF fits
#
# The target $p(x_1, x_2) = \mathcal N(x_2 \mid 0, 4)\, \mathcal N(x_1 \mid x_2^2/4, 1)$ is
# *exactly* autoregressive with Gaussian conditionals in the order $x_2 \to x_1$. In the order $x_1
# \to x_2$, a MADE must model $p(x_1)$ with one Gaussian, but that marginal is skewed, so the fit
# fails. The noise $u$ it needs to explain the data is then visibly not $\mathcal N(0, I)$. A MAF of
# 5 such layers, starting in the same unfavourable order, models that noise with the next layers and
# fits. Its exact entropy is $H = \log(2\pi e) + \log 2 = 3.5310$ nats, so the test NLL minus $H$ is
# the KL divergence left.

# **Exercise 2.** The target's log-density by the chain rule, $p(x) = p(x_{\text{first}})\,
# p(x_{\text{second}} \mid x_{\text{first}})$, in the order in which it is exactly
# autoregressive: read the two factors off its definition above and write $\log p(x)$ for a batch
# `x` of shape (n, 2), with `torch.distributions.Normal` (which takes the standard deviation, not
# the variance).

# %%
target = get_target("banana")  # Figure 1's target
x = target.sample(1000)

# %% tags=["exercise"]
log_p = ...  # your answer: log p(x) by the chain rule, a tensor of shape (n,)
check_chain_rule(log_p, x, target)

# %% jupyter={"source_hidden": true} tags=["solution"]
# Our solution (folded: open it after you have tried).
# BEGIN SOLUTION maf.notebook_chain_rule
# Normal(0, 2) for x2 (variance 4), then Normal(x2^2 / 4, 1) for x1 given x2; add the two
# log-densities. Name it log_p, shape (n,).
normal = torch.distributions.Normal
log_p = normal(0.0, 2.0).log_prob(x[:, 1]) + normal(x[:, 1] ** 2 / 4, 1.0).log_prob(x[:, 0])
# END SOLUTION
check_chain_rule(log_p, x, target)

# %%
steps = 300 if FAST else 2000
models = {"MADE, x1 first": MAF(2, transforms=1), "MAF, 5 layers": MAF(2, transforms=5)}
saved = {"MADE, x1 first": "banana_made_x1_first.pt", "MAF, 5 layers": "banana_maf5.pt"}
for name, flow in models.items():
    train_forward_kl(flow, target, steps=steps, progress=False)
    r = nll_gap(flow, target, n=100_000)  # the same test size as the converged weights below
    print(f"{name:<16} {steps} steps: NLL - H = {r['gap']:.4f} ± {r['stderr']:.4f} nats")
    if FAST:  # the converged weights of `python -m maf --save` (2000 steps, best validation NLL)
        load_checkpoint(flow, CHECKPOINTS / saved[name])
        r = nll_gap(flow, target, n=100_000)
        print(f"{name:<16} converged:  NLL - H = {r['gap']:.4f} ± {r['stderr']:.4f} nats")

fig, axes = plt.subplots(1, 4, figsize=(14, 3.4), layout="constrained")
box = plot.view(target)  # the paper's window
vmax = plot.density_grid(target.log_prob, box)[2].max().item()  # one colour scale
made_flow, maf_flow = models["MADE, x1 first"], models["MAF, 5 layers"]
plot.show_density(axes[0], target.log_prob, box, "target", vmax=vmax)
plot.show_density(axes[1], plot.flow_log_prob(made_flow), box, "MADE, x1 first", vmax=vmax)
with torch.no_grad():
    u, _ = made_flow.transform(target.sample(2000))
axes[2].scatter(*u.T, s=1, alpha=0.4)
axes[2].set(xlim=(-4, 4), ylim=(-4, 4), title="the MADE's u of the data", aspect="equal")
axes[2].set(xlabel="$u_1$", ylabel="$u_2$")
plot.show_density(
    axes[3], plot.flow_log_prob(maf_flow), box, "MAF, 5 layers", vmax=vmax, colorbar=True
)
plt.show()

# %% [markdown]
# Each line is the gap NLL $-$ H on 100,000 fresh samples, whose ceiling is 0 (the KL divergence
# cannot be negative; its estimate can, by about its standard error). In fast mode the
# second line of each model is the converged one: the weights that `python -m maf --save` keeps
# after 2000 steps, those with the best NLL on a fixed validation sample (Adam's last steps at a
# constant learning rate are noisy, so the last weights need not be the best). However long it
# trains, the MADE in the unfavourable order stays far from 0, since one Gaussian cannot be the
# skewed $p(x_1)$; the MAF ends close to 0. The banana is easy for it: a short run already gets
# near, and the last digits of its gap move with the seed.
#
# The MAF at work, from the base to the data: each layer shifts and scales one coordinate as a
# function of the other (the order alternates), bending the Gaussian into the parabola.

# %%
plot.plot_layers(maf_flow, data=target.sample(2000), lim=(-6, 10))
plt.show()

# %% [markdown]
# ## Batch normalisation as a flow layer
#
# Between MADEs the paper puts a batch-norm layer, itself a bijection (appendix): $u = (x - m)(v +
# \epsilon)^{-1/2} e^{\gamma} + \beta$, $\log|\det| = \sum_i \gamma_i - \tfrac12 \log(v_i +
# \epsilon)$. While training, $m, v$ are the minibatch mean and variance; at test time they are the
# statistics of the **whole training set** (`set_batch_norm_stats`). Evaluated on the training set,
# the model in evaluation mode then agrees exactly with training mode on one batch holding all of
# it. The inverse needs fixed statistics, so it works only in evaluation mode.

# %%
flow = MAF(2, transforms=3, batch_norm=True)
data = target.sample(5000)
train_mode = flow.train().log_prob(data)
set_batch_norm_stats(flow, data)
print(
    "max |train-mode - eval-mode| log p on the data set:",
    (flow.log_prob(data) - train_mode).abs().max().item(),
)
try:
    flow.train().sample(3)
except RuntimeError as error:
    print("sampling in training mode:", str(error)[:80], "...")
print(
    "in eval mode:",
    flow.eval().sample(3).shape,
    [type(t).__name__ for t in flow.transform.transforms],
)

# %% [markdown]
# ## Results
#
# `python -m maf` (2000 steps, batch 512, Adam 1e-3, the weights with the best validation NLL; 100k
# test samples, standard errors 0.003-0.005):
#
# | model | params | test NLL - H (nats) |
# |---|---|---|
# | MADE, order $x_1 \to x_2$ (unfavourable) | 4,612 | 0.342 |
# | MADE, order $x_2 \to x_1$ (favourable) | 4,612 | 0.003 |
# | MAF, 5 layers | 23,060 | 0.002 |
#
# `python -m maf --data digits`: 8x8 digits, 17 levels, dequantised, Logit(0.05) in the flow.
#
# | model | params | test NLL (nats) | bits/dim |
# |---|---|---|---|
# | MAF, 5 layers, MADE 2 x 128, batch norm | 207,360 | -81.54 ± 0.88 | 2.249 |
# | conditional MAF, $\log p(x \mid y)$ | 213,760 | -86.04 ± 0.82 | 2.148 |
# | conditional MAF, $\log \sum_y p(y)\, p(x \mid y)$ | 213,760 | -84.02 ± 0.79 | 2.193 |
#
# (standard errors over the 360 test images; the model overfits after ~600 steps, the weights with
# the best validation NLL are kept). Knowing the label helps, as in the paper's conditional MAF on
# MNIST.
#
# `python -m maf --target NAME` (5 layers, MADE 2 x 64, 2000 steps): NLL - H = 0.288 on gauss8,
# 0.255 on checker, 0.024 on ua_nb (ceiling 0). The log-scale is softly bounded, |alpha| < log 1000,
# so that one layer moves a density by at most a factor 1000 and a test point far from the training
# data cannot get an absurd NLL. MAF beside other libraries' MAFs of the same size:
# [benchmarks/README.md](../benchmarks/README.md).
#
# The conditional MAF (Sec. 3.4) feeds the one-hot label to every MADE;
# `runs/maf/digits_conditional_samples.png` shows 10 samples of each class.
