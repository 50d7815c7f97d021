"""MAF (Papamakarios et al. 2017).

The layer, its costs, batch norm in both modes, the conditional flow.
"""

import math

import pytest
import torch
from torch.autograd.functional import jacobian

from common.layers import BatchNorm, set_batch_norm_stats
from common.nets import MADE
from maf import MAF, MAFLayer
from tests.harness import (
    check_bad_input_raises,
    check_flow_normalised,
    check_transform,
    count_calls,
    perturb,
)


def _order(d):
    return torch.randperm(d, generator=torch.Generator().manual_seed(d))


def _with_random_stats(flow_or_layer, seed=1):
    """Evaluation mode with non-trivial BatchNorm statistics (mean != 0, var != 1)."""
    gen = torch.Generator().manual_seed(seed)
    for m in flow_or_layer.modules():
        if isinstance(m, BatchNorm):
            m.running_mean.copy_(
                torch.randn(m.running_mean.shape, generator=gen, dtype=m.running_mean.dtype)
            )
            m.running_var.copy_(
                0.2 + 2 * torch.rand(m.running_var.shape, generator=gen, dtype=m.running_var.dtype)
            )
    return flow_or_layer.eval()


def _maf(d, c, transforms=3, batch_norm=False, scale=0.2, seed=0):
    flow = perturb(MAF(d, transforms, (16, 16), c, batch_norm).double(), scale, seed)
    return _with_random_stats(flow) if batch_norm else flow


def unreachable(layer, features, context):
    """One feature and no context: MADE masks its whole first layer (x_1 has no predecessor)."""
    has_made = any(isinstance(m, MADE) for m in layer.modules())
    return ("*made.net.0.weight",) if has_made and features == 1 and context == 0 else ()


HARNESS_CASES = [
    ("maf-layer", lambda d, c: perturb(MAFLayer(d, (16, 16), c, _order(d)).double()), (0, 3)),
    ("batch-norm-eval", lambda d, c: _with_random_stats(perturb(BatchNorm(d).double())), (0,)),
    ("maf-chain-with-batch-norm", lambda d, c: _maf(d, c, batch_norm=True).transform, (0, 3)),
]


@pytest.mark.parametrize("features", [1, 2, 3, 6])
@pytest.mark.parametrize("name,factory,contexts", HARNESS_CASES, ids=[c[0] for c in HARNESS_CASES])
def test_harness(name, factory, contexts, features):
    for context in contexts:
        layer = factory(features, context)
        check_transform(layer, features, context, unreachable=unreachable(layer, features, context))


@pytest.mark.parametrize("context", [0, 2])
def test_jacobian_is_triangular_in_the_layer_order_with_exp_minus_alpha_on_the_diagonal(context):
    d = 5
    layer = perturb(MAFLayer(d, (32, 32), context, _order(d)).double(), scale=1.0)
    gen = torch.Generator().manual_seed(3)
    x = 2 * torch.randn(4, d, generator=gen, dtype=torch.float64)
    c = torch.randn(4, context, generator=gen, dtype=torch.float64) if context else None
    order = layer.made.order
    # later[i, j]: x_j is x_i or comes after it in the order
    later = order[None, :] >= order[:, None]
    later.fill_diagonal_(False)
    earlier = order[None, :] < order[:, None]
    _, alpha = layer.conditioner(x, c)
    for i in range(4):
        J = jacobian(
            lambda xi, i=i: layer(xi[None], None if c is None else c[i : i + 1])[0][0], x[i]
        )
        assert torch.all(J[later] == 0), (
            "u_i depends on a variable that is not before x_i in the order"
        )
        assert J[earlier].abs().max() > 1e-3, "no autoregressive dependence at all"
        # Eq. 4: du_i/dx_i
        assert torch.allclose(torch.diagonal(J), torch.exp(-alpha[i]), atol=1e-12)


@pytest.mark.parametrize("context,batch_norm", [(0, False), (0, True), (3, False), (3, True)])
def test_a_sample_from_the_d_pass_inverse_has_the_density_log_prob_gives_it(context, batch_norm):
    torch.manual_seed(0)
    flow = _maf(4, context, transforms=4, batch_norm=batch_norm)
    c = torch.randn(200, context, dtype=torch.float64) if context else None
    x, log_q = flow.rsample_and_log_prob(200, c)
    assert torch.allclose(flow.log_prob(x, c), log_q, atol=1e-8, rtol=0)
    assert log_q.std() > 0.1  # not a constant: the test can fail
    assert x.requires_grad  # reparameterised: gradients reach the parameters through the D passes


