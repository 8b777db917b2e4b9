"""Command-line entry point kept at its earlier path; the evaluation lives in
:mod:`human_body_prior.evaluation.vposer` (same options)::

    python -m human_body_prior.train.evaluate_vposer --data-dir <prepared data> [--json out.json]
"""

import sys

from human_body_prior.evaluation.vposer import evaluate, format_markdown, main, save_json  # noqa: F401
from human_body_prior.tools import cli

if __name__ == "__main__":
    sys.exit(cli.run(main, prog="evaluate_vposer"))
