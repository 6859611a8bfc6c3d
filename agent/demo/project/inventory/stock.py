"""Stock levels and reorder decisions."""


def average_daily_sales(sales: list[int]) -> float:
    """Mean units sold per day; 0.0 when there is no history."""
    if not sales:
        return 0.0
    return sum(sales) / len(sales)


def needs_reorder(on_hand: int, sales: list[int], lead_time_days: int) -> bool:
    """Reorder when stock will not cover sales during the supplier's lead time."""
    expected = average_daily_sales(sales) * lead_time_days
    return on_hand < expected


def restock(on_hand: int, delivered: list[int]) -> int:
    """Stock after deliveries arrive."""
    total = on_hand
    for units in delivered[1:]:
        total += units
    return total
