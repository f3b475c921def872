"""`python -m core explain MODEL IMAGE --out overlay.png`: one patch, one heatmap, one PNG.

The PNG shows the patch as it is (left) beside the heatmap overlay with the centre 32x32 box
(right), above the colour bar of the heatmap with what its ends stand for, all upscaled x2 with
nearest-neighbour pixels (no invented detail), so 384x240 px: a 96 px patch is too small to read
on a screen. The printed line says how the map was scaled and how strong it is (core.evaluate.explain).
"""

from __future__ import annotations

import argparse
import io
from pathlib import Path

import numpy as np

from core.cli.common import MODEL_HELP, add_command, add_threshold_argument, output_file, unit_interval
from core.errors import PatchLensError
from core.evaluate.explain import (
    DEFAULT_METHOD,
    DEFAULT_SCALE,
    DEFAULT_TARGET,
    METHODS,
    SCALES,
    TARGETS,
)
from core.evaluate.heatmaps import COLORMAPS, DEFAULT_ALPHA, DEFAULT_COLORMAP
from core.files import atomic_write_bytes

PANEL_SCALE = 2


def register(subparsers) -> None:
    parser = add_command(
        subparsers,
        "explain",
        run_explain,
        help="write a heatmap overlay of one patch (Grad-CAM by default)",
        description="Explain one patch: write the patch beside its heatmap overlay as a PNG "
        f"({PANEL_SCALE}x upscaled) and print P(tumour).",
    )
    parser.add_argument("model", help=MODEL_HELP)
    parser.add_argument("image", help="a 96x96 patch (.tif, .png, .jpg)")
    parser.add_argument("--method", choices=METHODS, default=DEFAULT_METHOD)
    parser.add_argument(
        "--target",
        choices=TARGETS,
        default=DEFAULT_TARGET,
        help="explain P(tumour), or the class predicted at --threshold",
    )
    add_threshold_argument(parser)
    parser.add_argument(
        "--scale",
        choices=SCALES,
        default=DEFAULT_SCALE,
        help="shared: divide the map by a reference strength for this method and model, so a faint "
        "map stays faint; own: stretch the map to its own range",
    )
    parser.add_argument(
        "--alpha",
        type=unit_interval,
        default=DEFAULT_ALPHA,
        help="heatmap opacity, 0-1",
    )
    parser.add_argument("--colormap", choices=COLORMAPS, default=DEFAULT_COLORMAP)
    parser.add_argument(
        "--no-box",
        dest="draw_box",
        action="store_false",
        help="do not draw the centre 32x32 box",
    )
    parser.add_argument("--out", required=True, type=output_file, help="the PNG to write")


def run_explain(args: argparse.Namespace) -> int:
    from core.data.images import decode_patch
    from core.evaluate.explain import Explainer
    from core.evaluate.heatmaps import describe_strength, labelled_colour_bar, overlay, scale_labels
    from core.model.io import load_model

    patch = decode_patch(args.image)  # cheap, so a bad image fails before TensorFlow loads
    model = load_model(args.model)
    explanation = Explainer(model, threshold=args.threshold).explain(
        patch, method=args.method, target=args.target, scale=args.scale
    )
    blended = overlay(
        patch,
        explanation.heatmaps,
        colormap=args.colormap,
        alpha=args.alpha,
        draw_box=args.draw_box,
    )
    row = np.concatenate([patch, blended], axis=1)
    bar = labelled_colour_bar(args.colormap, *scale_labels(explanation), width=row.shape[1])
    write_png_atomically(args.out, upscaled(np.concatenate([row, bar], axis=0)))
    probability = float(explanation.probabilities)
    predicted = "tumour" if probability >= args.threshold else "normal"
    reference = None if explanation.references is None else float(explanation.references)
    print(
        f"P(tumour) = {probability:.4f} (predicted {predicted} at threshold {args.threshold:g}); "
        f"{args.method} {describe_strength(explanation.strengths, reference)}, {scale_note(explanation)}; "
        f"overlay written to {args.out}"
    )
    return 0


def scale_note(explanation) -> str:
    """How the map in the PNG was scaled, in a few words."""
    if explanation.references is None:
        return "drawn on its own scale (its min to its max)"
    return f"drawn on the shared scale (0 to {float(explanation.references):.3g}, the reference, or more)"


def upscaled(image: np.ndarray, scale: int = PANEL_SCALE) -> np.ndarray:
    """An image upscaled by repeating pixels."""
    return image.repeat(scale, axis=0).repeat(scale, axis=1)


def write_png_atomically(path: Path, array: np.ndarray) -> None:
    """Encode first, then write a temporary file beside `path` and rename it into place."""
    from PIL import Image

    buffer = io.BytesIO()
    Image.fromarray(array).save(buffer, format="PNG")
    path = Path(path).expanduser()
    try:
        atomic_write_bytes(path, buffer.getvalue())
    except OSError as error:
        raise PatchLensError(f"could not write {path}: {error.strerror or error}") from error
