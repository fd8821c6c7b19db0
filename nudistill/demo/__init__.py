"""`nudistill demo`: simulate, fine-tune and calibrate a tiny teacher, label on Ray, distil, export,
benchmark, evaluate and report, on one machine with no GPU and no downloads."""

from nudistill.demo.config import DemoConfig
from nudistill.demo.runner import run_demo

__all__ = ["DemoConfig", "run_demo"]
