"""Typed errors raised by core and turned into plain messages by the pages and the CLI.

Every PatchLensError subclass lives here, so a newcomer finds the whole hierarchy in one file. A bad
value a user typed (a threshold, a method name, a hyper-parameter) is an InputError everywhere."""


class PatchLensError(Exception):
    """Base of every error core raises on purpose; its message is meant for the user."""


class PatchError(PatchLensError):
    """One patch could not be decoded or is not a 96x96 RGB patch."""


class DatasetError(PatchLensError):
    """A dataset path could not be read as any supported layout."""


class PathNotAllowedError(DatasetError):
    """A path lies outside the configured data roots."""


class ModelError(PatchLensError):
    """A model file is missing, unsafe, or does not follow the PatchLens model contract."""


class RunError(PatchLensError):
    """A run directory is missing, unreadable or in a state that forbids the action."""


class JobConflictError(RunError):
    """Another training job already runs in this workspace."""


class InputError(PatchLensError, ValueError):
    """Values handed to a core function are unusable: a threshold outside [0, 1], labels and
    probabilities of different lengths, an unknown method name. Also a ValueError, as numpy and
    scikit-learn callers expect."""


class TrainConfigError(InputError, RunError):
    """A training configuration holds a value a user typed that cannot start a run (an unknown
    architecture, a negative epoch count, a missing dataset): an InputError, and a RunError as the
    run it describes cannot start."""


class StorageError(PatchLensError):
    """A file could not be written (disk full, no permission); nothing already saved was changed."""


class ComparisonError(PatchLensError):
    """Two sets of predictions cannot be compared (different lengths, one class, NaNs, bad threshold)."""


class RegionImageError(PatchLensError):
    """A region image or slide cannot be opened or read (unreadable, damaged, unsupported)."""


class ImageTooLargeError(RegionImageError):
    """Decoding a region image (one TIFF strip or tile, or a whole PNG/JPEG) would take more memory
    than the decode budget allows; refused from its header, before any pixel is decoded."""


class ProjectionError(PatchLensError):
    """A projection that cannot be made (an unknown method, too many points for t-SNE)."""


class DamagedCacheError(PatchLensError):
    """A cache file disagrees with its record (or has none): it is treated as absent and recomputed."""


class JobStopped(PatchLensError):
    """A job was asked to stop (a page's Stop button, SIGTERM or Ctrl-C)."""


class ScoringStopped(JobStopped):
    """A scoring run was asked to stop (`should_stop()` returned True); the heatmap's HeatmapStopped."""


class CohortStopped(JobStopped):
    """A cohort run was asked to stop (after the slides being scored)."""


class AnnotationError(InputError):
    """A GeoJSON annotation file that cannot be read."""
