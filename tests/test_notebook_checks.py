"""The notebooks' exercise checks (``<folder>/tutorial_checks.py``) reject plausible wrong
answers and accept the reference: for each checked exercise, the reference passes and
each planted wrong answer raises AssertionError, and ``...`` (not tried yet) returns None. Then
the form of every tutorial's exercises (an exercise cell, then its folded solution) and the
figures CI asks of each notebook. Not in the student copy (it holds the answers)."""

import math
import re
from pathlib import Path

import jupytext
import pytest
import torch
from torch.autograd.functional import jacobian

from common.flows import Flow, Inverse, Transform
from common.nets import MLP
from common.targets import get_target
from iaf.tutorial_checks import check_kl_one_mode, check_passes
from intro.tutorial_checks import (
    check_cdf_flow,
    check_layer,
    check_lognormal,
    check_reverse_kl,
    check_triangular,
)
from maf.tutorial_checks import check_chain_rule, check_reach
from nsf import NSF
from nsf.nsf import knots
from nsf.tutorial_checks import check_quadratic, check_tails, spline_formula
from planar_flows.tutorial_checks import check_lemma, check_min_slope, lemma_inputs
from realnvp import AffineCoupling
from realnvp.tutorial_checks import check_autograd_logdet, check_bits_per_dim
from tools.papers import PAPERS

ROOT = Path(__file__).resolve().parent.parent


def _accepts(capsys, call):
    """``call()`` runs a check on a right answer: it returns None and prints "right"."""
    assert call() is None
    assert ": right" in capsys.readouterr().out


def _rejects(check, *args):
    with pytest.raises(AssertionError):
        check(*args)


# ---- intro, Exercise 4: the reverse KL on given samples


@pytest.fixture(scope="module")
def kl_inputs():
    torch.manual_seed(0)
    flow = Flow(Inverse(NSF(2, transforms=1, hidden_features=(8,)).transform), features=2)
    energy = get_target("sine")
    with torch.no_grad():
        x, log_q = flow.rsample_and_log_prob(20_000)
    return x, log_q, energy


def _kl(x, log_q, energy):
    return (log_q + energy.energy(x)).mean().item() + energy.log_z()


INTRO_WRONG = {
    "zero": lambda x, log_q, e: 0.0,
    "minus KL": lambda x, log_q, e: -_kl(x, log_q, e),
    "half KL": lambda x, log_q, e: _kl(x, log_q, e) / 2,
    "no log Z": lambda x, log_q, e: (log_q + e.energy(x)).mean().item(),
    "minus log Z": lambda x, log_q, e: (log_q + e.energy(x)).mean().item() - e.log_z(),
    "log q - U": lambda x, log_q, e: (log_q - e.energy(x)).mean().item() + e.log_z(),
    "other samples": lambda x, log_q, e: _kl(x[:2000], log_q[:2000], e),
    "not set": lambda x, log_q, e: None,
}


def test_intro_reverse_kl_reference_passes(kl_inputs):
    check_reverse_kl(_kl(*kl_inputs), *kl_inputs)


@pytest.mark.parametrize("wrong", INTRO_WRONG)
def test_intro_reverse_kl_rejects(kl_inputs, wrong):
    _rejects(check_reverse_kl, INTRO_WRONG[wrong](*kl_inputs), *kl_inputs)


# ---- planar, Exercise 1: the matrix determinant lemma

PLANAR_WRONG = {
    "no absolute value": lambda u, psi: torch.log(1 + psi @ u),
    "no 1": lambda u, psi: torch.log(torch.abs(psi @ u)),
    "abs inside the 1": lambda u, psi: torch.log(1 + torch.abs(psi @ u)),
    "no log": lambda u, psi: torch.abs(1 + psi @ u),
    "elementwise": lambda u, psi: torch.log(torch.abs(1 + psi * u)).sum(),
    "a vector": lambda u, psi: torch.log(torch.abs(1 + psi * u)),
    "not set": lambda u, psi: None,
}


def test_planar_lemma_reference_passes():
    u, psi = lemma_inputs()
    assert 1 + psi @ u < -1  # the absolute value matters at these inputs
    check_lemma(torch.log(torch.abs(1 + psi @ u)), u, psi)


@pytest.mark.parametrize("wrong", PLANAR_WRONG)
def test_planar_lemma_rejects(wrong):
    u, psi = lemma_inputs()
    _rejects(check_lemma, PLANAR_WRONG[wrong](u, psi), u, psi)


# ---- maf, Exercise 1: which input reaches which output

MAF_WRONG = {
    "middle mask skipped": lambda m: (m[2] @ m[0]) > 0,
    "wrong order of the product": lambda m: (m[0].T @ m[1].T @ m[2].T) > 0,
    "hard-coded triangle": lambda m: torch.ones(4, 4).tril(-1).bool(),
    "counts, not booleans": lambda m: m[2] @ m[1] @ m[0],
    "first and last only": lambda m: (m[-1] @ m[0]) > 0 if m[1].shape[0] == m[0].shape[0] else None,
    "diagonal included": lambda m: ((m[2] @ m[1] @ m[0]) > 0) | torch.eye(4, dtype=torch.bool),
}


