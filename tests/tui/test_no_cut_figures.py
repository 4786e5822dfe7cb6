"""Every figure the super weight table and the stopword pane draw is whole, at every size: read
off the rendered screen, no numeric cell ends in "…" or is cut by the table's edge (issue 33)."""

import pytest

from swtui.tui.widgets.compare import StopwordTable
from swtui.tui.widgets.sw_table import NUMERIC, RATIO, SuperWeightTable

from test_screens import app, pruned, quiet

SIZES = [(80, 24), (100, 30), (110, 34), (160, 48)]


def rendered_lines(widget) -> list[str]:
    """The widget's content region as the screen draws it, one string per line."""
    region = widget.content_region
    strips = widget.screen._compositor.render_strips()
    assert region.bottom <= len(strips), f"{widget} is drawn past the screen's bottom"
    lines = []
    for y in range(region.y, region.y + region.height):
        strip = strips[y]
        text = "".join(seg.text for seg in strip)
        lines.append(text[region.x:region.x + region.width])
    return lines


def table_cells(table: SuperWeightTable) -> list[tuple[str, str, str]]:
    """(column, drawn text, full text) of every numeric cell shown, read at the columns' offsets."""
    lines = rendered_lines(table)
    out = []
    for i in range(table.row_count):
        line = lines[1 + i]  # the header first
        x = 0
        for column in table.ordered_columns:
            width = column.get_render_width(table)
            drawn = line[x:x + width].strip()
            if column.key.value in NUMERIC:
                out.append((column.key.value, drawn, str(table.get_row_at(i)[table.ordered_columns.index(column)])))
            x += width
    return out


def stopword_figures(pane: StopwordTable) -> list[str]:
    """The last three fields (base, now, ×) of every drawn line under the header."""
    figures = []
    for line in rendered_lines(pane)[1:]:
        if line.strip():
            figures += line.rsplit(None, 3)[-3:]
    return figures


def is_number(text: str) -> bool:
    try:
        float(text.replace("k", "e3").replace("M", "e6").replace("G", "e9"))
        return True
    except ValueError:
        return text == "—"


@pytest.mark.parametrize("size", SIZES, ids="{0[0]}x{0[1]}".format)
@pytest.mark.parametrize("state", [quiet, pruned], ids=["detected", "pruned"])
async def test_no_figure_is_cut(size, state):
    a = app()
    async with a.run_test(size=size) as pilot:
        await state(pilot)
        await pilot.pause()
        table = a.main.query_one(SuperWeightTable)
        assert table.virtual_size.width <= table.scrollable_content_region.width, "the table is wider than its pane"
        cells = table_cells(table)
        assert cells and all(not drawn.endswith("…") and drawn == full for _, drawn, full in cells), cells
        figures = stopword_figures(a.main.query_one(StopwordTable))
        assert figures and all(is_number(f) for f in figures), figures


async def test_at_80x24_every_ratio_keeps_its_interval():
    """80×24 is where the compact form earns its place: the demo's three candidates show their
    ratios with their intervals (4.3×[3.6–5.0]), not the value alone."""
    a = app()
    async with a.run_test(size=(80, 24)) as pilot:
        await quiet(pilot)
        await pilot.pause()
        table = a.main.query_one(SuperWeightTable)
        ratios = [drawn for column, drawn, _ in table_cells(table) if column == RATIO]
        assert len(ratios) == 3 and all("×[" in r and r.endswith("]") for r in ratios), ratios
