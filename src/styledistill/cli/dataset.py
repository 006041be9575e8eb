"""``styledistill dataset``: look inside a paired dataset, or import one made elsewhere."""

from __future__ import annotations

import argparse
import json
from typing import Any

HELP = "inspect a paired dataset, or import stylized images made elsewhere as one"
DESCRIPTION = """\
Summarize a dataset folder written by 'styledistill teach': pairs done / planned,
unreadable inputs, which teacher and settings made the pairs, image sizes, disk use,
and per-shard progress. Safe to run while teach is still writing."""
EXAMPLES = """\
examples:
  styledistill dataset info data/texture
  styledistill dataset info data/texture --verify     # also decode every image (exit 1 if bad)
  styledistill dataset info data/styleid --json | jq .pairs_done"""


IMPORT_DESCRIPTION = """\
Turn stylized images made elsewhere (the official StyleID code, or any other tool)
plus their content and style folders into a dataset that 'styledistill train' reads
like one made by 'teach'. Files are matched by name (--pattern, default the official
StyleID naming {content}_stylized_{style}) or listed in a CSV/JSON-lines --pairs file
with the columns content,style,stylized. Every image is checked; unreadable, unmatched
or odd-sized files are listed with a reason and skipped. The manifest records the
teacher, its settings (for styleid the official defaults; change them with
--teacher-option) and each source file's SHA-256. A rerun adds only new pairs. The
source folders are only read."""
IMPORT_EXAMPLES = """\
examples:
  styledistill dataset import --stylized styleid/output --contents styleid/data/cnt \\
      --styles styleid/data/sty --out data/styleid
  styledistill dataset import --stylized out/ --contents cnt/ --styles sty/ \\
      --pattern '{style}__{content}' --out data/mine --teacher-option gamma=0.5
  styledistill dataset import --pairs pairs.csv --out data/other --teacher other-tool"""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    from ._common import add_key_value_argument

    sub = parser.add_subparsers(dest="action", metavar="ACTION", required=True)
    imp = sub.add_parser(
        "import",
        help="import stylized images made elsewhere as a dataset",
        description=IMPORT_DESCRIPTION,
        epilog=IMPORT_EXAMPLES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    imp.add_argument("--stylized", help="folder of stylized images")
    imp.add_argument("--contents", help="folder of the content images they were made from")
    imp.add_argument("--styles", help="folder of the style images they were made from")
    imp.add_argument("--out", required=True, help="dataset folder to write (or add to)")
    imp.add_argument(
        "--pattern",
        default="{content}_stylized_{style}",
        help="stylized file name without extension, from the content's and style's names",
    )
    imp.add_argument(
        "--pairs",
        metavar="FILE",
        help="CSV (content,style,stylized columns) or JSON lines listing the pairs instead",
    )
    imp.add_argument(
        "--teacher", default="styleid", help="name of the teacher that made the images"
    )
    add_key_value_argument(
        imp,
        "--teacher-option",
        "a teacher setting to record (JSON value), e.g. gamma=0.5; repeatable",
    )
    imp.add_argument(
        "--model",
        help="the weights the teacher ran on (styleid default: CompVis/stable-diffusion-v1-4)",
    )
    imp.add_argument(
        "--size",
        type=int,
        help="side of the square stylized images (default: the most common; others skipped)",
    )
    imp.add_argument("--no-progress", action="store_true", help="no progress bars")
    info = sub.add_parser(
        "info",
        help="summary of a dataset folder",
        description=DESCRIPTION,
        epilog=EXAMPLES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    info.add_argument("dir", metavar="DIR", help="dataset folder (the --out of teach)")
    info.add_argument("--json", action="store_true", help="print the summary as JSON")
    info.add_argument(
        "--verify",
        action="store_true",
        help="also decode every output image (slow); exit status 1 if any is "
        "corrupt or missing, a key is duplicated or a manifest line is not a pair record",
    )
    info.add_argument(
        "--failures", type=int, default=10, metavar="N", help="list at most N unreadable inputs"
    )


def _settings_text(config: Any) -> str:
    if not isinstance(config, dict):
        return str(config)
    return ", ".join(f"{k}={json.dumps(v)}" for k, v in config.items() if k != "teacher")


def format_info(info: dict[str, Any], max_failures: int = 10) -> str:
    """Human-readable summary (what ``dataset info`` prints)."""
    planned = info["pairs_planned"]
    done = info["pairs_done"]
    makeable = info.get("pairs_makeable")
    unreadable = info.get("pairs_unreadable") or 0
    if planned is not None and makeable is not None and unreadable:
        share = f" ({100.0 * done / makeable:.1f}%)" if makeable else ""
        pairs = (
            f"{done} done / {makeable} that can be made{share}; {planned} planned, "
            f"{unreadable} skipped (unreadable inputs)"
        )
    else:
        share = f" ({100.0 * done / planned:.1f}%)" if planned else ""
        pairs = f"{done} done / {planned if planned is not None else '?'} planned{share}"
    lines = [
        f"dataset:   {info['path']}",
        f"pairs:     {pairs}",
        f"inputs:    {info['contents']} contents x {info['styles']} styles used so far",
        f"failures:  {info['failures']} unreadable inputs",
    ]
    for failure in info["failed_inputs"][:max_failures]:
        lines.append(f"           {failure['role']}: {failure['path']}: {failure['reason']}")
    if info["failures"] > max_failures:
        lines.append(f"           ... {info['failures'] - max_failures} more (--json lists all)")
    for teacher in info["teachers"]:
        model = teacher.get("model") or {}
        model_text = (
            f" model={model.get('model_id')}@{model.get('revision') or 'main'}" if model else ""
        )
        lines.append(f"teacher:   {teacher['teacher']} ({teacher['pairs']} pairs){model_text}")
        lines.append(f"           {_settings_text(teacher['config'])}")
    sizes = ", ".join(f"{size} ({count})" for size, count in info["output_sizes"].items())
    lines.append(f"outputs:   {sizes or '-'}")
    for role in ("content", "style"):
        spread = info.get(f"{role}_short_side")
        if spread:
            lines.append(
                f"{role + 's:':<10} short side {spread['min']}-{spread['max']} px "
                f"(median {spread['median']})"
            )
    if info["seconds_per_pair"] is not None:
        lines.append(
            f"time:      {info['teacher_seconds']:.1f} s of teacher time, "
            f"{info['seconds_per_pair']:.3f} s per pair"
        )
    lines.append(f"disk:      {info['disk']}")
    if info["corrupt_outputs"] is not None:
        lines.append(f"verified:  {info['corrupt_outputs']} output images do not decode")
    if info["duplicate_keys"] or info["missing_outputs"] or info["corrupt_outputs"]:
        lines.append(
            f"problems:  {info['duplicate_keys']} duplicate keys, "
            f"{info['missing_outputs']} manifest lines without an image, "
            f"{info['corrupt_outputs'] or 0} corrupt images"
        )
    bad = info.get("bad_line_list") or []
    if bad:
        lines.append(f"bad lines: {len(bad)} manifest lines are not pair records (not counted)")
        for line in bad[:max_failures]:
            lines.append(f"           {line['where']}: {line['reason']}")
        if len(bad) > max_failures:
            lines.append(f"           ... {len(bad) - max_failures} more (--json lists all)")
    if info.get("pairs_beyond_plan"):
        lines.append(
            f"note:      {info['pairs_beyond_plan']} more finished pairs than dataset.json "
            "plans (left from an earlier plan: the input folders changed)"
        )
    shards = info["shards"]
    lines.append(f"shards:    {len(shards)}")
    for shard in shards:
        lines.append(
            f"           {shard['name']}: {shard['pairs']} pairs, {shard['failures']} failures"
        )
    return "\n".join(lines)


def _print(text: str) -> None:
    """Print, treating a reader that stops early (``| head``, ``| jq`` failing) as normal."""
    import os
    import sys

    try:
        print(text, flush=True)
    except BrokenPipeError:
        # Python would print a traceback when flushing stdout at exit: point it at devnull
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())


def run(args: argparse.Namespace) -> int:
    if args.action == "import":
        return _run_import(args)
    from ..dataset.reader import dataset_info

    info = dataset_info(args.dir, verify=args.verify)
    text = json.dumps(info, indent=2) if args.json else format_info(info, args.failures)
    _print(text)
    problems = (
        info["duplicate_keys"]
        or info["missing_outputs"]
        or info["corrupt_outputs"]
        or info["bad_lines"]
    )
    # --verify is a check: scripts (and CI) need a failing exit status when it finds damage
    return 1 if args.verify and problems else 0


def _run_import(args: argparse.Namespace) -> int:
    import sys

    from ..dataset.importer import import_pairs

    summary = import_pairs(
        args.out,
        contents=args.contents,
        styles=args.styles,
        stylized=args.stylized,
        pattern=args.pattern,
        pairs_file=args.pairs,
        teacher=args.teacher,
        settings=dict(args.teacher_option),
        model=args.model,
        size=args.size,
        progress=not args.no_progress,
        warn=lambda text: print(f"warning: {text}", file=sys.stderr),
    )
    print(summary.line())
    # nothing in the dataset at all: nothing the user asked for was made
    return 0 if summary.imported or summary.already_there else 1
