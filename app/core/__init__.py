"""What every domain package stands on: domain errors, the declarative base, the one commit idiom,
lookups that answer 404, keyset paging, secrets at rest and buffered counters."""
