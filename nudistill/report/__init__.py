"""The run report: figures (figures.py) and report.md (build.py) from a demo or cluster run directory."""

from nudistill.report.build import write_report

__all__ = ["write_report"]
