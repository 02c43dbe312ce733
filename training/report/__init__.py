"""The HTML report of an evaluation: curves, confusion matrix and galleries of errors."""

from anjian.training.report.matching import MatchCollector
from anjian.training.report.page import write_eval_report

__all__ = ["MatchCollector", "write_eval_report"]
