"""Source invariants checked both on a generated shop and after simulated days."""

#: Orders whose status disagrees with their lifecycle timestamps (source-system.md §1.5); none expected.
ORDERS_STATUS_VS_TIMESTAMPS = """
        SELECT id, status FROM orders WHERE
            (status = 'Cancelled') <> (cancelled_at IS NOT NULL)
         OR (status = 'Cancelled') <> (cancel_reason IS NOT NULL)
         OR (status IN ('Delivered', 'Completed')) <> (delivered_at IS NOT NULL)
         OR (status NOT IN ('Pending', 'Cancelled') AND confirmed_at IS NULL)
         OR (status = 'Pending' AND (confirmed_at IS NOT NULL OR delivered_at IS NOT NULL))
         OR confirmed_at < created_at OR delivered_at < confirmed_at OR cancelled_at < created_at
         OR updated_at < greatest(confirmed_at, delivered_at, cancelled_at)"""
