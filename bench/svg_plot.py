"""The benchmark reports' charts live in the package (supactl/svg_plot.py), shared with the CLI."""

from supactl.svg_plot import line_chart

__all__ = ["line_chart"]
