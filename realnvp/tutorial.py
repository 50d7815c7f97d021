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
# # Real NVP: density estimation with affine coupling layers
#
# Dinh, Sohl-Dickstein & Bengio, *Density estimation using Real NVP*, ICLR 2017
# ([arXiv 1605.08803](https://arxiv.org/abs/1605.08803)).
#
# A normalizing flow is an invertible map $f$ from data $x$ to noise $z = f(x)$ with a simple base
# density $p_Z = \mathcal N(0, I)$. Real NVP makes $f$ out of **affine coupling layers**: cheap to
# invert, cheap to differentiate, yet expressive once stacked. This notebook walks through the
# paper's pieces with the code of `realnvp/realnvp.py`:
#
# 1. the change-of-variables formula;
# 2. why a triangular Jacobian makes the determinant cheap (checked with autograd);
# 3. the coupling layer and its inverse;
# 4. masks (alternating, checkerboard, channel), the squeeze and the multi-scale architecture;
# 5. results on a 2-D density with a known entropy and on 8 x 8 digits;
# 6. images as the paper does them (sections 6-10): dequantisation as a bound on the discrete
#    likelihood; the multi-scale architecture drawn and what each scale's latents hold; samples
#    at several temperatures; interpolation in latent space; NICE's additive coupling ($s = 0$).
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
import math
import time

import matplotlib.pyplot as plt
import torch
from torch.autograd.functional import jacobian

from common.checkpoint import load_checkpoint
from common.data import dequantize, load_digits_split
from common.metrics import bits_per_dim, dataset_nll, nll_gap
from common.nets import MLP
from common.plot import plot_density_comparison, plot_image_grid, plot_layers, plot_loss
from common.runtime import fast_mode, seed_everything
from common.targets import get_target
from common.train import train_forward_kl
from realnvp import AffineCoupling, RealNVP, RealNVPImage, Squeeze, channel_mask, checkerboard
from realnvp.tutorial_checks import check_autograd_logdet, check_bits_per_dim

FAST = fast_mode()  # FLOWS_FAST=1: a short run to see training, then the converged weights
CHECKPOINTS = ROOT / "realnvp" / "checkpoints"  # written by the demo, see realnvp/README.md
torch.set_num_threads(1)  # small models: one thread is fastest (more would wait on each other)
seed_everything(0)

# %% [markdown]
# ## 1. Change of variables
#
# If $z = f(x)$ is a bijection and $z \sim p_Z$, then $x$ has density (the paper's Eq. 1–2)
#
# $$p_X(x) = p_Z\big(f(x)\big)\,\left|\det \frac{\partial f(x)}{\partial x^\top}\right|,
# \qquad \log p_X(x) = \log p_Z\big(f(x)\big) + \log\left|\det \frac{\partial f(x)}{\partial
# x^\top}\right|.$$
#
# Training maximises this exact log-likelihood; sampling draws $z \sim p_Z$ and returns $x =
# f^{-1}(z)$. Everything hinges on two costs: computing $\log|\det J|$ and inverting $f$. For a
# generic $D \times D$ Jacobian the determinant costs $O(D^3)$, far too much for images with $D$ in
# the thousands.
#
# In this repository every layer's `forward(x)` maps data to noise and returns `(z, log|det
# dz/dx|)`; `inverse(z)` maps noise to data.

# %% [markdown]
# ## 2. The affine coupling layer (Eq. 4–8)
#
# Split $x \in \mathbb R^D$ into a kept part $x_{1:d}$ and a transformed part $x_{d+1:D}$:
#
# $$y_{1:d} = x_{1:d}, \qquad y_{d+1:D} = x_{d+1:D} \odot \exp\big(s(x_{1:d})\big) + t(x_{1:d}),$$
#
# with $s, t: \mathbb R^d \to \mathbb R^{D-d}$ arbitrary neural networks (they are never inverted).
# The Jacobian is **lower triangular** (Eq. 6):
#
# $$\frac{\partial y}{\partial x^\top} = \begin{bmatrix} I_d & 0 \\
# \frac{\partial y_{d+1:D}}{\partial x_{1:d}^\top} &
# \operatorname{diag}\big(\exp[s(x_{1:d})]\big)\end{bmatrix}, \qquad \log\left|\det \frac{\partial
# y}{\partial x^\top}\right| = \sum_j s(x_{1:d})_j .$$
#
# The messy lower-left block never enters the determinant. The inverse (Eq. 7–8) is as cheap as the
# forward pass: $x_{1:d} = y_{1:d}$ and $x_{d+1:D} = (y_{d+1:D} - t(y_{1:d})) \odot
# \exp(-s(y_{1:d}))$.
#
# With a binary mask $b$ (1 = kept) the same layer reads (Eq. 9)
# $y = b \odot x + (1 - b) \odot \big(x \odot \exp(s(b \odot x)) + t(b \odot x)\big)$.
# Following Sec. 4.1, $s$ is a $\tanh$ times a learned scale, so the log-scale is bounded.
#
# Let us check the triangular structure with autograd on a layer with random (non-zero) weights.
#
# **Exercise 1.** Write `autograd_logdet(f, x)`: for a map `f` from $\mathbb R^D$ to $\mathbb R^D$
# and a point `x` (shape (D,)), the Jacobian $J$ by autograd and $\log|\det J|$. The check runs it
# on this layer and on three maps with dense Jacobians, one with a negative determinant.

