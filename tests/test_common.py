"""The contract in common/.

Flow, Inverse, Compose, Permute, Logit, MADE, the training guard, metrics.
"""

import copy
import math

import pytest
import torch
from torch import nn

from common.checkpoint import load_checkpoint, save_checkpoint
from common.checks import check_builder_args
from common.flows import Compose, Flow, Inverse, Permute, Transform
from common.layers import ActNorm, Logit
from common.metrics import bits_per_dim
from common.nets import MADE, MLP
from common.train import NonFiniteLoss, train_forward_kl, train_reverse_kl
from tests.harness import check_flow_normalised, check_transform, perturb


class ElementwiseAffine(Transform):
    """z = (x - shift) * exp(-log_scale): a tiny test layer with parameters and a context."""

    def __init__(self, features, context=0):
        super().__init__()
        self.net = MLP(max(context, 1), 2 * features, (8,))

    def _params(self, x, context):
        h = context if context is not None else x.new_ones(x.shape[0], 1)
        shift, log_scale = self.net(h).chunk(2, -1)
        return shift, torch.tanh(log_scale)

    def forward(self, x, context=None):
        shift, log_scale = self._params(x, context)
        return (x - shift) * torch.exp(-log_scale), -log_scale.sum(-1)

    def inverse(self, z, context=None):
        shift, log_scale = self._params(z, context)
        return z * torch.exp(log_scale) + shift, log_scale.sum(-1)


def _affine(features, context):
    return perturb(ElementwiseAffine(features, context).double())


def _actnorm(features):
    """An ActNorm past its data-dependent start (on data of mean 20, sd 7), then perturbed."""
    layer = ActNorm(features).double()
    gen = torch.Generator().manual_seed(features)
    layer(20 + 7 * torch.randn(64, features, generator=gen, dtype=torch.float64))
    return perturb(layer, 0.3)


HARNESS_CASES = [
    (
        "permute",
        lambda d, c: Permute(
            torch.randperm(d, generator=torch.Generator().manual_seed(d))
        ).double(),
        (0,),
    ),
    (
        "inverse-compose",
        lambda d, c: Compose(Inverse(_affine(d, c)), Permute.reverse(d), _affine(d, c)),
        (0, 3),
    ),
    ("logit", lambda d, c: Logit(0.05), (0,)),
    ("actnorm", lambda d, c: _actnorm(d), (0,)),
]


@pytest.mark.parametrize("features", [1, 2, 3, 6])
@pytest.mark.parametrize("name,factory,contexts", HARNESS_CASES, ids=[c[0] for c in HARNESS_CASES])
def test_harness(name, factory, contexts, features):
    for context in contexts:
        layer = factory(features, context)
        # data in (0, 1)
        x = torch.rand(5, features, dtype=torch.float64) if isinstance(layer, Logit) else None
        check_transform(layer, features, context, x=x)


def test_harness_catches_a_wrong_log_det():
    class Wrong(ElementwiseAffine):
        def forward(self, x, context=None):
            z, ladj = super().forward(x, context)
            return z, ladj + 1e-3

    with pytest.raises(AssertionError):
        check_transform(perturb(Wrong(2).double()), 2)


def test_inverse_swaps_directions():
    layer = _affine(3, 0)
    x = torch.randn(4, 3, dtype=torch.float64)
    assert torch.equal(Inverse(layer)(x)[0], layer.inverse(x)[0])
    assert torch.equal(Inverse(layer).inverse(x)[0], layer(x)[0])


def test_flow_log_prob_sample_and_normalisation():
    flow = Flow([_affine(2, 0), Permute.reverse(2), _affine(2, 0)], features=2).double()
    check_flow_normalised(flow, lim=25.0, n=800)
    x, log_q = flow.rsample_and_log_prob(7)
    assert torch.allclose(log_q, flow.log_prob(x), atol=1e-10)
    assert flow.sample(5).shape == (5, 2) and not flow.sample(5).requires_grad


def test_flow_with_context_broadcasts_a_single_vector():
    flow = Flow([_affine(2, 3)], features=2, context=3).double()
    c = torch.randn(3, dtype=torch.float64)
    x, log_q = flow.rsample_and_log_prob(6, c)
    assert torch.allclose(log_q, flow.log_prob(x, c.expand(6, 3)), atol=1e-10)
    assert not torch.allclose(log_q, flow.log_prob(x, -c), atol=1e-3)  # the context matters


