"""From patches to tissue: a tumour-probability heatmap over a region image or a whole slide
(readers, tissue mask, tiling, streamed prediction, outputs; no streamlit)."""
