"""Splink beside Anpi: the same data, the same normalised fields, the same quality figures.

    python bench/match_bench.py --residents 60000 --evacuees 6000 --splink

Needs the ``bench`` extra (``pip install '.[bench]'``: Splink ≥ 4 with its DuckDB backend).
:func:`run_splink` returns markdown rows to print under bench/match_bench.py's table.

What Splink gets (built with Anpi's own normalisers, so neither side is helped by better cleaning):

* registry rows: :func:`matching.person.registry_keys` (birth read with
  :func:`matching.dates.parse_date`, gaiji resolved with the snapshot's gaiji map);
* roster rows: :func:`matching.person.query_keys` with the registry's surnames for splitting an
  unspaced name (as the engine does) and *the first alternative* of each ambiguous key, plus the
  second romaji order for latin names; 同上 addresses take the row above's address as on import.
  No reading model: a kanji name typed without ふりがな has no kana for Splink.

Columns: ``family_kana``/``given_kana``/``full_kana`` (loose kana keys), ``family_kanji``/
``given_kanji``/``full_kanji`` (variant kanji keys), ``romaji``/``romaji_alt`` (skeletons),
``birth`` (ISO), ``birth_year``, ``year_min``/``year_max`` (what an age or a bare year allows),
``sex``, ``town``.

Model (Fellegi–Sunter, link_only, DuckDB): family name, given name (each: exact variant kanji,
exact kana with term-frequency adjustment, fuzzy kana), whole name only when the roster name could
not be split (exact kanji/kana/romaji, fuzzy kana/romaji), birth date (exact, one character off,
year consistent with an age or bare year, within a year), sex, town.  u by random sampling, m by
EM on two blocking rules, λ from deterministic rules.  Each evacuee's top-scoring registry
candidate is `auto` at match_probability ≥ 0.999 (Anpi's ``auto_probability``), `review` at
≥ 0.02 (``review_probability``), else `none`.

The Splink work runs in a fresh (spawned) child process so its peak RSS is its own; the
normalisation runs in another child before it and is timed separately.
"""

from __future__ import annotations

import csv
import logging
import multiprocessing
import re
import resource
import sys
import time
from concurrent.futures import ProcessPoolExecutor
from datetime import date
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

AUTO_PROBABILITY = 0.999  # matching.model.Model.auto_probability
REVIEW_PROBABILITY = 0.02  # matching.model.Model.review_probability

COLUMNS = ("unique_id", "family_kana", "given_kana", "full_kana", "family_kanji", "given_kanji", "full_kanji",
           "romaji", "romaji_alt", "birth", "birth_year", "year_min", "year_max", "sex", "town")
_INT_COLUMNS = {"birth_year", "year_min", "year_max"}


# --- step 1 (child process): Anpi's normalisers -> two key tables ------------------------------------

def _write(path: Path, rows: list[tuple]) -> None:
    with path.open("w", encoding="utf-8", newline="") as f:
        w = csv.writer(f)
        w.writerow(COLUMNS)
        w.writerows(rows)


