"""Where results live: the StoredFile record of every object, the backends that hold the bytes,
signed URLs that hand an object to a client, and the meter of each tenant's bytes."""