# %%
D = 6
mask = torch.tensor([1, 1, 1, 0, 0, 0.0])  # the paper's split: keep x_{1:3}, transform x_{4:6}
# s, t: R^3 -> R^6: one (s_i, t_i) pair per dimension, zeroed by the coupling on the kept x_{1:3}
layer = AffineCoupling(mask, MLP(3, 2 * D, (32, 32))).double()
with torch.no_grad():
    for p in layer.parameters():
        p.add_(0.3 * torch.randn_like(p))  # random weights, far from the identity

x = torch.randn(1, D, dtype=torch.float64)


def one_point(v):
    """The layer as a map from R^D to R^D: one point v (D,) in, its z (D,) out."""
    return layer(v[None])[0][0]


# %% tags=["exercise"]
def autograd_logdet(f, x):
    return ...  # your answer: (J, log|det J|), a (D, D) tensor and a 0-d tensor


check_autograd_logdet(autograd_logdet, one_point, x[0])


# %% jupyter={"source_hidden": true} tags=["solution"]
# Our solution (folded: open it after you have tried).
def autograd_logdet(f, x):
    # BEGIN SOLUTION realnvp.notebook_jacobian
    # J = torch.autograd.functional.jacobian(f, x), shape (D, D) with J[i, j] = df_i / dx_j; its
    # log|det| is torch.linalg.slogdet(J)[1]. Return both.
    J = jacobian(f, x)
    return J, torch.linalg.slogdet(J)[1]
    # END SOLUTION


check_autograd_logdet(autograd_logdet, one_point, x[0])

# %%
J, logdet_autograd = autograd_logdet(one_point, x[0])
z, ladj = layer(x)
torch.set_printoptions(precision=3, sci_mode=False)
print("Jacobian dz/dx:\n", J)
print("log|det J| by slogdet:", logdet_autograd.item())
print("sum of s (the layer):  ", ladj.item())
x_back, _ = layer.inverse(z)
print("max |inverse(forward(x)) - x|:", (x_back - x).abs().max().item())

# %% [markdown]
# The upper-right block is exactly zero, the lower-right block is diagonal, and the sum of the
# log-scales equals the log-determinant autograd computes the expensive way. How much cheaper is it?
# The layer's log-determinant costs $O(D)$ on top of the network, a dense `slogdet` costs $O(D^3)$:


# %%
def best_ms(fn, repeat=5):
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        fn()
        times.append(1e3 * (time.perf_counter() - start))
    return min(times)


for D_big in (64, 256, 1024):
    A, s = torch.randn(D_big, D_big), torch.randn(D_big)
    print(
        f"D = {D_big:5d}: dense slogdet {best_ms(lambda A=A: torch.linalg.slogdet(A)):7.3f} ms, "
        f"sum of log-scales {best_ms(lambda s=s: s.sum()):.3f} ms"
    )

# %% [markdown]
# One coupling leaves $x_{1:d}$ unchanged, so couplings are stacked with **alternating** masks: what
# was kept in one layer is transformed in the next. Composition multiplies Jacobians, so
# log-determinants add.
#
# ## 3. Masks for images (Sec. 3.4)
#
# Images have spatial structure, so Real NVP uses two masks on a $C \times H \times W$ tensor:
#
# * a **checkerboard** mask: $b_{ij} = 1$ where $i + j$ is even (and its complement in the next
#   layer);
# * a **channel** mask: the first half of the channels is kept, the second half transformed.
#
# Channel masks need many channels, which the **squeeze** operation provides (Sec. 3.6): it turns
# every $2 \times 2$ block of a channel into 4 channels, $C \times H \times W \to 4C \times H/2
# \times W/2$.


# %%
def side_by_side(channels):
    """(C, H, W) -> (H, C * (W + 1) - 1): the channels in a row, separated by blank columns."""
    gap = torch.full((channels.shape[1], 1), float("nan"))
    return torch.cat([torch.cat([c, gap], 1) for c in channels], 1)[:, :-1]


def show_numbers(ax, values):
    for i in range(values.shape[0]):
        for j in range(values.shape[1]):
            if not math.isnan(values[i, j]):
                ax.text(j, i, int(values[i, j]), ha="center", va="center", color="w", fontsize=9)


image = torch.arange(16.0).view(1, 4, 4)  # pixel (i, j) holds 4 i + j
squeezed = Squeeze((1, 4, 4))(image.view(1, 16))[0].view(4, 2, 2)
panels = [
    ("checkerboard, parity 0", checkerboard((1, 8, 8))[0]),
    ("checkerboard, parity 1", checkerboard((1, 8, 8), 1)[0]),
    ("channel mask, 4 channels", side_by_side(channel_mask((4, 4, 4)))),
    ("a 4x4 image", image[0]),
    ("squeezed: 4 channels of 2x2", side_by_side(squeezed)),
]
fig, axes = plt.subplots(1, 5, figsize=(14, 3), gridspec_kw={"width_ratios": [8, 8, 19, 4, 11]})
for k, (ax, (title, values)) in enumerate(zip(axes, panels, strict=False)):
    ax.imshow(
        values,
        cmap="gray_r" if k < 3 else "viridis",
        vmin=-0.2 if k < 3 else 0,
        vmax=1 if k < 3 else 15,
    )
    if k >= 3:
        show_numbers(ax, values)
    ax.set_title(title, fontsize=10), ax.set_xticks([]), ax.set_yticks([])
