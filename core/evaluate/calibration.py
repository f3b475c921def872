"""Calibrating a saved model file after training (`python -m core calibrate`), and one sentence on
how a model's probabilities were calibrated, for the pages.

The temperature fit itself (fit, fold, the training run's `calibrate_model`) is core.model.calibration's,
re-exported here for the callers that calibrate through this module.
"""

from __future__ import annotations

from pathlib import Path

from core.constants import SCORING_BATCH_SIZE
from core.errors import InputError
from core.model.calibration import (  # noqa: F401  (re-exported: the fit's home is core.model.calibration)
    META_KEY,
    MIN_PATCHES,
    OUTPUT_LAYER,
    TEMPERATURE_RANGE,
    TemperatureFit,
    calibrate_model,
    fit_temperature,
    fold_temperature,
    scaled_probabilities,
    stored_temperature,
)


def calibration_note(meta: dict) -> str:
    """One sentence on whether (and how) a model's probabilities were calibrated, from its metadata."""
    info = meta.get(META_KEY) or {}
    if not info:
        return (
            "This model's probabilities are the network's own, not calibrated: `python -m core calibrate "
            "MODEL DATA --out CALIBRATED.keras` fits temperature scaling on patches it never trained on."
        )
    if info.get("skipped"):
        return f"Temperature scaling was skipped when this model was trained: {info['skipped']}"
    fit = info.get("fit") or {}
    where = f" on {info['fitted_on']}" if info.get("fitted_on") else ""
    change = (
        f"; ECE there {fit['ece_before']:.3f} → {fit['ece_after']:.3f}"
        if {"ece_before", "ece_after"} <= fit.keys()
        else ""
    )
    return f"Probabilities calibrated by temperature scaling (T = {info['temperature']:.3f}, fitted{where}{change})."


def calibrate_model_file(
    model_path: str | Path,
    data: str | Path,
    out: str | Path,
    *,
    batch_size: int = SCORING_BATCH_SIZE,
    progress=None,
) -> TemperatureFit:
    """Fit T on the labelled dataset `data` and write a calibrated copy of the model to `out`.

    The copy keeps every PatchLens entry of the original (metadata, stain normaliser, out-of-distribution
    statistics); its `patchlens.json` gains `calibration` with the fit and the total temperature folded
    in so far (a second calibration multiplies onto the first). Written atomically.
    """
    from core.data.dataset import open_checked
    from core.evaluate.predict import predict_dataset
    from core.model.io import (
        META_ENTRY,
        load_model,
        read_model_entry,
        read_model_meta,
        resolve_model_path,
        save_model,
    )

    source, out = resolve_model_path(model_path), Path(out)  # a run directory: the model it offers
    dataset = open_checked(data)
    if dataset.labels is None:
        raise InputError(f"{Path(data).name} has no labels: temperature scaling needs labelled patches.")
    model = load_model(source)
    meta = read_model_meta(source)
    kept = {name: read_model_entry(source, name) for name in _extra_entries(source, META_ENTRY)}
    frame = predict_dataset(model, dataset, batch_size=batch_size, progress=progress)
    fit = fit_temperature(frame["label"].to_numpy(), frame["prob"].to_numpy())
    fold_temperature(model, fit.temperature)
    total = stored_temperature(meta) * fit.temperature
    meta[META_KEY] = {"temperature": round(total, 6), "fitted_on": str(data), "fit": fit.summary()}
    # one atomic write with the kept entries (e.g. the out-of-distribution statistics: the features they
    # describe do not change with T), so `out` is never a model without them, even when it is `source`
    save_model(model, out, meta, entries=kept)
    return fit


def _extra_entries(path: Path, meta_entry: str) -> list[str]:
    """The PatchLens entries of a .keras file besides its metadata (read before the file is replaced)."""
    import zipfile

    with zipfile.ZipFile(path) as archive:
        return [name for name in archive.namelist() if name.startswith("patchlens") and name != meta_entry]
