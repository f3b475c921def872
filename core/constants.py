"""One home for the facts every module shares: patch geometry and label meaning."""

IMAGE_SIZE = 96  # PCam / Kaggle patches are 96x96 px crops at 10x
CHANNELS = 3
PATCH_SHAPE = (IMAGE_SIZE, IMAGE_SIZE, CHANNELS)

# The label refers only to the centre 32x32 px: 1 = at least one tumour pixel there.
CENTRE_BOX = (32, 32, 64, 64)  # (left, top, right, bottom) in pixel coordinates

LABEL_NAMES = {0: "normal", 1: "tumour"}
LABEL_MEANING = (
    "1 = at least one pixel of metastatic tumour in the centre 32x32 px of the patch; "
    "0 = none (tumour in the outer ring does not change the label)"
)

IMAGE_EXTENSIONS = (".tif", ".tiff", ".png", ".jpg", ".jpeg")

SPLIT_WARNING = (
    "A random patch-level split shares slides between training and validation, "
    "so validation numbers read optimistic compared with unseen slides."
)

# A patch is called tumour when P(tumour) >= the threshold; the conventional one until a user moves it.
DEFAULT_THRESHOLD = 0.5
PCAM_MPP = 0.972  # µm per pixel of PCam patches (10x): a model's resolution unless its metadata says another
# Patches (or a region's tiles) per forward pass when a model scores many. 128 is as fast as 256 with
# the quality gate (a page's job, a heatmap) and faster without it (x1.065) and with TTA (x1.07); 64 was
# faster still there but slower with the gate (bench/bench_batch_size.py, BENCHMARKS.md).
SCORING_BATCH_SIZE = 128
# A cohort's tiles per forward pass (core.slides.task.SlideOptions, `core slides --batch-size`): part of a
# slide job's key, so it stays 256 and the slide results kept before the change above stay valid.
SLIDE_BATCH_SIZE = 256
FLAG_SEPARATOR = ";"  # a patch's quality flags in one label: 'not_he;blurred' (core.data.quality)
