"""Upstream-compatibility shim: the command at its earlier path; the evaluation lives in
:mod:`human_body_prior.evaluation.vposer` (same options)::

    python -m human_body_prior.train.evaluate_vposer --data-dir <prepared data> [--json out.json]
"""

import sys

from human_body_prior import cli
from human_body_prior.evaluation.vposer import (  # noqa: F401
    evaluate,
    format_markdown,
    main,
    save_json,
)

if __name__ == "__main__":
    sys.exit(cli.run(main, prog="evaluate_vposer"))
