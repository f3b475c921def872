"""The `embed` and `neighbours` commands: the model's feature space from the command line.

  python -m core embed MODEL DATA --out emb.npz [--method pca|tsne] [--batch-size N] [--no-cache]
      writes ids (N strings), features (N x D float32, the input of the final Dense layer) and
      xy (N x 2 float32, the 2-D projection) for every readable patch of a labelled dataset
  python -m core neighbours MODEL DATA ID [-k K] [--json]
      the K patches nearest to patch ID in feature space, with labels and probabilities

Features are cached in the workspace (cache/features/), like predictions, unless --no-cache.
"""

from __future__ import annotations

import argparse
import json
import sys

from core.cli.common import add_batch_size_argument, add_model_data_arguments, output_file, positive_int
from core.formatting import ProgressLine


def register(subparsers) -> None:
    embed = subparsers.add_parser(
        "embed",
        help="penultimate-layer features of every patch + a 2-D projection, to an .npz",
        description="Write ids, features (N x D float32) and xy (N x 2) of MODEL on the labelled DATA.",
    )
    _add_common(embed)
    embed.add_argument("--out", required=True, type=output_file, help=".npz to write (ids, features, xy)")
    embed.add_argument(
        "--method", choices=("pca", "tsne"), default="pca", help="2-D projection (default pca)"
    )
    embed.set_defaults(handler=run_embed)

    neighbours = subparsers.add_parser(
        "neighbours",
        help="the patches nearest to one patch in the model's feature space",
        description="List the K nearest neighbours of patch ID of DATA in MODEL's feature space.",
    )
    _add_common(neighbours)
    neighbours.add_argument("id", help="the id of a patch of DATA")
    neighbours.add_argument("-k", type=positive_int, default=8, help="neighbours to list (default 8)")
    neighbours.add_argument("--json", action="store_true", help="print the neighbours as JSON")
    neighbours.set_defaults(handler=run_neighbours)


def _add_common(parser: argparse.ArgumentParser) -> None:
    add_model_data_arguments(parser, labelled=True)
    add_batch_size_argument(parser)
    parser.add_argument(
        "--no-cache", action="store_true", help="always run the model (default: reuse cached features)"
    )


def _features(args: argparse.Namespace):
    """The features of MODEL on DATA (cached unless --no-cache); errors for a bad path or no labels."""
    from core.data.dataset import open_dataset
    from core.diagnose.features import cached_features, compute_features, require_labels
    from core.model.io import load_model, resolve_model_path

    model_file = resolve_model_path(args.model)
    dataset = open_dataset(args.data)
    require_labels(dataset, args.data)
    progress = ProgressLine("features")
    if args.no_cache:
        found = compute_features(
            load_model(model_file), dataset, batch_size=args.batch_size, progress=progress
        )
    else:
        found = cached_features(model_file, dataset, batch_size=args.batch_size, progress=progress)
    if found.skipped:
        first = next(iter(found.skipped.items()))
        print(
            f"warning: {len(found.skipped)} patch(es) could not be read and were left out "
            f"(first: {first[0]}: {first[1]})",
            file=sys.stderr,
        )
    return found


def run_embed(args: argparse.Namespace) -> int:
    import numpy as np

    from core.diagnose.features import save_npz_atomic
    from core.diagnose.projection import project

    found = _features(args)
    xy = project(found.features, args.method)
    save_npz_atomic(args.out, ids=np.array(found.ids, dtype=str), features=found.features, xy=xy)
    rows, width = found.features.shape
    print(f"wrote {rows:,} x {width} features and {args.method} xy to {args.out}", file=sys.stderr)
    return 0


def run_neighbours(args: argparse.Namespace) -> int:
    from core.constants import LABEL_NAMES
    from core.diagnose.neighbours import NeighbourIndex

    found = _features(args)
    table = NeighbourIndex(found).by_id(args.id, args.k)
    if args.json:
        print(json.dumps(table.to_dict(orient="records"), indent=2))
        return 0
    print(f"{'rank':>4}  {'distance':>9}  {'label':<7} {'P(tumour)':>9}  id")
    for row in table.itertuples():
        label = LABEL_NAMES.get(int(row.label), "?") if row.label == row.label else "-"
        print(f"{row.rank:>4}  {row.distance:>9.4f}  {label:<7} {row.prob:>9.4f}  {row.id}")
    return 0
