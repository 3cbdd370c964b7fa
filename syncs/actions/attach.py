"""`sales_invoices.attach_file`: a file on a sales invoice, as Exact does it (catalog W9): POST a Document (linked
to the invoice by `FinancialTransactionEntryID`), POST a DocumentAttachment with the file's bytes (base64) on it,
then PUT the invoice's `Document`. The Document carries the marker in its `Body`; after a lost answer each step
is looked up before it is sent again (the document by its marker, the attachment by its document), and the PUT
is safe to repeat. The document and the attachment's metadata are read back into their synced tables."""

from __future__ import annotations

from collections.abc import Callable
from contextlib import AbstractContextManager
from typing import Any

import structlog
from sqlalchemy.orm import Session, sessionmaker

from syncs.actions.calls import get_record, key_of, keyed
from syncs.actions.catalog import DOCUMENT_ATTACHMENTS, DOCUMENTS
from syncs.actions.declaration import Action
from syncs.actions.readback import upsert_synced
from syncs.exact.client import ExactClient
from syncs.exact.odata import decode_json, page_from_json

log = structlog.get_logger(__name__)
Sending = Callable[[bool], AbstractContextManager[None]]  # one request of the write (see perform._sending)
DOCUMENT_FIELDS = ("Subject", "Type", "DocumentDate", "Body")


def _find(client: ExactClient, action: Action, division: int, field: str, literal: str) -> str | None:
    response = client.request(
        "GET", action.resource, division=division, params={"$filter": f"{field} eq {literal}", "$select": action.key}
    )
    rows = page_from_json(decode_json(response.content, action.resource), action.resource).rows
    return key_of(action, rows[0]) if rows else None


def _post(client: ExactClient, action: Action, division: int, body: dict[str, Any]) -> str:
    response = client.request("POST", action.resource, division=division, body=body)
    return key_of(action, page_from_json(decode_json(response.content, action.resource), action.resource).rows[0])


def attach_file(
    client: ExactClient, invoices: Action, division: int, body: dict[str, Any], looking: bool, sending: Sending
) -> tuple[str, bool, dict[str, Any]]:
    """Run (or finish) the three steps; (the invoice's key, whether an earlier attempt's steps were found, the
    document's and the attachment's keys)."""
    invoice = str(body[invoices.key])
    marker = str(body["Body"]).replace("'", "''")
    document = _find(client, DOCUMENTS, division, "Body", f"'{marker}'") if looking else None
    attachment = _find(client, DOCUMENT_ATTACHMENTS, division, "Document", f"guid'{document}'") if document else None
    if looking:
        log.info("action.attach.lookup", invoice=invoice, document=document, attachment=attachment)
    found = document is not None
    started = looking  # after a lost answer anything may have reached Exact: a failure must not reset `sent`
    if document is None:
        with sending(started):
            fields = {name: body[name] for name in DOCUMENT_FIELDS if name in body}
            document = _post(client, DOCUMENTS, division, {**fields, "FinancialTransactionEntryID": invoice})
        started = True
    if attachment is None:
        with sending(started):
            attachment = _post(client, DOCUMENT_ATTACHMENTS, division, {
                "Document": document, "FileName": body["FileName"], "Attachment": body["Attachment"]})  # fmt: skip
        started = True
    with sending(started):
        client.request("PUT", keyed(invoices, invoice), division=division, body={"Document": document})
    return invoice, found, {"document": document, "attachment": attachment}


def read_back(
    sessions: sessionmaker[Session], client: ExactClient, division: int, keys: dict[str, Any]
) -> dict[str, Any]:
    """The document and the attachment (without its bytes) as Exact now holds them, upserted."""
    found: dict[str, Any] = {}
    with sessions() as session:
        for name, action in (("document", DOCUMENTS), ("attachment", DOCUMENT_ATTACHMENTS)):
            record = get_record(client, action, division, keys[name]) or {}
            record.pop("Attachment", None)
            if record:
                upsert_synced(session, action, division, keys[name], record)
            found[name] = record
        session.commit()
    return found
