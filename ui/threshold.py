"""The decision thresholds the pages set: one slider with preset buttons, kept in the session and the URL.

Two thresholds, each a `ThresholdSetting` (one home for its keys, words and URL parameter):
  PATCH_THRESHOLD  P(tumour) at or above which a patch (or a tile) is called tumour; shared by
                   Evaluate, Predict, Mistakes, Feature map, Compare, Region and the Slides page's
                   outlines (session key `threshold`, URL ?threshold=, written by ui.shared.sync_url)
  SLIDE_THRESHOLD  the slide score at or above which a slide is called tumour (Slides page). A slide
                   score is an aggregate of ~100 tile probabilities (top3_mean, max…): at the patch
                   threshold max-like scores call most negative slides positive (BENCHMARKS.md,
                   "Slides"), so slides get a threshold of their own, chosen on the slide ROC.
"""

from __future__ import annotations

from typing import NamedTuple

import streamlit as st

from core.constants import DEFAULT_THRESHOLD
from ui.shared import THRESHOLD_KEY, URL_THRESHOLD, to_url
from ui.text import md_escape


class ThresholdSetting(NamedTuple):
    key: str  # the session-state key holding the threshold in force (the one truth)
    slider_key: str  # the slider widget that edits it (written from `key` every run)
    url_param: str  # kept in the URL, so a reload or a copied link restores it
    label: str
    help: str
    preset_prefix: str  # keys of the preset buttons: prefix + preset name


PATCH_THRESHOLD = ThresholdSetting(
    THRESHOLD_KEY,
    "threshold_slider",
    URL_THRESHOLD,
    "Threshold — a patch is called tumour when P(tumour) ≥ threshold",
    "Shared by Evaluate, Predict and Mistakes.",
    "preset-",
)
SLIDE_THRESHOLD = ThresholdSetting(
    "slides_threshold",
    "slides_threshold_slider",
    "slide_threshold",
    "Slide threshold — a slide is called tumour when its score ≥ threshold",
    "The slide score aggregates many tiles, so it needs its own threshold: choose it on the slide ROC "
    "(a preset chosen on these slides is optimistic for these same slides).",
    "slides-preset-",
)
PRESET_NAMES = {"0.5": "0.5", "youden": "Youden's J"}
PRESET_HELP = {
    "youden": "Maximises sensitivity + specificity − 1 on these predictions.",
    "0.5": "The conventional threshold.",
}
TARGET_HELP = (
    "The highest threshold whose sensitivity still reaches the target: the fewest false alarms at that "
    "sensitivity."
)


def _threshold_from_url(setting: ThresholdSetting) -> float | None:
    """The threshold a shared URL or a reload carries (?threshold=0.42), when it is a valid one."""
    text = st.query_params.get(setting.url_param)
    try:
        value = float(text) if text is not None else None
    except ValueError:
        return None
    return value if value is not None and 0.0 <= value <= 1.0 else None


def current_threshold(setting: ThresholdSetting = PATCH_THRESHOLD) -> float:
    """The threshold in force; a new session starts from the URL's when it carries a valid one, and
    says so when the URL's is not a number between 0 and 1."""
    if setting.key not in st.session_state:
        from_url = _threshold_from_url(setting)
        st.session_state[setting.key] = DEFAULT_THRESHOLD if from_url is None else from_url
        if from_url is None and st.query_params.get(setting.url_param) is not None:
            st.warning(
                f"The threshold in the link ({md_escape(st.query_params[setting.url_param])}) is not a "
                f"number between 0 and 1 — using {DEFAULT_THRESHOLD}."
            )
    return float(st.session_state[setting.key])


def _slider_moved(setting: ThresholdSetting) -> None:
    st.session_state[setting.key] = float(st.session_state[setting.slider_key])


def _set_threshold(setting: ThresholdSetting, value: float) -> None:
    st.session_state[setting.key] = float(value)


def threshold_control(
    presets: dict[str, float | None] | None = None, setting: ThresholdSetting = PATCH_THRESHOLD
) -> float:
    """The threshold slider (+ preset buttons); returns the threshold in force.

    The slider never holds a value of its own: `setting.key` is the one truth, and it is written
    into the slider's key on EVERY run, before the slider is drawn. Streamlit then sends the value
    to the browser each time (set_value). Writing it only when the two differ was the bug of
    issue 9: after a run in which the slider was not drawn (a dataset not computed yet), the stale
    key still equalled the threshold, nothing was written, and the browser mounted the slider at
    its minimum, 0.000, and sent that back on the next click. A slider move reaches `setting.key`
    through on_change before the script runs, so the write below never undoes it.
    """
    value = current_threshold(setting)
    st.session_state[setting.slider_key] = value
    columns = st.columns([1, 1], vertical_alignment="bottom") if presets else [st.container()]
    columns[0].slider(setting.label, 0.0, 1.0, step=0.001, format="%.3f", key=setting.slider_key,
                      on_change=_slider_moved, args=(setting,), help=setting.help)  # fmt: skip
    if presets:
        _preset_buttons(columns[1], presets, setting)
    value = current_threshold(setting)
    to_url(setting.url_param, None if value == DEFAULT_THRESHOLD else repr(value))
    return value


def _preset_buttons(column, presets: dict[str, float | None], setting: ThresholdSetting) -> None:
    row = column.container(horizontal=True, wrap=True, gap="small")  # each label in full
    for name, preset in presets.items():
        label = PRESET_NAMES.get(name, name.replace("sensitivity≥", "sens ≥ "))
        shown = f"{label} ({preset:.3f})" if preset is not None and name != "0.5" else label
        row.button(shown, key=f"{setting.preset_prefix}{name}", on_click=_set_threshold, args=(setting, preset),
                   disabled=preset is None, help=PRESET_HELP.get(name, TARGET_HELP), width="content")  # fmt: skip