def _prepare(registry_path: str, encoding: str, gaiji_map_path: str, roster_path: str, out_dir: str) -> dict[str, Any]:
    from app.formats.gaiji import read_gaiji_map
    from app.formats.registry_file import RegistryReader
    from app.formats.roster_file import read_roster
    from matching.dates import DateError, parse_date
    from matching.person import query_keys, registry_keys, surname_keys

    # Same as app.services.roster.SAME_AS_ABOVE (not imported: that module pulls in the database layer).
    same_as_above = frozenset({"同上", "〃", "同", "仝", "同じ", "″", "ditto", "same"})

    t0 = time.perf_counter()
    out = Path(out_dir)
    gaiji = read_gaiji_map(Path(gaiji_map_path))
    reg_rows: list[tuple] = []
    surnames: set[str] = set()
    skipped = 0
    for row in RegistryReader(Path(registry_path), profile="anpi", encoding=encoding).rows():
        f = row.fields
        rid = f.get("resident_id", "")
        if not rid:
            skipped += 1
            continue
        try:
            pd = parse_date(f.get("birth_date", ""))
        except DateError:
            skipped += 1  # the importer rejects such rows too
            continue
        birth = pd.value if pd.kind == "day" else None
        family, family_kana = f.get("family_name", ""), f.get("family_name_kana", "")
        k = registry_keys(family, f.get("given_name", ""), family_kana, f.get("given_name_kana", ""),
                          f.get("alpha_name", ""), birth, f.get("sex", ""), f.get("address", ""), gaiji)
        surnames.update(surname_keys(family, family_kana))
        reg_rows.append((rid, k.family_kana_loose, k.given_kana_loose, k.kana_loose, k.family_variant,
                         k.given_variant, k.kanji_variant, k.romaji, k.romaji, k.birth, k.birth_year, k.birth_year,
                         k.birth_year, k.sex, k.town))
    _write(out / "registry_keys.csv", reg_rows)
    n_reg = len(reg_rows)
    del reg_rows

    today = date.today()  # as `anpi roster import` does
    ros_rows: list[tuple] = []
    _header, rows = read_roster(Path(roster_path))
    previous_address = ""
    for row in rows:
        f = row.fields
        eid = f.get("evacuee_id", "").strip()
        if not eid or not (f.get("name", "").strip() or f.get("name_kana", "").strip()):
            continue  # rejected on import
        address = f.get("address", "").strip()
        if address in same_as_above and previous_address:
            address = previous_address
        previous_address = address
        q = query_keys(f.get("name", ""), f.get("name_kana", ""), f.get("birth_date", ""), f.get("sex", ""), address,
                       surnames=surnames, today=today)
        family_kanji = given_kanji = ""
        if q.variant_splits and q.variant_splits[0][1]:
            family_kanji, given_kanji = q.variant_splits[0]
        family_kana, given_kana = q.kana_splits[0] if q.kana_splits else ("", "")
        romaji = q.romaji[0] if q.romaji else ""
        romaji_alt = q.romaji[1] if len(q.romaji) > 1 else romaji
        pd = q.birth
        year_min = pd.year_min if pd.kind in ("day", "year", "age") else None
        year_max = pd.year_max if pd.kind in ("day", "year", "age") else None
        birth_year = year_min if year_min is not None and year_min == year_max else None
        ros_rows.append((eid, family_kana, given_kana, q.kana_loose[0] if q.kana_loose else "", family_kanji,
                         given_kanji, q.kanji_variant, romaji, romaji_alt,
                         pd.value.isoformat() if pd.kind == "day" and pd.value else "", birth_year, year_min, year_max,
                         q.sex, q.town))
    _write(out / "roster_keys.csv", ros_rows)
    return {"seconds": time.perf_counter() - t0, "registry": n_reg, "roster": len(ros_rows), "skipped": skipped}


# --- step 2 (child process): Splink -----------------------------------------------------------------

def _settings():
    import splink.comparison_level_library as cll
    import splink.comparison_library as cl
    from splink import SettingsCreator, block_on

    def level(sql: str, label: str) -> Any:
        """A custom level written as l.col / r.col (comparison SQL wants col_l / col_r)."""
        return cll.CustomLevel(re.sub(r"\b([lr])\.(\w+)", r"\2_\1", sql), label)

    def part(p: str) -> Any:
        """Family or given name over kanji and kana."""
        return cl.CustomComparison(
            output_column_name=f"{p}_name",
            comparison_levels=[
                level(f"(l.{p}_kanji IS NULL AND l.{p}_kana IS NULL) OR "
                                f"(r.{p}_kanji IS NULL AND r.{p}_kana IS NULL)", "null").configure(is_null_level=True),
                level(f"l.{p}_kanji = r.{p}_kanji", "kanji exact").configure(
                    tf_adjustment_column=f"{p}_kanji", tf_adjustment_weight=1.0),
                level(f"l.{p}_kana = r.{p}_kana", "kana exact").configure(
                    tf_adjustment_column=f"{p}_kana", tf_adjustment_weight=1.0),
                level(f"levenshtein(l.{p}_kana, r.{p}_kana) <= 1 OR "
                      f"jaro_winkler_similarity(l.{p}_kana, r.{p}_kana) >= 0.88", "kana 1 edit or JW ≥ 0.88"),
                cll.ElseLevel(),
            ],
            comparison_description=f"{p} name",
        )

    split = ("((l.family_kanji IS NOT NULL OR l.family_kana IS NOT NULL) AND "
             "(r.family_kanji IS NOT NULL OR r.family_kana IS NOT NULL))")
    no_name = ("(l.full_kanji IS NULL AND l.full_kana IS NULL AND l.romaji IS NULL) OR "
               "(r.full_kanji IS NULL AND r.full_kana IS NULL AND r.romaji IS NULL)")
    full_name = cl.CustomComparison(
        output_column_name="full_name",
        comparison_levels=[
            # Both names split: family_name and given_name carry the evidence; don't count it twice.
            level(f"{split} OR {no_name}", "split or null").configure(is_null_level=True),
            level("l.full_kanji = r.full_kanji OR l.full_kana = r.full_kana OR l.romaji = r.romaji "
                            "OR l.romaji_alt = r.romaji_alt", "exact (kanji, kana or romaji)"),
            level("levenshtein(l.full_kana, r.full_kana) <= 1 OR levenshtein(l.romaji, r.romaji) <= 1 "
                            "OR levenshtein(l.romaji_alt, r.romaji_alt) <= 1", "1 edit"),
            level("jaro_winkler_similarity(l.full_kana, r.full_kana) >= 0.9 OR "
                            "jaro_winkler_similarity(l.romaji, r.romaji) >= 0.9 OR "
                            "jaro_winkler_similarity(l.romaji_alt, r.romaji_alt) >= 0.9", "JW ≥ 0.9"),
            cll.ElseLevel(),
        ],
        comparison_description="whole name when the roster name is not split",
    )
    birth = cl.CustomComparison(
        output_column_name="birth",
        comparison_levels=[
            level("l.year_min IS NULL OR r.year_min IS NULL", "null").configure(is_null_level=True),
            level("l.birth = r.birth", "exact date"),
            level("damerau_levenshtein(l.birth, r.birth) <= 1", "date 1 character off"),
            level("(l.birth IS NULL OR r.birth IS NULL) AND l.year_min <= r.year_max "
                            "AND r.year_min <= l.year_max", "year consistent (age / year only)"),
            level("l.year_min <= r.year_max + 1 AND r.year_min <= l.year_max + 1", "within a year"),
            cll.ElseLevel(),
        ],
        comparison_description="birth date",
    )
    return SettingsCreator(
        link_type="link_only",
        unique_id_column_name="unique_id",
        comparisons=[part("family"), part("given"), full_name, birth, cl.ExactMatch("sex"), cl.ExactMatch("town")],
        blocking_rules_to_generate_predictions=[
            block_on("birth"),
            block_on("full_kana"),
            block_on("full_kanji"),
            block_on("romaji"),
            block_on("romaji_alt"),
            block_on("family_kana", "birth_year"),
            block_on("family_kanji", "birth_year"),
            block_on("given_kana", "birth_year"),
            block_on("given_kanji", "birth_year"),
        ],
        retain_matching_columns=False,
        retain_intermediate_calculation_columns=False,
    )


