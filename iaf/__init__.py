"""Inverse Autoregressive Flow (Kingma et al. 2016).

``IAF(features, transforms, hidden_features, context, gate_bias, step)`` returns a
``common.flows.Flow``.
"""

# first: `python -m iaf` answers Ctrl-C during its imports with one line
import common.runtime  # noqa: F401

from .iaf import IAF, AffineAutoregressive, DiagonalAffine, GatedAutoregressive

__all__ = ["IAF", "AffineAutoregressive", "DiagonalAffine", "GatedAutoregressive"]
