"""Financial: GL accounts and classifications, journals, VAT codes, transaction lines and their entries."""

from __future__ import annotations

from syncs.entities.declaration import Cadence, Entity, Output, Split, Strategy, TableDecl, fields

GL_ACCOUNTS = TableDecl(
    "gl_accounts",
    ("ID",),
    fields(
        text="Code Description BalanceSide BalanceType VATCode Costcenter",
        int="Type",
        bool="IsBlocked",
        datetime="Modified",
        columns={"Costcenter": "cost_center"},
    ),
    "General ledger accounts.",
)
GL_CLASSIFICATIONS = TableDecl(
    "gl_classifications",
    ("ID",),
    fields(
        text="Code Name Description Balance",
        guid="Parent Type TaxonomyNamespace",
        bool="Abstract",
        datetime="Modified",
    ),
    "Classifications (reporting schemes) of GL accounts.",
)
TRANSACTION_LINES = TableDecl(
    "transaction_lines",
    ("ID",),
    fields(
        guid="EntryID GLAccount Account",
        int="EntryNumber LineNumber FinancialYear FinancialPeriod Type Status",
        date="Date",
        text="JournalCode VATCode Description",
        number="AmountDC AmountFC",
        datetime="Modified",
        index="EntryID GLAccount Account",
    ),
    "Financial transaction lines (every booking); `entry_id` joins `financial_transactions.id`.",
)
FINANCIAL_TRANSACTIONS = TableDecl(
    "financial_transactions",
    ("EntryID",),
    fields(int="EntryNumber FinancialYear FinancialPeriod Type Status", date="Date", text="JournalCode"),
    "Financial entries (one per EntryID), from the header rows (LineNumber 0) of the transaction lines feed, "
    "else from the entry's newest line.",
)
JOURNALS = TableDecl(
    "journals",
    ("ID",),
    fields(
        text="Code Description Currency BankAccountIBAN",
        int="Type",
        guid="GLAccount",
        bool="IsBlocked",
        datetime="Modified",
        columns={"BankAccountIBAN": "bank_account_iban"},
    ),
    "Journals (sales, purchase, bank, general).",
)
VAT_CODES = TableDecl(
    "vat_codes",
    ("ID",),
    fields(
        text="Code Description Type",
        number="Percentage",
        bool="Charged IsBlocked",
        guid="GLToPay GLToClaim",
        datetime="Modified",
    ),
    "VAT codes; lines refer to them by `code` (their `vat_code`).",
)
COST_CENTERS = TableDecl(
    "cost_centers",
    ("ID",),
    fields(text="Code Description", bool="Active", date="EndDate", datetime="Modified"),
    "Cost centers; lines and GL accounts refer to them by `code`.",
)

ENTITIES = (
    Entity(
        "gl_accounts", "sync/Financial/GLAccounts", Strategy.SYNC, (Output(GL_ACCOUNTS),), Cadence.REFERENCE,
        frozenset({7}), None, "PIS Sync/Financial/GLAccounts.php",
    ),
    Entity(
        "gl_classifications", "sync/Financial/GLClassifications", Strategy.SYNC, (Output(GL_CLASSIFICATIONS),),
        Cadence.REFERENCE, frozenset({18}), None, "PIS Sync/Financial/GLClassifications.php",
    ),
    # One feed, two tables: LineNumber 0 rows are the entries' headers (Exact doc text, PIS).
    Entity(
        "transaction_lines", "sync/Financial/TransactionLines", Strategy.SYNC,
        (
            Output(TRANSACTION_LINES, Split(lines_only=True)),
            Output(FINANCIAL_TRANSACTIONS, Split(header_of="EntryID")),
        ),
        Cadence.TRANSACTIONAL, frozenset({1}), "FinancialTransactions", "PIS Sync/Financial/TransactionLines.php",
    ),
    Entity(
        "journals", "financial/Journals", Strategy.SNAPSHOT, (Output(JOURNALS),), Cadence.REFERENCE,
        source="PIS Financial/Journals.php; NG syncs/journals.ts (full + trackDeletes)",
    ),
    Entity(
        "vat_codes", "vat/VATCodes", Strategy.SNAPSHOT, (Output(VAT_CODES),), Cadence.REFERENCE,
        source="PIS VAT/VATCodes.php; NG syncs/vat-codes.ts (full + trackDeletes)",
    ),
    Entity(
        "cost_centers", "hrm/Costcenters", Strategy.SNAPSHOT, (Output(COST_CENTERS),), Cadence.REFERENCE,
        source="PIS HRM/Costcenters.php",
    ),
)  # fmt: skip
