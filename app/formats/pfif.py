"""PFIF (People Finder Interchange Format, 1.1–1.4) and Person Finder's CSV: read and write.

Why hand-written: no maintained PFIF package exists on PyPI (Person Finder's own `pfif.py` is
Python 2 and part of an App Engine app), and the format is small. The XML goes through
defusedxml's SAX reader with DTDs refused outright: a PFIF file never needs one, and refusing it
stops entity bombs ("billion laughs") and external entities before anything is expanded or
fetched. SAX also gives the line number of every element, so an error names file, line, element
and field.

Reading accepts every PFIF version (namespaces http://zesty.ca/pfif/1.1 … 1.4), persons with
nested notes and top-level notes, and maps old field names onto PFIF 1.4 (first_name → given_name,
last_name → family_name, other → description, home_zip → home_postal_code, found →
author_made_contact). Writing always produces PFIF 1.4 in Person Finder's field order, with its
mandatory fields (person: person_record_id, source_date, full_name; note: note_record_id,
author_name, source_date, text) and times as `YYYY-MM-DDTHH:MM:SSZ`, the only form its importer
takes. `parse_pfif(write_pfif(doc)) == doc` for any document whose values are stripped strings
and whose times are whole seconds.

A file is accepted whole or not at all: every problem found is reported (file, line, field) in
one `PfifError`, and nothing of the file is returned.

No database, no services: plain data in, plain data out.
"""

from __future__ import annotations

import codecs
import csv
import hashlib
import io
import re
import unicodedata
from dataclasses import dataclass, field, fields
from datetime import datetime, timedelta, timezone
from typing import Any
from xml.sax import SAXException, SAXParseException
from xml.sax.handler import ContentHandler, feature_external_ges, feature_namespaces
from xml.sax.saxutils import escape

from defusedxml.common import DefusedXmlException
from defusedxml import expatreader

from app.formats.errors import FileFormatError, RowProblem

PFIF_NAMESPACES = {f"http://zesty.ca/pfif/{v}": v for v in ("1.1", "1.2", "1.3", "1.4")}
NS_14 = "http://zesty.ca/pfif/1.4"
NOTE_STATUSES = ("information_sought", "is_note_author", "believed_alive", "believed_missing", "believed_dead")
SEXES = ("female", "male", "other")

#: PFIF 1.4 fields in Person Finder's order (what we write; what we read besides the legacy names)
PERSON_FIELDS = ("person_record_id", "entry_date", "expiry_date", "author_name", "author_email", "author_phone",
                 "source_name", "source_date", "source_url", "full_name", "given_name", "family_name",
                 "alternate_names", "description", "sex", "date_of_birth", "age", "home_street",
                 "home_neighborhood", "home_city", "home_state", "home_postal_code", "home_country", "photo_url",
                 "profile_urls")
NOTE_FIELDS = ("note_record_id", "person_record_id", "linked_person_record_id", "entry_date", "author_name",
               "author_email", "author_phone", "source_date", "author_made_contact", "status",
               "email_of_found_person", "phone_of_found_person", "last_known_location", "text", "photo_url")
PERSON_MANDATORY = ("person_record_id", "source_date", "full_name")
NOTE_MANDATORY = ("note_record_id", "author_name", "source_date", "text")
#: older names → PFIF 1.4 names
LEGACY = {"first_name": "given_name", "last_name": "family_name", "other": "description",
          "home_zip": "home_postal_code", "found": "author_made_contact"}
TIME_FIELDS = ("entry_date", "expiry_date", "source_date")
EXTRA_CELLS = "_extra_cells"  # raw key for CSV cells beyond the header
MAX_ERRORS = 50

_DATETIME_RE = re.compile(r"^(\d{4})-(\d\d)-(\d\d)T(\d\d):(\d\d):(\d\d)(\.\d{1,6})?(Z|[+-]\d\d:\d\d)$")
# Person Finder's CSV import takes local times ("2013/02/14 09:30") shifted by a time_zone_offset
_LOCAL_TIME_RE = re.compile(r"^(\d{4})[/-](\d{1,2})[/-](\d{1,2})[ T](\d{1,2}):(\d{2})(?::(\d{2}))?$")
_BIRTH_RE = re.compile(r"^\d{4}(-(0[1-9]|1[0-2])(-(0[1-9]|[12]\d|3[01]))?)?$")
_AGE_RE = re.compile(r"^\d{1,3}(-\d{1,3})?$")
# characters XML 1.0 cannot carry at all (even as references)
_NOT_XML = re.compile("[^\x09\x0a\x0d\x20-\ud7ff\ue000-\ufffd\U00010000-\U0010ffff]")


