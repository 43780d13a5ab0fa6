"""Settings in one typed place: `app.config.Settings` (and `sync.settings.SyncSettings` for the layer
that may not import app/) read every `ANPI_*` variable, and README.md's table is generated from them."""
from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

from app.config import Settings, SyncSettings, settings_markdown
from sync.settings import describe

ROOT = Path(__file__).resolve().parents[2]
#: the only modules that read ANPI_* from the environment themselves
READERS = {"app/config.py", "sync/settings.py"}
#: modules another branch rewrites (desks-once): they still read ANPI_CERT_ISSUER[_<code>] directly;
#: the value is declared in Settings.cert_issuer — switch them to it when that branch lands
NOT_YET: set[str] = set()


def test_readme_table_is_generated_from_the_code() -> None:
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    m = re.search(r"<!-- settings:begin -->\n(.*?)<!-- settings:end -->", text, re.S)
    assert m, "README.md lacks the settings table markers"
    assert m.group(1) == settings_markdown(), "README settings table is stale: run python -m app.config --markdown"


def _env_reads(path: Path) -> list[str]:
    """ANPI_* names (or expressions) read through os.environ / os.getenv in one module."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    consts = {t.id: n.value.value for n in ast.walk(tree) if isinstance(n, ast.Assign)
              for t in n.targets if isinstance(t, ast.Name) and isinstance(n.value, ast.Constant)
              and isinstance(n.value.value, str)}
    found = []
    for node in ast.walk(tree):
        key = None
        if isinstance(node, ast.Call):
            f = node.func
            name = ast.unparse(f)
            if name in ("os.environ.get", "os.getenv", "environ.get", "getenv") and node.args:
                key = node.args[0]
        elif isinstance(node, ast.Subscript) and ast.unparse(node.value) in ("os.environ", "environ") \
                and isinstance(node.ctx, ast.Load):
            key = node.slice
        if key is None:
            continue
        text = key.value if isinstance(key, ast.Constant) else consts.get(getattr(key, "id", ""), ast.unparse(key))
        if "ANPI_" in str(text) or str(text).endswith("_ENV"):  # an imported name such as PASSPHRASE_ENV
            found.append(f"{path.relative_to(ROOT)}:{node.lineno}: {text}")
    return found


def test_only_the_settings_classes_read_anpi_variables() -> None:
    reads = []
    for pkg in ("app", "sync", "matching"):
        for path in sorted((ROOT / pkg).rglob("*.py")):
            rel = str(path.relative_to(ROOT))
            if rel in READERS or rel in NOT_YET:
                continue
            reads += _env_reads(path)
    assert reads == [], "read these through app.config.Settings / sync.settings.SyncSettings:\n" + "\n".join(reads)


def test_every_setting_has_a_name_and_a_meaning() -> None:
    names = [r["name"] for cls in (Settings, SyncSettings) for r in describe(cls)]
    assert len(names) == len(set(names))
    assert all(n.startswith("ANPI_") for n in names)
    assert all(r["meaning"] for cls in (Settings, SyncSettings) for r in describe(cls))


def test_values_are_read_by_type(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ANPI_PORT", "9090")
    monkeypatch.setenv("ANPI_ROSTER_UPLOAD_MAX_MB", "1.5")
    monkeypatch.setenv("ANPI_BACKUP_DIR", "/media/usb")
    monkeypatch.setenv("ANPI_HUB_CROSS_REVIEW_FLOOR", "")
    st = Settings.from_env()
    assert (st.port, st.roster_upload_max_bytes, st.backup_dir) == (9090, int(1.5 * 1024 * 1024), Path("/media/usb"))
    assert SyncSettings.from_env().hub_cross_review_floor == 0.5
    monkeypatch.setenv("ANPI_PORT", "eighty")
    with pytest.raises(ValueError, match="ANPI_PORT"):
        Settings.from_env()
