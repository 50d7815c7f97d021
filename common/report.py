"""What the demos print alike as tables and banners.

* ``markdown_table(header, rows)``: a Markdown table as a string (the VAE demos' result tables);
* ``digits_banner(split, test, models, width)``: the lines every digits demo prints first (the
  split, what bits/dim means) and the header of its table.
"""

from common.data import LEVELS


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


def markdown_table(header, rows):
    """A Markdown table (a string) of ``header`` (column names) and ``rows`` (lists of cells)."""
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(str(cell) for cell in row) + " |" for row in rows]
    return "\n".join(lines)