class PfifError(FileFormatError):
    """A PFIF/CSV file we refuse; every problem names the file, the line and the element or column."""


# --- the records ----------------------------------------------------------------------------

@dataclass
class PfifNote:
    """One PFIF note; `raw` keeps the fields exactly as in the file (not compared)."""

    note_record_id: str
    person_record_id: str = ""
    linked_person_record_id: str = ""
    entry_date: datetime | None = None
    author_name: str = ""
    author_email: str = ""
    author_phone: str = ""
    source_date: datetime | None = None
    author_made_contact: bool | None = None
    status: str = ""
    email_of_found_person: str = ""
    phone_of_found_person: str = ""
    last_known_location: str = ""
    text: str = ""
    photo_url: str = ""
    line: int = field(default=0, compare=False)
    raw: dict[str, str] = field(default_factory=dict, compare=False)


@dataclass
class PfifPerson:
    """One PFIF person with the notes nested inside it in the file."""

    person_record_id: str
    entry_date: datetime | None = None
    expiry_date: datetime | None = None
    author_name: str = ""
    author_email: str = ""
    author_phone: str = ""
    source_name: str = ""
    source_date: datetime | None = None
    source_url: str = ""
    full_name: str = ""
    given_name: str = ""
    family_name: str = ""
    alternate_names: str = ""
    description: str = ""
    sex: str = ""
    date_of_birth: str = ""
    age: str = ""
    home_street: str = ""
    home_neighborhood: str = ""
    home_city: str = ""
    home_state: str = ""
    home_postal_code: str = ""
    home_country: str = ""
    photo_url: str = ""
    profile_urls: str = ""
    notes: list[PfifNote] = field(default_factory=list)
    line: int = field(default=0, compare=False)
    raw: dict[str, str] = field(default_factory=dict, compare=False)

    @property
    def is_placeholder(self) -> bool:
        """PFIF 1.3+: an expired record is replaced by a placeholder that carries no name."""
        return not (self.full_name or self.given_name or self.family_name) and self.expiry_date is not None


@dataclass
class PfifDocument:
    """What one file held: persons (with nested notes) and notes outside any person."""

    version: str  # "1.1" … "1.4", or "csv"
    persons: list[PfifPerson] = field(default_factory=list)
    notes: list[PfifNote] = field(default_factory=list)
    warnings: list[RowProblem] = field(default_factory=list, compare=False)  # read, but not everything was used

    def all_notes(self) -> list[PfifNote]:
        return [n for p in self.persons for n in p.notes] + list(self.notes)


def record_domain(record_id: str) -> str:
    """`test.google.com/person.1` → `test.google.com` (the repository that owns the record)."""
    return record_id.split("/", 1)[0] if "/" in record_id else ""


