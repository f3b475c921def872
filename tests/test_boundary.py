"""ui.boundary.error_boundary, run in a real Streamlit script (AppTest): typed errors become st.error
with their message, a bug becomes a short message with its details in an expander, st.stop passes."""

from __future__ import annotations

from streamlit.testing.v1 import AppTest


def _script(kind: str, context: str, stop: bool) -> None:
    import streamlit as st

    from core.errors import DatasetError
    from ui.boundary import error_boundary

    raised = {
        "typed": DatasetError("no *labels* here"),
        "os": OSError("disk full"),
        "bug": KeyError("missing"),
    }
    with error_boundary(context, also=(OSError,), stop=stop) as outcome:
        if kind == "stop":
            st.stop()
        if kind in raised:
            raise raised[kind]
        st.write("inside")
    st.write(f"after, failed={outcome.failed}")


def _run(kind: str, context: str = "", stop: bool = False) -> AppTest:
    app = AppTest.from_function(_script, args=(kind, context, stop), default_timeout=30)
    return app.run()


def _texts(app: AppTest) -> list[str]:
    return [element.value for element in app.markdown]


def test_a_typed_error_is_shown_with_its_context_and_the_script_goes_on():
    app = _run("typed", context="The dataset cannot be opened")
    assert [error.value for error in app.error] == ["The dataset cannot be opened: no \\*labels\\* here"]
    assert not app.exception
    assert _texts(app) == ["after, failed=True"]


def test_without_context_the_message_stands_alone():
    app = _run("typed")
    assert [error.value for error in app.error] == ["no \\*labels\\* here"]


def test_an_exception_named_in_also_is_shown_like_a_typed_one():
    app = _run("os", context="The job could not be started")
    assert [error.value for error in app.error] == ["The job could not be started: disk full"]
    assert not app.exception


def test_a_bug_is_a_short_message_with_its_details_in_an_expander():
    app = _run("bug", context="The features could not be computed")
    (error,) = app.error
    assert error.value == "The features could not be computed: an unexpected KeyError. The details are below."
    assert "Traceback" not in error.value
    assert [expander.label for expander in app.expander] == ["Details"]
    assert len(app.exception) == 1  # the details, inside the expander: a test still sees the bug
    assert _texts(app) == ["after, failed=True"]


def test_stop_ends_the_run_after_the_message():
    app = _run("typed", context="Nothing to show", stop=True)
    assert [error.value for error in app.error] == ["Nothing to show: no \\*labels\\* here"]
    assert _texts(app) == []


def test_streamlit_stop_inside_the_boundary_is_not_an_error():
    app = _run("stop")
    assert not app.error and not app.exception
    assert _texts(app) == []


def test_nothing_raised_nothing_shown():
    app = _run("none")
    assert not app.error
    assert _texts(app) == ["inside", "after, failed=False"]
