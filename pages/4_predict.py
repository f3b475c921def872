"""Predict: drop one or many patches → P(tumour), the call at the shared threshold, and where the
model looked (Grad-CAM and friends), with a CSV of the results.

Uploads are decoded in memory (no temporary files). A file that cannot be decoded gets its own
error and the others still get predictions. All good patches go through the model in one batch;
probabilities and heatmaps are cached per (model, file content), so moving a slider only redraws.
Each patch also goes through the input-quality gate (core.data.quality, and the model's own
out-of-distribution check, core.model.ood, in the same forward pass): a flagged patch keeps its
probability but gets a badge per flag and no call, and is counted as flagged, not as a call.
"""

import streamlit as st

from ui.frame import page
from ui.predict_results import results_table, scored, where_the_model_looked
from ui.predict_uploads import decoded, uploaded_files
from ui.shared import active_dataset, load_active_model, model_label, required_model_path
from ui.similar import similar_to_uploads
from ui.text import md_escape
from ui.threshold import threshold_control
from ui.uncertainty import spread_note

with page("Predict"):
    model_path = required_model_path()
    st.caption(
        f"Model: {md_escape(model_label(model_path))} — 96×96 px H&E patches; the label concerns the centre 32×32 px."
    )
    files = uploaded_files()
    threshold = threshold_control()
    tta = st.checkbox("Test-time augmentation (average of 8 flips/rotations)", key="predict_tta")
    if not files:
        st.info("Drop patches above: each gets a probability, a call and a heatmap.")
        st.stop()
    batch = decoded(files)
    model = load_active_model()
    if model is None:
        st.stop()
    probs, batch, spreads = scored(model, batch, tta)  # spreads: issue 23's uncertainty, with TTA
    results_table(batch, probs, threshold)
    spread_note(tta)
    where_the_model_looked(model_path, batch, probs, threshold, spreads)
    # --- similar patches (issue 12): the active dataset's patches nearest to an upload -----------
    similar_to_uploads(model, model_path, active_dataset(), batch.names, batch.patches)
