"""Cashflow: one payment-terms feed fills payment terms, payments (LineType 22) and receivables (20)."""

from __future__ import annotations

from syncs.entities.declaration import Cadence, Entity, Field, Output, Split, Strategy, TableDecl, fields

_TERM_FIELDS = fields(
    guid="EntryID Account TransactionEntryID",
    int="LineType Status InvoiceNumber",
    number="AmountDC AmountFC",
    date="DueDate",
    text="PaymentReference",
    bool="IsFullyPaid",
    datetime="Modified",
    index="EntryID Account",
)


def _term_table(name: str, doc: str, table_fields: tuple[Field, ...] = _TERM_FIELDS) -> TableDecl:
    return TableDecl(name, ("ID",), table_fields, doc)


PAYMENT_TERMS = _term_table(
    "payment_terms",
    "Every installment of sync/Cashflow/PaymentTerms: `line_type` 22 payment, 20 receipt; `status` 20 open, "
    "30 selected, 40 processed, 50 matched.",
)
PAYMENTS = _term_table("payments", "Payments to suppliers: the payment terms with LineType 22.")
RECEIVABLES = _term_table("receivables", "Amounts customers owe: the payment terms with LineType 20.")

# Added as the README's example of a new entity: this declaration, then `python -m models.revision`.
PAYMENT_CONDITIONS = TableDecl(
    "payment_conditions",
    ("ID",),
    fields(text="Code Description", int="PaymentDays", datetime="Modified"),
    "Payment conditions (the terms master data: code, description, days), not the installments.",
)

ENTITIES = (
    Entity(
        "payment_terms", "sync/Cashflow/PaymentTerms", Strategy.SYNC,
        (
            Output(PAYMENT_TERMS),
            Output(PAYMENTS, Split(where=("LineType", "22"))),
            Output(RECEIVABLES, Split(where=("LineType", "20"))),
        ),
        Cadence.TRANSACTIONAL, frozenset({10}), None,
        "PIS Sync/Cashflow/PaymentTerms.php (LineType 22 payment, 20 receipt; filtered on our side)",
    ),
    Entity(
        "payment_conditions", "cashflow/PaymentConditions", Strategy.SNAPSHOT, (Output(PAYMENT_CONDITIONS),),
        Cadence.REFERENCE, source="catalog #25 (cashflow/PaymentConditions: no sync or bulk endpoint)",
    ),
)  # fmt: skip