def test_maf_reach_reference_passes():
    check_reach(lambda m: (m[2] @ m[1] @ m[0]) > 0)


@pytest.mark.parametrize("wrong", MAF_WRONG)
def test_maf_reach_rejects(wrong):
    with pytest.raises(AssertionError):  # a shape mismatch too, named as such
        check_reach(MAF_WRONG[wrong])


# ---- iaf, Exercise 2: the KL of one mode against two


@pytest.fixture(scope="module")
def mode_inputs():
    a, b, s = torch.tensor([1.0, 0.0]), torch.tensor([0.0, 0.5]), 0.5
    q = torch.distributions.MultivariateNormal(a, s**2 * torch.eye(2))
    other = torch.distributions.MultivariateNormal(b, s**2 * torch.eye(2))
    torch.manual_seed(0)
    return q, other, q.sample((10_000,))


LOG2 = math.log(2)


def _log_p(q, other, x, log_weight=LOG2):
    return torch.logsumexp(torch.stack([q.log_prob(x), other.log_prob(x)]), 0) - log_weight


def _on_fresh_samples(q, other):
    torch.manual_seed(1)  # tests/conftest.py seeds every test with 0, as the fixture's x
    y = q.sample((10_000,))
    return (q.log_prob(y) - _log_p(q, other, y)).mean().item()


IAF_WRONG = {
    "the prompt's old answer, log 2": lambda q, o, x: math.log(2),
    "forward direction sign": lambda q, o, x: (_log_p(q, o, x) - q.log_prob(x)).mean().item(),
    "no 1/2 weights": lambda q, o, x: (q.log_prob(x) - _log_p(q, o, x, 0.0)).mean().item(),
    "p is the other mode": lambda q, o, x: (q.log_prob(x) - o.log_prob(x)).mean().item(),
    "fresh samples": lambda q, o, x: _on_fresh_samples(q, o),
    "not set": lambda q, o, x: None,
}


def test_iaf_mode_seeking_reference_passes(mode_inputs, capsys):
    q, other, x = mode_inputs
    kl = (q.log_prob(x) - _log_p(q, other, x)).mean().item()
    _accepts(capsys, lambda: check_kl_one_mode(kl, q, other, x))
    assert 0.05 < kl < math.log(2) - 0.05  # overlapping modes: well below the far limit


@pytest.mark.parametrize("wrong", IAF_WRONG)
def test_iaf_mode_seeking_rejects(mode_inputs, wrong):
    with pytest.raises((AssertionError, TypeError)):  # None: float(None) is a TypeError
        check_kl_one_mode(IAF_WRONG[wrong](*mode_inputs), *mode_inputs)


# ---- realnvp, Exercise 1: the Jacobian and its log|det| by autograd


@pytest.fixture(scope="module")
def coupling():
    torch.manual_seed(0)
    layer = AffineCoupling(torch.tensor([1, 1, 1, 0, 0, 0.0]), MLP(3, 12, (32, 32))).double()
    with torch.no_grad():
        for p in layer.parameters():
            p.add_(0.3 * torch.randn_like(p))
    return layer, (lambda v: layer(v[None])[0][0]), torch.randn(6, dtype=torch.float64)


def _reference(f, x):
    J = jacobian(f, x)
    return J, torch.linalg.slogdet(J)[1]


def _wrong_realnvp(layer):
    return {
        "the layer's own log-det": lambda f, x: (jacobian(f, x), layer(x[None])[1][0]),
        "log det without abs": lambda f, x: (jacobian(f, x), torch.log(torch.det(jacobian(f, x)))),
        "diagonal only": lambda f, x: (
            jacobian(f, x),
            jacobian(f, x).diagonal().abs().log().sum(),
        ),
        "transposed J": lambda f, x: (jacobian(f, x).T, torch.linalg.slogdet(jacobian(f, x))[1]),
        "det, not its log": lambda f, x: (jacobian(f, x), torch.det(jacobian(f, x)).abs()),
    }


def test_realnvp_jacobian_reference_passes(coupling, capsys):
    layer, f, x = coupling
    _accepts(capsys, lambda: check_autograd_logdet(_reference, f, x))
    J, logdet = _reference(f, x)
    assert abs(logdet - layer(x[None])[1][0]) < 1e-8 and J.shape == (6, 6)


@pytest.mark.parametrize("wrong", list(_wrong_realnvp(None)))
def test_realnvp_jacobian_rejects(coupling, wrong):
    layer, f, x = coupling
    _rejects(check_autograd_logdet, _wrong_realnvp(layer)[wrong], f, x)


# ---- nsf, Exercise 1: identity tails; Exercise 2: the root of the quadratic

B, K = 5.0, 8


@pytest.fixture(scope="module")
def spline_params():
    gen = torch.Generator().manual_seed(0)
    return 1.5 * torch.randn(3 * K - 1, generator=gen, dtype=torch.float64)


def _with_tails(x, params):
    inside = x.clamp(-B, B)
    y, log_dg = spline_formula(inside, params, B)
    return y + (x - inside), log_dg


