"""Neural Spline Flows (Durkan et al. 2019): ``NSF(features, transforms, hidden_features, bins,
bound, coupling, context)``; the spline itself is ``rq_spline`` (its knots: ``knots``)."""

from .nsf import NSF, SplineAutoregressive, SplineCoupling, knots, rq_spline

__all__ = ["NSF", "SplineAutoregressive", "SplineCoupling", "knots", "rq_spline"]
