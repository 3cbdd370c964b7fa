"""Actions are built on the entity declarations: each field's kind is the entity's, and a name the entity does not
declare (nor the action as write-only) is refused at import."""

from __future__ import annotations

import pytest

from syncs.actions.build import KINDS, create, header_table, line_table, params
from syncs.actions.catalog import ACTIONS
from syncs.actions.declaration import Kind, Param
from syncs.entities.catalog import CATALOG, TABLES
from syncs.entities.declaration import fields


def _declared(table: str) -> dict[str, Kind]:
    decl = TABLES[table]
    return {**{key: Kind.GUID for key in decl.key}, **{f.exact: KINDS[f.kind] for f in decl.fields}}


def _checked(params: tuple[Param, ...], table: str) -> int:
    """Params whose name the table declares must carry its kind; returns how many were checked."""
    declared = _declared(table)
    for param in params:
        if param.name in declared:
            assert param.kind is declared[param.name], (table, param.name)
    return sum(param.name in declared for param in params)


def test_every_declared_field_takes_its_kind_from_the_entity() -> None:
    checked = 0
    for action in ACTIONS.values():
        if action.entity is None:
            continue
        checked += _checked(action.params, header_table(action.entity).name)
        lines = action.lines
        if lines is not None and (lines.entity or CATALOG[action.entity].header_of):
            checked += _checked(lines.params, line_table(lines.entity or action.entity).name)
    assert checked > 60  # most fields come from the entity declarations


def test_a_kind_changed_in_the_entity_changes_the_action() -> None:
    table = TABLES["accounts"]
    assert params("accounts", table, "Name", "IsSales")[1].kind is Kind.BOOL
    assert params("accounts", table, "", "Modified")[0].kind is Kind.DATE  # DATETIME is sent as a date


def test_references_come_from_the_field_names() -> None:
    invoice = ACTIONS["sales_invoices.create"]
    assert invoice.fields()["OrderedBy"].references == "accounts"
    assert invoice.lines is not None and {p.name: p.references for p in invoice.lines.params}["Item"] == "items"
    assert ACTIONS["accounts.update"].fields()["ID"].references == "accounts"


def test_an_undeclared_field_is_refused_at_import() -> None:
    with pytest.raises(ValueError, match=r"\['Nmae'\] are neither fields of accounts nor write-only"):
        create("accounts", "crm/Accounts", required="Nmae", marker="Remarks", doc="")
    made = create("accounts", "crm/Accounts", required="Name", write_only=fields(text="Nmae"), marker="Nmae", doc="")
    assert [p.name for p in made.params] == ["Name", "Nmae"]


def test_journals_are_looked_up_never_assumed() -> None:
    for name in ("sales_invoices.create", "purchase_entries.create"):
        journal = ACTIONS[name].fields()["Journal"]
        assert journal.required and journal.lookup is not None and journal.lookup.table == "journals"
    assert ACTIONS["sales_invoices.update"].fields()["Journal"].lookup is None  # an update changes only what is sent
