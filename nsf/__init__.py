"""Neural Spline Flows (Durkan et al. 2019): ``NSF(features, transforms, hidden_features, bins,
bound, coupling,
context)``."""

from .nsf import NSF, SplineAutoregressive, SplineCoupling, rq_spline

__all__ = ["NSF", "SplineAutoregressive", "SplineCoupling", "rq_spline"]
