"""common/plot.py: the layer-by-layer picture follows the flow's own sampling path, and density
panels that are compared share one colour scale with a colour bar."""

import matplotlib

matplotlib.use("Agg")

import pytest  # noqa: E402
import torch  # noqa: E402

from common.flows import Compose, Flow, Inverse, Permute  # noqa: E402
from common.plot import plot_densities, plot_layers, plt, sampling_steps, show_density  # noqa: E402
from common.targets import get_target  # noqa: E402
from iaf import IAF  # noqa: E402
from maf import MAF  # noqa: E402
from planar_flows import PlanarFlow  # noqa: E402
from tests.harness import perturb  # noqa: E402


@pytest.mark.parametrize(
    "build",
    [lambda: MAF(2, transforms=3), lambda: IAF(2, transforms=2), lambda: PlanarFlow(2, 4)],
    ids=["maf", "iaf (Inverse)", "planar"],
)
def test_sampling_steps_compose_to_the_flows_inverse(build):
    flow = perturb(build().double())
    z = torch.randn(7, 2, dtype=torch.float64)
    x = z
    with torch.no_grad():
        for _, step in sampling_steps(flow.transform):
            x = step(x)
        expected, _ = flow.transform.inverse(z)
    assert torch.allclose(x, expected, atol=1e-8), (x - expected).abs().max()


def test_sampling_steps_unroll_nested_inverses_in_order():
    a, b = Permute(torch.tensor([1, 0])), Permute(torch.tensor([0, 1]))
    names = [name for name, _ in sampling_steps(Inverse(Compose(a, Inverse(b))))]
    assert names == ["Permute", "Permute"]
    flow = Flow(Inverse(Compose(a, Inverse(b))), features=2)
    z = torch.randn(3, 2)
    x = z
    for _, step in sampling_steps(flow.transform):
        x = step(x)
    assert torch.equal(x, flow.transform.inverse(z)[0])


def test_plot_layers_draws_base_layers_and_grid_and_refuses_other_sizes():
    flow = MAF(2, transforms=3)
    fig = plot_layers(flow, n=200, data=torch.randn(50, 2))
    axes = fig.axes
    assert len(axes) == 2 * (1 + 3 + 1)  # base, 3 layers, data; samples over grids
    assert all(ax.get_xticks().size > 0 for ax in axes if ax.axison)
    plt.close(fig)
    with pytest.raises(ValueError, match="2-D"):
        plot_layers(MAF(3, transforms=1))


def test_plot_densities_one_colour_scale_and_bar_per_row():
    target = get_target("checker")
    rows = [[(target.log_prob, "a"), (lambda x: target.log_prob(x) - 1.0, "a / e")]] * 2
    fig = plot_densities(rows, target.bounds, n=40)
    images = [ax.images[0] for ax in fig.axes if ax.images]
    assert len(images) == 4
    vmax = {round(im.get_clim()[1], 9) for im in images}
    assert len(vmax) == 1 and vmax.pop() > 0  # each row's scale is its largest density
    assert len(fig.axes) == 4 + 2  # four panels, one colour bar per row
    plt.close(fig)


def test_show_density_has_ticks_and_an_optional_colour_bar():
    fig, ax = plt.subplots()
    show_density(ax, get_target("U1").log_prob, (-4, 4), "U1", n=30, colorbar=True)
    assert ax.get_xticks().size > 0 and ax.get_yticks().size > 0
    assert len(fig.axes) == 2
    plt.close(fig)


def test_the_figure_script_has_help_and_refuses_unknown_folders(capsys):
    """``python -m tools.figures --help`` prints help and draws nothing (it used to redraw them)."""
    from tools.figures import main

    with pytest.raises(SystemExit) as exit_help:
        main(["--help"])
    assert exit_help.value.code == 0 and "--only" in capsys.readouterr().out
    with pytest.raises(SystemExit) as exit_bad:
        main(["--only", "nowhere"])
    assert exit_bad.value.code == 2 and "invalid choice: 'nowhere'" in capsys.readouterr().err


def test_common_imports_no_paper_folder():
    """``common/`` is what the papers share: no module of it imports a paper folder (the figure
    script that draws every paper's checkpoint is ``tools/figures.py``)."""
    import ast
    from pathlib import Path

    from tools.papers import PAPERS

    for path in sorted((Path(__file__).resolve().parent.parent / "common").glob("*.py")):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom):
                names = [node.module or ""]
            else:
                continue
            for name in names:
                assert name.split(".")[0] not in PAPERS, f"{path.name} imports {name}"


def test_image_mosaic_places_each_image_row_by_row_with_nan_gaps():
    from common.plot import image_mosaic

    images = torch.arange(5.0)[:, None, None].expand(5, 2, 3)  # image k is all k
    out = image_mosaic(images, rows=2)  # 2 rows of 3, the last place empty
    assert out.shape == (2 * 3 - 1, 3 * 4 - 1)
    assert torch.equal(out[3:5, 4:7], torch.full((2, 3), 4.0))  # image 4: row 1, column 1
    assert out[2].isnan().all() and out[:, 3].isnan().all()  # the gaps
    assert out[3:, 8:].isnan().all()  # the sixth place holds no image


def test_plot_image_rows_one_labelled_axes_per_row():
    from common.plot import plot_image_rows

    rows = [torch.rand(9, 64), torch.rand(4, 64)]
    fig = plot_image_rows(rows, ["a", "b"], title="t")
    assert [ax.get_ylabel() for ax in fig.axes] == ["a", "b"]
    assert fig.axes[1].images[0].get_array().shape == (8, 9 * 9 - 1)  # the short row padded
    plt.close(fig)