def _naive_where(x, params):
    y, log_dg = spline_formula(x, params, B)
    tail = x.abs() >= B
    return torch.where(tail, x, y), torch.where(tail, 0, log_dg)


TAILS_WRONG = {
    "no clamp": lambda x, p: spline_formula(x, p, B),
    "naive torch.where": _naive_where,
    "clamp without adding back": lambda x, p: spline_formula(x.clamp(-B, B), p, B),
    "clamp to [-1, 1]": lambda x, p: (
        spline_formula(x.clamp(-1, 1), p, B)[0] + x - x.clamp(-1, 1),
        spline_formula(x.clamp(-1, 1), p, B)[1],
    ),
    "log g' of the overshoot added": lambda x, p: (
        _with_tails(x, p)[0],
        _with_tails(x, p)[1] + (x - x.clamp(-B, B)).abs().log1p(),
    ),
    "detached overshoot": lambda x, p: (
        _with_tails(x, p)[0].detach() + 0 * x,
        _with_tails(x, p)[1],
    ),
}


def test_nsf_tails_reference_passes(spline_params):
    check_tails(_with_tails, spline_params, B)


@pytest.mark.parametrize("wrong", TAILS_WRONG)
def test_nsf_tails_rejects(spline_params, wrong):
    _rejects(check_tails, TAILS_WRONG[wrong], spline_params, B)


def _root(variant):
    def inverse(y, params):
        xk, yk, d = knots(params, B)
        kn = torch.stack([xk, yk], -2)
        k = (y[..., None] >= kn[..., 1, 1:K]).sum(-1, keepdim=True)
        x0, x1, y0, y1 = (kn[..., i, :].gather(-1, k + j)[..., 0] for i in (0, 1) for j in (0, 1))
        d0, d1 = (d.gather(-1, k + j)[..., 0] for j in (0, 1))
        h, s = y1 - y0, (y1 - y0) / (x1 - x0)
        a = h * (s - d0) + (y - y0) * (d0 + d1 - 2 * s)
        b = h * d0 - (y - y0) * (d0 + d1 - 2 * s)
        c = -s * (y - y0)
        root = (b * b - 4 * a * c).clamp(min=0).sqrt()
        xi = {
            "reference": 2 * c / (-b - root),
            "the other root": (-b - root) / (2 * a),
            "the other root, paper's form": 2 * c / (-b + root),
            "xi, not x": None,
            "y, not x": None,
            "c with the wrong sign": -2 * c / (-b - root),
        }[variant]
        if variant == "xi, not x":
            return 2 * c / (-b - root)
        if variant == "y, not x":
            return y
        return x0 + xi * (x1 - x0)

    return inverse


def test_nsf_quadratic_reference_passes(capsys):
    _accepts(capsys, lambda: check_quadratic(_root("reference"), B))


ROOT_WRONG = [
    "the other root",
    "the other root, paper's form",
    "xi, not x",
    "y, not x",
    "c with the wrong sign",
]


@pytest.mark.parametrize("wrong", ROOT_WRONG)
def test_nsf_quadratic_rejects(wrong):
    _rejects(check_quadratic, _root(wrong), B)


# ---- the exercises whose checks were already exact, now in tutorial_checks.py, tested alike


NORMAL = torch.distributions.Normal(0.0, 1.0)
X_POSITIVE = torch.linspace(0.05, 6, 50)
LOGNORMAL_WRONG = {
    "no log-det": lambda x: NORMAL.log_prob(torch.log(x)),
    "log-det with the wrong sign": lambda x: NORMAL.log_prob(torch.log(x)) + torch.log(x),
    "x not mapped": lambda x: NORMAL.log_prob(x) - torch.log(x),
    "exp instead of log": lambda x: NORMAL.log_prob(torch.exp(x)) + x,
    "not set": lambda x: None,
}


def test_intro_lognormal_reference_passes():
    check_lognormal(NORMAL.log_prob(torch.log(X_POSITIVE)) - torch.log(X_POSITIVE), X_POSITIVE)


@pytest.mark.parametrize("wrong", LOGNORMAL_WRONG)
def test_intro_lognormal_rejects(wrong):
    _rejects(check_lognormal, LOGNORMAL_WRONG[wrong](X_POSITIVE), X_POSITIVE)


def _bend(v):
    x1, x2 = v[..., 0], v[..., 1]
    return torch.stack([x1, x2 * torch.exp(0.5 * torch.sin(x1)) + x1**2 / 2], -1)


