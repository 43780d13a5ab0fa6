"""Encryption at rest of the shelter database and of its backups (SQLCipher, key from a passphrase).

Why: a shelter laptop or a backup stick gets lost. A plain SQLite file gives away every
閲覧制限 address, the PIN hashes (a 4-digit PIN falls offline in minutes) and the laptop's
Ed25519 signing key (enough to impersonate it at the hub). Every file Anpi writes for a shelter
is therefore an SQLCipher 4 file (AES-256, an HMAC on every page, the -wal encrypted too).

Where the key comes from: never from beside the data. The admin types a passphrase at start
(or gives it in `ANPI_PASSPHRASE` for scripts and automation); Argon2id (memory-hard, so a
stolen file cannot be attacked on graphics cards the way SQLCipher's own PBKDF2 can) turns it
and a random salt into a 256-bit key, which SQLCipher uses as a raw key. The salt is the file's
own first 16 bytes (SQLCipher writes the salt we give it there), so no sidecar file can get
separated from its database or backup, and every file - database, backup, restored copy - has
its own salt and so its own key. The derivation costs ~0.1-0.3 s once per file and process.

Why sqlcipher3 (the `sqlcipher3-wheels` build): it is a drop-in DB-API module, statically linked
with SQLCipher and OpenSSL, with wheels for Linux and Windows, so PyInstaller bundles it like any
extension module and SQLAlchemy drives it through its own `sqlite+pysqlcipher` dialect.
"""

from __future__ import annotations

import getpass
import os
import sys
from functools import lru_cache
from pathlib import Path

from sqlcipher3 import dbapi2 as dbapi

from sync.files import fsync_file

#: the environment variable every command reads the passphrase from (scripts, tests, automation)
PASSPHRASE_ENV = "ANPI_PASSPHRASE"
SALT_BYTES = 16
#: Argon2id cost: 64 MiB, 2 passes (RFC 9106's second recommended setting, one lane so a laptop
#: with two cores shared with the service still starts quickly). Changing it changes every key:
#: it would need a re-key of existing files.
ARGON2_TIME_COST = 2
ARGON2_MEMORY_KIB = 64 * 1024
ARGON2_PARALLELISM = 1
SQLITE_MAGIC = b"SQLite format 3\x00"

Connection = dbapi.Connection
Cursor = dbapi.Cursor
Error = dbapi.Error
DatabaseError = dbapi.DatabaseError
OperationalError = dbapi.OperationalError
IntegrityError = dbapi.IntegrityError


def _quiet_sqlcipher() -> None:
    """SQLCipher logs a wrong key to stderr by default; Anpi says it in one line of its own."""
    con = dbapi.connect(":memory:")
    try:
        con.execute("PRAGMA cipher_log_level = NONE")
    finally:
        con.close()


_quiet_sqlcipher()


class DatabaseKeyError(Exception):
    """The database cannot be opened for want of the right passphrase; `message_ja` for staff."""

    def __init__(self, message: str, message_ja: str = "") -> None:
        super().__init__(message)
        self.message_ja = message_ja or message


class PassphraseNeeded(DatabaseKeyError):
    """No passphrase in ANPI_PASSPHRASE and no terminal to type it on."""


class WrongPassphrase(DatabaseKeyError):
    """The passphrase does not open this file (or the file is not an Anpi database at all)."""


_typed: str | None = None  # typed once per process: `anpi restore` opens several files


def _prompt(path: Path, *, creating: bool) -> str:
    """Ask on the terminal; a new file asks twice, because a mistyped passphrase locks the data away."""
    first = getpass.getpass(f"passphrase for {path}: " if not creating else f"new passphrase for {path}: ")
    if creating and getpass.getpass("the same passphrase again: ") != first:
        raise PassphraseNeeded("the two passphrases differ; nothing was created")
    if not first:
        raise PassphraseNeeded("an empty passphrase cannot protect the database")
    return first


def passphrase(path: Path | str, *, creating: bool = False) -> str:
    """ANPI_PASSPHRASE, else typed on the terminal, else a one-line refusal that says how to give it."""
    global _typed
    from app.config import Settings

    env = Settings.from_env().passphrase
    if env:
        return env
    if _typed:
        return _typed
    if sys.stdin is not None and sys.stdin.isatty():
        _typed = _prompt(Path(path), creating=creating)
        return _typed
    what = "a new database is encrypted" if creating else "it is encrypted"
    raise PassphraseNeeded(
        f"{path}: {what}, so the passphrase is needed; set {PASSPHRASE_ENV} or run the command in a terminal to type it",
        f"データベース {Path(path).name} は暗号化されています。パスフレーズ ({PASSPHRASE_ENV}) を指定してください")


@lru_cache(maxsize=64)
def derive_key(secret: str, salt: bytes) -> bytes:
    """Argon2id(passphrase, salt) -> 32 bytes; cached, so each file costs the derivation once per process."""
    from argon2.low_level import Type, hash_secret_raw

    return hash_secret_raw(secret.encode("utf-8"), salt, time_cost=ARGON2_TIME_COST, memory_cost=ARGON2_MEMORY_KIB,
                           parallelism=ARGON2_PARALLELISM, hash_len=32, type=Type.ID)


def file_header(path: Path | str) -> bytes:
    """The first 16 bytes of a file (b"" when it does not exist or is empty)."""
    try:
        with open(path, "rb") as f:
            return f.read(SALT_BYTES)
    except FileNotFoundError:
        return b""


def is_plain_sqlite(path: Path | str) -> bool:
    """An unencrypted SQLite file (written by an Anpi before encryption, or by another program)."""
    return file_header(path) == SQLITE_MAGIC