def test_bad_input_names_what_was_expected():
    flow = Flow([_affine(2, 0)], features=2).double()
    with pytest.raises(ValueError, match=r"\(batch, 2\).*\(4, 3\)"):
        flow.log_prob(torch.zeros(4, 3, dtype=torch.float64))
    with pytest.raises(ValueError, match="shape"):
        flow.log_prob(torch.zeros(4, dtype=torch.float64))
    with pytest.raises(ValueError, match="float32"):
        flow.log_prob(torch.zeros(4, 2))
    with pytest.raises(ValueError, match="floating"):
        flow.log_prob(torch.zeros(4, 2, dtype=torch.long))
    with pytest.raises(ValueError, match="context=0"):
        flow.log_prob(
            torch.zeros(4, 2, dtype=torch.float64), torch.zeros(4, 1, dtype=torch.float64)
        )
    cflow = Flow([_affine(2, 3)], features=2, context=3).double()
    with pytest.raises(ValueError, match="context"):
        cflow.log_prob(torch.zeros(4, 2, dtype=torch.float64))
    with pytest.raises(ValueError, match=r"\(batch, 3\).*\(4, 2\)"):
        cflow.log_prob(
            torch.zeros(4, 2, dtype=torch.float64), torch.zeros(4, 2, dtype=torch.float64)
        )


def test_double_moves_the_base():
    flow = Flow([Permute.reverse(2)], features=2).double()
    assert flow.sample(3).dtype == torch.float64


@pytest.mark.parametrize("context", [0, 2])
@pytest.mark.parametrize("features", [1, 2, 5])
def test_made_is_autoregressive(features, context):
    """d output_i / d input_j is zero unless j comes before i in the order (Germain et al. 2015)."""
    order = torch.randperm(features, generator=torch.Generator().manual_seed(features))
    made = perturb(MADE(features, 3, (16, 16), context=context, order=order).double())
    # many points, so no connection hides behind a dead ReLU
    x = torch.randn(64, features, dtype=torch.float64)
    c = torch.randn(64, context, dtype=torch.float64) if context else None
    # (D, D)
    J = torch.autograd.functional.jacobian(lambda x: made(x, c).sum(0), x).abs().sum((1, 2))
    allowed = order[None, :] < order[:, None]  # allowed[i, j]: feature j precedes feature i
    assert torch.all(J[~allowed] == 0)
    assert torch.all(J[allowed] > 0)  # and every permitted connection exists
    if context:
        Jc = torch.autograd.functional.jacobian(lambda c: made(x, c).sum(0), c).abs().sum((1, 2, 3))
        assert torch.all(Jc > 0)  # every feature sees the context, the first in the order too


def test_made_rejects_a_bad_order():
    with pytest.raises(ValueError, match="permutation"):
        MADE(3, 2, order=[0, 0, 1])


class Exploding(ElementwiseAffine):
    """Returns a NaN log-det from the 4th call on: the guard must stop and keep finite weights."""

    calls = 0

    def forward(self, x, context=None):
        Exploding.calls += 1
        z, ladj = super().forward(x, context)
        return z, ladj * (float("nan") if Exploding.calls >= 4 else 1.0)


def test_nan_loss_stops_with_the_step_and_keeps_finite_weights():
    torch.manual_seed(0)
    flow = Flow([Exploding(2)], features=2)
    data = torch.randn(64, 2)
    with pytest.raises(NonFiniteLoss, match="at step 4"):
        train_forward_kl(flow, data, steps=10, batch_size=16, progress=False)
    assert all(torch.isfinite(p).all() for p in flow.parameters())
    Exploding.calls = 0
    assert torch.isfinite(flow.log_prob(data)).all()


@pytest.mark.parametrize("bad", [float("nan"), float("inf")])
def test_a_bad_row_anywhere_in_the_data_is_named_before_step_1(bad):
    # issue 25, item 3: the whole training and validation set is checked once, before step 1
    from common.targets import get_target
    from maf import MAF

    torch.manual_seed(0)
    flow, data = MAF(2, 1, (8,)), get_target("banana").sample(20_000)
    data[70, 1] = bad
    before = {k: v.clone() for k, v in flow.state_dict().items()}
    steps = []
    with pytest.raises(ValueError, match=r"training data must not contain NaN or inf: rows \[70\]"):
        train_forward_kl(flow, data, 50, 64, progress=False, callback=lambda s, _: steps.append(s))
    assert steps == [] and all(torch.equal(before[k], v) for k, v in flow.state_dict().items())
    good = get_target("banana").sample(1000)
    val = good[:100].clone()
    val[[3, 42]] = bad
    with pytest.raises(ValueError, match=r"validation data .* rows \[3, 42\] \(2 of 100\)"):
        train_forward_kl(flow, good, 50, 64, val=val, progress=False, callback=steps.append)
    assert steps == []


