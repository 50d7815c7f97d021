"""What the demos print alike as tables and banners.

* ``markdown_table(header, rows)``: a Markdown table as a string (the VAE demos' result tables);
* ``digits_banner(split, test, models, width)``: the lines every digits demo prints first (the
  split, what bits/dim means) and the header of its table;
* ``digits_row(label, width, flow, nll, stderr, seconds)``: one row of that table.
"""

from common.data import LEVELS
from common.metrics import bits_per_dim, count_parameters


def digits_banner(split, test, models, width):
    """The two lines every digits demo prints first, and the header of its table."""
    print(
        f"8x8 digits: {len(split['train'])} train / {len(split['val'])} val / {len(test)} test "
        f"images, {LEVELS} grey levels; {models}"
    )
    print(
        "  bits/dim = (NLL + 64 log 17) / (64 log 2): the density of the integer pixels "
        "(dequantisation bound); 4.09 = uniform over the 17 levels"
    )
    print(
        f"  {'model':<{width}} {'params':>7}  {'test NLL (nats)':>17}  {'bits/dim':>8}  "
        f"{'train s':>7}"
    )


def digits_row(label, width, flow, nll, stderr, seconds=None):
    """One row under ``digits_banner``'s header: parameters, test NLL (nats) ± its standard error,
    bits/dim and, if given, the training seconds."""
    row = f"  {label:<{width}} {count_parameters(flow):>7}  {nll:8.2f} ± {stderr:5.2f}  "
    row += f"{bits_per_dim(nll):8.3f}"
    print(row if seconds is None else f"{row}  {seconds:7.1f}")


def markdown_table(header, rows):
    """A Markdown table (a string) of ``header`` (column names) and ``rows`` (lists of cells)."""
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(str(cell) for cell in row) + " |" for row in rows]
    return "\n".join(lines)
