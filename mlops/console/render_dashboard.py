"""``mlops dashboard --stack <env> --out DIR``: a dashboard's panels (read by
``mlops.console.dashboard``) drawn as one PNG and one self-contained HTML page.

Both place each widget where the body does on CloudWatch's 24-column grid. The HTML page has
no script and no external asset: charts are inline SVG drawn by matplotlib, styles inline,
so it opens anywhere (and a browser test sees exactly what is in the file).
"""

from __future__ import annotations

import html
import io
import re
from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # files only; never a window
import matplotlib.dates as mdates
import matplotlib.pyplot as plt
from matplotlib.axes import Axes
from matplotlib.ticker import EngFormatter, FuncFormatter

from mlops.console import dashboard
from mlops.console.dashboard import Panel, Series

GRID = 24
CELL_INCHES = (0.75, 0.42)  # one grid column, one grid row
TITLE_INCHES = 0.7  # the figure's title band
PAD_INCHES = 0.08  # between neighbouring widgets
# Inside a chart's cell: its title above the axes, the time labels below them.
CHART_TOP_INCHES, CHART_BOTTOM_INCHES = 0.3, 0.45
_STATE_COLOURS = {"ALARM": "#d13212", "OK": "#1d8102", "INSUFFICIENT_DATA": "#8d6605"}
_MARK_COLOUR = "#6b3fa0"


def _draw_metric(ax: Axes, panel: Panel) -> None:
    drawn = False
    right_series = [s for s in panel.series if s.right and s.values]
    right = ax.twinx() if right_series or any(r for _, _, r in panel.lines) else None
    colours = iter(plt.rcParams["axes.prop_cycle"].by_key()["color"] * 4)
    handles = []
    for series in panel.series:
        if series.values:
            target = right if series.right and right is not None else ax
            times, values = _broken(series)
            (line,) = target.plot(
                times, values, marker="o", markersize=3, label=series.label, color=next(colours)
            )
            line.set_gid(
                f"points-{len(handles)}"
            )  # the page names its drawn points (a browser test reads them)
            handles.append(line)
            drawn = True
    for label, value, on_right in panel.lines:
        target = right if on_right and right is not None else ax
        handles.append(target.axhline(value, linestyle="--", linewidth=0.8, color="#d13212", label=label))
    middle = panel.start + (panel.end - panel.start) / 2 if panel.start and panel.end else None
    for n, (label, when) in enumerate(sorted(panel.marks, key=lambda m: m[1])):
        ax.axvline(when, linestyle=":", linewidth=1.2, color=_MARK_COLOUR)
        # Marks close in time (a canary's start and end) take turns at the top and the bottom;
        # a label reads towards the middle, never out of the chart.
        left = middle is not None and when > middle
        ax.annotate(label, (when, 0.98 if n % 2 == 0 else 0.02), xycoords=("data", "axes fraction"),
                    xytext=(-3 if left else 3, 0), textcoords="offset points", fontsize=6.5,
                    color=_MARK_COLOUR, ha="right" if left else "left",
                    va="top" if n % 2 == 0 else "bottom")  # fmt: skip
    if not drawn:
        ax.text(0.5, 0.5, "no data", ha="center", va="center", transform=ax.transAxes, color="#888")
    if panel.start is not None and panel.end is not None:
        # Every chart over the same window, with a margin so a point at its edge shows whole.
        margin = (panel.end - panel.start) * 0.02
        ax.set_xlim(panel.start - margin, panel.end + margin)
    for axis in (ax, right):
        if axis is not None:
            axis.yaxis.set_major_formatter(FuncFormatter(_tick))
    locator = mdates.AutoDateLocator(maxticks=6)
    ax.xaxis.set_major_locator(locator)
    ax.xaxis.set_major_formatter(mdates.ConciseDateFormatter(locator))
    ax.set_title(panel.title, fontsize=9, loc="left", fontweight="bold")
    for axis in (ax, right):
        if axis is not None:
            axis.tick_params(labelsize=7)
    if handles:
        ax.legend(handles=handles, fontsize=6, loc="best", framealpha=0.7)


_ENG = EngFormatter(sep="")


def _tick(value: float, _position: int) -> str:
    """Large values short (1.5M, not 1500000 cut at the chart's edge), small ones as they are
    (a PSI of 0.5, never 500m)."""
    return _ENG(value) if abs(value) >= 10_000 else f"{value:g}"


def _broken(series: Series) -> tuple[list, list[float]]:
    """The series with a gap wherever two points are more than a period apart: a line drawn
    across it would show traffic (or a metric) where none was published."""
    times, values = [], []
    for n, (when, value) in enumerate(zip(series.timestamps, series.values, strict=True)):
        if n and (when - series.timestamps[n - 1]).total_seconds() > series.period:
            times.append(when)
            values.append(float("nan"))
        times.append(when)
        values.append(value)
    return times, values


