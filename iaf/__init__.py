"""Inverse Autoregressive Flow (Kingma et al. 2016): ``IAF(features, transforms, hidden_features, context)``."""

from .iaf import IAF, DiagonalAffine, GatedAutoregressive

__all__ = ["IAF", "DiagonalAffine", "GatedAutoregressive"]
