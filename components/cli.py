"""The ``exportflow`` command line."""

from __future__ import annotations

import argparse
import logging
import os
import sys
import warnings

from components.errors import ExportflowError


def _demo(args: argparse.Namespace) -> int:
    from components.demo import run_demo
    from components.report import new_publications, publications_table, unblessed

    before, after = run_demo(args.workspace)
    print()
    print(publications_table(before, after))
    for line in unblessed(after):
        print(f"not exported: {line}")
    count = new_publications(before, after)
    print()
    if count:
        print(f"published {count} new version(s) under {os.path.abspath(args.workspace)}/published/")
    else:
        print("nothing new to publish: every complete checkpoint was already handled")
    return 0


def _run(args: argparse.Namespace) -> int:
    from components.config import load_config
    from components.report import publications_table
    from components.runner import run_pipeline
    from components.stages import RunOptions
    from components.storage.factory import ModelStorage

    config = load_config(args.config)
    ledger = ModelStorage(config).ledger()  # the storage factory: the destination's own credentials
    before = ledger.load()
    options = RunOptions(
        checkpoint=args.checkpoint,
        strategies=tuple(args.strategy) if args.strategy else None,
        force=args.force,
        dry_run=args.dry_run,
    )
    report = run_pipeline(config, options)
    print(publications_table(before, ledger.load()))
    if args.dry_run:
        for pushed in report.published:
            print(f"dry run: would publish {pushed.strategy} version {pushed.version} to {pushed.uri}")
    return 0


def _retention(args: argparse.Namespace) -> int:
    from components.config import load_config
    from components.publish.retention import format_reports, retention_for_config

    print(format_reports(retention_for_config(load_config(args.config), dry_run=args.dry_run)))
    return 0


def _validate(args: argparse.Namespace) -> int:
    from components.config import load_config

    for path in args.configs:
        config = load_config(path)
        print(f"{path}: ok ({config.name}, {len(config.strategies)} strategies)")
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="exportflow", description=__doc__)
    parser.add_argument("-v", "--verbose", action="store_true", help="log at INFO level")
    sub = parser.add_subparsers(dest="command", required=True)

    demo = sub.add_parser("demo", help="train the example model and export it through Airflow")
    demo.add_argument("--workspace", default=".exportflow-demo", help="folder for everything the demo makes")
    demo.set_defaults(func=_demo)

    run = sub.add_parser("run", help="run one model's pipeline without Airflow")
    run.add_argument("--config", required=True, help="the model's YAML config")
    run.add_argument("--checkpoint", type=int, help="a step to process instead of every new checkpoint")
    run.add_argument("--strategy", action="append", help="a configured strategy (repeatable)")
    run.add_argument("--force", action="store_true", help="redo checkpoints that were already handled")
    run.add_argument("--dry-run", action="store_true", help="do everything but publish")
    run.set_defaults(func=_run)

    retention = sub.add_parser("retention", help="delete old published versions (keeps newest, best, pinned, current)")
    retention.add_argument("--config", required=True, help="the model's YAML config")
    retention.add_argument("--dry-run", action="store_true", help="list what would be deleted, delete nothing")
    retention.set_defaults(func=_retention)

    validate = sub.add_parser("validate", help="validate model configs")
    validate.add_argument("configs", nargs="+")
    validate.set_defaults(func=_validate)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")  # hide C++ start-up noise (CUDA probing)
    warnings.filterwarnings("ignore", category=FutureWarning, module="google.api_core")
    logging.basicConfig(level=logging.INFO if args.verbose else logging.WARNING, format="%(levelname)s %(message)s")
    logging.getLogger("tensorflow").setLevel(logging.INFO if args.verbose else logging.ERROR)
    if sys.stderr.isatty():
        from components.publish.progress import install_progress_bar

        install_progress_bar(sys.stderr)
    try:
        return args.func(args)
    except ExportflowError as exc:
        print(f"exportflow: error: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
