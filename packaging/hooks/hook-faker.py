"""Replaces pyinstaller-hooks-contrib's faker hook, which bundles all ~700 locale sources as data
files: a one-file binary unpacks every one of them on each start. `anpi demo` only needs the
ja_JP name lists (fixtures/names.py). faker.config lists its providers by globbing
`faker/providers/*/__init__.py` inside the bundle, so those files (and ja_JP's) are shipped as data.
"""

from pathlib import Path

from PyInstaller.utils.hooks import get_package_paths

_, _pkg = get_package_paths("faker")
_inits = sorted((Path(_pkg) / "providers").glob("*/__init__.py")) + [
    Path(_pkg) / "providers" / "person" / "ja_JP" / "__init__.py"]

datas = [(str(p), str(p.parent.relative_to(Path(_pkg).parent))) for p in _inits]
hiddenimports = [f"faker.providers.{p.parent.name}" for p in _inits[:-1]] + ["faker.providers.person.ja_JP"]
