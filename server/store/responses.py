"""ResponseRepository: stored responses, their input items, and an index of item ids."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from sqlmodel import col, delete, select

from server.store.database import Database, frees_space
from server.store.tables import ResponseItemRecord, ResponseRecord


@dataclass
class StoredResponse:
    response: dict[str, Any]
    input_items: list[dict[str, Any]]


class ResponseRepository:
    def __init__(self, db: Database) -> None:
        self._db = db

    def put(self, response: dict[str, Any], input_items: list[dict[str, Any]]) -> None:
        """Store (or replace) a response and index its items' ids."""
        record = ResponseRecord(
            id=response["id"],
            created_at=response["created_at"],
            status=response["status"],
            body=json.dumps(response, ensure_ascii=False),
            input_items=json.dumps(input_items, ensure_ascii=False),
        )
        item_ids = {
            i["id"] for i in [*input_items, *response["output"]] if isinstance(i.get("id"), str)
        }
        with self._db.session() as s:
            s.merge(record)
            s.exec(
                delete(ResponseItemRecord).where(col(ResponseItemRecord.response_id) == record.id)
            )
            existing = set(
                s.exec(
                    select(ResponseItemRecord.id).where(col(ResponseItemRecord.id).in_(item_ids))
                )
            )
            for item_id in item_ids - existing:
                s.add(ResponseItemRecord(id=item_id, response_id=record.id))
            s.commit()

    def get(self, response_id: str) -> StoredResponse | None:
        with self._db.session() as s:
            rec = s.get(ResponseRecord, response_id)
        if rec is None:
            return None
        return StoredResponse(json.loads(rec.body), json.loads(rec.input_items))

    @frees_space
    def delete(self, response_id: str) -> bool:
        with self._db.session() as s:
            rec = s.get(ResponseRecord, response_id)
            if rec is None:
                return False
            s.delete(rec)
            s.exec(
                delete(ResponseItemRecord).where(col(ResponseItemRecord.response_id) == response_id)
            )
            s.commit()
            return True

    def find_item(self, item_id: str) -> dict[str, Any] | None:
        """An item (input or output) of any stored response, by its id."""
        with self._db.session() as s:
            ref = s.get(ResponseItemRecord, item_id)
        if ref is None:
            return None
        stored = self.get(ref.response_id)
        if stored is None:
            return None
        for item in [*stored.input_items, *stored.response["output"]]:
            if item.get("id") == item_id:
                found: dict[str, Any] = item
                return found
        return None
