"""Credits: the two-phase ledger, accounts (recharge, adjustment, seats, history), idempotency keys.
Payment providers, redemption codes and plans belong here too when they come."""
