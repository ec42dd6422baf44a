"""Where results live: the StoredFile record of every object, the backends that hold the bytes,
signed URLs that hand an object to a client, the meter of each tenant's bytes, and what storing them
costs (billing.py: the daily bill by the active StorageBillingRule)."""