class Saboteur:
    """A callback that sets a weight to NaN after the update of step ``step``."""

    def __init__(self, flow, step):
        self.flow, self.step = flow, step

    def __call__(self, step, loss):
        if step == self.step:
            with torch.no_grad():
                next(self.flow.parameters()).view(-1)[0] = float("nan")


@pytest.mark.parametrize("val", [False, True])
def test_nan_weights_after_the_last_update_raise_and_restore_finite_weights(val):
    # issue 25, item 10: the last update's result is checked, not only each loss before its update
    torch.manual_seed(0)
    flow, data = Flow([ElementwiseAffine(2)], features=2), torch.randn(256, 2)
    with pytest.raises(NonFiniteLoss, match="update of step 10"):
        train_forward_kl(
            flow,
            data,
            10,
            64,
            val=data[:64] if val else None,
            val_every=5,
            progress=False,
            callback=Saboteur(flow, 10),
        )
    assert all(torch.isfinite(p).all() for p in flow.parameters())
    assert torch.isfinite(flow.log_prob(data)).all()


def test_keep_if_best_never_keeps_a_nan_score():
    from common.train import TrainingRun

    flow = Flow([ElementwiseAffine(2)], features=2)
    with TrainingRun(flow, 3, False, {"loss": []}) as run:
        for step in run:
            with torch.no_grad():
                next(flow.parameters()).fill_(step)
            run.keep_if_best(step, {1: float("nan"), 2: 1.0, 3: 0.5}[step])
            run.end_step(0.0)
    run.finish()
    assert run.best_step == 3 and next(flow.parameters()).eq(3).all()
    with TrainingRun(flow, 2, False, {"loss": []}) as run:
        for step in run:
            run.keep_if_best(step, float("nan"))
    assert run.best_state is None


def test_an_interruption_inside_the_update_counts_completed_steps(monkeypatch):
    # issue 25, item 15: the message, the kept weights and the history agree on the steps done
    from common.train import TrainingInterrupted

    torch.manual_seed(0)
    flow, data = Flow([ElementwiseAffine(2)], features=2), torch.randn(256, 2)
    after = {}
    adam_step, calls = torch.optim.Adam.step, []

    def step(self, *args, **kwargs):
        calls.append(1)
        if len(calls) == 201:
            raise KeyboardInterrupt  # as Ctrl-C inside the 201st update
        return adam_step(self, *args, **kwargs)

    def remember(step, loss):
        if step == 200:
            after.update({k: v.clone() for k, v in flow.state_dict().items()})

    monkeypatch.setattr(torch.optim.Adam, "step", step)
    with pytest.raises(TrainingInterrupted) as info:
        train_forward_kl(flow, data, 300, 64, progress=False, callback=remember)
    stop = info.value
    assert "interrupted at step 201 of 300, before its update was complete" in str(stop)
    assert "keeps the weights of step 200, the last completed" in str(stop)
    assert "history holds 200 completed steps" in str(stop)
    assert (stop.step, stop.completed, len(stop.history["loss"])) == (201, 200, 200)
    assert all(torch.equal(after[k], v) for k, v in flow.state_dict().items())


def test_training_lowers_the_loss_and_checkpoints_round_trip(tmp_path):
    torch.manual_seed(0)
    flow = Flow([ElementwiseAffine(2)], features=2)
    data = torch.randn(512, 2) * 0.3 + 2.0
    history = train_forward_kl(
        flow, data, steps=300, batch_size=128, lr=1e-2, val=data[:100], progress=False
    )
    assert history["loss"][-1] < history["loss"][0] - 1.0
    save_checkpoint(flow, tmp_path / "flow.pt", steps=300)
    other = Flow([ElementwiseAffine(2)], features=2)
    assert load_checkpoint(other, tmp_path / "flow.pt") == {"steps": 300}
    assert torch.equal(other.log_prob(data), flow.log_prob(data))


