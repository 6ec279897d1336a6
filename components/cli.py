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
    from components.pipeline.report import new_publications, publications_table, unblessed

    before, after = run_demo(args.workspace, args.framework)
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
    from components.model_storage import ModelStorage
    from components.pipeline.options import RunOptions
    from components.pipeline.report import publications_table, retired_publications
    from components.pipeline.runner import run_pipeline

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
    after = ledger.load()
    print(publications_table(before, after, retired=retired_publications(config, after)))
    if args.dry_run:
        for pushed in report.published:
            print(f"dry run: would publish {pushed.strategy} version {pushed.version} to {pushed.uri}")
    return 0


def _retention(args: argparse.Namespace) -> int:
    from components.config import load_config
    from components.publish.retention import format_reports
    from components.serving.protection import retention_for_config

    print(format_reports(retention_for_config(load_config(args.config), dry_run=args.dry_run)))
    return 0


def _validate(args: argparse.Namespace) -> int:
    """Every config loaded and preflighted; every problem of every file printed, exit 1 if any."""
    from components.config import ConfigError, load_config
    from components.preflight import find_problems

    failed = 0
    for path in args.configs:
        try:
            config = load_config(path)
        except ConfigError as exc:
            print(f"{path}: error: {exc.field or 'file'}: {exc.problem}", file=sys.stderr)
            failed += 1
            continue
        problems = find_problems(config, locations=not args.code_only)
        for problem in problems:
            print(f"{path}: error: {problem}", file=sys.stderr)
        if problems:
            failed += 1
        else:
            checked = "code only" if args.code_only else "code and locations"
            print(f"{path}: ok ({config.name}, {len(config.strategies)} strategies; {checked} checked)")
    return 1 if failed else 0


def _serving(args: argparse.Namespace) -> int:
    """``exportflow serving status|promote|rollback|unlabel|pin|unpin``: labels in the model server config."""
    from components.config import load_config
    from components.serving import control
    from components.serving.report import format_move, format_status

    config = load_config(args.config)
    if args.action == "status":
        target = control.target_for(config)
        print(format_status(control.status(config), config.serving.mode, target.config_uri))
    elif args.action == "promote":
        move = control.promote(
            config, args.version, args.label, servable=args.servable, who=args.who, reason=args.reason
        )
        print(format_move(move) if move else f"{args.label} already points at version {args.version}")
    elif args.action == "rollback":
        print(format_move(control.rollback(config, args.label, servable=args.servable, who=args.who, reason=args.reason)))
    elif args.action == "unlabel":
        print(format_move(control.unlabel(config, args.label, servable=args.servable, who=args.who, reason=args.reason)))
    elif args.action == "pin":
        changed = control.pin(config, args.version, servable=args.servable)
        print(f"pinned version {args.version}" if changed else f"version {args.version} was already pinned")
    else:
        control.unpin(config, args.version, servable=args.servable)
        print(f"unpinned version {args.version}")
    return 0


def _keras_env(args: argparse.Namespace) -> int:
    """Build (or bring up to date) the Keras runtime from uv.lock and print its interpreter."""
    import time

    from components.keras.runtime import build_keras_env

    started = time.monotonic()
    python = build_keras_env(args.env) if args.env else build_keras_env()
    print(f"Keras runtime ready in {time.monotonic() - started:.1f}s: {python}")
    return 0


def _add_serving_parser(sub: argparse._SubParsersAction) -> None:
    import getpass

    serving = sub.add_parser("serving", help="TF Serving version labels: status, promote, rollback, unlabel, pin, unpin")
    actions = serving.add_subparsers(dest="action", required=True)
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--config", required=True, help="the model's YAML config")
    common.add_argument("--servable", help="which servable (default: the model's only one)")
    who = argparse.ArgumentParser(add_help=False)
    who.add_argument("--who", default=getpass.getuser(), help="recorded in the label history (default: you)")
    who.add_argument("--reason", default="", help="why, recorded in the label history")
    actions.add_parser("status", parents=[common], help="labels, loaded versions, pins and label history")
    promote = actions.add_parser("promote", parents=[common, who], help="point a label at a published version")
    promote.add_argument("--version", type=int, required=True)
    promote.add_argument("--label", default="stable")
    rollback = actions.add_parser("rollback", parents=[common, who], help="move a label back to its previous version")
    rollback.add_argument("--label", default="stable")
    unlabel = actions.add_parser(
        "unlabel", parents=[common, who], help="remove a label (its version stays loaded if still needed)"
    )
    unlabel.add_argument("--label", required=True)
    for name, text in (("pin", "keep a version loaded without a label"), ("unpin", "release a pinned version")):
        action = actions.add_parser(name, parents=[common], help=text)
        action.add_argument("--version", type=int, required=True)
    serving.set_defaults(func=_serving)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="exportflow", description=__doc__)
    parser.add_argument("-v", "--verbose", action="store_true", help="log at INFO level")
    sub = parser.add_subparsers(dest="command", required=True)

    demo = sub.add_parser("demo", help="train the example model and export it through Airflow")
    demo.add_argument("--workspace", default=".exportflow-demo", help="folder for everything the demo makes")
    demo.add_argument(
        "--framework",
        choices=("estimator", "keras"),
        default="estimator",
        help="keras: build the Keras 3 runtime (TF 2.21) from uv.lock and run the Keras example instead",
    )
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

    validate = sub.add_parser(
        "validate", help="check model configs: fields, imported code, and that the job can read and write its places"
    )
    validate.add_argument("configs", nargs="+")
    validate.add_argument(
        "--code-only",
        action="store_true",
        help="check fields and imported code, not files, folders or buckets (e.g. in CI without access)",
    )
    validate.set_defaults(func=_validate)
    keras_env = sub.add_parser("keras-env", help="build the Keras 3 runtime (TF 2.21) from uv.lock")
    keras_env.add_argument("--env", default=None, help="its folder (default: .venv-keras in the project)")
    keras_env.set_defaults(func=_keras_env)
    _add_serving_parser(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")  # hide C++ start-up noise (CUDA probing)
    warnings.filterwarnings("ignore", category=FutureWarning, module="google.api_core")
    logging.basicConfig(level=logging.INFO if args.verbose else logging.WARNING, format="%(levelname)s %(message)s")
    logging.getLogger("tensorflow").setLevel(logging.INFO if args.verbose else logging.ERROR)
    if sys.stderr.isatty():
        from components.transfer.progress import install_progress_bar

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