plt.tight_layout()
plt.show()

# %% [markdown]
# Black = kept ($b = 1$), grey = transformed. The squeeze turns the $4 \times 4$ image into four $2
# \times 2$ channels: channel 0 gathers the top-left pixel of every $2 \times 2$ block (0, 2, 8,
# 10), channel 1 the top-right one, and so on.
#
# ## 4. The multi-scale architecture (Sec. 3.6) and batch norm (Sec. 3.7)
#
# One scale is: 3 checkerboard couplings, squeeze, 3 channel couplings, then **factor out** half of
# the dimensions: they are final noise $z^{(i)}$ and the rest $h^{(i)}$ goes on to the next scale,
#
# $$h^{(0)} = x, \qquad (z^{(i+1)}, h^{(i+1)}) = f^{(i+1)}(h^{(i)}),
#   \qquad z^{(L)} = f^{(L)}(h^{(L-1)}),$$
#
# and the last scale has 4 checkerboard couplings. Factoring out halves the cost of every later
# scale and spreads the loss over several levels of detail. Our conditioners for images are small
# plain CNNs (3x3, 1x1, 3x3 convolutions) rather than the paper's deep ResNets.
#
# Batch normalisation is itself an invertible map with a diagonal Jacobian, $x \mapsto (x -
# \tilde\mu) / \sqrt{\tilde\sigma^2 + \epsilon}$ with log-determinant $-\tfrac12 \sum_i
# \log(\tilde\sigma_i^2 + \epsilon)$ (here also times a learned $e^{\gamma}$ plus $\beta$). It uses
# minibatch statistics in training and running averages in eval mode (and always for the inverse).
#
# Images live in $[0, 1]$ after dequantisation; Sec. 4.1 first maps them to $\mathbb R$ with
# $\operatorname{logit}(\alpha + (1 - 2\alpha) x)$, $\alpha = 0.05$, whose Jacobian counts in the
# likelihood.

# %%
image_flow = RealNVPImage(shape=(1, 8, 8), scales=2, hidden_channels=32)
print(f"{sum(p.numel() for p in image_flow.parameters()):,} parameters")
print(image_flow.transform.transforms[1].block)

# %% [markdown]
# ## 5. Results
#
# ### A 2-D density with a known entropy
#
# Target `ua_nb`: $a \sim U(1, 2)$, $b \mid a \sim \mathcal N(a, a)$, entropy $H = 1.6121$ nats. The
# test NLL $\mathbb E_p[-\log q] = H(p) + \mathrm{KL}(p \,\|\, q)$, so NLL $-$ H is the KL
# divergence: 0 is the ceiling. Setup of the peers (8 couplings, MLP 2 x 64, Adam 1e-3, batch 512,
# 2000 steps of fresh samples).

# %%
target = get_target("ua_nb")
flow = RealNVP(2, transforms=8, hidden_features=(64, 64))
history = train_forward_kl(flow, target, steps=100 if FAST else 2000, progress=False)
result = nll_gap(flow, target, n=5_000 if FAST else 100_000)
print(
    f"test NLL {result['nll']:.4f}, exact entropy {result['entropy']:.4f}, "
    f"gap {result['gap']:.4f} nats "
    f"({len(history['loss'])} steps in {history['seconds']:.1f} s)"
)
if FAST:  # the converged weights: 2000 steps of `python -m realnvp --save`
    load_checkpoint(flow, CHECKPOINTS / "ua_nb.pt")
    result = nll_gap(flow, target, n=100_000)
    print(f"converged (2000 steps): gap {result['gap']:.4f} ± {result['stderr']:.4f} nats")
plot_density_comparison(flow, target, title=f"Real NVP on ua_nb: gap {result['gap']:.3f} nats")
plt.show()

# %% [markdown]
# The flow at work: each coupling moves one coordinate as a function of the other, from the base
# (left) to the data (right).

# %%
plot_layers(flow, data=target.sample(2000))
plt.show()

# %% [markdown]
# The full run (`python -m realnvp`, the same 2000 steps) reaches test NLL 1.6370 ± 0.0023, a **gap
# of 0.025 nats** (how other libraries' coupling flows do on this target:
# [benchmarks/README.md](../benchmarks/README.md)). The sharp edges of the
# uniform $a$ are the hard part: an affine coupling can only stretch and shift, so edges are built
# from many steep layers. The difference panel shows where the remaining KL sits.
#
# ### 8 x 8 digits
#
# 1797 scikit-learn digits with 17 grey levels, dequantised as $(k + u)/17$. Bits per dimension,
# the NLL of the discrete levels $k$ in bits per pixel, bounds the code length; a uniform model
# gives $\log_2 17 = 4.09$. The weights with the best validation NLL are kept.
#
# **Exercise 2.** Turn a test NLL in nats per image of 64 dequantised pixels in $[0, 1]$ into bits
# per dimension. The ingredients: the flow models $x = (k + u)/17$, but the code length is bounded
# by the NLL of $k + u$ (the change of variables between the two is a scaling of each of the 64
# pixels); then nats per image become bits per pixel. Mind the sign of the correction: should
# the NLL of $k + u$ be larger or smaller than that of $x$?

