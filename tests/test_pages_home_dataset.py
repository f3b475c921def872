"""AppTest of the Home and Dataset pages on the bundled real sample, and TensorFlow stays unloaded."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap

import pytest
from streamlit.testing.v1 import AppTest

from core.settings import PROJECT_DIR, SAMPLE_DATASET

APP = str(PROJECT_DIR / "streamlit_app.py")


@pytest.fixture()
def app(tmp_path, monkeypatch):
    monkeypatch.setenv("PATCHLENS_HOME", str(tmp_path / "workspace"))
    monkeypatch.delenv("PATCHLENS_DATA_ROOTS", raising=False)
    at = AppTest.from_file(APP, default_timeout=120)
    at.run()
    return at


def metric_values(at) -> dict:
    return {m.label: m.value for m in at.metric}


def test_home_shows_the_bundled_sample_and_links(app):
    assert not app.exception
    assert metric_values(app)["Active dataset"] == "bundled sample"
    text = " ".join(c.value for c in app.caption)
    assert "1,000 patches" in text and "440 tumour / 560 normal" in text


def test_home_and_dataset_pages_never_import_tensorflow(tmp_path):
    script = textwrap.dedent(f"""
        import sys
        from streamlit.testing.v1 import AppTest
        at = AppTest.from_file({APP!r}, default_timeout=120)
        at.run()
        assert not at.exception, at.exception
        at.switch_page("app_pages/dataset.py")
        at.run()
        assert not at.exception, at.exception
        print("TF_LOADED" if "tensorflow" in sys.modules or "keras" in sys.modules else "TF_ABSENT")
    """)
    env = {**os.environ, "PATCHLENS_HOME": str(tmp_path / "ws")}
    result = subprocess.run(
        [sys.executable, "-c", script], cwd=PROJECT_DIR, capture_output=True, text=True, timeout=300, env=env
    )
    assert result.returncode == 0, result.stderr[-2000:]
    assert "TF_ABSENT" in result.stdout


def test_dataset_page_cards_grid_colour_and_problems(app):
    app.switch_page("app_pages/dataset.py")
    app.run()
    assert not app.exception
    cards = metric_values(app)
    assert cards["Layout"] == "kaggle" and cards["Patches"] == "1,000"
    assert cards["Tumour (1)"] == "440" and cards["Normal (0)"] == "560" and cards["Problems"] == "0"
    images = app.get("image")
    assert len(images) == 25  # a grid page of 24 and the detail view
    assert any("tumour" in str(df.value) for df in app.dataframe)  # colour statistics per class

    app.radio(key="grid_filter").set_value("tumour (1)").run()
    assert not app.exception
    captions = [c for image in app.get("image") for c in image.captions if c]
    assert len(captions) == 24 and all(c.endswith("tumour") for c in captions)


def test_switching_to_another_layout_and_refusing_a_path_outside_the_roots(app, tmp_path, monkeypatch):
    import shutil

    root = tmp_path / "roots"
    classes = root / "classes"
    for label in ("0", "1"):
        (classes / label).mkdir(parents=True)
    rows = (SAMPLE_DATASET / "train_labels.csv").read_text().splitlines()[1:13]
    for row in rows:
        patch_id, label = row.split(",")
        shutil.copy(SAMPLE_DATASET / "train" / f"{patch_id}.tif", classes / label / f"{patch_id}.tif")
    (classes / "1" / "broken.tif").write_text("not an image")
    monkeypatch.setenv("PATCHLENS_DATA_ROOTS", str(root))

    open_button = next(b for b in app.button if b.label == "Open")
    app.text_input(key="open_path").set_value(str(tmp_path / "elsewhere"))
    open_button.click().run()
    assert not app.exception
    assert any("outside the data roots" in e.value for e in app.error)

    app.text_input(key="open_path").set_value(str(classes))
    next(b for b in app.button if b.label == "Open").click().run()
    assert not app.exception
    app.switch_page("app_pages/dataset.py")
    app.run()
    cards = metric_values(app)
    assert cards["Layout"] == "class-folders"
    assert cards["Patches"] == "13"  # listed, not yet decoded
    next(b for b in app.button if b.label == "Check every file").click().run()
    assert not app.exception
    assert metric_values(app)["Patches"] == "12" and metric_values(app)["Problems"] == "1"
    assert any("broken" in str(df.value) for df in app.dataframe)
