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
import matplotlib.pyplot as plt
from matplotlib.axes import Axes

from mlops.console import dashboard
from mlops.console.dashboard import Panel

GRID = 24
CELL_INCHES = (0.75, 0.42)  # one grid column, one grid row
_STATE_COLOURS = {"ALARM": "#d13212", "OK": "#1d8102", "INSUFFICIENT_DATA": "#8d6605"}


def _draw_metric(ax: Axes, panel: Panel) -> None:
    drawn = False
    for series in panel.series:
        if series.values:
            ax.plot(series.timestamps, series.values, marker=".", label=series.label)
            drawn = True
    for label, value in panel.lines:
        ax.axhline(value, linestyle="--", linewidth=0.8, color="#d13212", label=label)
    if not drawn:
        ax.text(0.5, 0.5, "no data", ha="center", va="center", transform=ax.transAxes, color="#888")
    ax.set_title(panel.title, fontsize=8, loc="left")
    ax.tick_params(labelsize=6)
    if ax.get_legend_handles_labels()[0]:
        ax.legend(fontsize=5, loc="upper left")
    for label in ax.get_xticklabels():
        label.set_rotation(20)


def _draw_text(ax: Axes, panel: Panel) -> None:
    text = re.sub(r"[*`#]", "", panel.markdown).strip()
    ax.text(0.01, 0.95, text, va="top", ha="left", fontsize=8, wrap=True, transform=ax.transAxes)
    ax.axis("off")


def _draw_alarms(ax: Axes, panel: Panel) -> None:
    ax.set_title(panel.title, fontsize=8, loc="left")
    ax.axis("off")
    columns = 3
    rows = max(1, -(-len(panel.alarms) // columns))
    for n, (name, state) in enumerate(panel.alarms):
        x, y = (n % columns) / columns, 1 - (n // columns + 1) / (rows + 1)
        ax.text(
            x + 0.005,
            y,
            f"{state}  {name}",
            fontsize=5,
            transform=ax.transAxes,
            color=_STATE_COLOURS.get(state, "#444"),
        )


def _draw(ax: Axes, panel: Panel) -> None:
    {"metric": _draw_metric, "text": _draw_text, "alarm": _draw_alarms}.get(panel.kind, _draw_text)(ax, panel)


def write_png(panels: list[Panel], path: Path, title: str) -> Path:
    """All panels on one figure, each spanning its widget's cells."""
    rows = max((p.y + p.height for p in panels), default=1)
    fig = plt.figure(figsize=(GRID * CELL_INCHES[0], rows * CELL_INCHES[1] + 0.5))
    grid = fig.add_gridspec(rows, GRID, hspace=1.2, wspace=0.6)
    for panel in panels:
        _draw(fig.add_subplot(grid[panel.y : panel.y + panel.height, panel.x : panel.x + panel.width]), panel)
    fig.suptitle(title, fontsize=11)
    fig.savefig(path, dpi=80, bbox_inches="tight")
    plt.close(fig)
    return path


def _svg(panel: Panel) -> str:
    fig, ax = plt.subplots(figsize=(panel.width * CELL_INCHES[0], panel.height * CELL_INCHES[1]))
    _draw_metric(ax, panel)
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
            for name, state in panel.alarms
        )
        inner = f"<h4>{html.escape(panel.title)}</h4><ul>{items}</ul>"
    else:
        inner = _markdown(panel.markdown)
    return f"<section {attrs}>{inner}</section>"


_CSS = """
body{font-family:sans-serif;margin:12px;background:#f2f3f3}
main{display:grid;grid-template-columns:repeat(24,1fr);grid-auto-rows:42px;gap:6px}
.widget{background:#fff;border:1px solid #d5dbdb;padding:4px;overflow:hidden}
.widget svg{width:100%;height:auto;max-height:85%}
h4{margin:0 0 2px;font-size:12px}.text h1,.text h2,.text h3,.text p{margin:2px 0}.text h2{font-size:18px}ul{columns:3;font-size:11px;margin:0;padding-left:14px}
.ALARM{color:#d13212;font-weight:bold}.OK{color:#1d8102}.INSUFFICIENT_DATA{color:#8d6605}
.note{font-size:10px;color:#888}
"""


def write_html(panels: list[Panel], path: Path, title: str) -> Path:
    widgets = "\n".join(_widget_html(p) for p in panels)
    page = (
        f'<!DOCTYPE html><html lang="en"><head><meta charset="utf-8"><title>{html.escape(title)}</title>'
        f"<style>{_CSS}</style></head><body><h1>{html.escape(title)}</h1><main>\n{widgets}\n</main></body></html>\n"
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
    from mlops.console.status import _stack_config
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

    config = _stack_config(args.stack, ROOT)
    schema = schema_mod.load(
        args.schema or (ROOT / config.schema_path if config else schema_mod.EXAMPLE_SCHEMA)
    )
    region = args.region or (config.region if config else None) or boto3.Session().region_name or "us-east-1"
    name = endpoint_name(schema.name, args.stack)
    try:
        _, panels = dashboard.read_panels(boto3.Session(region_name=region), name)
    except (BotoCoreError, ClientError) as exc:
        print(f"mlops dashboard: could not read dashboard {name!r}: {exc}", file=sys.stderr)
        return 1
    args.out.mkdir(parents=True, exist_ok=True)
    title = f"{name} ({region})"
    png, html = (
        write_png(panels, args.out / "dashboard.png", title),
        write_html(panels, args.out / "dashboard.html", title),
    )
    print(f"{len(panels)} widgets of {name} drawn:\n{png}\n{html}")
    return 0
