"""Shared test helpers: real SQLite files in tmp_path, the real CLI, real encodings."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
from typer.testing import CliRunner

from app.cli import app as cli_app
from app.db_crypto import PASSPHRASE_ENV

#: every shelter database the tests make is encrypted with this passphrase (subprocesses inherit
#: it); tests of a missing or wrong passphrase change it with monkeypatch
TEST_PASSPHRASE = "test passphrase 避難所"
os.environ[PASSPHRASE_ENV] = TEST_PASSPHRASE


@pytest.fixture
def db(tmp_path: Path) -> Path:
    return tmp_path / "shelter.db"


class Cli:
    """Runs `anpi` in-process against one database file and returns (exit code, stdout, stderr)."""

    def __init__(self, db: Path) -> None:
        self.db = db
        self.runner = CliRunner()

    def __call__(self, *args: str) -> tuple[int, str, str]:
        res = self.runner.invoke(cli_app, ["--db", str(self.db), *map(str, args)], catch_exceptions=False)
        return res.exit_code, res.stdout, res.stderr

    def json(self, *args: str) -> object:
        code, out, err = self(*args)
        assert code == 0, err
        return json.loads(out)


@pytest.fixture
def cli(db: Path) -> Cli:
    return Cli(db)


def write_csv(path: Path, rows: list[list[str]], encoding: str = "utf-8") -> Path:
    text = "\r\n".join(",".join(r) for r in rows) + "\r\n"
    path.write_bytes(text.encode(encoding))
    return path
