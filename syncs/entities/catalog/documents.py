"""Documents and their attachments (metadata and download URL, never the file bytes)."""

from __future__ import annotations

from syncs.entities.declaration import Cadence, Entity, Output, Strategy, TableDecl, fields

DOCUMENTS = TableDecl(
    "documents",
    ("ID",),
    fields(
        text="Subject",
        int="Type SalesInvoiceNumber HID",
        date="DocumentDate",
        guid="Account FinancialTransactionEntryID",
        datetime="Modified",
        index="Account",
    ),
    "Documents (Exact's document store).",
)
DOCUMENT_ATTACHMENTS = TableDecl(
    "document_attachments",
    ("ID",),
    fields(guid="Document", text="FileName Url", number="FileSize", index="Document"),
    "Attachment metadata. Exact never sends the bytes through sync; fetch a file with an authorised GET of "
    "`url` plus `&Download=1`. No Modified in Exact: `modified` stays empty.",
)

ENTITIES = (
    Entity(
        "documents", "sync/Documents/Documents", Strategy.SYNC, (Output(DOCUMENTS),), Cadence.MASTER,
        frozenset({6}), "Documents", "PIS Sync/Documents/Documents.php",
    ),
    Entity(
        "document_attachments", "sync/Documents/DocumentAttachments", Strategy.SYNC,
        (Output(DOCUMENT_ATTACHMENTS),), Cadence.MASTER, frozenset({4}), None,
        "PIS Sync/Documents/DocumentAttachments.php",
    ),
)  # fmt: skip
