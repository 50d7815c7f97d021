"""scikit-learn's 8 x 8 handwritten digits (embedded in the package: no download) as integer pixels
0..16.

Images are 64 pixels with 17 grey levels. Flows model a continuous density, so the integer pixels
are dequantised, x = (k + u) / 17 with u ~ U[0, 1): then -log p(x) + 64 log 17 bounds -log P(k) (in
nats), and ``common.metrics.bits_per_dim`` turns it into bits per dimension.
"""

from functools import lru_cache

import torch

LEVELS = 17  # pixel values 0, 1, ..., 16
SIZES = {"train": 1257, "val": 180, "test": 360}  # 1797 images in all


def load_digits_split(seed=0):
    """Fixed train / val / test split of the 1797 digits: a seeded permutation cut into 1257 / 180 /
    360.

    Returns a dict: "train", "val", "test" -> float32 tensors (n, 64) of integer pixel values 0..16
    (row-major 8 x 8 images) and "train_labels", "val_labels", "test_labels" -> int64 tensors (n,)
    of the digit 0..9.
    """
    images, labels = _load()
    perm = torch.randperm(len(images), generator=torch.Generator().manual_seed(seed))
    split, start = {}, 0
    for name, size in SIZES.items():
        idx = perm[start : start + size]
        split[name], split[f"{name}_labels"] = images[idx], labels[idx]
        start += size
    return split


@lru_cache(maxsize=1)
def _load():
    from sklearn.datasets import load_digits

    digits = load_digits()
    return torch.tensor(digits.data, dtype=torch.float32), torch.tensor(
        digits.target, dtype=torch.long
    )


def dequantize(x_int, generator=None):
    """Uniform dequantisation: (x_int + u) / 17 with u ~ U[0, 1) per pixel, so the result lies in
    [0, 1).

    In float32, 16 + u rounds up to 17 for u within 1e-6 of 1, so the result is clamped below 1.
    """
    u = torch.rand(x_int.shape, generator=generator, dtype=x_int.dtype, device=x_int.device)
    below_one = torch.nextafter(x_int.new_ones(()), x_int.new_zeros(()))
    return torch.minimum((x_int + u) / LEVELS, below_one)


def binarize(x_int):
    """Fixed binarisation for Bernoulli models: 1.0 where the pixel value is > 8, else 0.0."""
    return (x_int > 8).to(torch.float32)
