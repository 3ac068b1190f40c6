"""cmkit_runtime/flask_extension.py: DRUM's custom_flask.py hook on a Flask app."""

from __future__ import annotations

from pathlib import Path

from flask import Flask

from cmkit_runtime.flask_extension import apply


def test_init_app_gets_the_app(tmp_path: Path) -> None:
    (tmp_path / "custom_flask.py").write_text(
        "def init_app(app):\n    app.add_url_rule('/extra/', 'extra', lambda: 'added')\n"
    )
    app = Flask("t")
    assert apply(app, tmp_path) is True
    assert app.test_client().get("/extra/").data == b"added"


def test_no_file_or_no_init_app_leaves_the_app_alone(tmp_path: Path) -> None:
    app = Flask("t")
    assert apply(app, tmp_path) is False
    (tmp_path / "custom_flask.py").write_text("X = 1\n")
    assert apply(app, tmp_path) is False and list(app.url_map.iter_rules())[-1].endpoint == "static"