def test_density_is_one_pass_per_layer_and_sampling_is_d_passes_per_layer():
    d, layers = 6, 3
    flow = _maf(d, 0, transforms=layers)
    x = torch.randn(10, d, dtype=torch.float64)
    assert count_calls(flow, MADE, lambda: flow.log_prob(x)) == layers
    assert count_calls(flow, MADE, lambda: flow.sample(10)) == layers * d


def test_order_is_reversed_between_layers():
    orders = [t.made.order.tolist() for t in MAF(4, transforms=3).transform.transforms]
    assert orders == [[0, 1, 2, 3], [3, 2, 1, 0], [0, 1, 2, 3]]


def test_context_enters_every_made_and_every_feature():
    flow = _maf(3, 2, transforms=2)
    x = torch.randn(1, 3, dtype=torch.float64)
    for layer in flow.transform.transforms:
        # (D, 2, 1, C)
        J = jacobian(
            lambda c, layer=layer: layer.made(x, c)[0], torch.randn(1, 2, dtype=torch.float64)
        )
        assert torch.all(J.abs().sum((-1, -2)) > 0), "some (mu_i, alpha_i) ignore the context"


def test_batch_norm_train_mode_uses_minibatch_statistics_and_the_papers_log_det():
    """In training mode u = (x - m) (v + eps)^(-1/2) exp(gamma) + beta with the batch's m and v. The
    log det is the paper's sum(gamma - 0.5 log(v + eps)): it treats m and v as constants. The exact
    Jacobian of one point's u (other points fixed) differs by the O(1/B) terms m and v get from that
    point."""
    torch.manual_seed(0)
    B, d = 8, 3
    layer = perturb(BatchNorm(d).double()).train()
    x = 3 + 2 * torch.randn(B, d, dtype=torch.float64)
    u, ladj = layer(x)
    gamma, beta = layer.log_gamma.detach(), layer.beta.detach()
    # the batch is normalised by its own statistics
    assert torch.allclose(u.mean(0), beta, atol=1e-12)
    assert torch.allclose(
        u.var(0, unbiased=False),
        torch.exp(2 * gamma) * (1 - 1e-5 / (x.var(0, unbiased=False) + 1e-5)),
        atol=1e-10,
    )
    v = x.var(0, unbiased=False)
    assert torch.allclose(ladj, (gamma - 0.5 * torch.log(v + 1e-5)).sum().expand(B), atol=1e-12)
    x_hat_sq = (x - x.mean(0)) ** 2 / (v + 1e-5)
    for i in range(B):
        J = jacobian(lambda xi, i=i: layer(torch.cat([x[:i], xi[None], x[i + 1 :]]))[0][i], x[i])
        assert torch.all(J[~torch.eye(d, dtype=torch.bool)] == 0)  # statistics are per feature
        # d/dx_i of m and v (biased variance)
        correction = torch.log(1 - 1 / B - x_hat_sq[i] / B).sum()
        assert torch.allclose(torch.linalg.slogdet(J)[1], ladj[i] + correction, atol=1e-10)


def test_batch_norm_inverse_in_training_mode_raises_and_works_in_eval_mode():
    layer = perturb(BatchNorm(3).double())
    u = torch.randn(5, 3, dtype=torch.float64)
    with pytest.raises(RuntimeError, match="eval"):
        layer.train().inverse(u)
    flow = _maf(3, 0, batch_norm=True).train()
    with pytest.raises(RuntimeError, match="training mode"):
        flow.sample(5)
    flow.eval()
    x, _ = layer.eval().inverse(u)
    assert torch.allclose(layer(x)[0], u, atol=1e-12)


def test_running_statistics_follow_the_minibatches():
    torch.manual_seed(0)
    layer = BatchNorm(2).double().train()
    for _ in range(200):
        layer(
            torch.tensor([3.0, -1.0], dtype=torch.float64)
            + torch.tensor([2.0, 0.5]) * torch.randn(256, 2)
        )
    assert torch.allclose(
        layer.running_mean, torch.tensor([3.0, -1.0], dtype=torch.float64), atol=0.15
    )
    assert torch.allclose(
        layer.running_var, torch.tensor([4.0, 0.25], dtype=torch.float64), rtol=0.1
    )


