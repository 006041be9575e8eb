"""``styledistill dataset``: look inside a paired dataset made by ``teach``."""

from __future__ import annotations

import argparse
import json
from typing import Any

HELP = "inspect a paired dataset (progress, failures, teachers, sizes, disk use)"
DESCRIPTION = """\
Summarize a dataset folder written by 'styledistill teach': pairs done / planned,
unreadable inputs, which teacher and settings made the pairs, image sizes, disk use,
and per-shard progress. Safe to run while teach is still writing."""
EXAMPLES = """\
examples:
  styledistill dataset info data/texture
  styledistill dataset info data/texture --verify     # also decode every image (exit 1 if bad)
  styledistill dataset info data/styleid --json | jq .pairs_done"""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    sub = parser.add_subparsers(dest="action", metavar="ACTION", required=True)
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
