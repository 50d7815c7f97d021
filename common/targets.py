"""Toy 2-D targets whose densities, entropies and normalising constants are known exactly.

Two kinds, both reached through ``get_target(name)``:

* **sample-based** targets (maximum likelihood): ``sample(n)`` -> (n, 2) float32 from torch's global
  RNG, an exact ``log_prob(x)`` -> (n,), and ``entropy()`` -> ``(H, err)`` in nats. ``H`` is
  closed-form where one exists, otherwise ``-∫ p log p`` by grid quadrature, with ``err`` = |H(n) -
  H(n/2)| of two grids. The score of a flow is its test NLL minus ``H`` (>= 0, it is KL(p || q)).
* **energies** p(x) ∝ exp(-U(x)) (reverse KL): ``energy(x)`` = U(x), ``log_z()`` by grid quadrature,
  ``log_prob(x) = -U(x) - log Z``. Rezende & Mohamed's U2, U3 and U4 do not decay along z1, so they
  are not normalisable on R^2; here they carry the confinement 0.5 (max(|z1| - 4, 0) / 0.1)^2, which
  is zero on the paper's [-4, 4]^2 window. "sine" is U(x) = -(sin(pi x1) - 2 (x1^2 + x2^2 - 2)^2).

Every object has ``name``, ``dim`` (= 2) and ``bounds`` = (lo, hi), a square plotting window that
holds essentially all of the mass (a long, thin target may add a rectangular ``view`` for its
figures). ``log_prob`` and ``energy`` work in the dtype and on the device of ``x``.
"""

import math

import torch

LOG_2PI = math.log(2 * math.pi)
EXACT = (
    "donot_use_mm_for_euclid_dist"  # cdist without |x|^2 - 2 x.c + |c|^2, which cancels in float32
)


# -----------------------------------------------------------------------------------------------
# quadrature
def grid(bounds, n):
    """The cell midpoints of an n x n grid over the square ``bounds``, and the cell area.

    The midpoints are float64, of shape (n*n, 2).
    """
    lo, hi = bounds
    h = (hi - lo) / n
    t = lo + h * (torch.arange(n, dtype=torch.float64) + 0.5)
    xx, yy = torch.meshgrid(t, t, indexing="xy")
    return torch.stack([xx.flatten(), yy.flatten()], -1), h * h


@torch.no_grad()
def grid_values(fn, bounds, n, chunk=1 << 15):
    """``fn`` evaluated at the cell midpoints, (n*n,), and the cell area."""
    points, area = grid(bounds, n)
    return torch.cat([fn(p) for p in points.split(chunk)]), area


def grid_logsumexp(log_f, bounds, n):
    """log ∫ exp(log_f(x)) dx over the square by the midpoint rule.

    That is the logsumexp of the grid values plus log(area).
    """
    values, area = grid_values(log_f, bounds, n)
    return (torch.logsumexp(values, 0) + math.log(area)).item()


def grid_entropy(log_p, bounds, n):
    """-∫ p log p over the square by the midpoint rule (cells where p = 0 contribute 0)."""
    lp, area = grid_values(log_p, bounds, n)
    return -(torch.where(torch.isfinite(lp), lp.exp() * lp, 0.0).sum() * area).item()


def gauss_legendre(n):
    """Nodes and weights (float64, (n,) each) of n-point Gauss-Legendre quadrature on [0, 1].

    Newton's method on the Legendre polynomial P_n from x_k = cos(pi (k - 1/4) / (n + 1/2)), with
    P_n from the recurrence (j + 1) P_{j+1} = (2j + 1) x P_j - j P_{j-1}; weights 2 / ((1 - x^2)
    P_n'(x)^2) on [-1, 1].
    """
    x = torch.cos(math.pi * (torch.arange(1, n + 1, dtype=torch.float64) - 0.25) / (n + 0.5))
    for _ in range(50):
        previous, p = torch.ones_like(x), x  # P_0, P_1
        for j in range(1, n):
            previous, p = p, ((2 * j + 1) * x * p - j * previous) / (j + 1)
        slope = n * (x * p - previous) / (x**2 - 1)  # P_n'(x)
        step = p / slope
        x = x - step
        if step.abs().max() < 1e-15:
            break
    # mapped to [0, 1]: nodes ascending, weights halved
    return (1 - x) / 2, 1 / ((1 - x**2) * slope**2)


