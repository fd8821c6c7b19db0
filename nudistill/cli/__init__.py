"""`nudistill <verb>`: one subcommand per pipeline arrow (docs/design.md).

Each verb lives in ``nudistill/cli/<verb>.py`` with ``register(subparsers)``; its options are generated
from the stage's config dataclass (``dataclass_args``), and it prints the resolved config and calls the
stage's one ``run`` function (STYLE 1, 2). ``--config FILE`` reruns a saved config. Heavy imports (torch, ray,
transformers) happen inside the command, so ``nudistill --help`` stays fast.
"""

from __future__ import annotations

import argparse
import importlib
import sys

from nudistill import __version__
from nudistill.errors import UserError
from nudistill.log import setup_logging

VERBS = ("simulate", "show", "teacher", "label", "distill", "evaluate", "robustness", "export", "score", "bench", "report", "demo")


class _Parser(argparse.ArgumentParser):
    """argparse with errors as one sentence and exit status 2, and options added on first use.

    A verb sets ``fill`` to the function that adds its options: they come from the stage's config
    dataclass, whose module may import torch, so they are built only for the verb being run.
    """

    fill = None

    def _filled(self) -> None:
        fill, self.fill = self.fill, None
        if fill is not None:
            fill(self)

    def parse_known_args(self, args=None, namespace=None):
        self._filled()
        return super().parse_known_args(args, namespace)

    def format_usage(self) -> str:
        self._filled()
        return super().format_usage()

    def format_help(self) -> str:
        self._filled()
        return super().format_help()

    def error(self, message: str):  # noqa: D401
        self.exit(2, f"{self.prog}: error: {message}\n  (see `{self.prog} --help`)\n")


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="nudistill", description=__doc__.split("\n\n")[0],
                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--version", action="version", version=f"nudistill {__version__}")
    parser.add_argument("-v", "--verbose", action="count", default=0, help="more log output (-v info, -vv debug)")
    sub = parser.add_subparsers(dest="verb", metavar="VERB", parser_class=_Parser)
    for verb in VERBS:
        try:
            module = importlib.import_module(f"nudistill.cli.{verb}")
        except ModuleNotFoundError as exc:  # a verb not built yet
            if exc.name != f"nudistill.cli.{verb}":
                raise
            continue
        module.register(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    from nudistill.cli.dataclass_args import parse_args

    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help()
        return 2
    setup_logging(args.verbose)
    try:
        args = parse_args(parser, argv)  # again, with a --config file's values as defaults
        return int(args.func(args) or 0)
    except UserError as exc:
        print(f"nudistill {args.verb}: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"nudistill {args.verb}: interrupted; rerun the same command to resume", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
