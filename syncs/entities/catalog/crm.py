"""CRM: accounts, contacts, addresses, quotations, bank accounts of relations."""

from __future__ import annotations

from syncs.entities.declaration import Cadence, Entity, Output, Strategy, TableDecl, fields

ACCOUNTS = TableDecl(
    "accounts",
    ("ID",),
    fields(
        text="Code Name Status Email Phone Website AddressLine1 Postcode City Country VATNumber ChamberOfCommerce",
        bool="IsSales IsSupplier Blocked",
        datetime="Created Modified",
    ),
    "Customers, suppliers and other relations. `code` is trimmed of Exact's 18-character right alignment.",
)
CONTACTS = TableDecl(
    "contacts",
    ("ID",),
    fields(
        guid="Account",
        text="FirstName LastName FullName Email BusinessPhone",
        bool="IsMainContact",
        int="HID",
        datetime="Modified",
        index="Account",
    ),
    "Contact persons of accounts.",
)
ADDRESSES = TableDecl(
    "addresses",
    ("ID",),
    fields(
        guid="Account Contact",
        int="Type",
        bool="Main",
        text="AddressLine1 Postcode City Country",
        datetime="Modified",
        index="Account",
    ),
    "Addresses of accounts and contacts; `type` 1 visit, 2 postal, 3 invoice, 4 delivery.",
)
QUOTATIONS = TableDecl(
    "quotations",
    ("ID",),
    fields(
        guid="QuotationID OrderAccount",
        int="QuotationNumber VersionNumber Status",
        date="QuotationDate",
        number="AmountDC",
        text="Currency",
        datetime="Modified",
        index="QuotationID OrderAccount",
    ),
    "Quotation headers (one row per quotation version).",
)
QUOTATION_LINES = TableDecl(
    "quotation_lines",
    ("ID",),
    fields(
        guid="QuotationID Item",
        int="QuotationNumber LineNumber",
        number="Quantity NetPrice AmountDC",
        text="VATCode",
        datetime="Modified",
        index="QuotationID Item",
    ),
    "Quotation lines; `quotation_id` joins `quotations.quotation_id`.",
)
BANK_ACCOUNTS = TableDecl(
    "bank_accounts",
    ("ID",),
    fields(
        guid="Account",
        text="BankAccount IBAN BICCode BankAccountHolderName Type",
        bool="Main Blocked",
        datetime="Modified",
        index="Account",
        columns={"IBAN": "iban"},
    ),
    "Bank accounts of relations (crm/BankAccounts; `type` A account, E employee, K cash, ...).",
)

ENTITIES = (
    Entity(
        "accounts", "sync/CRM/Accounts", Strategy.SYNC, (Output(ACCOUNTS),), Cadence.TRANSACTIONAL,
        frozenset({2}), "Accounts", "PIS Sync/CRM/Accounts.php; EXD", division_field="Division",
    ),
    Entity(
        "contacts", "sync/CRM/Contacts", Strategy.SYNC, (Output(CONTACTS),), Cadence.MASTER,
        frozenset({5}), "Contacts", "PIS Sync/CRM/Contacts.php",
    ),
    Entity(
        "addresses", "sync/CRM/Addresses", Strategy.SYNC, (Output(ADDRESSES),), Cadence.MASTER,
        frozenset({3}), None, "PIS Sync/CRM/Addresses.php",
    ),
    Entity(
        "quotations", "sync/CRM/QuotationHeaders", Strategy.SYNC, (Output(QUOTATIONS),), Cadence.MASTER,
        frozenset({34}), "Quotations", "PIS Sync/CRM/QuotationHeaders.php; ET 34 PQ SyncDeleted.php",
    ),
    Entity(
        "quotation_lines", "sync/CRM/QuotationLines", Strategy.SYNC, (Output(QUOTATION_LINES),), Cadence.MASTER,
        frozenset({35}), "Quotations", "PIS Sync/CRM/QuotationLines.php",
    ),
    # No sync endpoint and no deletion EntityType for relations' bank accounts (ET 48 is payroll, unverified):
    # read whole daily so that removed ones are marked deleted.
    Entity(
        "bank_accounts", "crm/BankAccounts", Strategy.SNAPSHOT, (Output(BANK_ACCOUNTS),), Cadence.REFERENCE,
        frozenset(), "BankAccounts", "PIS CRM/BankAccounts.php",
    ),
)  # fmt: skip
