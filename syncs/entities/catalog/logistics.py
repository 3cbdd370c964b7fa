"""Logistics: items, item groups, sales prices, stock positions."""

from __future__ import annotations

from syncs.entities.declaration import Cadence, Entity, Output, Strategy, TableDecl, fields

ITEMS = TableDecl(
    "items",
    ("ID",),
    fields(
        text="Code Description Unit SalesVatCode",
        guid="ItemGroup",
        bool="IsSalesItem IsPurchaseItem IsStockItem",
        number="CostPriceStandard Stock",
        datetime="Modified",
        index="ItemGroup",
    ),
    "Articles and services.",
)
ITEM_GROUPS = TableDecl(
    "item_groups",
    ("ID",),
    fields(text="Code Description", guid="GLRevenue GLCosts GLStock", int="IsDefault", datetime="Modified"),
    "Item groups (`is_default` is Exact's Edm.Byte 0/1).",
)
SALES_ITEM_PRICES = TableDecl(
    "sales_item_prices",
    ("ID",),
    fields(
        guid="Item Account",
        number="Price Quantity",
        text="Currency Unit",
        date="StartDate EndDate",
        datetime="Modified",
        index="Item Account",
    ),
    "Sales prices; a row with `account` is a price agreement with that customer.",
)
STOCK_POSITIONS = TableDecl(
    "stock_positions",
    ("ID",),
    fields(
        guid="ItemId Warehouse",
        text="ItemCode",
        number="CurrentStock FreeStock ReservedStock PlanningIn PlanningOut ProjectedStock",
        index="ItemId Warehouse",
    ),
    "Stock per item and warehouse (Exact has no Modified here: `modified` stays empty).",
)

ENTITIES = (
    Entity(
        "items", "sync/Logistics/Items", Strategy.SYNC, (Output(ITEMS),), Cadence.MASTER,
        frozenset({9}), "Items", "PIS Sync/Logistics/Items.php",
    ),
    Entity(
        "item_groups", "logistics/ItemGroups", Strategy.SNAPSHOT, (Output(ITEM_GROUPS),), Cadence.REFERENCE,
        source="PIS Logistics/ItemGroups.php; NG syncs/item-groups.ts (full + trackDeletes)",
    ),
    Entity(
        "sales_item_prices", "sync/Logistics/SalesItemPrices", Strategy.SYNC, (Output(SALES_ITEM_PRICES),),
        Cadence.MASTER, frozenset({8}), None, "PIS Sync/Logistics/SalesItemPrices.php; ET 8 PQ SyncDeleted.php",
    ),
    Entity(
        "stock_positions", "sync/Inventory/StockPositions", Strategy.SYNC, (Output(STOCK_POSITIONS),),
        Cadence.TRANSACTIONAL, frozenset({15}), "StockPositions", "PIS Sync/Inventory/StockPositions.php",
    ),
)  # fmt: skip