# %%
nll_nats = torch.tensor([-89.75, 0.0, -30.0])

# %% tags=["exercise"]
my_bits = ...  # your answer: bits/dim of each NLL, a tensor of the shape of nll_nats
check_bits_per_dim(my_bits, nll_nats)

# %% jupyter={"source_hidden": true} tags=["solution"]
# Our solution (folded: open it after you have tried).
# BEGIN SOLUTION realnvp.notebook_bits_per_dim
# add 64 log 17 (the change of variables from x in [0, 1] to k + u in [0, 17]), then divide by
# 64 log 2 (nats to bits, per pixel). Name it my_bits (same shape as nll_nats).
nats_per_pixel = nll_nats / 64 + math.log(17)  # x = (k + u) / 17: log|dx/d(k + u)| = -log 17
my_bits = nats_per_pixel / math.log(2)
# END SOLUTION
check_bits_per_dim(my_bits, nll_nats)

# %%
print(f"NLL 0 nats is {my_bits[1]:.3f} bits/dim, the uniform model's log2 17")

# %%
data = load_digits_split(seed=0)
image_flow = RealNVPImage(shape=(1, 8, 8), scales=2, hidden_channels=32)
history = train_forward_kl(
    image_flow,
    data["train"],
    steps=30 if FAST else 3000,
    batch_size=128,
    val=data["val"],
    preprocess=dequantize,
    progress=False,
)
nll, stderr = dataset_nll(image_flow, dequantize(data["test"], torch.Generator().manual_seed(2)))
print(
    f"test bits/dim {bits_per_dim(nll):.3f} ± {stderr / (64 * math.log(2)):.3f} "
    f"(uniform: {math.log2(17):.3f}) after {len(history['loss'])} steps, {history['seconds']:.0f} s"
)
if FAST:  # the converged weights: 3000 steps of `python -m realnvp --data digits --save`
    history = load_checkpoint(image_flow, CHECKPOINTS / "digits.pt")["history"]  # its losses too
    image_flow.eval()
    nll, stderr = dataset_nll(
        image_flow, dequantize(data["test"], torch.Generator().manual_seed(2))
    )
    print(f"converged: test bits/dim {bits_per_dim(nll):.3f} ± {stderr / (64 * math.log(2)):.3f}")
plot_loss(history, ylabel="NLL (nats per image)")
plt.show()
plot_image_grid(image_flow.sample(36), title="samples")
plt.show()

# %% [markdown]
# Samples come from one pass of the inverse: draw $z \sim \mathcal N(0, I_{64})$, run the couplings
# backwards and the logit's inverse. Real NVP reaches 3.49 bits/dim on CIFAR-10 with deep ResNet
# conditioners; here the full 3000 steps (`python -m realnvp --data digits`, about 100 s on one
# core) give **2.064 ± 0.013 bits/dim** with 30,821 parameters, and digit-like samples.

# %% [markdown]
# ## 6. Dequantisation: a bound on the likelihood of the pixels (Sec. 4.1)
#
# The pixels are integers $k \in \{0, \dots, 16\}^{64}$, the flow is a density on $[0, 1]^{64}$.
# Write $y = k + u$ with $u \sim U[0, 1)^{64}$: $y$ has the density $p_Y(y) = p(y / 17) / 17^{64}$
# (change of variables, $x = y / 17$). The flow gives the discrete pixels the probability of the
# unit cube above $k$,
#
# $$P(k) = \int_{[0, 1)^{64}} p_Y(k + u)\, du = \mathbb E_u\big[p_Y(k + u)\big],$$
#
# and since $\log$ is concave, Jensen's inequality bounds its logarithm (Theis et al. 2016; the
# Real NVP paper's Sec. 4.1):
#
# $$\log P(k) = \log \mathbb E_u\big[p_Y(k + u)\big] \;\ge\; \mathbb E_u\big[\log p_Y(k + u)\big]
#   = \mathbb E_u\big[\log p\big((k + u) / 17\big)\big] - 64 \log 17 .$$
#
# So the continuous NLL on dequantised data plus $64 \log 17$, what training minimises and what
# bits/dim reports, is an **upper bound** on the discrete code length $-\log P(k)$. The flow
# cannot cheat it with spikes at the integers: its mass must cover the whole cube above $k$.
#
# How loose is the bound? $P(k)$ is an average over $u$, so $K$ draws $u_1, \dots, u_K$ estimate
# it: $\hat P_K = \frac1K \sum_j p_Y(k + u_j)$. By Jensen again
# $\mathbb E[\log \hat P_K] \le \log P(k)$, but this bound tightens as $K$ grows (Burda et al.
# 2016): $K = 1$ is the training bound, and $K \to \infty$ is $\log P(k)$ itself. Below, $K$
# dequantisations of four test digits through the trained model:

# %%
from realnvp.tutorial_checks import check_importance_bits

image_flow.eval()
digits = data["test"][:4]  # four test digits, integer pixels (4, 64)
K = 1000 if FAST else 10_000
gen = torch.Generator().manual_seed(3)
with torch.no_grad():  # log p(x) at x = (k + u_j) / 17, K draws u_j for each digit k
    log_p = torch.stack([image_flow.log_prob(dequantize(k.expand(K, 64), gen)) for k in digits])
print(f"log p(x): {tuple(log_p.shape)}, {log_p.dtype}, from {log_p.min():.1f} to {log_p.max():.1f}")

