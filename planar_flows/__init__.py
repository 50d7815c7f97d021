"""Rezende & Mohamed (2015): planar and radial flows.

``python -m planar_flows`` reproduces Figure 3.
"""

from .planar import Planar, PlanarFlow, Radial

__all__ = ["PlanarFlow", "Planar", "Radial"]
