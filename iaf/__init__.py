"""Inverse Autoregressive Flow (Kingma et al. 2016).

``IAF(features, transforms, hidden_features, context, gate_bias)`` returns a ``common.flows.Flow``.
"""

from .iaf import IAF, DiagonalAffine, GatedAutoregressive

__all__ = ["IAF", "DiagonalAffine", "GatedAutoregressive"]
