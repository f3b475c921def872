"""A cohort of slides: one heatmap task per slide (cohort), slide scores (aggregate), slide-level
metrics (metrics), QuPath annotations in and out (annotations)."""
