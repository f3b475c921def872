"""The UI's error boundary: the one place where an error raised under a page becomes a message.

Core raises typed errors (core/errors.py) whose message is written for the user; pages and ui/ widgets
wrap the calls that may raise them in `with error_boundary("What failed"):` instead of writing their own
try/except → st.error. Inside the boundary:

- a PatchLensError (and any exception type the caller names in `also`, such as OSError around a file
  write) is shown as `st.error("What failed: <its message>")`, escaped for markdown;
- any other exception is a bug: the user reads a short message and the details sit in a collapsed
  expander (st.exception, which AppTest also lists in `at.exception`, so a test still sees the bug),
  never a bare traceback across the page.

Streamlit's own st.stop()/st.rerun() are BaseExceptions and pass through untouched. The boundary yields an
`Outcome` whose `failed` says whether the block was cut short, for code that must skip what follows;
`stop=True` ends the script run after the message instead (the usual "nothing else can be shown" case).
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

import streamlit as st

from core.errors import PatchLensError
from ui.text import md_escape

UNEXPECTED = "Something went wrong that PatchLens did not expect"


@dataclass
class Outcome:
    """What happened inside one `error_boundary` block."""

    error: BaseException | None = None

    @property
    def failed(self) -> bool:
        return self.error is not None


@contextmanager
def error_boundary(
    context: str = "", *, also: tuple[type[Exception], ...] = (), stop: bool = False
) -> Iterator[Outcome]:
    """Run the block; show a typed error as `st.error`, an unexpected one as a short message + details.

    Parameters
    ----------
    context: what failed, in words ("The features could not be computed"); the error's own message
        follows it after a colon. Empty: the error's message alone.
    also: further exception types whose message is meant for the user here (e.g. OSError on a write).
    stop: end the script run (st.stop) once the message is shown.
    """
    outcome = Outcome()
    try:
        yield outcome
    except (PatchLensError, *also) as error:
        outcome.error = error
        st.error(f"{context}: {md_escape(error)}" if context else md_escape(error))
    except Exception as error:  # a bug: say so briefly, keep the details out of the way
        outcome.error = error
        st.error(f"{context or UNEXPECTED}: an unexpected {type(error).__name__}. The details are below.")
        with st.expander("Details"):
            st.exception(error)
    if outcome.failed and stop:
        st.stop()