X_PAIRS = torch.randn(6, 2, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
TRIANGULAR_WRONG = {
    "the diagonal entry, not its log": lambda x: torch.exp(0.5 * torch.sin(x[:, 0])),
    "no 0.5": lambda x: torch.sin(x[:, 0]),
    "summed over the batch": lambda x: (0.5 * torch.sin(x[:, 0])).sum(),
    "the off-diagonal term added": lambda x: 0.5 * torch.sin(x[:, 0]) + torch.log(x[:, 0].abs()),
    "zero (volume preserving)": lambda x: torch.zeros(len(x), dtype=x.dtype),
}


def test_intro_triangular_reference_passes():
    check_triangular(0.5 * torch.sin(X_PAIRS[:, 0]), X_PAIRS, _bend)


@pytest.mark.parametrize("wrong", TRIANGULAR_WRONG)
def test_intro_triangular_rejects(wrong):
    _rejects(check_triangular, TRIANGULAR_WRONG[wrong](X_PAIRS), X_PAIRS, _bend)


GRID = torch.linspace(-4, 4, 401)  # as the notebook: a point at a = 0
SLOPE_WRONG = {
    "sech, not squared": lambda wu: (1 + wu / torch.cosh(GRID)).min().item(),
    "the maximum": lambda wu: (1 + wu / torch.cosh(GRID) ** 2).max().item(),
    "tanh^2 for sech^2": lambda wu: (1 + wu * torch.tanh(GRID) ** 2).min().item(),
    "the value at a = 0 always": lambda wu: 1 + wu,
    "no 1": lambda wu: (wu / torch.cosh(GRID) ** 2).min().item(),
    "a tensor, not a float": lambda wu: (1 + wu / torch.cosh(GRID) ** 2).min(),
}


def test_planar_min_slope_reference_passes():
    check_min_slope(lambda wu: (1 + wu / torch.cosh(GRID) ** 2).min().item(), GRID)


@pytest.mark.parametrize("wrong", SLOPE_WRONG)
def test_planar_min_slope_rejects(wrong):
    _rejects(check_min_slope, SLOPE_WRONG[wrong], GRID)


@pytest.fixture(scope="module")
def banana():
    target = get_target("banana")
    torch.manual_seed(0)
    return target, target.sample(1000)


N = torch.distributions.Normal
CHAIN_WRONG = {
    "variance 4 passed as a standard deviation": lambda x: (
        N(0.0, 4.0).log_prob(x[:, 1]) + N(x[:, 1] ** 2 / 4, 1.0).log_prob(x[:, 0])
    ),
    "mean x2^2, not x2^2 / 4": lambda x: (
        N(0.0, 2.0).log_prob(x[:, 1]) + N(x[:, 1] ** 2, 1.0).log_prob(x[:, 0])
    ),
    "x1 and x2 swapped": lambda x: (
        N(0.0, 2.0).log_prob(x[:, 0]) + N(x[:, 0] ** 2 / 4, 1.0).log_prob(x[:, 1])
    ),
    "the marginal of x2 only": lambda x: N(0.0, 2.0).log_prob(x[:, 1]),
    "not set": lambda x: None,
}


def test_maf_chain_rule_reference_passes(banana):
    target, x = banana
    log_p = N(0.0, 2.0).log_prob(x[:, 1]) + N(x[:, 1] ** 2 / 4, 1.0).log_prob(x[:, 0])
    check_chain_rule(log_p, x, target)


@pytest.mark.parametrize("wrong", CHAIN_WRONG)
def test_maf_chain_rule_rejects(banana, wrong):
    target, x = banana
    _rejects(check_chain_rule, CHAIN_WRONG[wrong](x), x, target)


D8, T5 = 8, 5
COUNTED = {"IAF sample": 5, "IAF log_prob": 40, "MAF log_prob": 5, "MAF sample": 40}
PASSES_WRONG = {
    "directions swapped": {
        "IAF sample": 40,
        "IAF log_prob": 5,
        "MAF log_prob": 40,
        "MAF sample": 5,
    },
    "D passes, not D per step": {
        "IAF sample": 5,
        "IAF log_prob": 8,
        "MAF log_prob": 5,
        "MAF sample": 8,
    },
    "one pass in all": {"IAF sample": 1, "IAF log_prob": 8, "MAF log_prob": 1, "MAF sample": 8},
    "a key missing": {"IAF sample": 5, "IAF log_prob": 40, "MAF log_prob": 5},
}


def test_iaf_passes_reference_passes():
    check_passes(
        {"IAF sample": T5, "IAF log_prob": D8 * T5, "MAF log_prob": T5, "MAF sample": D8 * T5},
        COUNTED,
        D8,
        T5,
    )


@pytest.mark.parametrize("wrong", PASSES_WRONG)
def test_iaf_passes_rejects(wrong):
    _rejects(check_passes, PASSES_WRONG[wrong], COUNTED, D8, T5)


NLL = torch.tensor([-89.75, 0.0, -30.0])
BITS_WRONG = {
    "no dequantisation term": lambda nll: nll / 64 / math.log(2),
    "log 17 subtracted": lambda nll: (nll / 64 - math.log(17)) / math.log(2),
    "per image, not per pixel": lambda nll: (nll + 64 * math.log(17)) / math.log(2),
    "nats, not bits": lambda nll: nll / 64 + math.log(17),
    "log2 17 added after dividing by log 2 twice": lambda nll: (
        nll / 64 / math.log(2) + math.log2(17) / math.log(2)
    ),
}


def test_realnvp_bits_reference_passes():
    check_bits_per_dim((NLL / 64 + math.log(17)) / math.log(2), NLL)


@pytest.mark.parametrize("wrong", BITS_WRONG)
def test_realnvp_bits_rejects(wrong):
    _rejects(check_bits_per_dim, BITS_WRONG[wrong](NLL), NLL)


# ---- realnvp, Exercise 3: the K-sample estimate of the discrete code length (Sec. 4.1)
from realnvp.tutorial_checks import check_importance_bits  # noqa: E402

# log p of 500 dequantisations of 4 digits, float32 and above 88 nats, as the notebook's are
LOG_P = 95 + 4 * torch.randn(4, 500, generator=torch.Generator().manual_seed(0))
C = 64 * math.log(17)


def _bits(log_P):  # log P(k) of x in [0, 1]^64 (nats per image) -> bits/dim of k
    return -(log_P - C) / (64 * math.log(2))


def _iw_bits(log_p):
    return _bits(torch.logsumexp(log_p, 1) - math.log(log_p.shape[1]))


IW_WRONG = {
    "the Jensen bound (mean of log p)": lambda lp: _bits(lp.mean(1)),
    "exp in float32 (overflows)": lambda lp: _bits(torch.log(lp.exp().mean(1))),
    "no 1/K": lambda lp: _bits(torch.logsumexp(lp, 1)),
    "no 64 log 17": lambda lp: _bits(torch.logsumexp(lp, 1) - math.log(lp.shape[1]) + C),
    "nats per dimension": lambda lp: _iw_bits(lp) * math.log(2),
    "the max instead of the mean": lambda lp: _bits(lp.max(1).values),
    "one draw": lambda lp: _bits(lp[:, 0]),
    "one number for all digits": lambda lp: _iw_bits(lp).mean(),
    "not set": lambda lp: None,
}


def test_realnvp_importance_reference_passes(capsys):
    _accepts(capsys, lambda: check_importance_bits(_iw_bits(LOG_P), LOG_P))
    _accepts(capsys, lambda: check_importance_bits(_iw_bits(LOG_P.double()), LOG_P))  # float64


def test_realnvp_importance_not_tried_is_none():
    assert check_importance_bits(..., LOG_P) is None


@pytest.mark.parametrize("wrong", IW_WRONG)
def test_realnvp_importance_rejects(wrong):
    _rejects(check_importance_bits, IW_WRONG[wrong](LOG_P), LOG_P)


# ---- not tried yet: every check given `...` (or a function that returns `...`) says so and
# returns None, so the notebook runs on to the folded solution; a right answer prints its verdict


def _not_tried_cases():
    u, psi = lemma_inputs()
    q = torch.distributions.MultivariateNormal(torch.zeros(2), torch.eye(2))
    banana = get_target("banana")
    return {
        "intro 1": lambda: check_lognormal(..., X_POSITIVE),
        "intro 3": lambda: check_triangular(..., X_PAIRS, _bend),
        "intro 4": lambda: check_reverse_kl(..., torch.zeros(4, 2), torch.zeros(4), None),
        "planar_flows 1": lambda: check_lemma(..., u, psi),
        "planar_flows 2": lambda: check_min_slope(lambda wu: ..., GRID),
        "maf 1": lambda: check_reach(lambda masks: ...),
        "maf 2": lambda: check_chain_rule(..., banana.sample(10), banana),
        "iaf 1": lambda: check_passes(..., COUNTED, D8, T5),
        "iaf 2": lambda: check_kl_one_mode(..., q, q, q.sample((10,))),
        "realnvp 1": lambda: check_autograd_logdet(lambda f, x: ..., torch.sin, torch.ones(3)),
        "realnvp 2": lambda: check_bits_per_dim(..., NLL),
        "nsf 1": lambda: check_tails(lambda x, p: ..., torch.zeros(3 * K - 1), B),
        "nsf 2": lambda: check_quadratic(lambda y, p: ..., B, n=10),
    }


@pytest.mark.parametrize("exercise", list(_not_tried_cases()))
def test_a_check_given_ellipsis_says_not_tried_and_returns_none(exercise, capsys):
    assert _not_tried_cases()[exercise]() is None
    out = capsys.readouterr().out
    assert f"Exercise {exercise.split()[-1]} not tried yet" in out and "folded cell" in out, out


def test_a_right_answer_prints_a_one_line_verdict(capsys):
    check_lognormal(NORMAL.log_prob(torch.log(X_POSITIVE)) - torch.log(X_POSITIVE), X_POSITIVE)
    check_min_slope(lambda wu: (1 + wu / torch.cosh(GRID) ** 2).min().item(), GRID)
    lines = capsys.readouterr().out.splitlines()
    assert len(lines) == 2 and all(line.startswith("Exercise ") for line in lines), lines
    assert all(": right" in line for line in lines), lines


# ---- the form of every tutorial's exercises, and the figures CI asks of each notebook

FOLDERS = ("intro", *PAPERS)
ANSWER = re.compile(r"(?:=|\breturn)\s+\.\.\.(?:\s|$)", re.M)  # `x = ...` or `return ...`
CHECK_CALL = re.compile(r"^(check_\w+)\(", re.M)  # a check called at the top of the cell
REGION = re.compile(r"# BEGIN SOLUTION (\w+\.notebook_\w+)")


def _tags(cell):
    return cell.metadata.get("tags", [])


def _folded(cell):
    return "solution" in _tags(cell) and cell.metadata.get("jupyter", {}).get("source_hidden")


@pytest.mark.parametrize("folder", FOLDERS)
def test_each_tutorial_has_checked_exercises_each_followed_by_its_folded_solution(folder):
    """Every ``exercise`` cell holds ``...`` and calls a check; the next cell is the folded
    solution (tag ``solution``, ``jupyter.source_hidden``) holding a ``<folder>.notebook_``
    region and calling the same check; no notebook region sits anywhere else."""
    cells = jupytext.read(ROOT / folder / "tutorial.py").cells
    pairs = 0
    for i, cell in enumerate(cells):
        regions = REGION.findall(cell.source)
        if regions:
            assert _folded(cell), f"{folder}: region {regions} outside a folded solution cell"
            assert all(r.startswith(f"{folder}.notebook_") for r in regions), regions
            before = cells[i - 1]
            assert "exercise" in _tags(before), f"{folder}: no exercise cell before {regions}"
        if "exercise" not in _tags(cell):
            continue
        start = cell.source.strip().splitlines()[0]
        assert ANSWER.search(cell.source), f"{folder}: exercise {start!r} holds no `...`"
        checks = CHECK_CALL.findall(cell.source)
        assert checks, f"{folder}: exercise {start!r} calls no check"
        solution = cells[i + 1] if i + 1 < len(cells) else None
        assert solution is not None and _folded(solution), (
            f"{folder}: exercise {start!r} is not followed by a folded solution cell"
        )
        assert REGION.search(solution.source), f"{folder}: solution after {start!r} has no region"
        assert CHECK_CALL.findall(solution.source) == checks, (
            f"{folder}: the solution after {start!r} does not run the same check {checks}"
        )
        assert not ANSWER.search(solution.source), f"{folder}: the solution still holds `...`"
        pairs += 1
    assert pairs >= 2, f"{folder}: {pairs} checked exercises, every tutorial has at least two"


@pytest.mark.parametrize("folder", FOLDERS)
def test_ci_asks_at_least_three_figures_of_every_notebook(folder):
    from tools.check_notebooks import MINIMUM

    assert MINIMUM[folder] >= 3, f"{folder}: CI asks {MINIMUM[folder]} figures, at least 3"


# ---- intro, Exercise 2: the CDF as a flow; Exercise 5: a layer written by the reader

F64 = {"dtype": torch.float64}
MIXTURE = torch.distributions.MixtureSameFamily(
    torch.distributions.Categorical(torch.tensor([0.3, 0.7], **F64)),
    torch.distributions.Normal(torch.tensor([-2.0, 1.5], **F64), torch.tensor([0.5, 0.8], **F64)),
)
CDF_WRONG = {
    "F alone (uniform, not normal)": lambda x: MIXTURE.cdf(x),
    "Phi(F), not Phi^-1(F)": lambda x: NORMAL.cdf(MIXTURE.cdf(x)),
    "the icdf of N(0, 2^2)": lambda x: torch.distributions.Normal(0.0, 2.0).icdf(MIXTURE.cdf(x)),
    "the icdf of a Laplace base": lambda x: torch.distributions.Laplace(0.0, 1.0).icdf(
        MIXTURE.cdf(x)
    ),
    "Phi^-1 of the density (not monotone)": lambda x: NORMAL.icdf(MIXTURE.log_prob(x).exp()),
    "decreasing: Phi^-1(1 - F)": lambda x: NORMAL.icdf(1 - MIXTURE.cdf(x)),
    "standardised by the mixture's mean and std": lambda x: (x - MIXTURE.mean) / MIXTURE.stddev,
    "detached (no gradient)": lambda x: NORMAL.icdf(MIXTURE.cdf(x)).detach(),
}


def test_intro_cdf_reference_passes(capsys):
    _accepts(capsys, lambda: check_cdf_flow(lambda x: NORMAL.icdf(MIXTURE.cdf(x)), MIXTURE))


def test_intro_cdf_not_tried_is_none(capsys):
    assert check_cdf_flow(lambda x: ..., MIXTURE) is None
    assert "Exercise 2 not tried yet" in capsys.readouterr().out


@pytest.mark.parametrize("wrong", CDF_WRONG)
def test_intro_cdf_rejects(wrong):
    _rejects(check_cdf_flow, CDF_WRONG[wrong], MIXTURE)


class _Bend(Transform):
    """The reference of Exercise 5, data -> noise: z1 = s1 (x1 - q x2^2 - t1), z2 = s2 (x2 - t2)."""

    def __init__(self):
        super().__init__()
        self.s = torch.nn.Parameter(torch.ones(2))
        self.t = torch.nn.Parameter(torch.zeros(2))
        self.q = torch.nn.Parameter(torch.zeros(()))

    def to_noise(self, x):
        x1, x2 = x.unbind(-1)
        return torch.stack(
            [self.s[0] * (x1 - self.q * x2**2 - self.t[0]), self.s[1] * (x2 - self.t[1])], -1
        )

    def to_data(self, z):
        x2 = z[:, 1] / self.s[1] + self.t[1]
        return torch.stack([z[:, 0] / self.s[0] + self.q * x2**2 + self.t[0], x2], -1)

    def log_det(self):
        return self.s.abs().log().sum()

    def forward(self, x, context=None):
        return self.to_noise(x), self.log_det().expand(len(x))

    def inverse(self, z, context=None):
        return self.to_data(z), -self.log_det().expand(len(z))


class _WrongSign(_Bend):
    def forward(self, x, context=None):
        return self.to_noise(x), -self.log_det().expand(len(x))

    def inverse(self, z, context=None):
        return self.to_data(z), self.log_det().expand(len(z))


class _NoAbs(_Bend):
    def log_det(self):
        return self.s.log().sum()


class _InverseOnlyInForward(_Bend):  # inverse's log-det: the forward one again
    def inverse(self, z, context=None):
        return self.to_data(z), self.log_det().expand(len(z))


class _WrongInverse(_Bend):  # the bend added back with the wrong sign
    def to_data(self, z):
        x2 = z[:, 1] / self.s[1] + self.t[1]
        return torch.stack([z[:, 0] / self.s[0] - self.q * x2**2 + self.t[0], x2], -1)


class _InverseBendsWithZ(_Bend):  # the parabola of z2 instead of the x2 found first
    def to_data(self, z):
        x2 = z[:, 1] / self.s[1] + self.t[1]
        return torch.stack([z[:, 0] / self.s[0] + self.q * z[:, 1] ** 2 + self.t[0], x2], -1)


class _PerFeature(_Bend):  # ladj (batch, 2): the logs not summed over the features
    def forward(self, x, context=None):
        return self.to_noise(x), self.s.abs().log().expand(len(x), 2)


class _OneNumber(_Bend):  # ladj () for the whole batch, not expanded to (batch,)
    def forward(self, x, context=None):
        return self.to_noise(x), self.log_det()


class _NoiseToData(_Bend):  # the formula's inverse in forward: a layer written noise -> data
    def forward(self, z, context=None):
        return super().inverse(z)

    def inverse(self, x, context=None):
        return super().forward(x)


class _ScaleOnlyOnce(_Bend):  # log|s1| alone: the log-det of z2 forgotten
    def log_det(self):
        return self.s[0].abs().log()


class _NotTried(_Bend):
    def forward(self, x, context=None):
        return ...

    def inverse(self, z, context=None):
        return ...


LAYER_WRONG = [
    _WrongSign,
    _NoAbs,
    _InverseOnlyInForward,
    _WrongInverse,
    _InverseBendsWithZ,
    _PerFeature,
    _OneNumber,
    _NoiseToData,
    _ScaleOnlyOnce,
]


def test_intro_layer_reference_passes(capsys):
    _accepts(capsys, lambda: check_layer(_Bend))


def test_intro_layer_not_tried_is_none(capsys):
    assert check_layer(_NotTried) is None
    assert "Exercise 5 not tried yet" in capsys.readouterr().out


@pytest.mark.parametrize("wrong", LAYER_WRONG, ids=lambda c: c.__name__)
def test_intro_layer_rejects(wrong):
    _rejects(check_layer, wrong)


@pytest.mark.parametrize(
    "wrong,says",
    [
        (_NoAbs, "log of an absolute value"),
        (_PerFeature, "shape (batch,)"),
        (_NoiseToData, "maps noise to data"),
        (_WrongInverse, "inverse(forward(x)) != x"),
        (_WrongSign, "!= slogdet"),
    ],
)
def test_intro_layer_says_what_is_wrong(wrong, says):
    with pytest.raises(AssertionError, match=re.escape(says)):
        check_layer(wrong)


# ---- the student walkthrough: planted wrong answers it found accepted or badly explained


class _DetachedLadj(_Bend):  # the right value of ladj, with .item(): no gradient, cannot train
    def log_det(self):
        return torch.tensor(self.s.abs().log().sum().item(), dtype=self.s.dtype)


class _Float32Ladj(_Bend):  # ladj built from torch.ones(n): float32 beside a float64 x
    def forward(self, x, context=None):
        return self.to_noise(x), self.log_det() * torch.ones(len(x), dtype=torch.float32)


@pytest.mark.parametrize(
    "wrong,says",
    [(_DetachedLadj, "carries no gradient"), (_Float32Ladj, "ladj must have x's dtype")],
)
def test_intro_layer_rejects_walkthrough(wrong, says):
    with pytest.raises(AssertionError, match=re.escape(says)):
        check_layer(wrong)


@pytest.mark.parametrize(
    "wrong,says",
    [
        (lambda x: NORMAL.log_prob(torch.log(x)), "log-determinant term is missing"),
        (lambda x: NORMAL.log_prob(torch.log(x)) + torch.log(x), "wrong sign"),
        (lambda x: NORMAL.log_prob(x) - torch.log(x), "sees z = f(x)"),
    ],
)
def test_intro_lognormal_names_the_slip(wrong, says):
    x = torch.linspace(0.05, 6, 50)
    with pytest.raises(AssertionError, match=re.escape(says)) as caught:
        check_lognormal(wrong(x.double()).float(), x)
    assert "log|d log x / dx|" not in str(caught.value)


@pytest.mark.parametrize(
    "wrong,says",
    [
        (lambda x, log_q, e: _kl(x, log_q, e) - e.log_z(), "log Z is missing"),
        (lambda x, log_q, e: -_kl(x, log_q, e), "sign is flipped"),
        (lambda x, log_q, e: _kl(x, log_q, e) - 2 * e.log_z(), "log Z has the wrong sign"),
        (lambda x, log_q, e: (log_q - e.energy(x)).mean().item() + e.log_z(), "U has the wrong"),
    ],
)
def test_intro_reverse_kl_names_the_slip(kl_inputs, wrong, says):
    with pytest.raises(AssertionError, match=re.escape(says)) as caught:
        check_reverse_kl(wrong(*kl_inputs), *kl_inputs)
    assert "mean(log q + U)" not in str(caught.value)


def test_harness_rejects_a_detached_log_det():
    from tests.harness import check_transform, perturb

    with pytest.raises(AssertionError, match="carries no gradient"):
        check_transform(perturb(_DetachedLadj().double()), 2)


def test_maf_reach_names_the_skipped_mask():
    with pytest.raises(AssertionError, match=r"random order, hidden \(6, 10\).*does not chain"):
        check_reach(MAF_WRONG["middle mask skipped"])


@pytest.mark.parametrize(
    "wrong,says",
    [
        (lambda x1, x2, N: N(0.0, 4.0).log_prob(x2) + N(x2**2 / 4, 1.0).log_prob(x1), "variance"),
        (lambda x1, x2, N: N(0.0, 2.0).log_prob(x1) + N(x1**2 / 4, 1.0).log_prob(x2), "swapped"),
        (lambda x1, x2, N: N(x2**2 / 4, 1.0).log_prob(x1), "only one factor"),
    ],
)
def test_maf_chain_rule_names_the_slip(wrong, says):
    target = get_target("banana")
    x = target.sample(1000)
    with pytest.raises(AssertionError, match=says) as caught:
        check_chain_rule(wrong(*x.unbind(-1), torch.distributions.Normal), x, target)
    assert "x2^2 / 4" not in str(caught.value)


def test_planar_min_slope_accepts_the_exact_minimum(capsys):
    # on a grid with a = 0, 1 + wu is the minimum for wu <= 0; beyond, the grid's ends
    _accepts(
        capsys,
        lambda: check_min_slope(
            lambda wu: (
                1 + min(wu, 0.0) if wu <= 0 else (1 + wu / torch.cosh(GRID) ** 2).min().item()
            ),
            GRID,
        ),
    )


@pytest.mark.parametrize(
    "wrong,says",
    [
        (lambda wu: (GRID + wu * torch.tanh(GRID)).min().item(), "the map's smallest value"),
        (SLOPE_WRONG["tanh^2 for sech^2"], "1 - tanh^2"),
        (SLOPE_WRONG["no 1"], "derivative of a itself"),
    ],
)
def test_planar_min_slope_names_the_slip(wrong, says):
    with pytest.raises(AssertionError, match=re.escape(says)) as caught:
        check_min_slope(wrong, GRID)
    assert "sech^2(a)" not in str(caught.value)


@pytest.mark.parametrize(
    "wrong,says",
    [
        (PLANAR_WRONG["no absolute value"], "it is NaN"),
        (PLANAR_WRONG["no 1"], "identity's contribution"),
        (PLANAR_WRONG["abs inside the 1"], "around the whole determinant"),
    ],
)
def test_planar_lemma_names_the_slip(wrong, says):
    u, psi = lemma_inputs()
    with pytest.raises(AssertionError, match=re.escape(says)) as caught:
        check_lemma(wrong(u, psi), u, psi)
    assert "log|1 + psi^T u|" not in str(caught.value)


@pytest.mark.parametrize(
    "wrong,says",
    [
        (lambda n: (n - 64 * math.log(17)) / (64 * math.log(2)), "wrong sign"),
        (lambda n: n / (64 * math.log(2)), "scaling is missing"),
        (lambda n: (n + 64 * math.log(17)) / 64, "still in nats"),
        (lambda n: (n + 64 * math.log(17)) / math.log(2), "per image"),
    ],
)
def test_realnvp_bits_names_the_slip(wrong, says):
    nll = torch.tensor([-89.75, 0.0, -30.0])
    with pytest.raises(AssertionError, match=re.escape(says)) as caught:
        check_bits_per_dim(wrong(nll.double()), nll)
    assert "64 log 17" not in str(caught.value)


@pytest.mark.parametrize("folder", [*PAPERS, "intro"])
def test_cell_headers_survive_a_jupytext_sync(folder):
    """Each cell header as jupytext writes it (metadata keys sorted: ``jupyter=... tags=...``),
    so pairing the notebook and syncing does not rewrite the headers of the solution cells."""
    text = (ROOT / folder / "tutorial.py").read_text()
    again = jupytext.writes(jupytext.reads(text, fmt="py:percent"), fmt="py:percent")
    ours = [line for line in text.splitlines() if line.startswith("# %%")]
    theirs = [line for line in again.splitlines() if line.startswith("# %%")]
    assert ours == theirs, [(a, b) for a, b in zip(ours, theirs, strict=False) if a != b][:3]