# -------------------------------------------------------------------------------------------
# sample-based
class Target:
    """Base class: subclasses set ``name`` and ``bounds`` and write ``_sample`` and ``log_prob``.

    ``entropy()`` defaults to grid quadrature on ``bounds`` with ``quad_n`` cells a side (cached).
    """

    dim = 2
    quad_n = 320

    def __init__(self, name, bounds):
        self.name, self.bounds, self._entropy = name, bounds, None

    def sample(self, n, generator=None):
        """``n`` samples, (n, 2) float32, from torch's global RNG (or ``generator``)."""
        return self._sample(n, generator).float()

    def entropy(self):
        """(H, err): -∫ p log p on two grids, n and n/2 cells a side; err is their difference."""
        if self._entropy is None:
            fine = grid_entropy(self.log_prob, self.bounds, self.quad_n)
            coarse = grid_entropy(self.log_prob, self.bounds, self.quad_n // 2)
            self._entropy = (fine, abs(fine - coarse))
        return self._entropy

    def __repr__(self):
        return f"{type(self).__name__}({self.name!r})"


class Gaussian(Target):
    """N(mean, var I): H = log(2 pi e var) in 2-D."""

    def __init__(self, name, mean, var, bounds):
        super().__init__(name, bounds)
        self.mean, self.var = mean, var

    def _sample(self, n, generator):
        return torch.tensor(self.mean) + math.sqrt(self.var) * torch.randn(
            n, 2, generator=generator
        )

    def log_prob(self, x):
        return (
            -0.5 * ((x - x.new_tensor(self.mean)) ** 2).sum(-1) / self.var
            - LOG_2PI
            - math.log(self.var)
        )

    def entropy(self):
        return math.log(2 * math.pi * math.e * self.var), 0.0


class UniformNormal(Target):
    """x = (a, b): a ~ U(1, 2), b | a ~ N(a, a) (variance a).

    H = H(a) + E_a[H(b | a)] = 0 + 0.5 log(2 pi e) + 0.5 E[log a], with E[log a] = 2 log 2 - 1.
    """

    # plotting window ((a_lo, a_hi), (b_lo, b_hi)): the density is tall and thin
    view = ((0.5, 2.5), (-3.5, 7.5))

    def _sample(self, n, generator):
        a = 1 + torch.rand(n, generator=generator)
        return torch.stack([a, a + a.sqrt() * torch.randn(n, generator=generator)], -1)

    def log_prob(self, x):
        a, b = x[:, 0], x[:, 1]
        inside = (a >= 1) & (a <= 2)
        a = torch.where(inside, a, 1.5)  # keep the log finite outside; masked to -inf below
        log_p = -0.5 * (b - a) ** 2 / a - 0.5 * (math.log(2 * math.pi) + torch.log(a))
        return torch.where(inside, log_p, -math.inf)

    def entropy(self):
        return 0.5 * math.log(2 * math.pi * math.e) + 0.5 * (2 * math.log(2) - 1), 0.0


class GaussianMixture(Target):
    """Equal mixture of K isotropic Gaussians N(mu_k, std^2 I); H by quadrature."""

    quad_n = 280

    def __init__(self, name, means, std, bounds):
        super().__init__(name, bounds)
        self.means, self.std = torch.as_tensor(means, dtype=torch.float64), std

    def _sample(self, n, generator):
        k = torch.randint(len(self.means), (n,), generator=generator)
        return self.means[k].float() + self.std * torch.randn(n, 2, generator=generator)

    def log_prob(self, x):
        d2 = ((x[:, None, :] - self.means.to(x)) ** 2).sum(-1)  # (n, K)
        log_n = -0.5 * d2 / self.std**2 - LOG_2PI - 2 * math.log(self.std)
        return torch.logsumexp(log_n, -1) - math.log(len(self.means))


class Checkerboard(Target):
    """Uniform on the 8 dark cells of a 4 x 4 board over [-2, 2]^2 (dark: floor(x1) + floor(x2)
    even).

    p = 1/8 on a dark cell, 0 elsewhere; H = log 8.
    """

    def _sample(self, n, generator):
        cell = torch.randint(8, (n,), generator=generator)
        col = cell % 4
        row = 2 * (cell // 4) + col % 2  # rows of the same parity as the column: floor sum even
        corner = torch.stack([col, row], -1) - 2
        return corner + torch.rand(n, 2, generator=generator)

    def log_prob(self, x):
        cells = torch.floor(x)
        dark = (cells.sum(-1) % 2 == 0) & (x >= -2).all(-1) & (x < 2).all(-1)
        return torch.where(dark, -math.log(8), -math.inf).to(x)

    def entropy(self):
        return math.log(8), 0.0


class Rings(Target):
    """Equal mixture of K rings: radius r_k, uniform angle, plus N(0, std^2 I) noise.

    Integrating the angle out gives the Bessel closed form
        p(x) = (1/K) sum_k exp(-(|x|^2 + r_k^2) / (2 std^2)) I0(|x| r_k / std^2) / (2 pi std^2),
    evaluated with i0e(z) = exp(-z) I0(z) so that the exponent is -(|x| - r_k)^2 / (2 std^2). H by
    quadrature.
    """

    quad_n = 240

    def __init__(self, name, radii, std, bounds):
        super().__init__(name, bounds)
        self.radii, self.std = torch.tensor(radii, dtype=torch.float64), std

    def _sample(self, n, generator):
        r = self.radii[torch.randint(len(self.radii), (n,), generator=generator)].float()
        angle = 2 * math.pi * torch.rand(n, generator=generator)
        ring = r[:, None] * torch.stack([angle.cos(), angle.sin()], -1)
        return ring + self.std * torch.randn(n, 2, generator=generator)

    def log_prob(self, x):
        rho, r, s2 = x.norm(dim=-1, keepdim=True), self.radii.to(x), self.std**2
        log_k = (
            -0.5 * (rho - r) ** 2 / s2
            + torch.log(torch.special.i0e(rho * r / s2))
            - math.log(2 * math.pi * s2)
        )
        return torch.logsumexp(log_k, -1) - math.log(len(self.radii))


class NoisyCurves(Target):
    """Pick one of A curves c_a(u), u ~ U(0, 1), and add N(0, std^2 I) noise. The density is a 1-D
    integral, p(x) = (1/A) sum_a ∫_0^1 N(x; c_a(u), std^2 I) du, computed by Gauss-Legendre
    quadrature with ``nodes`` points (the integrand is smooth in u; ``nodes`` is chosen so that
    doubling it changes log p by < 1e-6). H by grid quadrature."""

    quad_n = 160

    def __init__(self, name, curves, std, bounds, nodes):
        super().__init__(name, bounds)
        self.curves, self.std = curves, std
        self.u, w = gauss_legendre(nodes)
        self.log_w = w.log()
        self.centres = curves(self.u)  # (A, nodes, 2), float64

    def _sample(self, n, generator):
        arm = torch.randint(self.centres.shape[0], (n,), generator=generator)
        u = torch.rand(n, generator=generator, dtype=torch.float64)
        points = self.curves(u)[arm, torch.arange(n)].float()
        return points + self.std * torch.randn(n, 2, generator=generator)

    def log_prob(self, x):
        c, log_w = self.centres.to(x).flatten(0, 1), self.log_w.to(x).repeat(self.centres.shape[0])
        const = -LOG_2PI - 2 * math.log(self.std) - math.log(self.centres.shape[0])
        # (batch, A * nodes) per chunk
        parts = [
            torch.logsumexp(
                log_w - 0.5 * torch.cdist(xb, c, compute_mode=EXACT) ** 2 / self.std**2, -1
            )
            for xb in x.split(4096)
        ]
        return torch.cat(parts) + const


def moons(u):
    """Two interleaved half circles, t = pi u: (cos t, sin t) and (1 - cos t, 1/2 - sin t)
    (scikit-learn's make_moons before noise), shifted by (-1/2, -1/4) to centre them; shape
    (2, len(u), 2)."""
    t = math.pi * u
    upper = torch.stack([t.cos(), t.sin()], -1)
    lower = torch.stack([1 - t.cos(), 0.5 - t.sin()], -1)
    return torch.stack([upper, lower]) - torch.tensor([0.5, 0.25], dtype=u.dtype)


def spirals(u, start=0.5, stop=3 * math.pi, scale=1 / math.pi):
    """Two Archimedean spirals r = scale * phi, the second rotated by pi: (2, len(u), 2).

    phi = sqrt(start^2 + u (stop^2 - start^2)) makes a uniform u roughly uniform in arc length.
    """
    phi = (start**2 + u * (stop**2 - start**2)).sqrt()
    arm = scale * phi[:, None] * torch.stack([phi.cos(), phi.sin()], -1)
    return torch.stack([arm, -arm])


class Pinwheel(Target):
    """K bent arms: an equal mixture of K Gaussians, then a swirl.

    y ~ (1/K) sum_k N(R_k (1, 0), R_k diag(radial_std^2, tangential_std^2) R_k^T), R_k = rotation by
    2 pi k / K; x = R(rate |y|^2) y. The swirl turns each circle |y| = r by its own angle, (r,
    theta) -> (r, theta + rate r^2): a bijection with Jacobian determinant 1 and inverse y = R(-rate
    |x|^2) x, so p(x) = q(R(-rate |x|^2) x) exactly (and H(x) = H(y)). H by quadrature.
    """

    quad_n = 200

    def __init__(
        self,
        name="pinwheel",
        arms=5,
        radial_std=0.3,
        tangential_std=0.1,
        rate=0.4,
        bounds=(-2.5, 2.5),
    ):
        super().__init__(name, bounds)
        self.arms, self.std, self.rate = arms, (radial_std, tangential_std), rate

    @staticmethod
    def _rotate(x, angle):
        c, s = angle.cos(), angle.sin()
        return torch.stack([c * x[..., 0] - s * x[..., 1], s * x[..., 0] + c * x[..., 1]], -1)

    def _sample(self, n, generator):
        k = torch.randint(self.arms, (n,), generator=generator)
        y = torch.tensor([1.0, 0.0]) + torch.tensor(self.std) * torch.randn(
            n, 2, generator=generator
        )
        y = self._rotate(y, 2 * math.pi * k / self.arms)
        return self._rotate(y, self.rate * (y**2).sum(-1))

    def log_prob(self, x):
        y = self._rotate(x, -self.rate * (x**2).sum(-1))  # undo the swirl (|y| = |x|)
        angles = 2 * math.pi * torch.arange(self.arms, dtype=x.dtype, device=x.device) / self.arms
        # (n, K, 2), arm frame
        local = self._rotate(y[:, None, :], -angles) - x.new_tensor([1.0, 0.0])
        log_n = (
            -0.5 * (local / x.new_tensor(self.std)).pow(2).sum(-1)
            - LOG_2PI
            - math.log(self.std[0] * self.std[1])
        )
        return torch.logsumexp(log_n, -1) - math.log(self.arms)


class Banana(Target):
    """The target of Figure 1 of Papamakarios et al. (2017): x2 ~ N(0, 4), x1 | x2 ~ N(x2^2 / 4, 1)
    (4 is a variance): a banana whose x1-marginal is skewed, so a single Gaussian conditional on x1
    first fails.

    H = H(x2) + E[H(x1 | x2)] = 0.5 log(2 pi e 4) + 0.5 log(2 pi e) = log(2 pi e) + log 2, exact.
    The quadrature window holds x2 within 5.5 standard deviations; ``view`` is the paper's window.
    """

    view = ((-6.0, 10.0), (-6.0, 10.0))

    def __init__(self, name="banana", bounds=(-11.0, 35.0)):
        super().__init__(name, bounds)

    def _sample(self, n, generator):
        x2 = 2 * torch.randn(n, generator=generator)
        return torch.stack([x2**2 / 4 + torch.randn(n, generator=generator), x2], -1)

    def log_prob(self, x):
        x1, x2 = x[:, 0], x[:, 1]
        log_p_x2 = -0.5 * (x2 / 2) ** 2 - math.log(2) - 0.5 * LOG_2PI
        return log_p_x2 - 0.5 * (x1 - x2**2 / 4) ** 2 - 0.5 * LOG_2PI

    def entropy(self):
        return math.log(2 * math.pi * math.e) + math.log(2), 0.0


# -----------------------------------------------------------------------------------------------
# energies
def _w1(z):
    return torch.sin(2 * math.pi * z[:, 0] / 4)


def _w2(z):
    return 3 * torch.exp(-0.5 * ((z[:, 0] - 1) / 0.6) ** 2)


def _w3(z):
    return 3 * torch.sigmoid((z[:, 0] - 1) / 0.3)


def _confine(z):
    """0.5 (max(|z1| - 4, 0) / 0.1)^2: zero on [-4, 4], makes U2-U4 normalisable along z1."""
    return 0.5 * (torch.relu(z[:, 0].abs() - 4) / 0.1) ** 2


def u1(z):
    """The energy U1 (Rezende & Mohamed 2015, Table 1).

    U1 = 0.5 ((|z| - 2) / 0.4)^2 - log(exp(-0.5 ((z1 - 2) / 0.6)^2) + exp(-0.5 ((z1 + 2) / 0.6)^2)).
    """
    ring = 0.5 * ((z.norm(dim=-1) - 2) / 0.4) ** 2
    return ring - torch.logaddexp(
        -0.5 * ((z[:, 0] - 2) / 0.6) ** 2, -0.5 * ((z[:, 0] + 2) / 0.6) ** 2
    )


def u2(z):
    """U2 = 0.5 ((z2 - w1) / 0.4)^2 (+ confinement)."""
    return 0.5 * ((z[:, 1] - _w1(z)) / 0.4) ** 2 + _confine(z)


def u3(z):
    """The energy U3 (Rezende & Mohamed 2015, Table 1).

    U3 = -log(exp(-0.5 ((z2 - w1) / 0.35)^2) + exp(-0.5 ((z2 - w1 + w2) / 0.35)^2)) (+ confinement).
    """
    d = z[:, 1] - _w1(z)
    return -torch.logaddexp(-0.5 * (d / 0.35) ** 2, -0.5 * ((d + _w2(z)) / 0.35) ** 2) + _confine(z)


def u4(z):
    """The energy U4 (Rezende & Mohamed 2015, Table 1).

    U4 = -log(exp(-0.5 ((z2 - w1) / 0.4)^2) + exp(-0.5 ((z2 - w1 + w3) / 0.35)^2)) (+ confinement).
    """
    d = z[:, 1] - _w1(z)
    return -torch.logaddexp(-0.5 * (d / 0.4) ** 2, -0.5 * ((d + _w3(z)) / 0.35) ** 2) + _confine(z)


def sine(z):
    """U = -(sin(pi z1) - 2 (z1^2 + z2^2 - 2)^2): a ring of radius sqrt(2) modulated along z1."""
    return 2 * ((z**2).sum(-1) - 2) ** 2 - torch.sin(math.pi * z[:, 0])


class Energy:
    """p(x) = exp(-U(x)) / Z with log Z by midpoint-rule quadrature on ``quad_bounds`` (cached).

    log Z is computed on two grids (``quad_n`` and ``quad_n / 2`` cells a side, about 0.02 and 0.04
    apart); a disagreement beyond 1e-4 raises RuntimeError, so a too-coarse grid cannot pass
    silently.
    """

    dim = 2

    def __init__(self, name, energy, bounds, quad_bounds, quad_n):
        self.name, self.energy, self.bounds = name, energy, bounds
        self.quad_bounds, self.quad_n, self._log_z = quad_bounds, quad_n, None

    def log_z(self):
        """log ∫ exp(-U(x)) dx (float)."""
        if self._log_z is None:
            fine, coarse = (
                grid_logsumexp(lambda x: -self.energy(x), self.quad_bounds, n)
                for n in (self.quad_n, self.quad_n // 2)
            )
            if abs(fine - coarse) > 1e-4:
                raise RuntimeError(
                    f"log Z of {self.name} not converged: {coarse:.6f} vs {fine:.6f}"
                )
            self._log_z = fine
        return self._log_z

    def log_prob(self, x):
        return -self.energy(x) - self.log_z()

    def __repr__(self):
        return f"Energy({self.name!r})"


# -----------------------------------------------------------------------------------------------
# registry
_TARGETS = {
    t.name: t
    for t in (
        Gaussian("gauss", (5.0, 5.0), 0.5, bounds=(0, 10)),
        UniformNormal("ua_nb", bounds=(-6, 10)),
        NoisyCurves("moons", moons, std=0.1, bounds=(-2, 2), nodes=128),
        GaussianMixture(
            "gauss8",
            [
                (2 * math.cos(2 * math.pi * k / 8), 2 * math.sin(2 * math.pi * k / 8))
                for k in range(8)
            ],
            std=0.2,
            bounds=(-3.5, 3.5),
        ),
        Checkerboard("checker", bounds=(-2.5, 2.5)),
        Rings("rings", (0.5, 1.0, 1.5, 2.0), std=0.1, bounds=(-3, 3)),
        NoisyCurves("spirals", spirals, std=0.1, bounds=(-4, 4), nodes=384),
        Pinwheel("pinwheel"),
        Banana("banana"),
    )
}
_ENERGIES = {
    e.name: e
    for e in (
        Energy("U1", u1, bounds=(-4, 4), quad_bounds=(-5, 5), quad_n=500),
        # the paper plots U1-U4 on [-4, 4]^2; these windows also hold the confined shoulders and
        # U4's tail
        Energy("U2", u2, bounds=(-4.5, 4.5), quad_bounds=(-5, 5), quad_n=500),
        Energy("U3", u3, bounds=(-4.5, 4.5), quad_bounds=(-5, 5), quad_n=500),
        Energy("U4", u4, bounds=(-5.5, 5.5), quad_bounds=(-7, 7), quad_n=700),
        Energy("sine", sine, bounds=(-3, 3), quad_bounds=(-3.5, 3.5), quad_n=350),
    )
}
SAMPLE_TARGETS = tuple(_TARGETS)
ENERGIES = tuple(_ENERGIES)


def get_target(name):
    """The target or energy called ``name``.

    One shared instance per name, so cached entropies and log Z persist.
    """
    if name in _TARGETS:
        return _TARGETS[name]
    if name in _ENERGIES:
        return _ENERGIES[name]
    raise ValueError(
        f"unknown target {name!r}; expected one of {', '.join(SAMPLE_TARGETS + ENERGIES)}"
    )
