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
# 5. results on a 2-D density with a known entropy and on 8 x 8 digits.
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


# %% tags=["solution"] jupyter={"source_hidden": true}
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
# 1797 scikit-learn digits with 17 grey levels, dequantised as $(k + u)/17$. Bits per dimension $=
# \big(\mathrm{NLL} + 64 \log 17\big) / (64 \log 2)$ bounds the discrete code length; a uniform
# model gives $\log_2 17 = 4.09$. The weights with the best validation NLL are kept.
#
# **Exercise 2.** Turn a test NLL in nats per image of 64 dequantised pixels in $[0, 1]$ into bits
# per dimension. The density of $x = (k + u)/17$ is 17 times per pixel larger than the density of
# $k + u$, whose NLL bounds the code length of the discrete $k$; divide by $64 \log 2$ for bits per
# pixel.

# %%
nll_nats = torch.tensor([-89.75, 0.0, -30.0])

# %% tags=["exercise"]
my_bits = ...  # your answer: bits/dim of each NLL, a tensor of the shape of nll_nats
check_bits_per_dim(my_bits, nll_nats)

# %% tags=["solution"] jupyter={"source_hidden": true}
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
