"""Dependency-free SVG charts: a line chart for benchmark reports (bench/) and a bar chart for the
call log's latency histogram and per-turn timeline (`supactl calls stats/show --plot`)."""

from __future__ import annotations

import math
from xml.sax.saxutils import escape

# Enough distinct colours for the bridge benchmark's three servers on two runtimes, and two to spare.
COLORS = ["#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#ff7f0e", "#8c564b", "#e377c2", "#7f7f7f"]
# Legend text at font-size 12, in px per character (sans-serif averages under 7).
_LEGEND_CHAR_PX = 7


def _frame(width: int, height: int, margins: tuple[int, int, int, int], title: str, x_label: str,
           y_label: str) -> list[str]:
    """The document, its title and both axes with their labels; margins are left, right, top, bottom."""
    left, right, top, bottom = margins
    return [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" font-family="sans-serif" font-size="12">',
        '<rect width="100%" height="100%" fill="white"/>',
        f'<text x="{width / 2}" y="20" text-anchor="middle" font-size="14">{escape(title)}</text>',
        f'<line x1="{left}" y1="{height - bottom}" x2="{width - right}" y2="{height - bottom}" stroke="black"/>',
        f'<line x1="{left}" y1="{top}" x2="{left}" y2="{height - bottom}" stroke="black"/>',
        f'<text x="{(left + width - right) / 2}" y="{height - 12}" text-anchor="middle">{escape(x_label)}</text>',
        f'<text x="16" y="{height / 2}" text-anchor="middle" transform="rotate(-90 16 {height / 2})">{escape(y_label)}</text>',
    ]


def line_chart(
    series: dict[str, list[tuple[float, float]]],
    *,
    title: str,
    x_label: str,
    y_label: str,
    log_y: bool = False,
    width: int = 640,
    height: int = 360,
) -> str:
    left, right, top, bottom = 70, 160, 40, 50
    points = [p for values in series.values() for p in values]
    if not points:
        return ""
    # A longer legend widens the chart rather than squeezing the plot.
    legend = 28 + _LEGEND_CHAR_PX * max(len(name) for name in series) + 10
    if legend > right:
        width, right = width + legend - right, legend
    xs = [p[0] for p in points]
    ys = [max(p[1], 1e-3) if log_y else p[1] for p in points]
    x_min, x_max = min(xs), max(xs) if max(xs) > min(xs) else min(xs) + 1
    transform = (lambda v: math.log10(max(v, 1e-3))) if log_y else (lambda v: v)
    y_min = transform(min(ys)) if log_y else 0.0
    y_max = transform(max(ys))
    if y_max <= y_min:
        y_max = y_min + 1

    def sx(x: float) -> float:
        return left + (x - x_min) / (x_max - x_min) * (width - left - right)

    def sy(y: float) -> float:
        return height - bottom - (transform(y) - y_min) / (y_max - y_min) * (height - top - bottom)

    parts = _frame(width, height, (left, right, top, bottom), title, x_label, y_label)
    for x in sorted(set(xs)):
        parts.append(f'<text x="{sx(x):.1f}" y="{height - bottom + 16}" text-anchor="middle">{x:g}</text>')
    ticks = [10**e for e in range(math.floor(y_min), math.ceil(y_max) + 1)] if log_y else [
        (y_max * i / 4) for i in range(5)
    ]
    for tick in ticks:
        y = sy(tick)
        if top - 1 <= y <= height - bottom + 1:
            parts.append(f'<text x="{left - 6}" y="{y + 4:.1f}" text-anchor="end">{tick:g}</text>')
            parts.append(f'<line x1="{left}" y1="{y:.1f}" x2="{width - right}" y2="{y:.1f}" stroke="#ddd"/>')
    for index, (name, values) in enumerate(series.items()):
        color = COLORS[index % len(COLORS)]
        path = " ".join(f"{sx(x):.1f},{sy(y):.1f}" for x, y in sorted(values))
        parts.append(f'<polyline fill="none" stroke="{color}" stroke-width="2" points="{path}"/>')
        for x, y in values:
            parts.append(f'<circle cx="{sx(x):.1f}" cy="{sy(y):.1f}" r="3" fill="{color}"/>')
        legend_y = top + 16 * index
        parts.append(f'<rect x="{width - right + 10}" y="{legend_y}" width="12" height="3" fill="{color}"/>')
        parts.append(f'<text x="{width - right + 28}" y="{legend_y + 5}">{escape(name)}</text>')
    parts.append("</svg>")
    return "\n".join(parts)


def bar_chart(
    bars: list[tuple[str, float]],
    *,
    title: str,
    x_label: str,
    y_label: str,
    width: int = 640,
    height: int = 360,
) -> str:
    """One bar per (label, value), left to right; "" when there is nothing to draw."""
    if not bars:
        return ""
    left, right, top, bottom = 70, 20, 40, 60
    y_max = max(value for _, value in bars) or 1.0
    plot_w, plot_h = width - left - right, height - top - bottom
    step = plot_w / len(bars)
    parts = _frame(width, height, (left, right, top, bottom), title, x_label, y_label)
    for i in range(5):
        tick = y_max * i / 4
        y = height - bottom - plot_h * i / 4
        parts.append(f'<text x="{left - 6}" y="{y + 4:.1f}" text-anchor="end">{tick:g}</text>')
        parts.append(f'<line x1="{left}" y1="{y:.1f}" x2="{width - right}" y2="{y:.1f}" stroke="#ddd"/>')
    label_every = max(1, math.ceil(len(bars) / 12))
    for index, (label, value) in enumerate(bars):
        bar_h = plot_h * value / y_max
        x = left + index * step
        parts.append(f'<rect x="{x + step * 0.1:.1f}" y="{height - bottom - bar_h:.1f}" width="{step * 0.8:.1f}" '
                     f'height="{bar_h:.1f}" fill="{COLORS[0]}"><title>{escape(label)}: {value:g}</title></rect>')
        if index % label_every == 0:
            parts.append(f'<text x="{x + step / 2:.1f}" y="{height - bottom + 16}" text-anchor="middle">'
                         f'{escape(label)}</text>')
    parts.append("</svg>")
    return "\n".join(parts)
