"""``python -m bench.tools.migrate RESULTS_DIR [--dry-run]``: one-shot migration of a results tree
to this version's run ids.

The run's ``name`` (a sweep's name) left the run identity (issue 24), so the run directories of an
older tree are named by ids that no longer match their config.yaml. This renames each directory
named by its old id (``bench.config.identity.legacy_run_id``) to its new id (``run_id``); nothing
inside a run directory names its own id, so a rename is the whole migration. Directories already
at their new id are left alone (running it twice changes nothing); one whose new name is taken
(the same run twice in one folder) or that is named by neither id is left and listed. Exit 0 when
every run directory carries its run id afterwards, 1 when some were left, 2 on bad input.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from bench.config.identity import legacy_run_id, run_id
from bench.rundir import runfiles, runpaths
from bench.rundir.runstate import RunBusy, run_lock


def plan(root: Path) -> tuple[list[tuple[Path, Path]], list[str]]:
    """(renames old dir → new dir, problems) for every run directory below ``root``."""
    run_dirs, _ = runpaths.find_run_dirs(root)
    renames, problems, taken = [], [], set()
    for d in run_dirs:
        cfg = runfiles.read_config(d)
        new = run_id(cfg)
        if d.name == new:
            continue
        target = d.parent / new
        if d.name != legacy_run_id(cfg):
            problems.append(f"{d}: named by neither its old id ({legacy_run_id(cfg)}) nor its "
                            f"new one ({new}); left as it is")
        elif target.exists() or target in taken:
            problems.append(f"{d}: its new name {new} is taken by the same run in that folder "
                            f"(a duplicate); left as it is — keep one of the two")
        else:
            renames.append((d, target))
            taken.add(target)
    return renames, problems


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m bench.tools.migrate", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("results_dir", help="a results tree (a sweep folder, or a folder of them)")
    ap.add_argument("--dry-run", action="store_true", help="print the renames, change nothing")
    args = ap.parse_args(argv)
    root = Path(args.results_dir)
    try:
        if not root.is_dir():
            raise runpaths.RunFileError(f"{root}: not a directory (give a results tree)")
        renames, problems = plan(root)
        for old, new in renames:
            print(f"{old} -> {new.name}")
            if not args.dry_run:
                with run_lock(old):         # a run training right now is not moved
                    pass
                old.rename(new)
    except (runpaths.RunFileError, RunBusy, OSError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    for p in problems:
        print(f"left: {p}", file=sys.stderr)
    verb = "would rename" if args.dry_run else "renamed"
    print(f"{verb} {len(renames)} run director{'y' if len(renames) == 1 else 'ies'}; "
          f"{len(problems)} left")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