def test_reverse_kl_fits_a_gaussian_energy():
    torch.manual_seed(0)
    flow = Flow([ElementwiseAffine(2)], features=2)
    history = train_reverse_kl(
        flow,
        lambda x: 0.5 * ((x - 1.0) ** 2).sum(-1) / 0.25,
        steps=400,
        lr=1e-2,
        anneal=100,
        progress=False,
    )
    assert history["beta"][0] == pytest.approx(0.02) and history["beta"][-1] == 1.0
    assert flow.sample(4000).mean(0).sub(1.0).abs().max() < 0.05


def test_bits_per_dim():
    assert bits_per_dim(0.0, dims=64, levels=17) == pytest.approx(math.log2(17))
    assert bits_per_dim(-64 * math.log(17), dims=64, levels=17) == pytest.approx(0.0)


@pytest.mark.parametrize(
    "kwargs, message",
    [
        (dict(features=0, transforms=2), "features must be an integer >= 1, got 0"),
        (dict(features=2, transforms=2.0), "transforms must be an integer >= 1, got 2.0"),
        (dict(features=2, transforms=True), "transforms must be an integer >= 1, got True"),
        (dict(features=2, transforms=2, context=-1), "context must be an integer >= 0, got -1"),
        (
            dict(features=2, transforms=2, hidden_features=64),
            "hidden_features must be a non-empty tuple",
        ),
        (
            dict(features=2, transforms=2, hidden_features=(64, 0)),
            "every hidden_features entry must be",
        ),
        (
            dict(features=2, transforms=2, batch_norm="yes"),
            "batch_norm must be True or False, got 'yes'",
        ),
    ],
)
def test_builder_arguments_are_checked(kwargs, message):
    with pytest.raises(ValueError, match=message.replace("(", r"\(")):
        check_builder_args(**kwargs)


def test_readme_line_counts_are_measured():
    """The README's table of logical lines, physical lines and prose share is what
    ``python -m tools.lines`` counts, per paper."""
    from pathlib import Path

    from tools.lines import PAPERS, core_files, count

    root = Path(__file__).resolve().parent.parent
    if (root / "assignment.toml").exists():
        pytest.skip(
            "a student copy (python -m course.assignment): its stubs are not the counted reference"
        )
    readme = (root / "README.md").read_text()
    for paper in PAPERS:
        row = next(
            line for line in readme.splitlines() if line.startswith("|") and f"`{paper}/`" in line
        )
        claimed = [cell.strip() for cell in row.split("|")[4:7]]
        logical, physical, prose = count(core_files(root / paper))
        measured = [str(logical), str(physical), f"{prose:.0%}"]
        assert claimed == measured, (
            f"README says {paper} has {claimed} (logical lines, physical lines, prose); "
            f"tools.lines counts {measured}"
        )


def test_harness_unreachable_is_a_claim_not_a_skip():
    """``unreachable`` names must get no gradient, every other parameter some: both are checked."""
    made_layer = Compose(_affine(2, 0))
    with pytest.raises(AssertionError, match="declared unreachable"):
        check_transform(made_layer, 2, unreachable=("*net.0.weight",))
    with pytest.raises(AssertionError, match="no parameter matches"):
        check_transform(made_layer, 2, unreachable=("*no_such_name",))


@pytest.mark.parametrize(
    "hidden, context, masks",
    [
        # D = 3, width 2 = D - 1 and a context: hidden degrees 1, 2 (Germain et al.), so x_3 still
        # sees x_2; a degree-0 unit would have cost that connection
        (
            (2, 2),
            2,
            [
                [[1, 0, 0, 1, 1], [1, 1, 0, 1, 1]],
                [[1, 0], [1, 1]],
                [[0, 0], [1, 0], [1, 1]],
            ],
        ),
        ((2,), 0, [[[1, 0, 0], [1, 1, 0]], [[0, 0], [1, 0], [1, 1]]]),
        # width >= D with a context: degrees 0, 1, 2, 0; the degree-0 units feed the first feature
        (
            (4,),
            1,
            [
                [[0, 0, 0, 1], [1, 0, 0, 1], [1, 1, 0, 1], [0, 0, 0, 1]],
                [[1, 0, 0, 1], [1, 1, 0, 1], [1, 1, 1, 1]],
            ],
        ),
    ],
)
def test_made_exact_masks(hidden, context, masks):
    made = MADE(3, 1, hidden, context=context)
    got = [layer.mask.int().tolist() for layer in made.net if hasattr(layer, "mask")]
    assert got == masks


