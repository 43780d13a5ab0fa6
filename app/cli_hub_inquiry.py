"""`anpi hub inquiry ask|list`: the 安否照会 desk at the hub, across every shelter of a municipality.

A thin face over `app.hub_inquiry` (the same function `POST /v1/hq/inquiries` calls). `ask`
prints only what the desk may say: the script, or the one "no information" text whatever the
reason; the real outcome is in `list` (and the hub audit log). Relationship and ID document take
the Japanese values of the desk form or short English aliases.
"""

from __future__ import annotations

import json
from typing import Optional

import typer

RELATIONSHIP_ALIASES = {"household": "同居の親族", "relative": "その他の親族・職場", "workplace": "その他の親族・職場",
                        "acquaintance": "知人", "other": "その他"}
ID_PROOF_ALIASES = {"license": "運転免許証", "mynumber": "マイナンバーカード", "insurance": "健康保険証", "other": "その他"}
#: form field → the option that fills it (error messages name what the user typed)
OPTION_OF = {"inquirer_name": "--inquirer-name", "inquirer_address": "--inquirer-address",
             "inquirer_phone": "--inquirer-phone", "id_proof": "--id-proof", "id_proof_note": "--id-proof-note",
             "relationship": "--relationship", "purpose": "--purpose", "sought_name": "--name",
             "sought_kana": "--kana", "sought_birth": "--birth", "sought_address": "--address", "by": "--by"}
NEEDS_DETAIL = ("お尋ねの方を特定できません。生年月日・住所・フリガナなど、もう少し詳しく伺ってから照会してください。"
                "これ以上わからない場合は --give-up を付けてください。 (several people fit, or none can be confirmed: "
                "ask for more detail)")


def register(hub_app: typer.Typer) -> None:
    """Add `anpi hub inquiry ask|list`."""
    from app.cli_sync import DB_OPT, MUNI_OPT, _fail, hub_database

    inquiry_app = typer.Typer(help="安否照会 desk at the hub (every shelter of the municipality).",
                              no_args_is_help=True)
    hub_app.add_typer(inquiry_app, name="inquiry")

    @inquiry_app.command("ask")
    def ask_cmd(
        municipality: Optional[str] = MUNI_OPT,
        inquirer_name: str = typer.Option("", "--inquirer-name", help="照会者の氏名"),
        inquirer_address: str = typer.Option("", "--inquirer-address", help="照会者の住所"),
        inquirer_phone: str = typer.Option("", "--inquirer-phone"),
        id_proof: str = typer.Option("", "--id-proof", help="運転免許証 | マイナンバーカード | 健康保険証 | その他 "
                                                            "(or license, mynumber, insurance, other)"),
        id_proof_note: str = typer.Option("", "--id-proof-note", help="the document, when --id-proof is その他"),
        relationship: str = typer.Option("", "--relationship", help="同居の親族 | その他の親族・職場 | 知人 | その他 "
                                                                    "(or household, relative, acquaintance, other)"),
        purpose: str = typer.Option("", "--purpose", help="照会の理由"),
        name: str = typer.Option("", "--name", help="お尋ねの方の氏名 (kanji, kana or romaji)"),
        kana: str = typer.Option("", "--kana"),
        birth: str = typer.Option("", "--birth", help="生年月日: S45.3.1, 1970-03-01, 78歳 …"),
        address: str = typer.Option("", "--address"),
        give_up: bool = typer.Option(False, "--give-up", help="the inquirer can tell no more: record the answer"),
        by: str = typer.Option(..., "--by", help="the desk member answering"),
        as_json: bool = typer.Option(False, "--json"),
        database_url: Optional[str] = DB_OPT,
    ) -> None:
        """Answer one 安否照会 from every shelter's registrations; the inquiry is logged and audited."""
        from app import hub_inquiry
        from app.services.errors import InvalidInput
        from app.services.inquiry_rules import InquiryRequest
        from sync.hub import registry

        req = InquiryRequest(
            inquirer_name=inquirer_name, inquirer_address=inquirer_address, inquirer_phone=inquirer_phone,
            id_proof=ID_PROOF_ALIASES.get(id_proof.strip().lower(), id_proof),
            id_proof_note=id_proof_note, purpose=purpose,
            relationship=RELATIONSHIP_ALIASES.get(relationship.strip().lower(), relationship),
            sought_name=name, sought_kana=kana, sought_birth=birth, sought_address=address, give_up=give_up)
        with hub_database(database_url) as engine:
            try:
                ans = hub_inquiry.answer_inquiry(engine, registry.data_key_of(engine), municipality, req,
                                                 by=by, actor=f"operator:{by.strip()}")
            except InvalidInput as exc:  # name the option, in English and Japanese
                opt = OPTION_OF.get(exc.field, exc.field)
                en = str(exc).split(": ", 1)[-1]
                raise _fail(f"{opt}: {en} / {exc.message_ja}") from None
        if as_json:
            typer.echo(json.dumps(ans.for_desk(), ensure_ascii=False))
        elif ans.needs_detail:
            typer.echo(NEEDS_DETAIL)
        else:
            typer.echo(ans.answer_text)

    @inquiry_app.command("list")
    def list_cmd(
        municipality: Optional[str] = MUNI_OPT,
        outcome: str = typer.Option("", "--outcome", help="answered | refused | restricted | not_found | ambiguous"),
        limit: int = typer.Option(500, "--limit", min=1),
        as_json: bool = typer.Option(False, "--json"),
        database_url: Optional[str] = DB_OPT,
    ) -> None:
        """The inquiry log with the real outcome, newest first (the look is audited)."""
        from app import hub_inquiry
        from app.cli_sync import _actor

        with hub_database(database_url) as engine:
            rows = hub_inquiry.list_inquiries(engine, municipality, outcome=outcome, limit=limit, actor=_actor())
        if as_json:
            typer.echo(json.dumps(rows, ensure_ascii=False))
            return
        for r in rows:
            sought = r["sought"]
            items = "".join(chr(0x2460 + n - 1) for n in r["items"]) or "-"
            typer.echo(f"{r['at'][:16]}  {r['by_user']}  {r['inquirer'].get('name', '')}({r['relationship']})  "
                       f"→ {sought.get('name') or sought.get('kana')} {sought.get('birth', '')}  "
                       f"{r['outcome_ja'] or r['outcome']}  {items}")
