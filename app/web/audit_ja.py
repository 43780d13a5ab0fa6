"""The audit log as an administrator reads it: screen names instead of routes, 「避難者 …」 instead of
``evacuee:…``, 「件数: 3」 instead of JSON. The stored entries (and their hashes) are unchanged;
only the page speaks Japanese. The JSON Lines export keeps everything as stored."""

from __future__ import annotations

from typing import Any

#: route prefix → screen name, longest first wins
_SCREENS = [
    ("/roster/import", "名簿ファイル取込"), ("/roster/print", "名簿印刷"), ("/roster", "名簿"),
    ("/intake/self-queue", "本人記入の一覧"), ("/self", "本人記入（記入用の画面）"),
    ("/intake", "受付"), ("/review", "照合確認"), ("/hq", "安否確認"), ("/desk/inquiry", "安否照会"),
    ("/desk/certificates", "証明書"), ("/desk/sought", "捜索依頼"), ("/admin/users", "利用者管理"),
    ("/admin/registry", "台帳取込"), ("/admin/audit", "監査ログ"), ("/admin/backup", "バックアップ"),
    ("/admin/shelters", "避難所管理"), ("/admin/devices", "端末"), ("/pair", "端末の登録"), ("/switch/pin", "暗証番号設定"), ("/switch", "交代"), ("/lock", "ロック"),
    ("/dashboard", "ダッシュボード"), ("/desk/scan", "カード読取"), ("/cards/print", "避難者カード印刷"),
    ("/noticeboard", "掲示用名簿"), ("/api/session", "交代（端末連携）"), ("/api/audit", "監査ログ出力"),
    ("/api/", "端末連携"), ("/v1/", "本部システム連携"),
]
_SUBJECT = {"evacuee": "避難者", "resident": "宛名番号", "staff": "利用者", "certificate": "証明書",
            "inquiry": "照会", "sought": "捜索依頼", "person": "捜索対象", "hq": "本部記録", "hub": "本部",
            "operator": "操作者", "cli": "コマンド操作", "shelter": "避難所", "self_entry": "本人記入",
            "card": "カード", "device": "端末"}
_KEY = {"accepted": "取込件数", "action": "操作", "care": "要配慮", "count": "件数", "counts": "件数",
        "decision": "判定", "destination": "行き先", "failed_attempts": "失敗回数", "fields": "項目", "file": "ファイル",
        "filter": "条件", "filters": "条件", "format": "形式", "household_key": "世帯", "import_id": "取込番号",
        "inquiry_id": "照会番号", "into": "統合先", "link_rows": "候補数", "list": "一覧", "members": "人数",
        "merged": "統合", "name": "氏名", "number": "番号", "ok": "成功", "only": "絞り込み", "origin": "送信元",
        "outcome": "結果", "page": "ページ", "persons": "人数", "pin_set": "暗証番号設定済み", "q": "検索語",
        "query": "検索語", "reason": "理由", "resident_id": "宛名番号", "role": "役割", "rows": "行数",
        "size": "大きさ", "status": "状態", "stay_id": "記録番号", "subject": "対象", "text": "検索語",
        "user": "利用者", "where": "場所", "since": "から", "until": "まで", "verify": "改ざんチェック",
        "rejected": "取込不可", "sha256": "確認値", "code": "コード", "capacity": "定員", "shelter": "避難所",
        "towns": "町字", "care_only": "要配慮のみ", "age_band": "年齢", "household": "世帯番号", "population": "人数",
        "restricted_shown": "閲覧制限の方", "kind": "種類", "method": "方法", "note": "備考", "name_kana": "フリガナ",
        "ticket": "受付番号", "lang": "言語", "client": "接続元", "waiting": "受付待ち",
        "cards": "枚数", "blind": "避難所名なしのカード", "paper": "用紙", "restricted_excluded": "閲覧制限で除外",
        "device_name": "端末の名前"}
_VALUE = {"in_shelter": "在所", "left": "退所", "transferred": "移動", "all": "すべて", "manual": "手動",
          "idle": "無操作", "confirmed": "確認済み", "rejected": "別人", "not_resident": "住民でない",
          "auto": "自動照合", "review": "要確認", "none": "該当なし", "csv": "CSV", "xlsx": "Excel", "pdf": "PDF",
          "anpi-list": "安否確認リスト", "safe": "確認済み",
          "noticeboard": "掲示用名簿", "checkin": "再入所", "arrive": "受入", "present": "在所中", "intake": "受付へ",
          "forged": "偽造・改ざん", "unknown_key": "確認できない鍵", "format": "カードでない"}


def screen_ja(screen: str) -> str:
    """``GET /roster/{evacuee_id}`` → 名簿（閲覧）; ``cli …`` → コマンド操作."""
    method, _, path = (screen or "").partition(" ")
    if method == "cli" or not path:
        return "コマンド操作" if method == "cli" else (screen or "")
    name = next((ja for prefix, ja in _SCREENS if path.startswith(prefix)), "その他の画面")
    return name + ("（表示）" if method == "GET" else "（操作）")


def subject_ja(subject: str) -> str:
    kind, _, ident = subject.partition(":")
    return f"{_SUBJECT.get(kind, '対象')} {ident}" if ident else subject


def _value(v: Any) -> str:
    if isinstance(v, bool):
        return "はい" if v else "いいえ"
    if v is None or v == "":
        return "なし"
    if isinstance(v, dict):
        return "、".join(detail_items(v)) or "なし"
    if isinstance(v, (list, tuple)):
        return "・".join(_value(x) for x in v) or "なし"
    return _VALUE.get(str(v), str(v))


def detail_items(detail: dict[str, Any] | None) -> list[str]:
    """``{"q": "しみず", "count": 2}`` → ["検索語: しみず", "件数: 2"]; empty values are left out."""
    out = []
    for key, v in (detail or {}).items():
        if v in ("", None, [], {}) or v is False:
            continue  # an unset filter says nothing
        label = _KEY.get(key)
        out.append(f"{label}: {_value(v)}" if label else _value(v))
    return out