# %% [markdown]
# ### Exercise 3: the discrete likelihood, estimated with K draws
# `log_p[i, j]` is $\log p(x)$ of the flow at the $j$-th dequantisation $x = (k_i + u_j) / 17$ of
# digit $i$ (in nats, a float32 tensor of shape (4, K)). Compute, for each digit, the $K$-sample
# estimate $-\log \hat P_K$ of its discrete code length in **bits per dimension**. Mind the size
# of the numbers and the type of the tensor.

# %% tags=["exercise"]
my_iw_bits = ...  # your answer: a tensor (4,), -log P_K(k) of each digit in bits/dim
check_importance_bits(my_iw_bits, log_p)

# %% jupyter={"source_hidden": true} tags=["solution"]
# Our solution (folded: open it after you have tried).
# BEGIN SOLUTION realnvp.notebook_importance
# exp(log p) overflows float32 (log p > 88): log (1/K) sum_j exp(a_j) = logsumexp(a) - log K.
# Then the change of variables to k + u (-64 log 17) and nats to bits per pixel (64 log 2).
log_P = torch.logsumexp(log_p.double(), 1) - math.log(K) - 64 * math.log(17)  # log P_K(k)
my_iw_bits = -log_P / (64 * math.log(2))  # nats per image -> bits per pixel
# END SOLUTION
check_importance_bits(my_iw_bits, log_p)

# %% [markdown]
# Beside it, the training bound with one draw $u$ and with the mean over all $K$ draws (the
# expectation of the bound), and the gap between the mean bound and the $K$-sample estimate:

# %%
bits_one = [bits_per_dim(-v) for v in log_p[:, 0].tolist()]  # one u: what a test batch reports
bits_mean = [bits_per_dim(-v) for v in log_p.double().mean(1).tolist()]  # E_u[log p]: Jensen
labels = data["test_labels"][:4].tolist()
print(f"bits/dim of 4 test digits (K = {K:,}; a uniform model over 17 levels: {math.log2(17):.3f})")
print("test digit   one u   mean over u (bound)   K-sample estimate   gap (bound - estimate)")
for i, label in enumerate(labels):
    gap = bits_mean[i] - my_iw_bits[i].item()
    print(
        f"  #{i} ({label})    {bits_one[i]:6.3f}   {bits_mean[i]:6.3f}"
        f"                {my_iw_bits[i].item():6.3f}              {gap:6.3f}"
    )

# %%
ks = torch.unique(torch.logspace(0, math.log10(K), 30).long())
fig, ax = plt.subplots(figsize=(8.5, 4), layout="constrained")
for i, label in enumerate(labels):
    lp = log_p[i].double()
    estimate = [bits_per_dim(-(torch.logsumexp(lp[:k], 0) - math.log(k)).item()) for k in ks]
    (line,) = ax.plot(ks, estimate, label=f"test digit #{i} (a {label}): K-sample estimate")
    ax.axhline(bits_mean[i], color=line.get_color(), ls="--", lw=1)
ax.set_xscale("log")
ax.set_xlabel("K, dequantisations per digit")
ax.set_ylabel("-log P(k) estimate (bits/dim)")
ax.set_title("The bound (dashed: mean over u) and the estimate with K draws")
ax.legend(fontsize=8, loc="upper left", bbox_to_anchor=(1.01, 1))  # outside: no curve hidden
plt.show()

# %% [markdown]
# One draw ($K = 1$, the left end) lands anywhere around the mean bound, above or below it: $\log
# p$ varies by a few nats from one $u$ to another. As $K$ grows each curve settles below its
# dashed line, and the distance between them is the gap printed above. The gap is only a lower
# bound (on average) on how much the Jensen bound that training and bits/dim use overstates the
# code length of the integer digits: the $K$-sample estimate is itself an upper bound on average
# ($\mathbb E[-\log \hat P_K] \ge -\log P$, Jensen again, tightening as $K$ grows), so the
# true overstatement is larger. It is the price of a density that is not flat over each cube
# (were $p$ constant on the cube, Jensen would be an equality); a dequantisation learned instead
# of uniform is how Flow++ (Ho et al. 2019) narrows it.

# %% [markdown]
# ## 7. The multi-scale architecture, drawn, and what each scale holds (Sec. 3.6)
#
# The digits model of section 5 has two scales. The diagram below is drawn from the model itself
# (its layers, in the order `forward` runs them, data to noise): the logit, three checkerboard
# couplings on $1 \times 8 \times 8$, the squeeze to $4 \times 4 \times 4$, three channel
# couplings, then half of the channels **leave** as final noise $z^{(1)}$; the other half,
# $h^{(1)}$, goes through the last scale's four checkerboard couplings and becomes $z^{(2)}$.
# Each coupling is drawn as its mask: black pixels are kept (they condition $s$ and $t$), grey
# ones are transformed, and the next coupling swaps them.

# %%
from matplotlib.patches import ConnectionPatch

from common.flows import Compose
from common.plot import image_mosaic, plot_image_rows
from realnvp.realnvp import FactorOut