def format_time(dt: datetime) -> str:
    """RFC 3339 UTC to the second: the only form Person Finder's importer accepts."""
    if dt.tzinfo is None:
        dt = dt.replace(tzinfo=timezone.utc)
    return dt.astimezone(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


# --- field conversion shared by XML and CSV --------------------------------------------------

class _Problems:
    def __init__(self, file_name: str) -> None:
        self.file = file_name
        self.items: list[RowProblem] = []
        self.total = 0

    def add(self, line: int, fld: str, message: str, message_ja: str, value: str = "") -> None:
        self.total += 1
        if len(self.items) < MAX_ERRORS:
            self.items.append(RowProblem(self.file, line, fld, message, message_ja, value[:80]))

    def raise_if_any(self) -> None:
        if self.items:
            raise PfifError(self.items, self.total)


def _parse_time(value: str, offset_hours: float | None = None) -> datetime:
    """RFC 3339; in a CSV (`offset_hours` given) also a local "2011/3/12 9:30" as Person Finder takes it."""
    m = _DATETIME_RE.match(value)
    if m:
        y, mo, d, h, mi, s, frac, zone = m.groups()
        dt = datetime(int(y), int(mo), int(d), int(h), int(mi), int(s),
                      int((frac or ".0")[1:].ljust(6, "0")), tzinfo=timezone.utc)
        if zone != "Z":
            sign = 1 if zone[0] == "+" else -1
            dt -= sign * timedelta(hours=int(zone[1:3]), minutes=int(zone[4:6]))
        return dt
    m = _LOCAL_TIME_RE.match(value) if offset_hours is not None else None
    if m:
        y, mo, d, h, mi, sec = m.groups()
        local = datetime(int(y), int(mo), int(d), int(h), int(mi), int(sec or 0), tzinfo=timezone.utc)
        return local - timedelta(hours=offset_hours or 0.0)
    raise ValueError(value)


def _clean(value: str) -> str:
    return value.strip()


def _bool(value: str) -> bool | None:
    v = value.strip().lower()
    if not v:
        return None
    if v in ("true", "1", "yes"):
        return True
    if v in ("false", "0", "no"):
        return False
    raise ValueError(value)


def _compose_name(given: str, family: str) -> str:
    """PFIF ≤1.2 has no full_name: Japanese/Chinese names read family first, others given first."""
    if not family:
        return given
    if not given:
        return family
    cjk = any(unicodedata.name(ch, "").startswith(("CJK", "HIRAGANA", "KATAKANA")) for ch in family)
    return f"{family} {given}" if cjk else f"{given} {family}"


def _normalise(raw: dict[str, str]) -> dict[str, str]:
    """Legacy names mapped to PFIF 1.4, values stripped; the 1.4 name wins when both are present."""
    out: dict[str, str] = {}
    for k, v in raw.items():
        name = LEGACY.get(k, k)
        if name in out and k in LEGACY:
            continue
        out[name] = _clean(v)
    return out


def _times(values: dict[str, str], problems: _Problems, line: int, kind: str, offset: float | None) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for name in TIME_FIELDS:
        text = values.get(name, "")
        if not text:
            continue
        try:
            out[name] = _parse_time(text, offset)
        except ValueError:
            problems.add(line, f"{kind}/{name}", f"{name} {text!r} is not a time like 2011-03-11T05:46:00Z",
                         f"{name} は 2011-03-11T05:46:00Z の形式で書いてください", text)
    return out


def _person(raw: dict[str, str], line: int, problems: _Problems, offset: float | None = None) -> PfifPerson | None:
    v = _normalise(raw)
    rid = v.get("person_record_id", "")
    if not rid:
        problems.add(line, "person/person_record_id", "person without person_record_id",
                     "person_record_id がありません")
        return None
    known = {f.name for f in fields(PfifPerson)} - {"notes", "line", "raw", "entry_date", "expiry_date", "source_date",
                                                    "person_record_id"}
    kw: dict[str, Any] = {k: v[k] for k in known if k in v}
    kw.update(_times(v, problems, line, "person", offset))
    if not kw.get("full_name"):
        kw["full_name"] = _compose_name(kw.get("given_name", ""), kw.get("family_name", ""))
    sex = kw.get("sex", "").lower()
    if sex and sex not in SEXES:
        problems.add(line, "person/sex", f"sex {kw['sex']!r} is not female, male or other",
                     "sex は female / male / other のいずれかです", kw["sex"])
    kw["sex"] = sex
    dob = kw.get("date_of_birth", "")
    if dob and not _BIRTH_RE.match(dob):
        problems.add(line, "person/date_of_birth", f"date_of_birth {dob!r} is not YYYY, YYYY-MM or YYYY-MM-DD",
                     "date_of_birth は YYYY-MM-DD（または YYYY-MM, YYYY）です", dob)
    age = kw.get("age", "")
    if age and not _AGE_RE.match(age):
        problems.add(line, "person/age", f"age {age!r} is not a number or a range like 35-45",
                     "age は数字か 35-45 のような範囲です", age)
    p = PfifPerson(person_record_id=rid, line=line, raw=dict(raw), **kw)
    if not p.full_name and not p.is_placeholder:
        problems.add(line, "person/full_name", f"person {rid} has no name (full_name)",
                     f"{rid} に氏名 (full_name) がありません")
    return p


def _note(raw: dict[str, str], line: int, problems: _Problems, parent_id: str = "", offset: float | None = None,
          require_id: bool = True) -> PfifNote | None:
    v = _normalise(raw)
    nid = v.get("note_record_id", "")
    if not nid and require_id:
        problems.add(line, "note/note_record_id", "note without note_record_id", "note_record_id がありません")
        return None
    pid = v.get("person_record_id", "") or parent_id
    if not pid:
        problems.add(line, "note/person_record_id", f"note {nid} names no person (person_record_id)",
                     f"メモ {nid} に person_record_id がありません")
    if parent_id and v.get("person_record_id") and v["person_record_id"] != parent_id:
        problems.add(line, "note/person_record_id",
                     f"note {nid} is inside person {parent_id} but names {v['person_record_id']}",
                     f"メモ {nid} の person_record_id が外側の person と違います", v["person_record_id"])
    known = {f.name for f in fields(PfifNote)} - {"line", "raw", "entry_date", "source_date", "author_made_contact",
                                                  "note_record_id", "person_record_id"}
    kw: dict[str, Any] = {k: v[k] for k in known if k in v}
    kw.update(_times(v, problems, line, "note", offset))
    status = kw.get("status", "").lower()
    if status and status not in NOTE_STATUSES:
        problems.add(line, "note/status", f"status {kw['status']!r} is not one of {', '.join(NOTE_STATUSES)}",
                     "status の値が PFIF の決まりにありません", kw["status"])
    kw["status"] = status
    try:
        contact = _bool(v.get("author_made_contact", ""))
    except ValueError:
        problems.add(line, "note/author_made_contact", "author_made_contact must be true or false",
                     "author_made_contact は true / false です", v.get("author_made_contact", ""))
        contact = None
    return PfifNote(note_record_id=nid, person_record_id=pid, author_made_contact=contact, line=line, raw=dict(raw),
                    **kw)


# --- XML ------------------------------------------------------------------------------------

@dataclass
class _Record:
    kind: str  # person | note
    line: int
    values: dict[str, str] = field(default_factory=dict)
    notes: list[_Record] = field(default_factory=list)


class _Handler(ContentHandler):
    """Collects persons and notes as plain dictionaries, with the line each one starts on."""

    def __init__(self, problems: _Problems) -> None:
        super().__init__()
        self.problems = problems
        self.locator: Any = None
        self.version = ""
        self.records: list[_Record] = []
        self.stack: list[tuple[str, str]] = []  # (namespace, local name)
        self.current: list[_Record] = []  # open person / note
        self.text: list[str] = []
        self.field_line = 0
        self.skipping = 0  # depth inside an element of another vocabulary

    def setDocumentLocator(self, locator: Any) -> None:  # noqa: N802 - SAX API
        self.locator = locator

    def line(self) -> int:
        return self.locator.getLineNumber() if self.locator else 0

    def startElementNS(self, name: tuple[str | None, str], qname: str | None, attrs: Any) -> None:  # noqa: N802
        ns, local = name[0] or "", name[1]
        depth = len(self.stack)  # 0 = the root, 1 = a record, 2 = a field or a nested note, …
        self.stack.append((ns, local))
        if self.skipping:
            self.skipping += 1
            return
        if depth == 0:
            if ns not in PFIF_NAMESPACES or local != "pfif":
                where = f"{{{ns}}}{local}" if ns else local
                raise _Refused(self.line(), local, f"not a PFIF document: the root element is {where}, "
                               "expected pfif in namespace http://zesty.ca/pfif/1.x",
                               "PFIF の XML ではありません（ルート要素が pfif ではありません）")
            self.version = PFIF_NAMESPACES[ns]
            return
        if depth > len(self.current) + 1:
            raise _Refused(self.line(), local, f"element <{local}> inside a field", f"項目の中に要素 <{local}> があります")
        pfif = ns in PFIF_NAMESPACES
        parent = self.current[-1] if self.current else None
        if pfif and ((local == "person" and parent is None) or (local == "note" and (parent is None or parent.kind == "person"))):
            rec = _Record(local, self.line())
            (self.records if parent is None else parent.notes).append(rec)
            self.current.append(rec)
            return
        if pfif and (parent is None or local in ("person", "note", "pfif")):
            where = f"<{parent.kind}>" if parent else "<pfif>"
            raise _Refused(self.line(), local, f"unexpected element <{local}> in {where}",
                           f"{where} の中に <{local}> は置けません")
        if not pfif:
            self.skipping = 1  # another vocabulary's element: ignored with its content, like Person Finder does
            return
        self.text = []
        self.field_line = self.line()

    def characters(self, content: str) -> None:
        if not self.skipping and self.current and len(self.stack) == len(self.current) + 2:
            self.text.append(content)

    def endElementNS(self, name: tuple[str | None, str], qname: str | None) -> None:  # noqa: N802
        local = name[1]
        self.stack.pop()
        if self.skipping:
            self.skipping -= 1
            return
        depth = len(self.stack)
        if not self.current or depth == 0:
            return
        if depth == len(self.current):
            self.current.pop()
            return
        rec = self.current[-1]
        if local in rec.values:
            self.problems.add(self.field_line, f"{rec.kind}/{local}", f"{local} appears twice in one {rec.kind}",
                              f"{local} が2回あります")
        rec.values[local] = "".join(self.text)


class _Refused(Exception):
    def __init__(self, line: int, element: str, message: str, message_ja: str) -> None:
        super().__init__(message)
        self.line, self.element, self.message, self.message_ja = line, element, message, message_ja


def parse_pfif_xml(data: bytes, file_name: str) -> PfifDocument:
    """Persons and notes of a PFIF 1.1–1.4 XML file; PfifError for anything malformed or hostile."""
    problems = _Problems(file_name)
    handler = _Handler(problems)
    parser = expatreader.create_parser(forbid_dtd=True, forbid_entities=True, forbid_external=True)
    parser.setFeature(feature_namespaces, True)
    parser.setFeature(feature_external_ges, False)
    parser.setContentHandler(handler)
    try:
        parser.parse(io.BytesIO(data))
    except _Refused as exc:
        raise PfifError([RowProblem(file_name, exc.line, exc.element, exc.message, exc.message_ja)]) from None
    except DefusedXmlException as exc:
        raise PfifError([RowProblem(
            file_name, handler.line(), "DOCTYPE",
            f"refused: the file declares a DTD or entities ({type(exc).__name__}); PFIF files never need one "
            "and it could expand into gigabytes or read other files",
            "DTD・実体宣言を含む XML は受け付けません（PFIF には不要で、危険なファイルの可能性があります）")]) from None
    except SAXParseException as exc:
        raise PfifError([RowProblem(file_name, exc.getLineNumber(), "", f"not well-formed XML: {exc.getMessage()}",
                                    f"XML として読めません（途中で切れているか壊れています）: {exc.getMessage()}")]) from None
    except (SAXException, ValueError, LookupError) as exc:  # e.g. an encoding expat or Python does not know
        raise PfifError([RowProblem(file_name, handler.line(), "", f"unreadable XML: {exc}",
                                    f"XML として読めません: {exc}")]) from None
    if not handler.version:
        raise PfifError([RowProblem(file_name, 0, "", "empty file", "空のファイルです")])
    doc = PfifDocument(handler.version)
    for rec in handler.records:
        if rec.kind == "person":
            p = _person(rec.values, rec.line, problems)
            notes = [_note(n.values, n.line, problems, parent_id=p.person_record_id if p else "") for n in rec.notes]
            if p is not None:
                p.notes = [n for n in notes if n is not None]
                doc.persons.append(p)
        else:
            n = _note(rec.values, rec.line, problems)
            if n is not None:
                doc.notes.append(n)
    _check_ids(doc, problems, require_domain=True)
    problems.raise_if_any()
    return doc


def _check_ids(doc: PfifDocument, problems: _Problems, *, require_domain: bool) -> None:
    """Record ids are `domain/unique-part`; one id may not name two different records in one file."""
    seen: dict[str, PfifPerson] = {}
    for p in doc.persons:
        if require_domain and not record_domain(p.person_record_id):
            problems.add(p.line, "person/person_record_id", f"person_record_id {p.person_record_id!r} has no domain "
                         "(expected domain/id, e.g. example.org/person.1)",
                         "person_record_id は「ドメイン/番号」の形です", p.person_record_id)
        prev = seen.get(p.person_record_id)
        if prev is not None and prev != p:
            problems.add(p.line, "person/person_record_id",
                         f"person {p.person_record_id} appears twice with different contents (line {prev.line})",
                         f"person {p.person_record_id} が {prev.line}行目と内容の違う形で2回あります")
        seen[p.person_record_id] = p
    seen_notes: dict[str, PfifNote] = {}
    for n in doc.all_notes():
        if require_domain and n.note_record_id and not record_domain(n.note_record_id):
            problems.add(n.line, "note/note_record_id", f"note_record_id {n.note_record_id!r} has no domain",
                         "note_record_id は「ドメイン/番号」の形です", n.note_record_id)
        prev_n = seen_notes.get(n.note_record_id)
        if prev_n is not None and prev_n != n:
            problems.add(n.line, "note/note_record_id",
                         f"note {n.note_record_id} appears twice with different contents (line {prev_n.line})",
                         f"メモ {n.note_record_id} が {prev_n.line}行目と内容の違う形で2回あります")
        seen_notes[n.note_record_id] = n


# --- Person Finder CSV ------------------------------------------------------------------------

def _decode(data: bytes, file_name: str) -> str:
    """UTF-8 with or without BOM; CP932 when it is not UTF-8 (Excel in Japan saves CSV that way)."""
    if data.startswith(codecs.BOM_UTF8):
        encoding, data = "utf-8", data[3:]
    else:
        try:
            return data.decode("utf-8")
        except UnicodeDecodeError:
            encoding = "cp932"
    try:
        return data.decode(encoding)
    except UnicodeDecodeError as exc:
        line = data[:exc.start].count(b"\n") + 1
        raise PfifError([RowProblem(file_name, line, "", f"bytes {data[exc.start:exc.end]!r} are neither UTF-8 nor CP932",
                                    "文字コードを読み取れません（UTF-8 で保存してください）")]) from None


def _slug(text: str) -> str:
    s = re.sub(r"[^a-z0-9]+", "-", unicodedata.normalize("NFKC", text).lower()).strip("-")
    if not s and text.strip():
        s = "x" + hashlib.sha256(text.strip().encode("utf-8")).hexdigest()[:10]
    return s[:40]


def csv_domain(source_name: str, file_name: str) -> str:
    """The domain given to a CSV's bare record ids (Person Finder prefixes its API key's domain):
    taken from the row's source_name, else the file name, so re-importing the same data finds the same
    records even when the file was renamed."""
    base = _slug(source_name) or _slug(file_name.rsplit(".", 1)[0]) or "import"
    return f"csv.{base}"


def parse_pfif_csv(data: bytes, file_name: str, *, domain: str | None = None) -> PfifDocument:
    """Person Finder's CSV import format (`sample-import.csv`): one row per person, optionally with
    one note in the same row; rows without full_name are notes only.

    As in Person Finder: the header is the first row that has a `person_record_id` column, rows
    above it are a preamble whose `time_zone_offset` shifts local times, and bare record ids get a
    domain (`domain`, else `csv_domain`).
    """
    problems = _Problems(file_name)
    text = _decode(data, file_name)
    reader = csv.reader(io.StringIO(text, newline=""), strict=True)  # an unclosed quote must not eat the file
    header: list[str] = []
    setting_names: list[str] = []
    settings: dict[str, str] = {}
    offset = 0.0
    doc = PfifDocument("csv")
    persons: dict[str, PfifPerson] = {}
    try:
        for row in reader:
            line = reader.line_num
            if not header:
                cells = [c.strip().lower() for c in row]
                if "person_record_id" in cells:
                    header = cells
                    if "time_zone_offset" in settings:
                        try:
                            offset = float(settings["time_zone_offset"])
                        except ValueError:
                            problems.add(line - 1, "time_zone_offset", "time_zone_offset is not a number",
                                         "time_zone_offset が数値ではありません", settings["time_zone_offset"])
                else:
                    settings.update(dict(zip(setting_names, (c.strip() for c in row))))
                    setting_names = cells
                continue
            if not any(c.strip() for c in row):
                continue
            values = {h: c for h, c in zip(header, row) if h}
            extra = [c for c in row[len(header):] if c.strip()]
            if extra:
                # Person Finder reads such a row by position and drops the surplus (its own
                # sample-import.csv has one); we do the same but keep the cells and say so
                values[EXTRA_CELLS] = "\x1f".join(extra)
                doc.warnings.append(RowProblem(
                    file_name, line, "", f"row has {len(row)} cells but the header only {len(header)}: the last "
                    f"{len(row) - len(header)} were not imported (kept with the record)",
                    f"見出し行 ({len(header)}列) より多い {len(row) - len(header)}列は取り込んでいません（記録には残しています）",
                    "|".join(extra)))
            _csv_row(values, line, file_name, domain, offset, problems, doc, persons)
    except csv.Error as exc:
        problems.add(reader.line_num, "", f"CSV is malformed: {exc}", f"CSV の形式が壊れています: {exc}")
    if not header:
        problems.add(0, "person_record_id", "no header row with person_record_id: not a Person Finder CSV",
                     "person_record_id の見出し行がありません（Person Finder の CSV ではありません）")
    _check_ids(doc, problems, require_domain=False)
    problems.raise_if_any()
    return doc


def _qualify(record_id: str, dom: str) -> str:
    return record_id if not record_id or "/" in record_id else f"{dom}/{record_id}"


def _csv_row(values: dict[str, str], line: int, file_name: str, domain: str | None, offset: float,
             problems: _Problems, doc: PfifDocument, persons: dict[str, PfifPerson]) -> None:
    dom = domain or csv_domain(values.get("source_name", ""), file_name)
    person_keys = set(PERSON_FIELDS) | {"first_name", "last_name", "other", "home_zip"}
    note_only = {"note_record_id", "linked_person_record_id", "author_made_contact", "found", "status",
                 "email_of_found_person", "phone_of_found_person", "last_known_location", "text"}
    vals = {k: v.strip() for k, v in values.items()}
    vals["person_record_id"] = _qualify(vals.get("person_record_id", ""), dom)
    has_name = any(vals.get(k) for k in ("full_name", "given_name", "family_name", "first_name", "last_name"))
    vals.pop(EXTRA_CELLS, None)
    if has_name:
        p = _person({k: v for k, v in vals.items() if k in person_keys}, line, problems, offset)
        if p is not None:
            p.raw = dict(values)
            if p.person_record_id in persons:
                problems.add(line, "person_record_id", f"person {p.person_record_id} repeats line "
                             f"{persons[p.person_record_id].line}",
                             f"person_record_id が {persons[p.person_record_id].line}行目と重複しています")
            else:
                persons[p.person_record_id] = p
                doc.persons.append(p)
    has_note = vals.get("note_record_id") or (not has_name and (vals.get("text") or vals.get("status")))
    if not has_note:
        if not has_name:
            problems.add(line, "full_name", "row has neither a name (full_name) nor a note",
                         "氏名 (full_name) もメモもない行です")
        return
    note_vals = {k: v for k, v in vals.items() if k in note_only or k in ("person_record_id", "author_name",
                                                                           "author_email", "author_phone",
                                                                           "source_date", "entry_date", "photo_url")}
    if has_name:
        note_vals.pop("photo_url", None)  # in a person row the photo belongs to the person
    nid = note_vals.get("note_record_id", "")
    if not nid:
        # Person Finder makes up an id here; a hash of the content keeps a re-import idempotent
        digest = hashlib.sha256("\x1f".join(f"{k}={note_vals[k]}" for k in sorted(note_vals)).encode()).hexdigest()
        nid = f"note.{digest[:20]}"
    note_vals["note_record_id"] = _qualify(nid, dom)
    n = _note(note_vals, line, problems, offset=offset)
    if n is None:
        return
    n.raw = dict(values)
    owner = persons.get(n.person_record_id) if has_name else None
    if owner is not None:
        owner.notes.append(n)
    else:
        doc.notes.append(n)


# --- either -------------------------------------------------------------------------------------

def looks_like_xml(data: bytes) -> bool:
    head = data[:512].lstrip(b"\xef\xbb\xbf").lstrip()
    return head.startswith(b"<") or head.startswith(b"\xff\xfe<") or head.startswith(b"\xfe\xff\x00<") \
        or data[:4] in (b"\x3c\x00\x3f\x00", b"\x00\x3c\x00\x3f")


def parse_pfif(data: bytes, file_name: str, *, csv_domain: str | None = None) -> PfifDocument:
    """PFIF XML or Person Finder CSV, told apart by the first character."""
    if not data.strip():
        raise PfifError([RowProblem(file_name, 0, "", "empty file", "空のファイルです")])
    if looks_like_xml(data):
        return parse_pfif_xml(data, file_name)
    return parse_pfif_csv(data, file_name, domain=csv_domain)


# --- writing PFIF 1.4 -------------------------------------------------------------------------

def _value(rec: PfifPerson | PfifNote, name: str) -> str:
    v = getattr(rec, name)
    if v is None:
        return ""
    if isinstance(v, datetime):
        return format_time(v)
    if isinstance(v, bool):
        return "true" if v else "false"
    return str(v)


def _text(value: str) -> str:
    # \r would come back as \n after XML line-end normalisation: a character reference keeps it
    return escape(_NOT_XML.sub("", value)).replace("\r", "&#13;")


def _write_fields(out: list[str], rec: PfifPerson | PfifNote, names: tuple[str, ...], mandatory: tuple[str, ...],
                  indent: str, *, skip: tuple[str, ...] = ()) -> None:
    for name in names:
        if name in skip:
            continue
        value = _value(rec, name)
        if value or name in mandatory:
            out.append(f"{indent}<pfif:{name}>{_text(value)}</pfif:{name}>\n")


def write_pfif(doc: PfifDocument | list[PfifPerson]) -> bytes:
    """PFIF 1.4 XML (UTF-8) with notes nested in their person; top-level notes after the persons."""
    if isinstance(doc, list):
        doc = PfifDocument("1.4", doc)
    out = ['<?xml version="1.0" encoding="UTF-8"?>\n', f'<pfif:pfif xmlns:pfif="{NS_14}">\n']
    for p in doc.persons:
        out.append("  <pfif:person>\n")
        _write_fields(out, p, PERSON_FIELDS, PERSON_MANDATORY, "    ")
        for n in p.notes:
            out.append("    <pfif:note>\n")
            _write_fields(out, n, NOTE_FIELDS, NOTE_MANDATORY, "      ")
            out.append("    </pfif:note>\n")
        out.append("  </pfif:person>\n")
    for n in doc.notes:
        out.append("  <pfif:note>\n")
        _write_fields(out, n, NOTE_FIELDS, NOTE_MANDATORY + ("person_record_id",), "    ")
        out.append("  </pfif:note>\n")
    out.append("</pfif:pfif>\n")
    return "".join(out).encode("utf-8")


# --- JSON form (the hub keeps parsed records as JSON) -------------------------------------------

def record_to_json(rec: PfifPerson | PfifNote) -> dict[str, Any]:
    """A person (without its notes) or a note as JSON-ready data: every PFIF field, times in ISO 8601,
    and the fields as the file had them (`raw`). `record_from_json` gives the same record back."""
    out: dict[str, Any] = {}
    for f in fields(rec):
        if f.name in ("notes", "line"):
            continue
        v = getattr(rec, f.name)
        out[f.name] = v.isoformat() if isinstance(v, datetime) else (dict(v) if f.name == "raw" else v)
    return out


def _from_json(cls: type, data: dict[str, Any]) -> Any:
    names = {f.name for f in fields(cls)} - {"notes", "line"}
    kw = {k: v for k, v in data.items() if k in names}
    for t in TIME_FIELDS:
        if isinstance(kw.get(t), str):
            kw[t] = datetime.fromisoformat(kw[t]) if kw[t] else None
    return cls(**kw)


def person_from_json(data: dict[str, Any]) -> PfifPerson:
    return _from_json(PfifPerson, data)  # type: ignore[no-any-return]


def note_from_json(data: dict[str, Any]) -> PfifNote:
    return _from_json(PfifNote, data)  # type: ignore[no-any-return]
