"""Real NVP (Dinh, Sohl-Dickstein & Bengio 2017): affine couplings, masks, batch norm and the
multi-scale image flow."""

# first: `python -m realnvp` answers Ctrl-C during its imports with one line
import common.runtime  # noqa: F401

from .realnvp import (
    AffineCoupling,
    FactorOut,
    RealNVP,
    RealNVPImage,
    Squeeze,
    channel_mask,
    checkerboard,
    conv_net,
    multiscale,
)

__all__ = [
    "RealNVP",
    "RealNVPImage",
    "AffineCoupling",
    "Squeeze",
    "FactorOut",
    "multiscale",
    "checkerboard",
    "channel_mask",
    "conv_net",
]
