"""The `epick` command: subcommands are imported only when they run, so `epick --help` is instant
and `epick pick` never imports torch.

Every subcommand module exposes ``add_arguments(parser)`` and ``run(args) -> int``.
"""
from __future__ import annotations

import argparse
import importlib
import logging
import os
import sys

from .cli_args import ArgumentParser, help_epilog
from .errors import EpickError

EXIT_CRASH = 70   # sysexits.h EX_SOFTWARE: an unexpected exception inside epick (1 and 2 mean other things)
EXIT_BROKEN_PIPE = 141   # 128 + SIGPIPE, as a shell reports a tool whose reader closed the pipe

# name -> (module, one-line help). Order is the order shown in `epick --help`. A module may define
# EXAMPLES and WRITES (text): they end its --help.
COMMANDS: dict[str, tuple[str, str]] = {
    "pick": ("epick.runtime.commands.pick", "pick particles, vesicles or fibers on micrographs"),
    "train": ("epick.trainer.cli", "train a model: joint, fine-tune or continual learning"),
    "export": ("epick.export.cli", "export a model file to ONNX, TensorRT or a torch-GPU artifact"),
    "merge-index": ("epick.runtime.commands.merge_index",
                    "job-level autopick.star and summary from `epick pick --shard I/N` runs"),
    "models": ("epick.runtime.commands.models", "the bundled models and their measured accuracy, or what a model file holds"),
    "eval": ("epick.runtime.commands.evaluate", "compare picks with ground truth (precision, recall, AP, AR)"),
    "convert": ("epick.runtime.commands.convert", "convert coordinate files between STAR, BOX, CSV and CS"),
    "view": ("epick.runtime.commands.view", "look at picks in a web browser and choose a score threshold"),
    "filter": ("epick.runtime.commands.filter", "copy picks keeping those whose score reaches a threshold"),
    "simulate": ("epick.simulator.cli", "simulate micrographs with known ground truth"),
}
# commands that need an extra: (extra name, modules it installs); checked before the command runs,
# so a base install says what to install instead of failing with a traceback
EXTRAS: dict[str, tuple[str, tuple[str, ...]]] = {
    "train": ("train", ("torch", "safetensors")),
    "export": ("export", ("torch", "onnx")),
}


def missing_extra(name: str) -> str | None:
    """The install hint for subcommand ``name`` when a module of its extra is not installed."""
    import importlib.util

    if name not in EXTRAS:
        return None
    extra, modules = EXTRAS[name]
    missing = [m for m in modules if importlib.util.find_spec(m) is None]
    if not missing:
        return None
    return (f"epick {name} needs {', '.join(missing)}, which this installation lacks; "
            f"install it with: pip install 'epick[{extra}]'")


def _top_parser() -> argparse.ArgumentParser:
    lines = "\n".join(f"  {name:<13}{text}" for name, (_, text) in COMMANDS.items())
    parser = ArgumentParser(
        prog="epick",
        description="epick: a continual-learning particle picker for cryo-EM.",
        epilog=f"commands:\n{lines}\n\nRun `epick COMMAND --help` for a command's options.",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--version", action="store_true", help="print the version and exit")
    parser.add_argument("command", nargs="?", choices=list(COMMANDS), metavar="COMMAND")
    return parser


def main(argv: list[str] | None = None) -> int:
    """Entry point of the `epick` console command."""
    argv = list(sys.argv[1:] if argv is None else argv)
    top = _top_parser()
    if not argv or argv[0] not in COMMANDS:
        args = top.parse_args(argv[:1])
        if args.version:
            from importlib.metadata import version

            print(f"epick {version('epick')}")
            return 0
        top.print_help()
        return 0 if not argv else 2
    name, rest = argv[0], argv[1:]
    module_name, text = COMMANDS[name]
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        extra = {"train": "train", "export": "export"}.get(name)
        hint = f" Install it with: pip install 'epick[{extra}]'" if extra else ""
        print(f"epick {name}: a dependency is missing ({exc}).{hint}", file=sys.stderr)
        return 2
    epilog = help_epilog(module.EXAMPLES, getattr(module, "WRITES", None), getattr(module, "EXIT_CODES", None)) \
        if hasattr(module, "EXAMPLES") else None
    parser = ArgumentParser(prog=f"epick {name}", description=text, epilog=epilog)
    module.add_arguments(parser)
    args = parser.parse_args(rest)
    hint = missing_extra(name)
    if hint:
        print(hint, file=sys.stderr)
        return 2
    # tifffile logs damaged files on its own, without the file's name; epick reports each of them
    # itself as one line naming the file (MicrographError), so its lines are only noise here
    logging.getLogger("tifffile").setLevel(logging.CRITICAL)
    try:
        return int(module.run(args) or 0)
    except ModuleNotFoundError as exc:   # an optional dependency found missing while running
        extra = EXTRAS.get(name, (None,))[0]
        print(f"epick {name}: {exc.name or exc} is not installed"
              + (f"; install it with: pip install 'epick[{extra}]'" if extra else ""), file=sys.stderr)
        return 2
    except EpickError as exc:
        print(f"epick {name}: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"epick {name}: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:   # the reader stopped early (`epick models --json | head`): not a bug
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())   # Python's own flush at exit fails too
        return EXIT_BROKEN_PIPE
    except Exception:   # a bug: say so with the traceback, and never exit 1 ("every micrograph failed")
        import traceback

        traceback.print_exc()
        print(f"epick {name}: internal error (a bug in epick, not in your data): please report it with "
              f"the traceback above; exit code {EXIT_CRASH}", file=sys.stderr)
        return EXIT_CRASH


if __name__ == "__main__":
    sys.exit(main())
