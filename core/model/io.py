"""Model files: saving atomically with the PatchLens metadata inside, loading safely with the model
contract checked, and which .keras file a run directory offers.

Contract of a saved model: input RGB patches (N, 96, 96, 3) with values 0-255 (scaling happens
inside the model), output (N, 1) = probability of tumour in the centre 32x32 px. The name of the
last convolutional layer (the Grad-CAM target) is stored inside the .keras file as
`patchlens.json`, with the architecture name and anything else the trainer wants to keep.
TensorFlow is imported inside the functions, never at module import.
"""

from __future__ import annotations

import json
import zipfile
from pathlib import Path

from core.constants import PATCH_SHAPE, PCAM_MPP
from core.errors import ModelError
from core.files import atomic_path
from core.model.architectures import find_last_conv_layer
from core.tensorflow_import import import_tensorflow

META_ENTRY = "patchlens.json"
FINAL_MODEL_FILE = "model.keras"  # what a finished run delivers
CHECKPOINT_FILE = "best.keras"  # the best validation AUC so far, written after each better epoch
AVERAGED_MODEL_FILE = "averaged.keras"  # a run's weight average (core.train.averaging), delivered or not


def _first_file(run_dir: str | Path, names: tuple[str, ...]) -> Path | None:
    for name in names:
        if (Path(run_dir) / name).is_file():
            return Path(run_dir) / name
    return None


def run_model_path(run_dir: str | Path) -> Path | None:
    """The model a run offers for use: its final model, else its best checkpoint, else None."""
    return _first_file(run_dir, (FINAL_MODEL_FILE, CHECKPOINT_FILE))


def run_checkpoint_path(run_dir: str | Path) -> Path | None:
    """The file a run resumes from: its best checkpoint, else its final model, else None."""
    return _first_file(run_dir, (CHECKPOINT_FILE, FINAL_MODEL_FILE))


def save_model(
    model, path: str | Path, meta: dict | None = None, *, entries: dict[str, bytes] | None = None
) -> Path:
    """Save atomically (temp file in the same folder, then rename) with `patchlens.json` inside, and
    `entries` ({name: bytes}, e.g. the out-of-distribution statistics) in the same write."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    info = {"architecture": model.name, "last_conv_layer": find_last_conv_layer(model), "mpp": PCAM_MPP}
    info.update(meta or {})
    if getattr(model, "optimizer", None) is not None:
        model = _without_optimizer(model)  # the optimizer state would triple the file
    with atomic_path(path, suffix=".keras") as tmp:  # Keras wants the .keras suffix
        model.save(str(tmp))
        with zipfile.ZipFile(tmp, "a") as archive:
            archive.writestr(META_ENTRY, json.dumps(info, indent=2, default=str))
            for name, data in (entries or {}).items():
                archive.writestr(name, data)
    return path


def update_model_file(
    path: str | Path, *, meta: dict | None = None, entries: dict[str, bytes] | None = None
) -> Path:
    """Rewrite a .keras file atomically with `meta` merged into its `patchlens.json` and `entries`
    ({name: bytes}) added or replaced; every other entry (the weights among them) is copied byte for
    byte, so the model itself is unchanged."""
    path = Path(path)
    info = {**read_model_meta(path), **(meta or {})}
    replaced = {META_ENTRY, *(entries or {})}
    with atomic_path(path, suffix=".keras") as tmp:
        with zipfile.ZipFile(path) as source, zipfile.ZipFile(tmp, "w", zipfile.ZIP_DEFLATED) as target:
            for item in source.infolist():
                if item.filename not in replaced:
                    target.writestr(item, source.read(item))
            for name, data in (entries or {}).items():
                target.writestr(name, data)
            target.writestr(META_ENTRY, json.dumps(info, indent=2, default=str))
    return path


def read_model_entry(path: str | Path, name: str) -> bytes | None:
    """The bytes of one entry of a .keras file (None when it has no such entry)."""
    try:
        with zipfile.ZipFile(path) as archive:
            return archive.read(name) if name in archive.namelist() else None
    except (OSError, zipfile.BadZipFile) as error:
        raise ModelError(f"{Path(path).name} is not a Keras model file ({error}).") from error


def _without_optimizer(model):
    """A copy of the model with the same layers and weights and no optimizer state (built from its
    config: keras.models.clone_model also copies the compile state, optimizer included)."""
    copy = model.__class__.from_config(model.get_config())
    copy.set_weights(model.get_weights())
    return copy


def read_model_meta(path: str | Path) -> dict:
    """The `patchlens.json` stored in a .keras file ({} for a Keras file saved elsewhere)."""
    try:
        with zipfile.ZipFile(path) as archive:
            if META_ENTRY not in archive.namelist():
                return {}
            return json.loads(archive.read(META_ENTRY))
    except (OSError, zipfile.BadZipFile, ValueError) as error:
        raise ModelError(f"{Path(path).name} is not a Keras model file ({error}).") from error


def resolve_model_path(path: str | Path, *, checkpoint: bool = False) -> Path:
    """A .keras file, or a run directory's model: its final model, else its best checkpoint (with
    `checkpoint`, the file a run resumes from: its best checkpoint, else its final model)."""
    path = Path(path).expanduser()
    if path.is_dir():
        found = run_checkpoint_path(path) if checkpoint else run_model_path(path)
        if found is None:
            wanted = (
                f"no {CHECKPOINT_FILE} to resume from" if checkpoint else "no model.keras or best.keras yet"
            )
            raise ModelError(f"{path} holds {wanted}.")
        return found
    if not path.is_file():
        raise ModelError(f"No {'checkpoint' if checkpoint else 'model file'} at {path}.")
    if path.suffix != ".keras":
        raise ModelError(f"{path.name} is not a .keras model file (Keras 3 format expected).")
    return path


# Set in engine workers (core.jobs.worker.ModelCache): the last models loaded, by file identity.
MODEL_CACHE = None


def load_model(path: str | Path):
    """Load a model safely (safe_mode=True: a Lambda layer's code is never executed) and check the
    contract: input (None, 96, 96, 3), output (None, 1). Raises ModelError otherwise."""
    path = resolve_model_path(path)
    return MODEL_CACHE.get(path, _load_checked) if MODEL_CACHE is not None else _load_checked(path)


def _load_checked(path: Path):
    meta = read_model_meta(path)  # also rejects files that are not zip archives
    import_tensorflow()  # another thread (a warm-up) may be importing it this moment
    import keras

    try:
        model = keras.saving.load_model(path, compile=False, safe_mode=True)
    except Exception as error:  # Keras raises many types for foreign or unsafe files
        reason = str(error).splitlines()[0][:300] if str(error) else type(error).__name__
        raise ModelError(f"{path.name} could not be loaded safely as a Keras model: {reason}") from error
    input_shape = tuple(model.input_shape) if not isinstance(model.input_shape, list) else None
    if input_shape is None or tuple(input_shape[1:]) != PATCH_SHAPE:
        raise ModelError(
            f"{path.name} expects input {model.input_shape}; PatchLens models take (None, 96, 96, 3)."
        )
    if tuple(model.output_shape[1:]) != (1,):
        raise ModelError(
            f"{path.name} outputs {model.output_shape}; PatchLens models output (None, 1) = P(tumour)."
        )
    model.patchlens_meta = meta
    model.patchlens_path = str(path)
    return model