def test_made_with_context_at_width_d_minus_1_keeps_every_connection():
    made = perturb(MADE(3, 1, (2, 2), context=2, activation=nn.Tanh).double())  # no dead units
    x, c = torch.randn(256, 3, dtype=torch.float64), torch.randn(256, 2, dtype=torch.float64)
    J = torch.autograd.functional.jacobian(lambda x: made(x, c).sum(0), x).abs().sum((1, 2))
    allowed = torch.tensor([[0, 0, 0], [1, 0, 0], [1, 1, 0]], dtype=torch.bool)
    assert torch.all(J[~allowed] == 0) and torch.all(J[allowed] > 0), J


def test_check_context_is_public_and_broadcasts():
    flow = Flow([_affine(2, 3)], features=2, context=3).double()
    c = torch.randn(3, dtype=torch.float64)
    assert torch.equal(flow.check_context(c, 5), c.expand(5, 3))
    assert Flow([_affine(2, 0)], features=2).check_context(None, 5) is None


def test_nan_input_is_refused_and_infinite_rows_get_minus_inf():
    flow = Flow([_affine(2, 3), Permute.reverse(2), _affine(2, 3)], features=2, context=3).double()
    x, c = torch.randn(5, 2, dtype=torch.float64), torch.randn(5, 3, dtype=torch.float64)
    with pytest.raises(ValueError, match=r"x must not contain NaN, got NaN in rows \[2\]"):
        flow.log_prob(torch.where(torch.arange(5)[:, None] == 2, float("nan"), x), c)
    with pytest.raises(ValueError, match="context must not contain NaN"):
        flow.log_prob(x, torch.full_like(c, float("nan")))
    with pytest.raises(ValueError, match="context must not contain NaN"):
        flow.sample(3, torch.full((3,), float("nan"), dtype=torch.float64))
    x_inf = x.clone()
    x_inf[1, 0], x_inf[3, 1] = float("inf"), -float("inf")
    log_p = flow.log_prob(x_inf, c)
    keep = [0, 2, 4]
    assert torch.all(log_p[[1, 3]] == -float("inf"))
    assert torch.allclose(log_p[keep], flow.log_prob(x[keep], c[keep]), atol=1e-12)
    log_p[keep].sum().backward()  # the finite rows still train
    assert all(torch.isfinite(p.grad).all() for p in flow.parameters())


def test_sample_counts_types_devices_and_empty_batches():
    flow = Flow([_affine(2, 0)], features=2).double()
    for n in (-1, 2.5, "3", True, None):
        with pytest.raises(ValueError, match=f"n must be an integer >= 0, got {n!r}"):
            flow.sample(n)
    assert flow.sample(0).shape == (0, 2) and flow.rsample_and_log_prob(0)[1].shape == (0,)
    assert flow.log_prob(torch.zeros(0, 2, dtype=torch.float64)).shape == (0,)
    with pytest.raises(ValueError, match="device meta but the flow is on cpu"):
        flow.log_prob(torch.zeros(3, 2, dtype=torch.float64, device="meta"))
    cflow = Flow([_affine(2, 3)], features=2, context=3).double()
    np = pytest.importorskip("numpy")
    for context in (np.zeros(3), [0.0, 0.0, 0.0]):
        with pytest.raises(ValueError, match="context must be a torch.Tensor"):
            cflow.sample(2, context)


@pytest.mark.parametrize(
    "call, message",
    [
        (lambda: Logit(alpha=0.5), r"alpha must be a finite number in \[0.0, 0.5\), got 0.5"),
        (lambda: Logit(alpha=-0.1), "alpha must be a finite number"),
        (lambda: Logit(alpha="x"), "alpha must be a finite number.*got 'x'"),
        (lambda: check_builder_args(2, 2, context=2.0), "context must be an integer >= 0"),
    ],
)
def test_shared_validators(call, message):
    with pytest.raises(ValueError, match=message):
        call()


def test_a_log_density_below_minus_sqrt_max_float_is_minus_inf():
    """exp(-1.8e19) is 0 in float32 and the gradient of such a row overflows: it gets -inf and is
    left out of the pass, so the other rows' gradients stay finite."""

    class Scale(Transform):
        def __init__(self):
            super().__init__()
            self.log_scale = torch.nn.Parameter(torch.tensor(math.log(1e9)))

        def forward(self, x, context=None):
            return x * self.log_scale.exp(), self.log_scale.expand(x.shape[0]) * x.shape[1]

    flow = Flow([Scale()], features=2)
    x = torch.tensor([[1e-9, 0.0], [10.0, 0.0], [1.0, 1.0]])  # log p ~ -0.5, -5e19, -1e18
    log_p = flow.log_prob(x)
    assert log_p[1] == -math.inf and torch.isfinite(log_p[[0, 2]]).all(), log_p
    log_p[[0, 2]].sum().backward()
    assert torch.isfinite(flow.transform.transforms[0].log_scale.grad)