def _plain(markdown: str) -> list[tuple[str, int, bool]]:
    """The little markdown the program writes, as lines of text: (text, size, bold); a link
    reads as its text and address."""
    lines = []
    for block in markdown.split("\n"):
        if not block.strip():
            continue
        heading = re.match(r"(#{1,3}) (.*)", block)
        text = heading.group(2) if heading else block
        text = re.sub(r"\[(.+?)\]\((.+?)\)", r"\1: \2", text)
        text = re.sub(r"[*`]", "", text)
        lines.append(
            (text, {1: 13, 2: 12, 3: 11}.get(len(heading.group(1)), 9) if heading else 9, bool(heading))
        )
    return lines


def _draw_text(ax: Axes, panel: Panel) -> None:
    ax.axis("off")
    y = 1.0
    for text, size, bold in _plain(panel.markdown):
        ax.text(0.0, y, text, va="top", ha="left", fontsize=size, fontweight="bold" if bold else "normal",
                transform=ax.transAxes, wrap=True)  # fmt: skip
        y -= 0.55 if len(_plain(panel.markdown)) > 1 else 0


def _draw_alarms(ax: Axes, panel: Panel) -> None:
    """A grid of alarms: a square in the state's colour, the state and the name at body size."""
    ax.set_title(panel.title, fontsize=9, loc="left", fontweight="bold")
    ax.axis("off")
    columns = max(1, round(3 * panel.width / GRID))
    rows = max(1, -(-len(panel.alarms) // columns))
    for n, (name, state) in enumerate(sorted(panel.alarms, key=lambda a: (a[1] != "ALARM", a[0]))):
        x, y = (n % columns) / columns, 1 - (n // columns + 0.5) / rows
        colour = _STATE_COLOURS.get(state, "#444")
        ax.text(x, y, "■", fontsize=10, color=colour, transform=ax.transAxes, va="center")
        ax.text(x + 0.02 * 3 / columns, y, f"{name}  ({state})", fontsize=8.5, transform=ax.transAxes,
                va="center", color="#222", fontweight="bold" if state == "ALARM" else "normal")  # fmt: skip


def _draw(ax: Axes, panel: Panel) -> None:
    {"metric": _draw_metric, "text": _draw_text, "alarm": _draw_alarms}.get(panel.kind, _draw_text)(ax, panel)


def write_png(panels: list[Panel], path: Path, title: str, subtitle: str = "") -> Path:
    """All panels on one figure, each in its widget's cells (a chart's title and time labels
    inside its own cells, so neighbours never overlap)."""
    rows = max((p.y + p.height for p in panels), default=1)
    width, height = GRID * CELL_INCHES[0], rows * CELL_INCHES[1] + TITLE_INCHES
    fig = plt.figure(figsize=(width, height))
    for panel in panels:
        left = panel.x * CELL_INCHES[0] + PAD_INCHES
        top = TITLE_INCHES + panel.y * CELL_INCHES[1] + PAD_INCHES
        w = panel.width * CELL_INCHES[0] - 2 * PAD_INCHES
        h = panel.height * CELL_INCHES[1] - 2 * PAD_INCHES
        if panel.kind == "metric":  # room for the title above and the time labels below
            top, h = top + CHART_TOP_INCHES, h - CHART_TOP_INCHES - CHART_BOTTOM_INCHES
            left, w = left + 0.35, w - 0.75  # tick labels on both sides
        elif panel.kind == "alarm":
            top, h = top + CHART_TOP_INCHES, h - CHART_TOP_INCHES
        ax = fig.add_axes((left / width, 1 - (top + h) / height, w / width, h / height))
        _draw(ax, panel)
    fig.text(0.005, 1 - 0.15 / height, title, fontsize=14, fontweight="bold", va="top")
    fig.text(0.005, 1 - 0.45 / height, subtitle, fontsize=11, va="top")
    fig.savefig(path, dpi=80)
    plt.close(fig)
    return path


def _svg(panel: Panel) -> str:
    fig, ax = plt.subplots(figsize=(panel.width * CELL_INCHES[0], panel.height * CELL_INCHES[1] - 0.3))
    _draw_metric(ax, panel)
    ax.set_title("", loc="left")  # the page's own heading names the widget
    buffer = io.StringIO()
    fig.savefig(buffer, format="svg", bbox_inches="tight")
    plt.close(fig)
    svg = buffer.getvalue()
    return svg[svg.index("<svg") :]  # drop the XML prolog and doctype: inline in HTML


def _markdown(text: str) -> str:
    """The little markdown the program writes: headings, bold, code, links, paragraphs."""
    out = []
    for block in text.split("\n"):
        line = html.escape(block)
        line = re.sub(r"\*\*(.+?)\*\*", r"<b>\1</b>", line)
        line = re.sub(r"`(.+?)`", r"<code>\1</code>", line)
        line = re.sub(r"\[(.+?)\]\((.+?)\)", r'<a href="\2">\1</a>', line)
        heading = re.match(r"(#{1,3}) (.*)", line)
        out.append(
            f"<h{len(heading.group(1))}>{heading.group(2)}</h{len(heading.group(1))}>"
            if heading
            else f"<p>{line}</p>"
            if line
            else ""
        )
    return "".join(out)


def _widget_html(panel: Panel) -> str:
    style = f"grid-column:{panel.x + 1}/span {panel.width};grid-row:{panel.y + 1}/span {panel.height}"
    attrs = f'class="widget {panel.kind}" data-index="{panel.index}" data-title="{html.escape(panel.title)}" style="{style}"'
    if panel.kind == "metric":
        notes = "".join(
            f"<p class=note>{html.escape(s.label)}: {html.escape(s.note)}</p>" for s in panel.series if s.note
        )
        inner = f"<h4>{html.escape(panel.title)}</h4>{_svg(panel)}{notes}"
    elif panel.kind == "alarm":
        items = "".join(
            f'<li class="{html.escape(state)}">{html.escape(state)} {html.escape(name)}</li>'
            for name, state in sorted(panel.alarms, key=lambda a: (a[1] != "ALARM", a[0]))
        )
        columns = max(1, round(3 * panel.width / GRID))
        inner = f'<h4>{html.escape(panel.title)}</h4><ul style="grid-template-columns:repeat({columns},1fr)">{items}</ul>'

    else:
        inner = _markdown(panel.markdown)
    return f"<section {attrs}>{inner}</section>"


_CSS = """
body{font-family:sans-serif;margin:12px;background:#f2f3f3}
main{display:grid;grid-template-columns:repeat(24,1fr);grid-auto-rows:42px;gap:6px}
.widget{background:#fff;border:1px solid #d5dbdb;padding:4px;overflow:hidden}
.widget svg{width:100%;height:auto;max-height:85%}
h4{margin:0 0 2px;font-size:12px}.text h1,.text h2,.text h3,.text p{margin:2px 0}.text h2{font-size:18px}.alarm ul{display:grid;align-content:space-evenly;height:calc(100% - 22px);font-size:13px;margin:0;padding-left:16px}.serving{margin:0 0 8px;font-size:14px}
.ALARM{color:#d13212;font-weight:bold}.OK{color:#1d8102}.INSUFFICIENT_DATA{color:#8d6605}
.note{font-size:10px;color:#888}
"""


def write_html(panels: list[Panel], path: Path, title: str, subtitle: str = "") -> Path:
    widgets = "\n".join(_widget_html(p) for p in panels)
    page = (
        f'<!DOCTYPE html><html lang="en"><head><meta charset="utf-8"><title>{html.escape(title)}</title>'
        f"<style>{_CSS}</style></head><body><h1>{html.escape(title)}</h1><p class=serving>{html.escape(subtitle)}</p><main>\n{widgets}\n</main></body></html>\n"
    )
    path.write_text(page, encoding="utf-8")
    return path


def main(argv: list[str] | None = None) -> int:
    import argparse
    import sys
    from pathlib import Path

    import boto3
    from botocore.exceptions import BotoCoreError, ClientError

    from infra.rollout import endpoint_name
    from mlops.console import clock
    from mlops.console.status import _stack_config, local_cloud_hint, unknown_stack
    from model_code.contract import schema as schema_mod

    parser = argparse.ArgumentParser(
        prog="mlops dashboard", description="Draw the stack's deployed CloudWatch dashboard to PNG and HTML."
    )
    parser.add_argument("--stack", required=True, help="the stack (dev, staging, prod, local...)")
    parser.add_argument("--out", type=Path, required=True, help="folder for dashboard.png and dashboard.html")
    parser.add_argument("--schema", type=Path, default=None, help="schema YAML (default: the stack's)")
    parser.add_argument("--region", default=None, help="default: the stack's, else boto3's")
    args = parser.parse_args(argv)
    from infra.config import ROOT

    if refused := unknown_stack(args.stack, ROOT):
        parser.error(refused)
    config = _stack_config(args.stack, ROOT)
    schema = schema_mod.load(
        args.schema or (ROOT / config.schema_path if config else schema_mod.EXAMPLE_SCHEMA)
    )
    region = args.region or (config.region if config else None) or boto3.Session().region_name or "us-east-1"
    name = endpoint_name(schema.name, args.stack)
    session = boto3.Session(region_name=region)
    try:
        cloud = clock.read(session)  # the local cloud's own clock there, else the wall clock
        _, panels = dashboard.read_panels(session, name, now=cloud.now, since=cloud.started)
    except (BotoCoreError, ClientError) as exc:
        hint = local_cloud_hint(args.stack, session)
        print(f"mlops dashboard: could not read dashboard {name!r}: {exc}{hint}", file=sys.stderr)
        return 1
    args.out.mkdir(parents=True, exist_ok=True)
    title = f"{name} ({region}) at {cloud.now:%Y-%m-%d %H:%M} UTC, {cloud.source}"
    serving = dashboard.serving_line(session, name)
    png, html = (
        write_png(panels, args.out / "dashboard.png", title, serving),
        write_html(panels, args.out / "dashboard.html", title, serving),
    )
    print(f"{len(panels)} widgets of {name} drawn:\n{png}\n{html}")
    return 0
