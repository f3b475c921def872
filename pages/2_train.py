"""Train: configure and start a job, watch it live, stop it, compare and manage runs.

The job runs in its own process (core.train.job.launch); this page only reads its files, so reruns
and browser reloads never disturb training. Three named parts, each in ui/: the current job with its
progress, Stop and live curves (ui.train_watch, on ui.job_panel), the form for a new job
(ui.train_form), and the runs with their actions (ui.runs_table, ui.run_actions).
"""

import streamlit as st

from core.constants import SPLIT_WARNING
from ui.frame import page
from ui.runs_table import runs_section
from ui.train_form import train_form
from ui.train_watch import current_job

with page("Train"):
    st.caption(SPLIT_WARNING)

    st.subheader("Current job")
    current_job()

    st.subheader("New training job")
    train_form()

    st.subheader("Runs")
    runs_section()