@pytest.mark.parametrize("context", [0, 2])
def test_set_batch_norm_stats_uses_the_whole_training_set(context):
    """With statistics from ``data``, evaluation mode gives ``data`` exactly the log-density
    training mode gives it as one batch; and a BatchNorm that never saw the data would not."""
    torch.manual_seed(0)
    flow = perturb(MAF(3, 3, (16, 16), context, batch_norm=True).double())
    data = (
        torch.randn(500, 3, dtype=torch.float64)
        * torch.tensor([1.0, 3.0, 0.3], dtype=torch.float64)
        + 2
    )
    c = torch.randn(500, context, dtype=torch.float64) if context else None
    log_p_train = flow.train().log_prob(data, c)
    # running averages differ
    assert not torch.allclose(flow.eval().log_prob(data, c), log_p_train, atol=1e-3)
    set_batch_norm_stats(flow, data, c)
    assert not flow.training
    assert torch.allclose(flow.log_prob(data, c), log_p_train, atol=1e-10)
    last = flow.transform.transforms[-1]
    u, _ = flow.transform(data, c)
    assert isinstance(last, BatchNorm) and torch.allclose(u.mean(0), last.beta.detach(), atol=1e-10)


def test_density_integrates_to_one():
    check_flow_normalised(_maf(2, 0, transforms=3, seed=1))
    check_flow_normalised(_maf(2, 0, transforms=3, batch_norm=True))
    check_flow_normalised(
        _maf(2, 2, transforms=3), context=torch.tensor([0.5, -1.0], dtype=torch.float64)
    )


@pytest.mark.parametrize(
    "kwargs",
    [
        dict(features=0),
        dict(features=2.5),
        dict(features=2, transforms=0),
        dict(features=2, context=-1),
        dict(features=2, hidden_features=()),
        dict(features=2, hidden_features=(64, 0)),
        dict(features=2, hidden_features=64),
        dict(features=2, batch_norm="yes"),
    ],
)
def test_bad_hyperparameters_raise(kwargs):
    with pytest.raises(ValueError, match="must be"):
        MAF(**kwargs)


def test_bad_inputs_raise():
    check_bad_input_raises(MAF(3, 2, (8,), context=2), features=3, context=2)


def test_batch_norm_is_not_poisoned_by_an_empty_batch_or_refused_nan():
    torch.manual_seed(0)
    flow = MAF(2, batch_norm=True)
    assert flow.log_prob(torch.empty(0, 2)).shape == (0,)  # train mode, no statistics to take
    with pytest.raises(ValueError, match="NaN"):
        flow.log_prob(torch.tensor([[0.0, 1.0], [float("nan"), 0.0], [1.0, 2.0]]))
    assert torch.isfinite(flow.eval().log_prob(torch.randn(4, 2))).all()
    layer = BatchNorm(2).train()  # used alone: an inf row stays out of the running average
    layer(torch.tensor([[0.0, float("inf")], [1.0, 2.0]]))
    assert torch.allclose(layer.running_mean, torch.tensor([0.1, 0.2]))  # the finite row only
    layer(torch.tensor([[float("inf"), 0.0]]))  # no finite row: nothing to take
    assert torch.allclose(layer.running_mean, torch.tensor([0.1, 0.2]))
    assert torch.allclose(layer.running_var, torch.tensor([0.9, 0.9]))


def test_infinite_rows_stay_out_of_train_mode_batch_statistics():
    torch.manual_seed(0)
    flow = perturb(MAF(2, 2, (8,), batch_norm=True).double())
    x = torch.randn(6, 2, dtype=torch.float64)
    x_inf = torch.cat([x, torch.tensor([[float("inf"), 0.0]], dtype=torch.float64)])
    log_p = flow.train().log_prob(x_inf)
    assert log_p[-1] == -float("inf")
    assert torch.allclose(log_p[:-1], flow.log_prob(x), atol=1e-12)


def test_empty_batches():
    flow = MAF(3, 2, (8,), context=2, batch_norm=True).eval()
    assert flow.sample(0, torch.zeros(2)).shape == (0, 3)
    assert flow.log_prob(torch.zeros(0, 3), torch.zeros(0, 2)).shape == (0,)


def test_a_finite_far_row_does_not_poison_the_gradient_of_another_row():
    """Issue 25, item 8: [-1e38, 1e38] overflowed to NaN inside the MADE and its 0 * NaN reached
    the parameters' gradients through the batch (18,390 NaN entries)."""
    flow = MAF(2)
    log_prob = flow.log_prob(torch.tensor([[0.0, 0.0], [-1e38, 1e38]]))
    assert torch.isfinite(log_prob[0]) and log_prob[1] == -math.inf, log_prob
    log_prob[0].backward()
    assert all(torch.isfinite(p.grad).all() for p in flow.parameters() if p.grad is not None)
