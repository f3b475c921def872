"""ui.notices: a message stays on the page until the user acts again, through the redraws the page
makes by itself when a background job moves on (Streamlit's AppTest over a small page)."""

from __future__ import annotations

from streamlit.testing.v1 import AppTest

REFUSAL = "A training job is already running in this workspace: run-a."


def notice_page(refusal: str) -> None:
    """A Start button whose callback leaves a refusal, and a job that may move on (the flag) and make
    the page redraw itself, as ui.job_panel and ui.train_watch do."""
    import streamlit as st

    from ui.notices import begin_run, notice, redraw_page, show_notices

    if st.session_state.pop("job_moved_on", False):
        redraw_page()  # what a fragment does when the job it follows starts or ends
    begin_run()
    st.button("Start training", on_click=notice, args=("form", "error", refusal))
    show_notices("form")
    st.session_state["runs"] = st.session_state.get("runs", 0) + 1


def errors(at: AppTest) -> list[str]:
    return [error.value for error in at.error]


def test_a_refusal_survives_the_pages_own_redraw_and_goes_at_the_users_next_action():
    at = AppTest.from_function(notice_page, args=(REFUSAL,), default_timeout=30).run()
    at.button[0].click().run()
    assert errors(at) == [REFUSAL]

    at.session_state["job_moved_on"] = True  # the other job started running: the page redraws itself
    runs = at.session_state["runs"]
    at.run()
    assert at.session_state["runs"] == runs + 1, "the redraw ran the page"
    assert errors(at) == [REFUSAL]

    at.run()  # the user's next action: the message has been read
    assert errors(at) == []


def test_a_message_is_shown_where_its_place_is_drawn_and_only_once_per_action():
    at = AppTest.from_function(notice_page, args=(REFUSAL,), default_timeout=30).run()
    assert errors(at) == []
    at.button[0].click().run()
    at.button[0].click().run()  # a second refusal replaces the first: one box, not two
    assert errors(at) == [REFUSAL]