def layers_by_scale(transform, scale=0):
    """(scale, layer) for every layer of a RealNVPImage's transform, in data -> noise order; a
    FactorOut comes between its own scale's layers and the next scale's."""
    if isinstance(transform, Compose):
        for t in transform.transforms:
            yield from layers_by_scale(t, scale)
    elif isinstance(transform, FactorOut):
        yield from layers_by_scale(transform.block, scale)
        yield scale, transform
        yield from layers_by_scale(transform.rest, scale + 1)
    else:
        yield scale, transform


def size(shape):
    return "×".join(map(str, shape))


def diagram_rows(flow, shape):
    """Per scale, the diagram's panels (text, mask (C, H, W) or None), following the shape."""
    rows = [[]]
    for scale, layer in layers_by_scale(flow.transform):
        if isinstance(layer, AffineCoupling):
            m = layer.mask
            spatial = bool((m[0] != m[0, 0, 0]).any())  # a checkerboard varies within a channel
            rows[scale].append((f"{'checkerboard' if spatial else 'channel'}\n{size(shape)}", m))
        elif isinstance(layer, Squeeze):
            c, h, w = shape
            shape = (4 * c, h // 2, w // 2)
            rows[scale].append((f"squeeze\n{size((c, h, w))}\n→ {size(shape)}", None))
        elif isinstance(layer, FactorOut):
            shape = (shape[0] // 2, *shape[1:])
            rows[scale].append(("factor out\nhalf of\nthe channels", None))
            rows[scale].append((f"z({scale + 1})\n{size(shape)}", None))
            rows.append([(f"h({scale + 1})\n{size(shape)}", None)])
        else:
            rows[scale].append((f"{type(layer).__name__.lower()}\n{size(shape)}", None))
    rows[-1].append((f"z({len(rows)})\n{size(shape)}", None))
    return rows


def arrow(fig, a, b, start=(1, 0.5), end=(0, 0.5)):
    fig.add_artist(ConnectionPatch(start, end, a.transAxes, b.transAxes, arrowstyle="->"))


# %%
rows = diagram_rows(image_flow, (1, 8, 8))
fig, axes = plt.subplots(len(rows), 1 + max(map(len, rows)), figsize=(15, 2.2 * len(rows)))
for ax in axes.flat:
    ax.axis("off")
axes[0, 0].imshow(((data["test"][0] + 0.5) / 17).view(8, 8), cmap="gray_r", vmin=0, vmax=1)
axes[0, 0].set_title("x\n1×8×8", fontsize=9)
for r, row in enumerate(rows):
    for k, (text, m) in enumerate(row):
        ax = axes[r, k + 1]
        if m is None:  # a step without parameters to draw, or a block of z
            box = {"boxstyle": "round", "fc": "lightblue" if text[0] == "z" else "lightyellow"}
            ax.text(0.5, 0.5, text, ha="center", va="center", fontsize=9, bbox=box)
        else:  # the mask, its channels side by side: black = kept (b = 1), grey = transformed
            ax.imshow(image_mosaic(m, rows=1 + (m.shape[0] > 2)), cmap="gray_r", vmin=-0.3, vmax=1)
            ax.set_title(text, fontsize=9)
        if k > 0 or r == 0:
            arrow(fig, axes[r, k], ax)
        if text.startswith("factor"):  # the other half goes on to the next scale
            arrow(fig, ax, axes[r + 1, 1], (0.5, 0.3), (0.5, 0.75))
fig.suptitle(
    "Multi-scale Real NVP on 8×8 digits, data → noise (masks: black = kept, grey = transformed)"
)
plt.show()

# %% [markdown]
# Now a test digit through the trained model. We put every pixel at the centre of its cube,
# $x = (k + \tfrac12) / 17$, so that no dequantisation noise enters; $z = f(x)$ is 64 numbers,
# the first 32 are $z^{(1)}$ (2 channels of $4 \times 4$, factored out after scale 1), the last
# 32 are $z^{(2)}$ (the last scale's output). Under the base both blocks are $\mathcal N(0, I)$.

# %%
centre = (data["test"] + 0.5) / 17  # every pixel at the centre of its cube: no noise from u
with torch.no_grad():
    z_test, _ = image_flow.transform(centre)  # (360, 64) = [z(1) (32), z(2) (32)]
z1, z2 = z_test[:, :32].view(-1, 2, 4, 4), z_test[:, 32:].view(-1, 2, 4, 4)
print(
    f"std over the test digits: z(1) {z1.std():.2f}, z(2) {z2.std():.2f} (the base N(0, I) has 1)"
)
fig, axes = plt.subplots(3, 3, figsize=(7, 6), gridspec_kw={"width_ratios": [8, 9, 9]})
for i, ax in enumerate(axes):
    ax[0].imshow(centre[i].view(8, 8), cmap="gray_r", vmin=0, vmax=1)
    ax[0].set_ylabel(f"test digit {data['test_labels'][i].item()}")
    blocks = [("z(1): leaves after scale 1", z1), ("z(2): the last scale", z2)]
    for a, (name, block) in zip(ax[1:], blocks, strict=True):
        im = a.imshow(image_mosaic(block[i]), cmap="RdBu_r", vmin=-3, vmax=3)
        a.set_title(name if i == 0 else "", fontsize=9)
    for a in ax:
        a.set_xticks([]), a.set_yticks([])
axes[0, 0].set_title("x", fontsize=9)
fig.colorbar(im, ax=axes[:, 1:], label="z (2 channels of 4×4 each)", shrink=0.8)
fig.suptitle("A digit and the two latent blocks the flow maps it to")
plt.show()

# %% [markdown]
# The blocks look alike, so what does each hold? The paper's test (its App. D, after Gregor et
# al. 2016): keep one block of $z$, draw the other anew from $\mathcal N(0, I)$, and map back
# with $f^{-1}$. Each pair of rows starts from the digit on the left.

# %%
new = torch.randn(3, 2, 7, 32, generator=torch.Generator().manual_seed(4))  # fresh N(0, I) blocks
rows, change, labels = [], [[], []], []
with torch.no_grad():
    for i in range(3):
        for which in (0, 1):  # 0: keep z(2), draw z(1) anew; 1: keep z(1), draw z(2) anew
            z = z_test[i].repeat(7, 1)
            z[:, 32 * which : 32 * which + 32] = new[i, which]
            x_new = image_flow.transform.inverse(z)[0]
            change[which].append((x_new - centre[i]).pow(2).mean(1).sqrt())
            rows.append(torch.cat([centre[i][None], x_new]))
            labels.append(f"digit {data['test_labels'][i].item()}: new z({which + 1})")
between = torch.cdist(centre[:100], centre[100:200]) / 8  # RMS over 64 pixels, digit to digit
print(
    f"RMS pixel change: new z(1) {torch.cat(change[0]).mean():.3f}, new z(2) "
    f"{torch.cat(change[1]).mean():.3f} (two different test digits: {between.mean():.3f})"
)
plot_image_rows(rows, labels, title="left: x; right: x with one latent block drawn anew")
plt.show()

# %% [markdown]
# Drawing $z^{(1)}$ anew keeps the digit and changes its strokes a little; drawing $z^{(2)}$ anew
# gives another digit, nearly as far from the first as two test digits are from each other. The
# factored-out block holds local detail, and the block that went through every scale holds what
# the digit is: the multi-scale architecture spends its later layers (and its cost) on the part
# of $z$ that carries the image's global structure.
#
# ## 8. Samples at several temperatures
#
# Sampling draws $z \sim \mathcal N(0, I)$ and returns $x = f^{-1}(z)$. A common trick (Glow,
# Kingma & Dhariwal 2018) draws $z \sim \mathcal N(0, T^2 I)$ with a temperature $T < 1$
# instead. The base density $\log \mathcal N(z) = -|z|^2 / 2 + \text{const}$ is largest at
# $z = 0$, and $|z|$ of a draw is about $8\,T$ in 64 dimensions: a small $T$ keeps $z$ near
# the base's mode, where the flow maps its most probable, smoothest images, and away from the
# tails, where the model puts its stray mass (speckled pixels, broken strokes). The price is
# variety: the samples crowd around the model's most probable digits. Below, each temperature's
# samples with their mean bits/dim under the model (lower: more probable) and the mean distance
# between two of them (lower: less varied), beside the same numbers for the test digits.

# %%
temperatures = (0.5, 0.7, 0.85, 1.0)
gen = torch.Generator().manual_seed(5)
fig, axes = plt.subplots(1, 4, figsize=(13, 3.8))
print("T      bits/dim of the samples   mean distance between two samples (RMS per pixel)")
with torch.no_grad():
    for ax, T in zip(axes, temperatures, strict=True):
        z = T * torch.randn(400, 64, generator=gen)  # z ~ N(0, T^2 I)
        x_T = image_flow.transform.inverse(z)[0]
        bits = bits_per_dim(-image_flow.log_prob(x_T).mean().item())
        spread = (torch.cdist(x_T[:200], x_T[200:]) / 8).mean()
        print(f"{T:4.2f}   {bits:6.3f}                    {spread:.3f}")
        im = ax.imshow(
            image_mosaic(x_T[:25].clamp(0, 1).view(-1, 8, 8), rows=5), cmap="gray_r", vmin=0, vmax=1
        )
        ax.set_title(f"T = {T}: {bits:.2f} bits/dim")
        ax.set_xticks([]), ax.set_yticks([])
test_u = dequantize(data["test"], torch.Generator().manual_seed(2))  # as in section 5
with torch.no_grad():
    test_bits = bits_per_dim(-image_flow.log_prob(test_u).mean().item())
test_spread = (torch.cdist(test_u[:180], test_u[180:]) / 8).mean()
print(f"test   {test_bits:6.3f}                    {test_spread:.3f}   (dequantised test digits)")
fig.colorbar(im, ax=axes, label="pixel intensity", shrink=0.8)
fig.suptitle("Samples x = f⁻¹(z), z ~ N(0, T² I)")
plt.show()

# %% [markdown]
# At $T = 1$ the samples come close to the test digits on both counts (the model fits them,
# with a little less variety); lowering $T$ gives cleaner and more probable digits that look more
# and more alike. $T$ is a dial between quality and diversity, not a better model: only $T = 1$
# samples the density the bits/dim measure.
#
# ## 9. Interpolation in latent space
#
# Map two test digits to $z_a = f(x_a)$ and $z_b = f(x_b)$, walk from one to the other in $z$ and
# map every point back with $f^{-1}$. A straight line $(1 - \lambda) z_a + \lambda z_b$ is the
# obvious path, but in 64 dimensions it leaves the region where the base puts its mass: draws of
# $\mathcal N(0, I_{64})$ have $|z| \approx 8$ and two of them are nearly orthogonal, so the
# midpoint of the line has about $1/\sqrt 2$ of their norm, a point the base would give at
# $T \approx 0.7$. The paper (Sec. 4.2, Fig. 6: four images, two angles) interpolates on an
# ellipse instead, $z(\phi) = \cos\phi \, z_a + \sin\phi \, z_b$ for $\phi$ from 0 to
# $\pi / 2$, which keeps the norm (exactly for orthogonal $z_a$, $z_b$ of equal length). We draw
# both, the paper's path first.

# %%
pairs = [(0, 1), (2, 5), (3, 7)]  # indices of test digits
phi = torch.linspace(0, math.pi / 2, 9)[:, None]  # the paper's angle, z_a at 0, z_b at pi / 2
lam = torch.linspace(0, 1, 9)[:, None]
rows, labels, norms = [], [], []
with torch.no_grad():
    for a, b in pairs:
        za, zb = z_test[a], z_test[b]
        on_circle = torch.cos(phi) * za + torch.sin(phi) * zb  # Sec. 4.2, Fig. 6 (one angle)
        linear = za + lam * (zb - za)  # the straight line
        name = f"{data['test_labels'][a].item()} → {data['test_labels'][b].item()}"
        for kind, path in (("cos/sin", on_circle), ("linear", linear)):
            rows.append(image_flow.transform.inverse(path)[0])
            labels.append(f"{name}, {kind}")
        norms.append((za.norm(), zb.norm(), on_circle[4].norm(), linear[4].norm()))
norm = z_test.norm(dim=1)
print(f"|z|: a draw of N(0, I_64) 8.0 ± 0.7; the test digits {norm.mean():.1f} ± {norm.std():.1f}")
for na, nb, nc, nl in norms:
    print(f"|z_a| {na:.2f}, |z_b| {nb:.2f}; halfway: cos/sin {nc:.2f}, linear {nl:.2f}")
plot_image_rows(rows, labels, title="Interpolation in z between two test digits")
plt.show()

# %% [markdown]
# Every point on the way decodes to an image (the flow is a bijection), and its smooth layers turn
# a smooth path in $z$ into a gradual morph from one digit to the other. On these digits the two
# paths give much the same images; where they differ is in $z$: halfway, the straight line has
# lost about $1 - 1/\sqrt 2$ of the norm of its ends (the printed norms), as a lower temperature
# would, while the cos/sin path keeps it. The ellipse is the path that stays where the base puts
# its mass, which is why the paper uses it; on this small model the difference barely shows in
# the images. (The test digits' own $|z|$, printed, is below a draw's 8: neither end of the path
# sits on the base's typical shell either.)
#
# ## 10. NICE's additive coupling: the $s = 0$ case
#
# Real NVP's predecessor NICE (Dinh, Krueger & Bengio 2015) uses the **additive** coupling
# $y_{1:d} = x_{1:d}$, $y_{d+1:D} = x_{d+1:D} + t(x_{1:d})$: the affine coupling with $s = 0$. Its
# Jacobian is triangular with ones on the diagonal, so $\det J = 1$ everywhere: the map is
# **volume preserving** and its log-determinant is exactly 0. In our layer $s$ is a learned scale
# times a $\tanh$ (Sec. 4.1), so setting that scale to 0 turns the Real NVP coupling into NICE's,
# with the same (random, non-zero) $t$ network:

# %%
D = 6
mask = torch.tensor([1, 1, 1, 0, 0, 0.0])
additive = AffineCoupling(mask, MLP(3, 2 * D, (32, 32))).double()
with torch.no_grad():
    for p in additive.parameters():
        p.add_(0.3 * torch.randn_like(p))  # random weights, as in section 2
    additive.scale.zero_()  # s = scale * tanh(.) = 0: NICE's additive coupling
points = torch.randn(5, D, dtype=torch.float64)
J = jacobian(lambda v: additive(v[None])[0][0], points[0])
sign, logabsdet = torch.linalg.slogdet(J)
print("Jacobian of the additive coupling:\n", J)
print(f"det J = {sign.item():+.0f} * exp({logabsdet.item():.1e}) (volume preserving: 1)")
print("its log-det at 5 points:                   ", additive(points)[1].detach().numpy())
print("the Real NVP layer of section 2 at them:    ", layer(points)[1].detach().numpy())

# %%
with torch.no_grad():
    h_logit, _ = image_flow.transform.transforms[0](centre)  # the logit, then the couplings
    _, ladj_couplings = image_flow.transform.transforms[1](h_logit)
print(
    f"log-det of the trained digits model's couplings over the {len(centre)} test digits: from "
    f"{ladj_couplings.min():.1f} to {ladj_couplings.max():.1f} nats (additive: 0 for each)"
)

# %% [markdown]
# The lower-left block is not zero (the shift depends on the kept coordinates), yet the
# determinant is exactly 1 and the log-det 0 at every point. That is what NICE loses: a stack of
# additive couplings cannot concentrate or spread mass anywhere, so $\log p(x) = \log
# \mathcal N(f(x))$, and NICE needs a final diagonal scaling layer $e^{S}$ (its Sec. 3.3) to give
# the data its scale, one volume change shared by every $x$. Real NVP's $s(x_{1:d})$ lets every
# layer expand or contract space differently at different points; the trained digits model uses
# that, its couplings' log-det changes by many nats from one digit to another.