def raw_key(key: bytes, salt: bytes) -> str:
    """SQLCipher's raw-key form: no PBKDF2 of its own, and the salt it writes into the file header."""
    return f"x'{key.hex()}{salt.hex()}'"


def key_for(path: Path | str, secret: str | None = None) -> str:
    """The key of an existing encrypted file (salt from its header) or of a new one (a fresh salt)."""
    head = file_header(path)
    creating = len(head) < SALT_BYTES
    salt = os.urandom(SALT_BYTES) if creating else head
    if secret is None:
        secret = passphrase(path, creating=creating)
    return raw_key(derive_key(secret, salt), salt)


def random_key() -> str:
    """A throw-away key for a temporary file that no passphrase ever needs to reopen (import staging)."""
    return raw_key(os.urandom(32), os.urandom(SALT_BYTES))


def apply_key(con: Connection, key: str | None) -> None:
    """Key a fresh connection before anything reads the file (None: a plain SQLite file)."""
    con.execute("PRAGMA cipher_log_level = NONE")  # a wrong key is our one-line message, not SQLCipher's log
    if key is not None:
        con.execute(f'PRAGMA key = "{key}"')


def check_key(con: Connection, path: Path | str) -> None:
    """Read page 1: the HMAC fails on a wrong key, so say so here rather than at the first query."""
    try:
        con.execute("SELECT count(*) FROM sqlite_master").fetchone()
    except DatabaseError as exc:
        if "not a database" in str(exc):
            raise WrongPassphrase(
                f"wrong passphrase for {path} (or it is not an Anpi database); check {PASSPHRASE_ENV}",
                f"パスフレーズが違います ({Path(path).name})") from None
        raise


def connect(path: Path | str, key: str | None = "", *, timeout: float = 30, isolation_level: str | None = "",
            check_same_thread: bool = True) -> Connection:
    """A DB-API connection to an encrypted file, keyed and checked (key "" = derive from the passphrase).

    The drop-in for `sqlite3.connect` wherever Anpi opens a shelter file without SQLAlchemy.
    """
    if key == "":
        key = key_for(path)
    con = dbapi.connect(str(path), timeout=timeout, isolation_level=isolation_level,
                        check_same_thread=check_same_thread)
    try:
        apply_key(con, key)
        check_key(con, path)
    except BaseException:
        con.close()
        raise
    return con


def encrypt_in_place(path: Path | str, secret: str | None = None) -> None:
    """Turn a plain SQLite database (from an Anpi before encryption) into an encrypted one.

    The data is exported into a new file beside it (sqlcipher_export, under a write lock so no
    other program changes the plain file meanwhile), the copy is read back with the key, and only
    then renamed over the original: at every moment the name holds a complete database. The
    plain -wal/-shm are removed with it (the export already contains what they held).
    """
    path = Path(path)
    secret = secret if secret is not None else passphrase(path, creating=True)
    salt = os.urandom(SALT_BYTES)
    key = raw_key(derive_key(secret, salt), salt)
    tmp = path.with_name(f".{path.name}.encrypt-{os.getpid()}.partial")
    tmp.unlink(missing_ok=True)
    try:
        _export(path, tmp, key)
        fsync_file(tmp)
        check = connect(tmp, key, isolation_level=None)
        try:
            if check.execute("PRAGMA quick_check").fetchone()[0] != "ok":
                raise DatabaseError(f"the encrypted copy of {path} did not verify; the plain file was left as it was")
        finally:
            check.close()
        os.replace(tmp, path)  # the plain connection is closed: Windows cannot replace an open file
    finally:
        tmp.unlink(missing_ok=True)
    for side in ("-wal", "-shm", "-journal"):
        Path(f"{path}{side}").unlink(missing_ok=True)


def _export(path: Path, tmp: Path, key: str) -> None:
    plain = dbapi.connect(str(path), timeout=30, isolation_level=None)
    try:
        apply_key(plain, None)
        plain.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchall()
        plain.execute("ATTACH DATABASE ? AS encrypted KEY ?", (str(tmp), key))
        plain.execute("BEGIN IMMEDIATE")  # nobody writes to the plain file while it is copied
        plain.execute("SELECT sqlcipher_export('encrypted')").fetchall()
        plain.execute("COMMIT")
        plain.execute("DETACH DATABASE encrypted")
    finally:
        plain.close()


# --- the signing key inside a backup -------------------------------------------------------------

SEALED_PREFIX = "sealed:argon2id:"


def seal_secret(value: str, secret: str) -> str:
    """A secret (the laptop's Ed25519 seed) sealed under its own passphrase-derived key.

    Why, although the backup file is encrypted already: a backup key that leaks (kept in a
    keyring, typed into the wrong tool) must still not hand over the laptop's identity at the hub.
    """
    from nacl.secret import SecretBox

    salt = os.urandom(SALT_BYTES)
    box = SecretBox(derive_key(secret, salt)).encrypt(value.encode("utf-8"))
    return SEALED_PREFIX + salt.hex() + ":" + box.hex()


def is_sealed(value: str | None) -> bool:
    return bool(value) and str(value).startswith(SEALED_PREFIX)


def unseal_secret(value: str, secret: str) -> str:
    """The sealed secret back; WrongPassphrase when `secret` is not the one it was sealed with."""
    from nacl.exceptions import CryptoError
    from nacl.secret import SecretBox

    salt_hex, box_hex = value[len(SEALED_PREFIX):].split(":", 1)
    try:
        return SecretBox(derive_key(secret, bytes.fromhex(salt_hex))).decrypt(bytes.fromhex(box_hex)).decode("utf-8")
    except (CryptoError, ValueError):
        raise WrongPassphrase("the laptop's signing key in this backup is sealed with another passphrase",
                              "バックアップ内の署名鍵を別のパスフレーズでは開けません") from None