def test_actnorm_standardises_its_first_training_batch_once():
    """Kingma & Dhariwal (2018), Sec. 3.1: the first training batch leaves with mean 0, sd 1; the
    start happens once (a second batch, a checkpoint round trip, evaluation mode do not redo it)."""
    gen = torch.Generator().manual_seed(1)
    x = 20 + 7 * torch.randn(256, 3, generator=gen, dtype=torch.float64)
    layer = ActNorm(3).double()
    assert not layer.initialised
    z, ladj = layer(x)  # training mode: this call sets shift and log_scale from x
    assert layer.initialised
    assert torch.allclose(z.mean(0), torch.zeros(3, dtype=torch.float64), atol=1e-12)
    assert torch.allclose(z.std(0), torch.ones(3, dtype=torch.float64), atol=1e-12)
    assert torch.allclose(ladj, -torch.log(x.std(0)).sum().expand(256))
    shift = layer.shift.detach().clone()
    layer(x + 100)  # a second batch does not re-initialise
    assert torch.equal(layer.shift.detach(), shift)
    fresh = ActNorm(3).double().eval()  # evaluation mode never initialises: the identity
    assert torch.equal(fresh(x)[0], x) and not fresh.initialised
    for rows in (0, 1):  # a batch of < 2 points cannot set a scale: the identity, still fresh
        fresh = ActNorm(3)
        x = torch.randn(rows, 3)
        assert torch.equal(fresh(x)[0], x) and not fresh.initialised


def test_actnorm_start_survives_a_checkpoint(tmp_path):
    """The 'initialised' flag is a buffer: a restored layer keeps the trained shift and scale
    and does not re-initialise on its first training batch."""
    gen = torch.Generator().manual_seed(2)
    layer = ActNorm(2).double()
    layer(5 + 3 * torch.randn(100, 2, generator=gen, dtype=torch.float64))
    save_checkpoint(layer, tmp_path / "actnorm.pt")
    restored = ActNorm(2).double()
    load_checkpoint(restored, tmp_path / "actnorm.pt")
    assert restored.initialised and restored.training
    restored(torch.randn(100, 2, generator=gen, dtype=torch.float64) - 50)  # no second start
    assert torch.equal(restored.shift, layer.shift)
    assert torch.equal(restored.log_scale, layer.log_scale)


def test_resuming_a_forward_kl_run_on_a_dataset_gives_the_same_numbers():
    # issue 25, item 4: batches, optimiser, random generators and best weights are in the state
    from common.train import Periodic, rng_state, set_rng_state
    from maf import MAF

    torch.manual_seed(0)
    data = torch.randn(300, 2) * 0.5 + 1.0  # 300 rows, batch 64: epochs end mid-way between saves
    val = data[:50] * 2 + 2  # wider and farther: its best NLL comes early, before the resume
    options = dict(val=val, val_every=7, preprocess=lambda x: x + 0.01 * torch.randn_like(x))

    def run(flow, periodic=None):
        return train_forward_kl(
            flow, data, 40, 64, 1e-2, progress=False, periodic=periodic, **options
        )

    torch.manual_seed(1)
    start = rng_state()
    whole = MAF(2, 2, (8,))
    history = run(whole)
    saved = {}

    def write(model, state):
        saved[state["step"]] = (copy.deepcopy(model.state_dict()), copy.deepcopy(state))

    set_rng_state(start)
    first = MAF(2, 2, (8,))
    run(first, Periodic(15, write))
    assert sorted(saved) == [15, 30]
    weights, state = saved[15]
    torch.manual_seed(123)  # whatever happened since: the state restores the generators
    resumed = MAF(2, 2, (8,))
    resumed.load_state_dict(weights)
    again = run(resumed, Periodic(15, lambda *_: None, resume=state))
    assert again["loss"] == history["loss"] and again["val"] == history["val"]
    assert min(history["val"], key=lambda pair: pair[1])[0] < 15  # the best weights were resumed
    assert all(torch.equal(v, resumed.state_dict()[k]) for k, v in whole.state_dict().items())