def _link(work_dir: str) -> dict[str, Any]:
    import duckdb
    import splink
    from splink import DuckDBAPI, Linker, block_on

    logging.getLogger("splink").setLevel(logging.ERROR)
    major = int(splink.__version__.split(".")[0])
    work = Path(work_dir)
    con = duckdb.connect()
    con.execute("SET enable_progress_bar = false")
    types = ", ".join(f"'{c}': '{'INTEGER' if c in _INT_COLUMNS else 'VARCHAR'}'" for c in COLUMNS)
    t_load = time.perf_counter()
    for table in ("registry", "roster"):
        path = str(work / f"{table}_keys.csv").replace("'", "''")
        con.execute(f"CREATE TABLE {table}_keys AS SELECT * FROM read_csv('{path}', header = true, "
                    f"columns = {{{types}}}, nullstr = '')")
    load_s = time.perf_counter() - t_load

    t0 = time.perf_counter()
    db_api = DuckDBAPI(connection=con)
    settings = _settings()
    if major >= 5:
        inputs = [db_api.register("registry_keys", dataset_display_name="registry"),
                  db_api.register("roster_keys", dataset_display_name="roster")]
        linker = Linker(inputs, settings, log_level=logging.ERROR)
    else:  # Splink 4: tables (or their names) plus the db_api go straight to the Linker
        linker = Linker(["registry_keys", "roster_keys"], settings, db_api, set_up_basic_logging=False,
                        input_table_aliases=["registry", "roster"])
    logging.getLogger("splink").setLevel(logging.ERROR)

    linker.training.estimate_probability_two_random_records_match(
        [block_on("full_kanji", "birth"), block_on("full_kana", "birth"), block_on("romaji", "birth")], recall=0.6)
    linker.training.estimate_u_using_random_sampling(max_pairs=1e7, seed=1)
    # m: pairs born the same day (trains the names, sex, town), then pairs with the same kanji name in
    # the same town (trains birth and sex: a comparison whose columns the rule uses is left out; the
    # town keeps the namesakes of a big registry from blurring what a match's birth date looks like).
    linker.training.estimate_parameters_using_expectation_maximisation(block_on("birth"))
    linker.training.estimate_parameters_using_expectation_maximisation(
        block_on("family_kanji", "given_kanji", "full_kanji", "town"))
    predictions = linker.inference.predict()
    top = con.execute(f"""
        WITH p AS (
            SELECT CASE WHEN source_dataset_l = 'roster' THEN unique_id_l ELSE unique_id_r END AS evacuee_id,
                   CASE WHEN source_dataset_l = 'roster' THEN unique_id_r ELSE unique_id_l END AS resident_id,
                   match_weight, match_probability
            FROM {predictions.physical_name})
        SELECT evacuee_id, resident_id, match_probability FROM p
        QUALIFY row_number() OVER (PARTITION BY evacuee_id ORDER BY match_weight DESC, resident_id) = 1
    """).fetchall()
    pairs = con.execute(f"SELECT count(*) FROM {predictions.physical_name}").fetchone()[0]
    wall = time.perf_counter() - t0
    con.close()
    peak_kb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # Linux: KiB
    return {"top": top, "pairs": pairs, "wall": wall, "load": load_s, "peak_mb": peak_kb // 1024,
            "version": splink.__version__}


