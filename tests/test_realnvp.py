"""Real NVP: couplings with several masks, batch norm, squeeze, factor-out, the vector and image
flows."""

import math

import pytest
import torch
from torch.autograd.functional import jacobian

from common.layers import BatchNorm, Logit
from common.nets import MLP
from realnvp import AffineCoupling, RealNVP, RealNVPImage, Squeeze, channel_mask, checkerboard
from realnvp.realnvp import FactorOut, conv_net, multiscale
from tests.harness import check_bad_input_raises, check_flow_normalised, check_transform, perturb


@pytest.fixture(autouse=True, scope="module")
def one_thread():
    """Tiny float64 convolutions are ~1000x slower with two OpenMP threads on a busy machine."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def _shape(features):
    """An image shape with ``features`` pixels: 16k -> (k, 4, 4), 4k -> (k, 2, 2) (other sizes
    round down)."""
    return (features // 16, 4, 4) if features % 16 == 0 else (max(1, features // 4), 2, 2)


def _coupling(mask, context=0):
    return AffineCoupling(mask, MLP(int(mask.sum()) + context, 2 * mask.numel(), (16, 16)))


def _image_coupling(shape, mask_fn, parity):
    mask = mask_fn(shape, parity)
    return AffineCoupling(mask, conv_net(shape[0], 8))


def _with_stats(module, seed=1):
    """Eval mode with non-trivial running averages in every BatchNorm (perturb only touches
    parameters)."""
    gen = torch.Generator().manual_seed(seed)
    for m in module.modules():
        if isinstance(m, BatchNorm):
            m.running_mean.copy_(torch.randn(m.channels, generator=gen, dtype=m.running_mean.dtype))
            m.running_var.copy_(
                0.2 + 2 * torch.rand(m.channels, generator=gen, dtype=m.running_var.dtype)
            )
    return module.eval()


def _build(module, scale=0.5):
    return _with_stats(perturb(module.double(), scale))


HARNESS_CASES = [
    ("coupling-alternating", lambda d, c: _build(_coupling(torch.arange(d) % 2, c)), (0, 3)),
    (
        "coupling-first-half-kept",
        lambda d, c: _build(_coupling((torch.arange(d) < d // 2).float(), c)),
        (0, 3),
    ),
    (
        "coupling-random-mask",
        lambda d, c: _build(
            _coupling(torch.randperm(d, generator=torch.Generator().manual_seed(d)) % 2, c)
        ),
        (0, 3),
    ),
    ("batchnorm-eval", lambda d, c: _build(BatchNorm(d)), (0,)),
    (
        "realnvp",
        lambda d, c: _build(RealNVP(d, transforms=4, hidden_features=(16,), context=c).transform),
        (0, 3),
    ),
    (
        "realnvp-batchnorm",
        lambda d, c: _build(
            RealNVP(d, transforms=3, hidden_features=(16,), context=c, batch_norm=True).transform
        ),
        (0, 2),
    ),
    # image layers, on flattened (C, H, W) inputs: the feature count must be 4k (see IMAGE_FEATURES)
    (
        "coupling-checkerboard",
        lambda d, c: _build(_image_coupling(_shape(d), checkerboard, 0)),
        (0,),
    ),
    (
        "coupling-checkerboard-odd",
        lambda d, c: _build(_image_coupling(_shape(d), checkerboard, 1)),
        (0,),
    ),
    ("coupling-channel", lambda d, c: _build(_image_coupling(_shape(d), channel_mask, 0)), (0,)),
    (
        "coupling-channel-odd",
        lambda d, c: _build(_image_coupling(_shape(d), channel_mask, 1)),
        (0,),
    ),
    ("batchnorm-image-eval", lambda d, c: _build(BatchNorm(_shape(d)[0])), (0,)),
    ("squeeze", lambda d, c: Squeeze(_shape(d)), (0,)),
    ("multiscale", lambda d, c: _build(multiscale(_shape(d), 2, hidden=4)), (0,)),
    (
        "multiscale-batchnorm",
        lambda d, c: _build(multiscale(_shape(d), 2, hidden=4, batch_norm=True)),
        (0,),
    ),
    (
        "realnvp-image",
        lambda d, c: _build(
            RealNVPImage(_shape(d), scales=2, hidden_channels=4).transform, scale=0.2
        ),
        (0,),
    ),
]
IMAGE_FEATURES = {
    "coupling-checkerboard": (4, 8, 16),
    "coupling-checkerboard-odd": (4, 16),
    "coupling-channel": (8, 32),
    "coupling-channel-odd": (8,),
    "batchnorm-image-eval": (8, 32),
    "squeeze": (4, 8, 16),
    "multiscale": (16, 32),
    "multiscale-batchnorm": (16,),
    "realnvp-image": (16, 32),
}
PARAMS = [
    (name, factory, context, features)
    for name, factory, contexts in HARNESS_CASES
    for context in contexts
    for features in IMAGE_FEATURES.get(name, (1, 2, 3, 6))
]


def unreachable(name, features, context):
    """One feature and no context leaves a coupling nothing to condition on: its MLP's first layer
    has no input, so no gradient may reach it (batch norm has no MLP)."""
    one = features == 1 and context == 0 and name != "batchnorm-eval"
    return ("*net.0.weight",) if one else ()


@pytest.mark.parametrize(
    "name,factory,context,features", PARAMS, ids=[f"{p[0]}-c{p[2]}-d{p[3]}" for p in PARAMS]
)
# a one-feature coupling's MLP has no input: torch warns that it initialises a (16, 0) weight
@pytest.mark.filterwarnings("ignore:Initializing zero-element tensors:UserWarning")
def test_harness(name, factory, context, features):
    layer = factory(features, context)
    gen = torch.Generator().manual_seed(features)
    x = (
        0.05 + 0.9 * torch.rand(5, features, generator=gen, dtype=torch.float64)
        if name == "realnvp-image"
        else None
    )
    # realnvp-image starts with a logit: data in (0, 1)
    check_transform(layer, features, context, x=x, unreachable=unreachable(name, features, context))


@pytest.mark.parametrize("parity", [0, 1])
@pytest.mark.parametrize("context", [0, 3])
def test_coupling_jacobian_is_triangular_in_the_mask_order(parity, context):
    """Kept dimensions pass through; each transformed one depends on itself and the kept ones
    only."""
    d = 6
    mask = (torch.arange(d) + parity) % 2
    layer = perturb(_coupling(mask, context).double())
    x, c = torch.randn(d, dtype=torch.float64), torch.randn(1, context, dtype=torch.float64)
    J = jacobian(lambda xi: layer(xi[None], c if context else None)[0][0], x)
    kept, free = mask.bool(), ~mask.bool()
    assert torch.equal(J[kept], torch.eye(d, dtype=J.dtype)[kept])  # rows of kept dims: identity
    free_block = J[free][:, free]
    # transformed block: diagonal
    assert torch.allclose(free_block, torch.diag(free_block.diagonal()))
    # ... and it does depend on the kept dims (lower triangle)
    assert J[free][:, kept].abs().min() > 0
    perm = torch.cat([kept.nonzero()[:, 0], free.nonzero()[:, 0]])
    # triangular, kept first
    assert torch.allclose(J[perm][:, perm].triu(1), torch.zeros(d, d, dtype=J.dtype))


def test_masks():
    cb = checkerboard((2, 3, 3))
    assert cb[0].tolist() == [[1, 0, 1], [0, 1, 0], [1, 0, 1]] and torch.equal(cb[0], cb[1])
    assert torch.equal(checkerboard((1, 4, 4), 1), 1 - checkerboard((1, 4, 4), 0))
    ch = channel_mask((4, 2, 2))
    assert ch[:, 0, 0].tolist() == [1, 1, 0, 0] and torch.equal(channel_mask((4, 2, 2), 1), 1 - ch)


def test_squeeze_moves_each_2x2_block_into_channels():
    x = torch.arange(16.0)[None]  # one 1 x 4 x 4 image, pixel (i, j) holds 4 i + j
    z, ladj = Squeeze((1, 4, 4))(x)
    z = z.view(4, 2, 2)
    # the top-left 2 x 2 block became the 4 channels at (0, 0)
    assert z[:, 0, 0].tolist() == [0, 1, 4, 5]
    assert z[0].flatten().tolist() == [0, 2, 8, 10]  # channel 0: the top-left pixel of every block
    assert ladj.item() == 0


def test_factor_out_keeps_the_first_half_aside():
    shape = (1, 4, 4)
    layer = perturb(multiscale(shape, 2, hidden=4).double())
    assert isinstance(layer, FactorOut)
    x = torch.randn(3, 16, dtype=torch.float64)
    z, _ = layer(x)
    h, _ = layer.block(x)
    assert torch.equal(z[:, :8], h[:, :8])  # z_1: final after the first scale
    assert not torch.allclose(z[:, 8:], h[:, 8:])  # the rest went through the next scale


def test_batchnorm_train_mode():
    """Training mode normalises with the minibatch statistics; the per-sample map (statistics held
    fixed) is the eval-mode map with running averages equal to those statistics, whose Jacobian
    the harness checks."""
    torch.manual_seed(0)
    for shape in [(3,), (2, 2, 2)]:
        # momentum 1: running averages = last minibatch
        layer = BatchNorm(shape[0], momentum=1.0).double()
        x = 3 + 2 * torch.randn(64, torch.Size(shape).numel(), dtype=torch.float64)
        z, ladj = layer(x)
        zc = z.view(64, shape[0], -1)
        assert torch.allclose(zc.mean((0, 2)), torch.zeros(shape[0], dtype=z.dtype), atol=1e-10)
        assert torch.allclose(
            zc.var((0, 2), unbiased=False), torch.ones(shape[0], dtype=z.dtype), atol=1e-4
        )
        perturb(layer)
        z, ladj = layer(x)
        layer.eval()
        z_eval, ladj_eval = layer(x)
        assert torch.allclose(z, z_eval) and torch.allclose(ladj, ladj_eval)
        x_back, ladj_inv = layer.inverse(z)
        assert torch.allclose(x_back, x) and torch.allclose(
            ladj + ladj_inv, torch.zeros(64, dtype=x.dtype)
        )
        check_transform(layer, x.shape[1])


def test_realnvp_density_integrates_to_one():
    torch.manual_seed(0)
    flow = perturb(RealNVP(2, transforms=4, hidden_features=(16, 16)).double(), scale=0.2)
    check_flow_normalised(flow, lim=10.0)
    flow = _with_stats(
        perturb(
            RealNVP(2, transforms=4, hidden_features=(16,), context=1, batch_norm=True).double(),
            scale=0.2,
        )
    )
    check_flow_normalised(flow, lim=12.0, context=torch.tensor([0.7], dtype=torch.float64))


def test_image_flow_samples_and_scores():
    flow = perturb(RealNVPImage((1, 4, 4), scales=2, hidden_channels=4), scale=0.1).eval()
    x, log_q = flow.rsample_and_log_prob(7)
    assert x.shape == (7, 16) and torch.allclose(flow.log_prob(x), log_q, atol=1e-3)


def test_bad_input_raises():
    for kwargs in [
        dict(features=0),
        dict(features=2, transforms=0),
        dict(features=2, hidden_features=(0,)),
        dict(features=2, context=-1),
    ]:
        with pytest.raises(ValueError):
            RealNVP(**kwargs)
    for kwargs in [
        dict(shape=(1, 6, 6), scales=3),
        dict(shape=(8, 8)),
        dict(scales=0),
        dict(hidden_channels=0),
    ]:
        with pytest.raises(ValueError):
            RealNVPImage(**kwargs)
    check_bad_input_raises(RealNVP(2, context=1), features=2, context=1)
    with pytest.raises(ValueError):
        RealNVPImage((1, 4, 4)).log_prob(torch.rand(2, 1, 4, 4))  # images are passed flattened


def test_batchnorm_inverse_refuses_training_mode_as_mafs_does():
    """In training mode the map depends on the batch it is applied to: sampling must not silently
    use the running averages instead (it used to)."""
    flow = RealNVP(2, transforms=2, hidden_features=(8,), batch_norm=True)
    with pytest.raises(RuntimeError, match="flow.eval"):
        flow.sample(3)
    assert flow.eval().sample(3).shape == (3, 2)


@pytest.mark.parametrize("training", [True, False])
def test_empty_batches_give_empty_results_and_leave_the_statistics_alone(training):
    flow = RealNVP(3, transforms=3, hidden_features=(8,), batch_norm=True).train(training)
    norm = next(m for m in flow.modules() if isinstance(m, BatchNorm))
    before = norm.running_mean.clone(), norm.running_var.clone()
    assert flow.log_prob(torch.empty(0, 3)).shape == (0,)
    assert torch.equal(norm.running_mean, before[0]) and torch.equal(norm.running_var, before[1])
    assert flow.eval().sample(0).shape == (0, 3)
    image = RealNVPImage((1, 4, 4), scales=2, hidden_channels=4, batch_norm=True).train(training)
    assert image.log_prob(torch.empty(0, 16)).shape == (0,)


@pytest.mark.parametrize("bad", [math.nan, math.inf])
def test_a_non_finite_row_stays_out_of_the_batch_statistics(bad):
    """One NaN or inf row in a training batch used to turn every row, and the running averages,
    NaN; now the statistics come from the finite rows and the bad value stays in its own row."""
    torch.manual_seed(0)
    layer = BatchNorm(2).double()
    x = torch.randn(8, 2, dtype=torch.float64)
    z_clean, ladj_clean = layer(x[1:])
    x[0, 0] = bad
    clean_mean, clean_var = layer.running_mean.clone(), layer.running_var.clone()
    layer.running_mean.zero_()  # start again from the same buffers
    layer.running_var.fill_(1.0)
    z, ladj = layer(x)
    assert torch.allclose(z[1:], z_clean) and torch.allclose(ladj, ladj_clean[:1].expand(8))
    assert not z[0, 1].isnan() and torch.equal(z[0, 0].isnan(), torch.tensor(math.isnan(bad)))
    assert torch.allclose(layer.running_mean, clean_mean) and torch.allclose(
        layer.running_var, clean_var
    )


@pytest.mark.parametrize(
    "builder,kwargs,message",
    [
        (RealNVP, dict(features=True), "features must be an integer >= 1, got True"),
        (RealNVP, dict(features=2, transforms=2.0), "transforms must be an integer >= 1, got 2.0"),
        (
            RealNVP,
            dict(features=2, batch_norm="yes"),
            "batch_norm must be True or False, got 'yes'",
        ),
        (RealNVPImage, dict(scales=True), "scales must be an integer >= 1, got True"),
        (RealNVPImage, dict(shape=(1, 8.0, 8)), r"positive integers.*got \(1, 8\.0, 8\)"),
        (RealNVPImage, dict(shape=(1, True, 8)), r"positive integers.*got \(1, True, 8\)"),
        (RealNVPImage, dict(shape="abc"), "shape must be .*got 'abc'"),
        (RealNVPImage, dict(shape=(1, 6, 6), scales=3), r"2\^\(scales - 1\) = 4, got \(1, 6, 6\)"),
    ],
)
def test_bad_hyperparameters_name_what_was_expected_and_what_came(builder, kwargs, message):
    with pytest.raises(ValueError, match=message):
        builder(**kwargs)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_pixels_outside_the_logits_domain_get_minus_inf(dtype):
    """Issue 25, item 8: logit(alpha + (1 - 2 alpha) x) is defined for x in (-alpha / (1 -
    2 alpha), 1 + alpha / (1 - 2 alpha)), about (-0.056, 1.056) for alpha = 0.05; a row with a
    pixel outside gave NaN. It is outside the support: -inf, with the other rows' gradients finite
    (in training mode too, where batch norm sees the batch)."""
    edge = 0.05 / 0.9
    for training in (False, True):
        flow = RealNVPImage((1, 4, 4), 2, hidden_channels=4, batch_norm=True).to(dtype)
        flow = perturb(flow, scale=0.1).train(training)
        x = torch.rand(6, 16, dtype=dtype)
        x[1] = 1.5  # the image
        x[2, 3], x[3, 0], x[4, 5] = -edge - 1e-3, 1 + edge + 1e-3, -edge  # just out, at the edge
        log_prob = flow.log_prob(x)
        assert (log_prob[1:5] == -math.inf).all() and torch.isfinite(log_prob[[0, 5]]).all()
        log_prob[[0, 5]].sum().backward()
        assert all(torch.isfinite(p.grad).all() for p in flow.parameters() if p.grad is not None)
    x = torch.tensor([[-edge + 1e-3, 1 + edge - 1e-3]], dtype=torch.float64)  # just inside
    assert torch.isfinite(Logit(0.05).double()(x)[1]).all()
