"""What the pages share: the page frame and navigation (frame), the sidebar and session state (shared), the
prediction source and threshold of Evaluate/Mistakes (prediction_source), patch grids and Grad-CAM
(gallery), and the background warm-up of TensorFlow (warmup). Streamlit code only; logic lives in core/."""