# --- parent ---------------------------------------------------------------------------------------------

def _in_child(fn, *args):
    """Run fn in a fresh spawned interpreter (nothing inherited, so ru_maxrss is its own)."""
    with ProcessPoolExecutor(max_workers=1, mp_context=multiprocessing.get_context("spawn")) as ex:
        return ex.submit(fn, *args).result()


def _quality(top: list[tuple[str, str, float]], evacuee_ids: list[str], truth_path: Path) -> dict[str, float]:
    """bench/match_bench.py's quality(), for Splink's top candidate per evacuee."""
    truth: dict[str, str] = {}
    with truth_path.open(encoding="utf-8") as f:
        for row in csv.DictReader(f):
            truth[row["evacuee_id"]] = row["resident_id"]
    best = {e: (r, p) for e, r, p in top}
    rows = []  # (evacuee, decision, resident or "", top candidate or "")
    for e in evacuee_ids:
        r, p = best.get(e, ("", 0.0))
        decision = "auto" if p >= AUTO_PROBABILITY else "review" if p >= REVIEW_PROBABILITY else "none"
        rows.append((e, decision, r if decision == "auto" else "", r))
    residents = [x for x in rows if truth.get(x[0])]
    non_res = [x for x in rows if not truth.get(x[0])]
    autos = [x for x in rows if x[1] == "auto"]
    auto_ok = sum(1 for e, _d, rid, _t in autos if truth.get(e) == rid)
    return {
        "evacuees": len(rows),
        "residents": len(residents),
        "recall@1": sum(1 for e, _d, _r, t in residents if t and t == truth[e]) / max(1, len(residents)),
        "auto_precision": auto_ok / max(1, len(autos)),
        "auto_resolved_share": sum(1 for e, d, rid, _t in residents if d == "auto" and rid == truth[e])
        / max(1, len(residents)),
        "non_resident_false_auto": sum(1 for x in non_res if x[1] == "auto") / max(1, len(non_res)),
        "review_rate": sum(1 for x in rows if x[1] == "review") / max(1, len(rows)),
        "wrong_autos": len(autos) - auto_ok,
    }


def run_splink(ds) -> list[str]:
    """Link ``ds`` (a fixtures.generate.Dataset) with Splink; markdown rows for match_bench's table."""
    work = Path(ds.out_dir) / "splink"
    work.mkdir(parents=True, exist_ok=True)
    prep = _in_child(_prepare, str(ds.registry_path), ds.encoding, str(ds.gaiji_map_path), str(ds.roster_path),
                     str(work))
    res = _in_child(_link, str(work))
    with (work / "roster_keys.csv").open(encoding="utf-8") as f:
        evacuee_ids = [row["unique_id"] for row in csv.DictReader(f)]
    q = _quality(res["top"], evacuee_ids, Path(ds.truth_path))
    return [
        f"| recall@1 (Splink) | {q['recall@1']:.4f} |",
        f"| auto-precision (Splink) | {q['auto_precision']:.4f} ({q['wrong_autos']} wrong) |",
        f"| auto-resolved share of residents (Splink) | {q['auto_resolved_share']:.4f} |",
        f"| non-residents wrongly auto-linked (Splink) | {q['non_resident_false_auto']:.4%} |",
        f"| review rate (Splink) | {q['review_rate']:.4f} |",
        f"| Splink wall time (train + predict) | {res['wall']:.1f} s |",
        f"| Splink peak RSS | {res['peak_mb']} MB |",
        f"| Splink input prep (Anpi normalisers, load into DuckDB; not in wall time) | "
        f"{prep['seconds']:.1f} s + {res['load']:.1f} s |",
        f"| Splink version, scored pairs | {res['version']}, {res['pairs']:,} |",
    ]
